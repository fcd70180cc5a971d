from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from runner.commands.validate import checking_options
from runner.formats import LOADERS, bitbucket, find_default, load_document
from runner.formats.options import LoadOptions
from runner.model import Group, Node, Pipeline


def list_pipelines(
    console: Console,
    file: Path | None,
    format_name: str | None,
    pipeline: str | None,
    branch: str | None,
    tag: str | None,
    variables: list[str],
) -> int:
    path = file or find_default(Path.cwd())
    document, chosen = load_document(path, format_name)
    base = checking_options(pipeline, branch, tag, variables)
    if chosen != "bitbucket":
        _show(console, LOADERS[chosen](document, path.resolve(), base), "", final="finally")
        return 0
    every, would_run = bitbucket.pipelines(document, path, base)
    for choice in every:
        compiled = bitbucket.load(
            document, path.resolve(), LoadOptions(**{**base.__dict__, "pipeline": choice.label})
        )
        mark = (
            " [green]← runner run chooses this[/green]"
            if would_run and would_run.label == choice.label
            else ""
        )
        _show(console, compiled, choice.label, mark)
    if would_run is not None:
        console.print(
            f"runner run would choose [bold]{escape(would_run.label)}[/bold] ({escape(would_run.reason)})"
        )
    else:
        console.print("runner run would choose no pipeline: name one with --pipeline")
    return 0


def _show(console: Console, pipeline: Pipeline, label: str, mark: str = "", final: str = "final") -> None:
    console.print(f"[bold]{escape(label or pipeline.name)}[/bold]{mark}")
    blocks = (
        ("", pipeline.steps),
        ("errors: ", pipeline.errors),
        (f"{final}: ", pipeline.finally_),
        ("afterExecution: ", pipeline.after),
    )
    for block, nodes in blocks:
        for node in nodes:
            console.print("  " + escape(block + _describe(node)))


def _describe(node: Node) -> str:
    if isinstance(node, Group):
        kind = "parallel" if node.parallel else "sequence"
        return f"{node.name} ({kind}): " + ", ".join(_describe(child) for child in node.steps)
    extras = [
        word
        for word, on in (
            ("manual", node.manual),
            ("skipped: " + (node.skip_reason or ""), node.skip_reason is not None),
        )
        if on
    ]
    return node.name + (f" ({', '.join(extras)})" if extras else "")
