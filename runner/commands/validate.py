from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from runner.config import parse_pairs
from runner.formats import LOADERS, bitbucket, find_default, load_document
from runner.formats.options import LoadOptions
from runner.model import Pipeline


def placeholder_prompt(name: str, default: str | None, allowed: tuple[str, ...]) -> str:
    """Checking a file asks nobody: a declared variable takes its default, or any allowed value."""
    return default or (allowed[0] if allowed else "value")


def checking_options(
    pipeline: str | None, branch: str | None, tag: str | None, variables: list[str], strict: bool = False
) -> LoadOptions:
    """Options for reading a file without running it: nobody is asked, and missing values are allowed."""
    return LoadOptions(
        pipeline=pipeline,
        branch=branch,
        tag=tag,
        variables=parse_pairs(variables, "--var/--input"),
        prompt=placeholder_prompt,
        strict=strict,
        check_only=True,
    )


def validate(
    console: Console,
    file: Path | None,
    format_name: str | None,
    pipeline: str | None,
    branch: str | None,
    tag: str | None,
    variables: list[str],
    strict: bool,
) -> int:
    path = file or find_default(Path.cwd())
    document, chosen = load_document(path, format_name)
    base = checking_options(pipeline, branch, tag, variables, strict)
    names = (
        [pipeline]
        if pipeline or chosen != "bitbucket"
        else [choice.label for choice in bitbucket.pipelines(document, path, base)[0]]
    )
    for name in names or [None]:
        options = LoadOptions(**{**base.__dict__, "pipeline": name})
        compiled = LOADERS[chosen](document, path.resolve(), options)
        for warning in compiled.warnings:
            console.print(f"[yellow]{escape(warning.where)}: warning: {escape(warning.message)}[/yellow]")
        console.print(f"{escape(str(path))}: valid — {escape(compiled.name)}: {summary(compiled)}")
    return 0


def summary(pipeline: Pipeline) -> str:
    counts = {
        "services": len(pipeline.services),
        "steps": len([s for s in pipeline.all_steps()])
        - len(pipeline.services)
        - _count(pipeline.finally_)
        - _count(pipeline.errors),
        "errors": _count(pipeline.errors),
        "finally": _count(pipeline.finally_),
    }
    return ", ".join(f"{count} {name}" for name, count in counts.items() if count)


def _count(nodes: tuple[object, ...]) -> int:
    return sum(len(getattr(node, "steps", (node,))) for node in nodes)
