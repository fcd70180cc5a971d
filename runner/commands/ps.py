from __future__ import annotations

import json
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runner.backend import connect
from runner.durations import format_duration
from runner.engine.reuse import continuable
from runner.teardown.leaks import RunResources, labelled_runs, reconcile
from runner.teardown.ledger import Ledger, RunRecord

PS_VERSION = 1


def ps(console: Console, as_json: bool = False) -> int:
    backend = connect()
    backend.ping()
    engine = backend.info()
    runs = labelled_runs(backend)
    ledger = Ledger()
    reconcile(ledger, engine.id)
    if as_json:
        print(json.dumps(_as_json(engine.product, engine.address, runs, ledger), indent=2))
        return 0
    console.print(f"[dim]engine: {escape(engine.product)} at {escape(engine.address)}[/dim]")
    if not runs:
        console.print("no run has resources on the engine")
        _continuable(console, ledger)
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("run", "pipeline", "state", "age", "resources"):
        table.add_column(column)
    now = time.time()
    for run in sorted(runs, key=lambda r: r.oldest):
        state = _state(run, ledger.run(run.run_id))
        names = ", ".join(f"{r.kind} {r.name}" for r in run.resources)
        table.add_row(
            run.run_id, escape(run.pipeline), state, format_duration(now - run.oldest), escape(names)
        )
    console.print(table)
    leaked = sum(1 for run in runs if not run.alive)
    if leaked:
        console.print(f"{leaked} leaked run(s): remove them with `runner cleanup`")
    _continuable(console, ledger)
    return 0


def _state(run: RunResources, record: RunRecord | None) -> str:
    state = "live" if run.alive else "leaked"
    if record is not None and record.status not in ("running", "leaked") and not run.alive:
        state = f"leaked ({record.status})"
    return state


def _as_json(product: str, address: str, runs: list[RunResources], ledger: Ledger) -> dict[str, object]:
    now = time.time()
    return {
        "v": PS_VERSION,
        "engine": {"product": product, "address": address},
        "runs": [
            {
                "run": run.run_id,
                "pipeline": run.pipeline,
                "state": _state(run, ledger.run(run.run_id)),
                "alive": run.alive,
                "owner": str(run.owner) if run.owner else "",
                "age": round(now - run.oldest, 3),
                "resources": [
                    {"kind": r.kind, "name": r.name, "id": r.id, "running": r.running} for r in run.resources
                ],
            }
            for run in sorted(runs, key=lambda r: r.oldest)
        ],
        "continuable": [
            {
                "run": c.record.run_id,
                "source": c.record.source,
                "pipeline": c.record.pipeline,
                "where": c.where,
                "command": c.command,
            }
            for c in continuable(ledger)
        ],
    }


def _continuable(console: Console, ledger: Ledger) -> None:
    runs = continuable(ledger)
    if not runs:
        return
    console.print("runs that can be continued:")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("run", "file", "pipeline", "where", "age", "command"):
        table.add_column(column)
    now = time.time()
    for run in runs:
        record = run.record
        table.add_row(
            record.run_id,
            escape(record.source),
            escape(record.pipeline),
            escape(run.where),
            format_duration(now - record.started),
            run.command,
        )
    console.print(table)
