"""Input formats: YAML text in, a `Pipeline` out. No format touches the engine or Docker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runner.errors import InputError
from runner.formats import native
from runner.formats.source import Document, load_file
from runner.model import Pipeline

Loader = Callable[[Document, Path], Pipeline]

LOADERS: dict[str, Loader] = {
    "native": native.load,
}


def detect(document: Document, path: Path) -> str:
    data = document.data
    if path.name in ("bitbucket-pipelines.yml", "bitbucket-pipelines.yaml") or (
        isinstance(data, dict) and "pipelines" in data
    ):
        return "bitbucket"
    if isinstance(data, dict) and {"id", "namespace", "tasks"} <= data.keys():
        return "kestra"
    return "native"


def load_pipeline(path: Path, format_name: str | None = None) -> Pipeline:
    document = load_file(path)
    chosen = format_name or detect(document, path)
    loader = LOADERS.get(chosen)
    if loader is None:
        raise InputError(
            f"the {chosen} format is not supported by this version",
            f"supported formats: {', '.join(sorted(LOADERS))}",
        )
    return loader(document, path.resolve())
