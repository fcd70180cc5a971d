"""`bitbucket-pipelines.yml`: real files, as Bitbucket Cloud runs them, `final:` included."""

from __future__ import annotations

from pathlib import Path

from runner.errors import InputError
from runner.formats.bitbucket.compile import Compiler
from runner.formats.bitbucket.schema import FileSpec
from runner.formats.bitbucket.select import Choice, choose, every_pipeline
from runner.formats.gitrepo import Checkout
from runner.formats.options import LoadOptions
from runner.formats.schema import validate
from runner.formats.source import Document
from runner.model import Pipeline


def _spec(document: Document) -> FileSpec:
    if not isinstance(document.data, dict):
        raise document.error(
            (), "bitbucket-pipelines.yml is a mapping with a `pipelines:` key", "add `pipelines:`"
        )
    return validate(document, FileSpec)


def load(document: Document, path: Path, options: LoadOptions) -> Pipeline:
    spec = _spec(document)
    checkout = Checkout(path.parent)
    choice = choose(document, spec.pipelines, options.pipeline, options.branch or None, options.tag)
    if not options.branch and not options.tag and not options.pipeline:
        options = LoadOptions(**{**options.__dict__, "branch": checkout.branch})
        choice = choose(document, spec.pipelines, None, checkout.branch, None)
    return Compiler(document, spec, path, options, checkout).compile(choice)


def pipelines(document: Document, path: Path, options: LoadOptions) -> tuple[list[Choice], Choice | None]:
    """Every pipeline of the file, and the one `run` would choose (None when it would choose none)."""
    spec = _spec(document)
    branch = options.branch or (None if options.tag else Checkout(path.parent).branch)
    try:
        chosen: Choice | None = choose(document, spec.pipelines, options.pipeline, branch, options.tag)
    except InputError:
        chosen = None
    return every_pipeline(spec.pipelines), chosen
