"""`bitbucket-pipelines.yml`: real files, as Bitbucket Cloud runs them, `final:` included."""

from __future__ import annotations

import difflib
from pathlib import Path

from runner.errors import InputError
from runner.formats.bitbucket.compile import Compiler
from runner.formats.bitbucket.schema import FileSpec
from runner.formats.bitbucket.select import Choice, choose, every_pipeline
from runner.formats.gitrepo import Checkout
from runner.formats.options import LoadOptions
from runner.formats.schema import MAX_REPORTED, validate
from runner.formats.source import Document
from runner.model import Pipeline

TOP_LEVEL = tuple(field.alias or name for name, field in FileSpec.model_fields.items())
NEAR_MISS = 0.8  # how close an unknown key must be to a known one to look like a slip of the keyboard


def _spec(document: Document) -> FileSpec:
    if not isinstance(document.data, dict):
        raise document.error(
            (), "bitbucket-pipelines.yml is a mapping with a `pipelines:` key", "add `pipelines:`"
        )
    known = {key: value for key, value in document.data.items() if key in TOP_LEVEL}
    return validate(document, FileSpec, known)


def misspelt_top_level_keys(document: Document) -> list[tuple[str, str]]:
    """Unknown top-level keys that look like a known one mistyped, with that known key. Bitbucket runs a
    file whose other top-level keys only hold YAML anchors (`test: &test`, `stepdefinitions:`), as
    Atlassian's own pipe repositories do; those are left alone."""
    found = []
    data = document.data if isinstance(document.data, dict) else {}
    for key in data:
        if key in TOP_LEVEL or not isinstance(key, str):
            continue
        close = difflib.get_close_matches(key, TOP_LEVEL, n=1, cutoff=NEAR_MISS)
        # `stepdefinitions` names what it holds; `simage` is `image` with a stray letter
        if close and not (close[0] in key and len(key) - len(close[0]) > 2):
            found.append((key, close[0]))
    return found


def load(document: Document, path: Path, options: LoadOptions) -> Pipeline:
    spec = _spec(document)
    checkout = Checkout(path.parent)
    choice = choose(document, spec.pipelines, options.pipeline, options.branch or None, options.tag)
    if not options.branch and not options.tag and not options.pipeline:
        options = LoadOptions(**{**options.__dict__, "branch": checkout.branch})
        choice = choose(document, spec.pipelines, None, checkout.branch, None)
    misspelt = misspelt_top_level_keys(document)
    compiled = Compiler(document, spec, path, options, checkout, misspelt).compile(choice)
    if not options.check_only:
        _check_the_others(document, spec, path, options, checkout, choice.label)
    return compiled


def _placeholder(name: str, default: str | None, allowed: tuple[str, ...]) -> str:
    return default or (allowed[0] if allowed else "value")


def _check_the_others(
    document: Document, spec: FileSpec, path: Path, options: LoadOptions, checkout: Checkout, chosen: str
) -> None:
    """Bitbucket starts no pipeline of a file that breaks a rule anywhere in it: neither does a run."""
    problems: list[InputError] = []
    for other in every_pipeline(spec.pipelines):
        if other.label == chosen:
            continue
        checking = LoadOptions(
            **{**options.__dict__, "pipeline": other.label, "prompt": _placeholder, "check_only": True}
        )
        try:
            Compiler(document, spec, path, checking, checkout).compile(other)
        except InputError as error:
            problems.extend(
                InputError(f"in pipeline {other.label}: {problem.message}", problem.hint, problem.position)
                for problem in (error, *error.others)
            )
    if problems:
        raise InputError.collect(problems[:MAX_REPORTED])


def pipelines(document: Document, path: Path, options: LoadOptions) -> tuple[list[Choice], Choice | None]:
    """Every pipeline of the file, and the one `run` would choose (None when it would choose none)."""
    spec = _spec(document)
    branch = options.branch or (None if options.tag else Checkout(path.parent).branch)
    try:
        chosen: Choice | None = choose(document, spec.pipelines, options.pipeline, branch, options.tag)
    except InputError:
        chosen = None
    return every_pipeline(spec.pipelines), chosen
