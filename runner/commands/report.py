"""`runner report`: one self-contained HTML page with the picture of a run, from its journal."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from runner.commands.logs import choose
from runner.errors import InputError
from runner.reports.html import render_report
from runner.reports.journals import read_events
from runner.teardown.ledger import Ledger


def write_report(console: Console, target: str | None, output: Path | None) -> int:
    ledger = Ledger()
    chosen = choose(ledger, target, None)
    if chosen is None or chosen.step is not None:
        raise InputError(
            f"no run '{target}' on this machine", "runner ps lists runs; give a run id or a file"
        )
    run = chosen.run
    events = list(read_events(ledger.directory / "logs" / run.run_id))
    if not events:
        raise InputError(
            f"run {run.run_id} left no journal (its logs were pruned, or it ran before journals were kept)",
            "run the pipeline again, then runner report",
        )
    page = render_report(events)
    if output is not None and str(output) == "-":
        sys.stdout.write(page)
        return 0
    path = output or Path(f"runner-report-{run.run_id}.html")
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"cannot write {path}: {exc.strerror or exc}", "choose another file with -o"
        ) from None
    console.print(
        f"wrote {escape(str(path))} (run {run.run_id}, {escape(run.pipeline)}, {escape(run.status)})"
    )
    return 0
