"""`runner logs`: the steps of a past run, one step's log, or a run followed as it goes, from the state
directory's journals; `runner cleanup --logs` prunes them."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from runner.config import config_log_retention
from runner.durations import format_duration
from runner.errors import InputError
from runner.reports.events import JOURNAL, Event
from runner.reports.journals import Retention, follow_events, prune, read_events
from runner.teardown.leaks import still_going
from runner.teardown.ledger import Ledger, RunRecord, StepRecord

PREFIX_STYLES = ("cyan", "magenta", "blue", "yellow", "green")


@dataclass(frozen=True)
class LogsRequest:
    target: str | None  # a run id (or its start), a pipeline file, or a step of the newest run
    step: str | None
    follow: bool = False
    tail: int | None = None


@dataclass(frozen=True)
class Chosen:
    run: RunRecord
    step: str | None


def choose(ledger: Ledger, target: str | None, step: str | None) -> Chosen | None:
    """Which run and step the words name: `RUN [STEP]`, `FILE [STEP]` or `[STEP]` of the newest run.
    None when a lone word is no local run, file or step (it may be a cluster run)."""
    if target is not None and Path(target).is_file():
        runs = ledger.runs_of(str(Path(target).resolve()), limit=1)
        if not runs:
            raise InputError(f"{target} has not been run on this machine", f"run it: runner run {target}")
        return Chosen(runs[0], step)
    if target is not None:
        found = ledger.find_runs(target)
        if len(found) > 1 and found[0].run_id != target:
            raise InputError(
                f"{target} is the start of {len(found)} runs' ids", "give more of the id (runner ps)"
            )
        if found:
            return Chosen(found[0], step)
    newest = ledger.runs(limit=1)
    if target is None:
        if not newest:
            raise InputError("no run is recorded on this machine yet", "start one: runner run")
        return Chosen(newest[0], None)
    # `runner logs STEP`: a step of the newest run, when it has one so named
    if step is None and newest and _find_step(_planned(ledger, newest[0]), target) is not None:
        return Chosen(newest[0], target)
    return None


def _find_step(planned: list[tuple[str, str]], word: str) -> str | None:
    if word in (step_id for step_id, _ in planned):
        return word
    matches = [step_id for step_id, name in planned if name.lower() == word.lower()]
    return matches[0] if matches else None


def _planned(ledger: Ledger, run: RunRecord) -> list[tuple[str, str]]:
    """(id, name) of each step of the run: as its journal planned them, else as the ledger recorded."""
    folder = ledger.directory / "logs" / run.run_id
    for event in read_events(folder):
        if event.get("type") == "run.started" and event.get("run") == run.run_id:
            steps = event.get("steps")
            if isinstance(steps, list):
                return [(str(s.get("step")), str(s.get("name"))) for s in steps if isinstance(s, dict)]
        break
    return [(record.step_id, record.name) for record in ledger.steps(run.run_id)]


def show_logs(console: Console, request: LogsRequest) -> int:
    ledger = Ledger()
    chosen = choose(ledger, request.target, request.step)
    if chosen is None:
        assert request.target is not None
        raise LookupError(request.target)  # the caller asks the cluster
    run, folder = chosen.run, ledger.directory / "logs" / chosen.run.run_id
    planned = _planned(ledger, run)
    step_id = None
    if chosen.step is not None:
        step_id = _find_step(planned, chosen.step)
        if step_id is None:
            names = ", ".join(name for _, name in planned) or "none"
            raise InputError(f"run {run.run_id} has no step '{chosen.step}'", f"its steps: {names}")
    if request.follow:
        return _follow(console, ledger, run, folder, dict(planned), step_id, request.tail)
    if step_id is None and request.tail is None:
        return _summary(console, ledger, run, folder, planned)
    lines = _lines(folder, run, step_id, dict(planned))
    if request.tail is not None:
        lines = iter(deque(lines, maxlen=request.tail))
    _print_lines(console, lines, step_id is None)
    return 0


def _lines(
    folder: Path, run: RunRecord, step_id: str | None, names: dict[str, str]
) -> Iterator[tuple[str, str]]:
    """(step name, line) of the run, or of one step: from its log file, which has every line even when
    the journal does not (a run recorded before journals were)."""
    if step_id is not None:
        path = folder / f"{step_id}.log"
        name = names.get(step_id, step_id)
        if path.exists():
            with open(path, encoding="utf-8", errors="replace") as log:
                for line in log:
                    yield name, line.rstrip("\n")
        return
    for event in read_events(folder):
        if event.get("type") == "log" and event.get("run") == run.run_id:
            step = str(event.get("step"))
            yield names.get(step, step), str(event.get("line", ""))


def _print_lines(console: Console, lines: Iterable[tuple[str, str]], prefixed: bool) -> None:
    if not prefixed:  # a step's own lines, as they were written: no styling to work out for each
        for _, line in lines:
            console.file.write(line + "\n")
        return
    colors: dict[str, str] = {}
    for name, line in lines:
        color = colors.setdefault(name, PREFIX_STYLES[len(colors) % len(PREFIX_STYLES)])
        console.print(Text(f"{name[:24]:<12} │ ", style=color) + Text(line), soft_wrap=True)


def _summary(
    console: Console, ledger: Ledger, run: RunRecord, folder: Path, planned: list[tuple[str, str]]
) -> int:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
    console.print(
        f"[bold]{escape(run.pipeline)}[/bold]  [dim]run {run.run_id}, {escape(run.source)}, {started}, "
        f"{escape(run.status)}[/dim]"
    )
    records = {record.step_id: record for record in ledger.steps(run.run_id)}
    table = Table(box=None, pad_edge=False)
    for column in ("step", "status", "exit", "time", "lines"):
        table.add_column(column, justify="right" if column in ("exit", "time", "lines") else "left")
    for step_id, name in planned:
        record: StepRecord | None = records.get(step_id)
        log = folder / f"{step_id}.log"
        count = _count_lines(log) if log.exists() else 0
        table.add_row(
            escape(name),
            record.status if record else "-",
            "" if record is None or record.exit_code is None else str(record.exit_code),
            format_duration(record.duration) if record else "",
            str(count) if log.exists() else "",
        )
    console.print(table)
    console.print(
        f"[dim]a step's log: runner logs {run.run_id} STEP; all of them as they ran: --tail N or -f[/dim]"
    )
    return 0


def _count_lines(path: Path) -> int:
    with open(path, "rb") as log:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: log.read(1 << 20), b""))


def _follow(
    console: Console,
    ledger: Ledger,
    run: RunRecord,
    folder: Path,
    names: dict[str, str],
    step_id: str | None,
    tail: int | None,
) -> int:
    journal = folder / JOURNAL
    written = journal.stat().st_size if journal.exists() else 0
    # what was written before we came is shown first (its last `tail` lines), then each event as it comes
    backlog: deque[Event] = deque(maxlen=tail)
    finished = False
    for position, event in follow_events(folder, lambda: running(ledger, run.run_id)):
        finished = finished or (event.get("type") == "run.finished" and event.get("run") == run.run_id)
        if not _shown(event, run.run_id, step_id):
            continue
        if position <= written:
            backlog.append(event)
            continue
        while backlog:
            _print_event(console, backlog.popleft(), names, step_id is None)
        _print_event(console, event, names, step_id is None)
    while backlog:
        _print_event(console, backlog.popleft(), names, step_id is None)
    final = ledger.run(run.run_id)
    if not finished and final is not None and final.status == "running":
        console.print(
            f"[yellow]run {run.run_id}: its runner is gone; these are all the lines it wrote[/yellow]"
        )
    elif final is not None:
        console.print(f"[dim]run {run.run_id} {escape(final.status)}[/dim]")
    return 0


def _shown(event: Event, run_id: str, step_id: str | None) -> bool:
    if event.get("run") != run_id:
        return False
    kind = event.get("type")
    if step_id is not None:
        return event.get("step") == step_id and kind in ("log", "step.started", "step.finished")
    return kind in ("log", "step.started", "step.finished", "notice")


def _print_event(console: Console, event: Event, names: dict[str, str], prefixed: bool) -> None:
    kind = event.get("type")
    step = str(event.get("step", ""))
    name = names.get(step, str(event.get("name", step)))
    if kind == "log":
        _print_lines(console, [(name, str(event.get("line", "")))], prefixed)
    elif kind == "step.started":
        console.print(f"[bold]▶ {escape(name)}[/bold]")
    elif kind == "step.finished" and not event.get("group"):
        status = str(event.get("status"))
        message = str(event.get("message") or "")
        style = "green" if status == "SUCCESS" else "red" if status in ("FAILED", "TIMED_OUT") else "yellow"
        console.print(f"[{style}]{escape(name)} {status}[/{style}] {escape(message)}")
    elif kind == "notice":
        console.print(f"[dim]{escape(str(event.get('text', '')))}[/dim]")


def prune_logs(console: Console, ledger: Ledger, dry_run: bool, older_than: float | None) -> int:
    """`runner cleanup --logs`: the logs of runs past the retention of runner.toml's [logs] (or
    --older-than), never those of runs still going."""
    keep_age, max_bytes = config_log_retention(None)
    retention = Retention(older_than if older_than is not None else keep_age, max_bytes)
    removed = prune(ledger.directory / "logs", retention, lambda run_id: running(ledger, run_id), dry_run)
    verb = "would remove" if dry_run else "removed"
    size = sum(run.size for run in removed)
    console.print(f"{verb} the logs of {len(removed)} run(s), {size / 1e6:.1f} MB")
    return 0


def running(ledger: Ledger, run_id: str) -> bool:
    record = ledger.run(run_id)
    return record is not None and still_going(record)
