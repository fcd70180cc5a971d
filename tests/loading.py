"""Loading a pipeline text in a test: the helpers the format tests share."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runner.errors import InputError
from runner.formats import load_pipeline
from runner.formats.options import LoadOptions
from runner.model import Pipeline


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def load(directory: Path, name: str, text: str, **options: object) -> Pipeline:
    return load_pipeline(write(directory, name, text), options=LoadOptions(**options))  # type: ignore[arg-type]


def error_of(directory: Path, name: str, text: str, **options: object) -> InputError:
    with pytest.raises(InputError) as caught:
        load(directory, name, text, **options)
    return caught.value
