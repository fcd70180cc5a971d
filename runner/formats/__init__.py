"""Input formats: YAML text in, a `Pipeline` out. No format touches the engine or Docker."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from runner.errors import InputError
from runner.formats.options import LoadOptions
from runner.formats.source import Document, load_file
from runner.model import Pipeline

Loader = Callable[[Document, Path, LoadOptions], Pipeline]


FORMAT_MODULES = {
    "native": "runner.formats.native",
    "bitbucket": "runner.formats.bitbucket",
    "kestra": "runner.formats.kestra",
}


class _Loaders(Mapping[str, Loader]):
    """Each format's `load`, its module imported when a file of that format is loaded: a run does not
    pay for the formats it does not read (Kestra's task tables alone take a tenth of a second)."""

    def __getitem__(self, name: str) -> Loader:
        if name not in FORMAT_MODULES:
            raise KeyError(name)
        loader: Loader = importlib.import_module(FORMAT_MODULES[name]).load
        return loader

    def __iter__(self) -> Iterator[str]:
        return iter(FORMAT_MODULES)

    def __len__(self) -> int:
        return len(FORMAT_MODULES)


LOADERS: Mapping[str, Loader] = _Loaders()
DEFAULT_FILES = ("runner.yml", "runner.yaml", "bitbucket-pipelines.yml", "bitbucket-pipelines.yaml")


def detect(document: Document, path: Path) -> str:
    data = document.data
    if path.name in ("bitbucket-pipelines.yml", "bitbucket-pipelines.yaml") or (
        isinstance(data, dict) and "pipelines" in data
    ):
        return "bitbucket"
    if isinstance(data, dict) and {"id", "namespace", "tasks"} <= data.keys():
        return "kestra"
    return "native"


def find_default(directory: Path) -> Path:
    for name in DEFAULT_FILES:
        if (directory / name).is_file():
            return directory / name
    raise InputError(
        f"no pipeline file here: none of {', '.join(DEFAULT_FILES)} is in {directory}",
        "name the file: runner run FILE",
    )


def load_document(path: Path, format_name: str | None) -> tuple[Document, str]:
    document = load_file(path)
    chosen = format_name or detect(document, path)
    if chosen not in LOADERS:
        raise InputError(
            f"the {chosen} format is not supported by this version",
            f"supported formats: {', '.join(sorted(LOADERS))}",
        )
    return document, chosen


def load_pipeline(path: Path, format_name: str | None = None, options: LoadOptions | None = None) -> Pipeline:
    document, chosen = load_document(path, format_name)
    return LOADERS[chosen](document, path.resolve(), options or LoadOptions())
