"""Kestra flows: `tasks`, `errors`, `finally` and `afterExecution`, run without a Kestra server."""

from __future__ import annotations

from pathlib import Path

from runner.formats.kestra.compile import Compiler, compile_task
from runner.formats.options import LoadOptions
from runner.formats.source import Document
from runner.model import TASK_COMPILERS, Pipeline

TASK_COMPILERS["kestra"] = compile_task


def load(document: Document, path: Path, options: LoadOptions) -> Pipeline:
    if not isinstance(document.data, dict):
        raise document.error((), "a Kestra flow is a mapping with `id`, `namespace` and `tasks`", None)
    return Compiler(document, path, options).compile()
