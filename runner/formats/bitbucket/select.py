"""Which pipeline of a `bitbucket-pipelines.yml` runs: named with --pipeline, or chosen as Bitbucket would
for a branch, a tag or a pull request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.errors import InputError
from runner.formats.bitbucket.schema import PipelinesSpec
from runner.formats.source import Document, Loc
from runner.globs import compile_glob

KINDS = ("branches", "tags", "bookmarks", "pull-requests", "custom")


@dataclass(frozen=True)
class Choice:
    kind: str  # "default" or one of KINDS
    key: str  # the glob or name as written; "" for default
    items: list[Any]
    reason: str

    @property
    def loc(self) -> Loc:
        return ("pipelines", "default") if self.kind == "default" else ("pipelines", self.kind, self.key)

    @property
    def label(self) -> str:
        return "default" if self.kind == "default" else f"{self.kind}:{self.key}"


def glob_matches(pattern: str, name: str) -> bool:
    return compile_glob(pattern).fullmatch(name) is not None


def _section(pipelines: PipelinesSpec, kind: str) -> dict[str, list[Any]]:
    return {
        "branches": pipelines.branches,
        "tags": pipelines.tags,
        "bookmarks": pipelines.bookmarks,
        "pull-requests": pipelines.pull_requests,
        "custom": pipelines.custom,
    }[kind]


def _match(section: dict[str, list[Any]], name: str) -> str | None:
    """An exact name wins over a glob; among globs, the first one written."""
    if name in section:
        return name
    return next((pattern for pattern in section if glob_matches(pattern, name)), None)


def choose(
    document: Document, pipelines: PipelinesSpec, requested: str | None, branch: str | None, tag: str | None
) -> Choice:
    if requested:
        return _named(document, pipelines, requested)
    if tag:
        key = _match(pipelines.tags, tag)
        if key is None:
            raise InputError(
                f"no pipeline under `pipelines.tags` matches the tag '{tag}'",
                "choose one with --pipeline (see `runner list`)",
                document.position(("pipelines",)),
            )
        return Choice("tags", key, pipelines.tags[key], f"tag {tag} matches '{key}'")
    if branch:
        key = _match(pipelines.branches, branch)
        if key is not None:
            return Choice("branches", key, pipelines.branches[key], f"branch {branch} matches '{key}'")
    if pipelines.default is not None:
        why = f"no branch pipeline matches {branch}" if branch else "no branch was given or found"
        return Choice("default", "", pipelines.default, why)
    raise InputError(
        "no pipeline to run: there is no `default` pipeline"
        + (f" and none matches branch '{branch}'" if branch else ""),
        "choose one with --pipeline, e.g. --pipeline custom:NAME (see `runner list`)",
        document.position(("pipelines",)),
    )


def _named(document: Document, pipelines: PipelinesSpec, requested: str) -> Choice:
    if requested == "default":
        if pipelines.default is None:
            raise InputError(
                "this file has no `default` pipeline", "see `runner list` for the pipelines it has"
            )
        return Choice("default", "", pipelines.default, "chosen with --pipeline")
    kind, sep, key = requested.partition(":")
    if not sep or kind not in KINDS:
        raise InputError(
            f"--pipeline {requested!r} is not a pipeline name",
            "write default, branches:NAME, tags:NAME, pull-requests:NAME or custom:NAME",
        )
    section = _section(pipelines, kind)
    if key not in section:
        known = ", ".join(f"{kind}:{name}" for name in section) or "none"
        raise InputError(f"there is no pipeline {requested}", f"pipelines of that kind: {known}")
    return Choice(kind, key, section[key], "chosen with --pipeline")


def every_pipeline(pipelines: PipelinesSpec) -> list[Choice]:
    found = [Choice("default", "", pipelines.default, "")] if pipelines.default is not None else []
    for kind in KINDS:
        found += [Choice(kind, key, items, "") for key, items in _section(pipelines, kind).items()]
    return found
