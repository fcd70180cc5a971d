from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from runner.commands.validate import checking_options
from runner.durations import format_duration
from runner.engine.reuse import continuable
from runner.engine.selection import numbered
from runner.errors import LedgerUnavailable
from runner.formats import LOADERS, bitbucket, find_default, load_document
from runner.formats.options import LoadOptions
from runner.model import Group, Node, Pipeline
from runner.teardown.ledger import Ledger


def list_pipelines(
    console: Console,
    file: Path | None,
    format_name: str | None,
    pipeline: str | None,
    branch: str | None,
    tag: str | None,
    variables: list[str],
    as_json: bool = False,
) -> int:
    path = file or find_default(Path.cwd())
    document, chosen = load_document(path, format_name)
    base = checking_options(pipeline, branch, tag, variables)
    if as_json:
        print(json.dumps(_as_json(path, document, chosen, base), indent=2, ensure_ascii=False))
        return 0
    if chosen != "bitbucket":
        _show(console, LOADERS[chosen](document, path.resolve(), base), "", final="finally")
        _continuable(console, path)
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
    _continuable(console, path)
    return 0


LIST_VERSION = 1


def _as_json(path: Path, document: Any, chosen: str, base: LoadOptions) -> dict[str, object]:
    """Every pipeline of the file with its steps as `runner run --dry-run --json` describes them (images
    named, not looked up), and which one `runner run` would choose."""
    from runner.commands.plan import ImageCheck, describe

    names = ImageCheck(None, {}, look=False)
    if chosen != "bitbucket":
        compiled = LOADERS[chosen](document, path.resolve(), base)
        plan = describe(compiled, path, names, {}, False)
        return {
            "v": LIST_VERSION,
            "source": str(path),
            "format": chosen,
            "chosen": compiled.name,
            "reason": "the file has one pipeline",
            "pipelines": [{"label": compiled.name, **_pipeline_part(plan)}],
        }
    every, would_run = bitbucket.pipelines(document, path, base)
    pipelines = []
    for choice in every:
        compiled = bitbucket.load(
            document, path.resolve(), LoadOptions(**{**base.__dict__, "pipeline": choice.label})
        )
        pipelines.append(
            {"label": choice.label, **_pipeline_part(describe(compiled, path, names, {}, False))}
        )
    return {
        "v": LIST_VERSION,
        "source": str(path),
        "format": chosen,
        "chosen": would_run.label if would_run else None,
        "reason": would_run.reason if would_run else "no pipeline matches: name one with --pipeline",
        "pipelines": pipelines,
    }


def _pipeline_part(plan: dict[str, object]) -> dict[str, object]:
    return {"name": plan["pipeline"], "blocks": plan["blocks"], "warnings": plan["warnings"]}


def _continuable(console: Console, path: Path) -> None:
    try:
        runs = continuable(Ledger(), str(path.resolve()))
    except LedgerUnavailable:
        return  # listing a file needs no state directory
    if not runs:
        return
    console.print("runs of this file that can be continued:")
    now = time.time()
    for run in runs:
        age = format_duration(now - run.record.started)
        console.print(
            f"  {run.record.run_id}  {escape(run.record.pipeline)}: {escape(run.where)}, {age} ago  "
            f"[bold]{run.command}[/bold]"
        )


def _show(console: Console, pipeline: Pipeline, label: str, mark: str = "", final: str = "final") -> None:
    console.print(f"[bold]{escape(label or pipeline.name)}[/bold]{mark}")
    numbers = {step.id: number for number, step in numbered(pipeline)}
    blocks = (
        ("", pipeline.steps),
        ("errors: ", pipeline.errors),
        (f"{final}: ", pipeline.finally_),
        ("afterExecution: ", pipeline.after),
    )
    for block, nodes in blocks:
        for node in nodes:
            console.print("  " + escape(block + _describe(node, numbers if not block else {})))


def _describe(node: Node, numbers: dict[str, int]) -> str:
    """A step with the number `--step` takes, its manual trigger and why it would be skipped."""
    if isinstance(node, Group):
        kind = "parallel" if node.parallel else "sequence"
        return f"{node.name} ({kind}): " + ", ".join(_describe(child, numbers) for child in node.children())
    extras = [
        word
        for word, on in (
            ("manual", node.manual),
            ("skipped: " + (node.skip_reason or ""), node.skip_reason is not None),
        )
        if on
    ]
    number = f"{numbers[node.id]}. " if node.id in numbers else ""
    return number + node.name + (f" ({', '.join(extras)})" if extras else "")
