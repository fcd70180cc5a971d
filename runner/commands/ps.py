from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runner.backend import connect
from runner.durations import format_duration
from runner.engine.reuse import continuable
from runner.teardown.leaks import labelled_runs, reconcile
from runner.teardown.ledger import Ledger


def ps(console: Console) -> int:
    backend = connect()
    backend.ping()
    engine = backend.info()
    console.print(f"[dim]engine: {escape(engine.product)} at {escape(engine.address)}[/dim]")
    runs = labelled_runs(backend)
    ledger = Ledger()
    reconcile(ledger, engine.id)
    if not runs:
        console.print("no run has resources on the engine")
        _continuable(console, ledger)
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("run", "pipeline", "state", "age", "resources"):
        table.add_column(column)
    now = time.time()
    for run in sorted(runs, key=lambda r: r.oldest):
        record = ledger.run(run.run_id)
        state = "live" if run.alive else "leaked"
        if record is not None and record.status not in ("running", "leaked") and not run.alive:
            state = f"leaked ({record.status})"
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
