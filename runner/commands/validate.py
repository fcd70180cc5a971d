from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from runner.formats import load_pipeline


def validate(console: Console, file: Path, format_name: str | None) -> int:
    pipeline = load_pipeline(file, format_name)
    counts = {
        "services": len(pipeline.services),
        "steps": len(pipeline.steps),
        "errors": len(pipeline.errors),
        "finally": len(pipeline.finally_),
    }
    shown = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
    console.print(f"{escape(str(file))}: valid — {escape(pipeline.name)}: {shown}")
    return 0
