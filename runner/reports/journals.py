"""The runs' logs kept in the state directory: a folder per run (`logs/RUN/`) with its journal of events
and each step's log file. Read by `runner logs` and `runner report`; pruned by age and total size."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from runner.reports.events import JOURNAL, Event

POLL = 0.2  # seconds between looks at a journal that is being written


@dataclass(frozen=True)
class StoredRun:
    run_id: str
    folder: Path
    size: int  # bytes
    modified: float  # the newest write to any of its files


def read_events(folder: Path) -> Iterator[Event]:
    """The journal's events, in order; a line cut short by a runner killed mid-write is left out."""
    path = folder / JOURNAL
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as journal:
        for line in journal:
            event = _parse(line)
            if event is not None:
                yield event


def follow_events(folder: Path, still_running: Callable[[], bool]) -> Iterator[tuple[int, Event]]:
    """The journal's events as they are written, each with the offset just past it, until its run
    finishes, or `still_running` says its runner is gone (then what was written is all there will be)."""
    path = folder / JOURNAL
    while not path.exists():
        if not still_running():
            return
        time.sleep(POLL)
    with open(path, "rb") as journal:
        pending = b""
        while True:
            chunk = journal.readline()
            if chunk:
                pending += chunk
                if not pending.endswith(b"\n"):
                    continue  # the writer is in the middle of the line
                event = _parse(pending.decode("utf-8", errors="replace"))
                pending = b""
                if event is None:
                    continue
                yield journal.tell(), event
                if event.get("type") == "run.finished" and event.get("run") == folder.name:
                    return
                continue
            if not still_running():
                return
            time.sleep(POLL)


def _parse(line: str) -> Event | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def stored_runs(logs: Path) -> list[StoredRun]:
    """Every run with a folder of logs, the oldest first."""
    if not logs.is_dir():
        return []
    found = []
    for folder in logs.iterdir():
        if not folder.is_dir():
            continue
        size, modified = 0, folder.stat().st_mtime
        for file in folder.rglob("*"):
            try:
                stat = file.stat()
            except OSError:
                continue  # removed while we looked
            size += stat.st_size
            modified = max(modified, stat.st_mtime)
        found.append(StoredRun(folder.name, folder, size, modified))
    return sorted(found, key=lambda run: run.modified)


@dataclass(frozen=True)
class Retention:
    max_age: float  # seconds
    max_bytes: int


def prune(
    logs: Path, retention: Retention, keep: Callable[[str], bool], dry_run: bool = False
) -> list[StoredRun]:
    """Remove the logs of runs older than the retention's age, then the oldest until what is left fits
    its size; never those `keep` names (runs still going). Returns what was (or would be) removed."""
    runs = [run for run in stored_runs(logs) if not keep(run.run_id)]
    now = time.time()
    removed = [run for run in runs if now - run.modified > retention.max_age]
    left = [run for run in runs if run not in removed]
    total = sum(run.size for run in left)
    for run in left:  # the oldest first
        if total <= retention.max_bytes:
            break
        removed.append(run)
        total -= run.size
    if not dry_run:
        for run in removed:
            shutil.rmtree(run.folder, ignore_errors=True)
    return removed
