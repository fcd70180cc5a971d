"""A run's events as JSON lines (the schema beside this file, `events.schema.json`): written to each run's
journal in the state directory, which `runner logs` and `runner report` read, and to standard output
under `runner run --json`."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runner.engine.status import Block, RunResult, StepResult
from runner.model import Group, Node, Pipeline, Step
from runner.teardown.manager import ResourceChange

EVENTS_VERSION = 1
JOURNAL = "events.jsonl"
SCHEMA = Path(__file__).with_name("events.schema.json")

Event = dict[str, Any]


FLUSH_EVERY = 0.2  # seconds a line may wait in a buffer before a reader of the journal sees it
stamp_seconds = time.monotonic


class _Clock:
    """UTC time in RFC 3339 with milliseconds, as cheaply as a log line needs: the date and time of day
    are formatted once a second."""

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def now(self) -> str:
        moment = time.time()
        second = int(moment)
        if second != self.second:
            self.second = second
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self.prefix}.{int((moment - second) * 1000):03d}Z"


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    block: Block
    group: str | None


def planned_steps(pipeline: Pipeline) -> Iterator[PlannedStep]:
    """Every step the pipeline may run, in the order of its file, with its block and innermost group."""
    blocks = (
        (Block.SERVICES, pipeline.services),
        (Block.STEPS, pipeline.steps),
        (Block.ERRORS, pipeline.errors),
        (Block.FINALLY, pipeline.finally_),
        (Block.AFTER, pipeline.after),
    )
    for block, nodes in blocks:
        for node in nodes:
            yield from _planned(node, block, None)


def _planned(node: Node, block: Block, group: str | None) -> Iterator[PlannedStep]:
    if isinstance(node, Step):
        yield PlannedStep(node, block, group)
        return
    for child in node.children():
        yield from _planned(child, block, node.id)
    for child in node.errors:
        yield from _planned(child, Block.ERRORS, node.id)
    for child in node.finally_:
        yield from _planned(child, Block.FINALLY, node.id)


def step_finished_event(step: Step | Group, result: StepResult) -> Event:
    event: Event = {
        "type": "step.finished",
        "step": step.id,
        "name": step.name,
        "block": result.block.value,
        "status": result.status.value,
        "exit_code": result.exit_code,
        "duration": round(result.duration, 3),
        "message": result.message,
        "outputs": result.outputs,
        "group": result.group,
        "allowed_failure": result.allowed_failure,
    }
    if result.carried_from:
        event["carried_from"] = result.carried_from
    return event


class EventWriter:
    """A reporter that writes each event as one JSON line: to the run's journal in `journals` (a folder
    per run, created when the run starts) and to `stream` when given. Lines are flushed one by one, so a
    reader following the file sees each event as it happens. Subflows are runs of their own: each gets
    its journal, and its events name it."""

    def __init__(
        self,
        journals: Path | None,
        stream: IO[str] | None,
        engine: str,
        on_error: Callable[[str], None],
        listeners: Sequence[Callable[[Event], None]] = (),
    ) -> None:
        self.journals = journals
        self.stream = stream
        self.listeners = tuple(listeners)  # each event as a dict too, for reports built while it runs
        self.engine = engine
        self.on_error = on_error  # the journal could not be written: said once, the run goes on
        self.lock = threading.Lock()
        self.runs: list[tuple[str, IO[str] | None]] = []  # the run being written, innermost last
        self.started: dict[str, float] = {}
        self.clock = _Clock()
        self.unflushed = False
        self.flushed = 0.0
        self.stopped = threading.Event()
        threading.Thread(target=self._flush_now_and_then, daemon=True, name="events-flush").start()

    def _open_journal(self, run_id: str) -> IO[str] | None:
        if self.journals is None:
            return None
        try:
            folder = self.journals / run_id
            folder.mkdir(parents=True, exist_ok=True)
            return open(folder / JOURNAL, "a", encoding="utf-8")  # closed when the run ends
        except OSError as exc:
            self.on_error(f"the run's journal cannot be written ({exc}): runner logs and report lack it")
            return None

    def _write(self, event: Event, run_id: str | None = None) -> None:
        with self.lock:
            if run_id is None:
                if not self.runs:
                    return
                run_id = self.runs[-1][0]
            kind = event.pop("type")
            stamp = self.clock.now()
            whole = {"v": EVENTS_VERSION, "type": kind, "time": stamp, "run": run_id, **event}
            for listener in self.listeners:
                listener(whole)
            if kind == "log":  # the most frequent by far: encoded without walking a dict
                line = (
                    f'{{"v": {EVENTS_VERSION}, "type": "log", "time": "{stamp}", "run": "{run_id}", '
                    f'"step": {json.dumps(event["step"], ensure_ascii=False)}, '
                    f'"line": {json.dumps(event["line"], ensure_ascii=False)}}}\n'
                )
            else:
                line = json.dumps(whole, default=str, ensure_ascii=False) + "\n"
            journal = next((file for run, file in reversed(self.runs) if run == run_id), None)
            for out in (journal, self.stream):
                if out is None:
                    continue
                with contextlib.suppress(OSError, ValueError):  # a closed pipe must not end the run
                    out.write(line)
            self.unflushed = True
            # a burst of log lines is flushed a few times a second (the flusher thread takes the rest);
            # any other event at once, so a reader following the journal sees it as it happens
            if kind != "log" or stamp_seconds() - self.flushed > FLUSH_EVERY:
                self._flush()

    def _flush(self) -> None:
        for out in [file for _, file in self.runs] + [self.stream]:
            if out is None:
                continue
            with contextlib.suppress(OSError, ValueError):
                out.flush()
        self.unflushed = False
        self.flushed = stamp_seconds()

    def _flush_now_and_then(self) -> None:
        while not self.stopped.wait(FLUSH_EVERY):
            with self.lock:
                if self.unflushed:
                    self._flush()

    def run_started(self, pipeline: Pipeline, run_id: str) -> None:
        journal = self._open_journal(run_id)
        with self.lock:
            self.runs.append((run_id, journal))
            self.started[run_id] = time.monotonic()
        steps = [
            {"step": p.step.id, "name": p.step.name, "block": p.block.value, "group": p.group}
            for p in planned_steps(pipeline)
        ]
        self._write(
            {
                "type": "run.started",
                "pipeline": pipeline.name,
                "source": str(pipeline.source),
                "engine": self.engine,
                "steps": steps,
            },
            run_id,
        )

    def step_started(self, step: Step, block: Block) -> None:
        self._write({"type": "step.started", "step": step.id, "name": step.name, "block": block.value})

    def log(self, step: Step, line: str) -> None:
        self._write({"type": "log", "step": step.id, "line": line})

    def step_finished(self, step: Step | Group, result: StepResult) -> None:
        self._write(step_finished_event(step, result))

    def notice(self, text: str, *, warning: bool = False) -> None:
        self._write({"type": "notice", "text": text, "warning": warning})

    def resource(self, change: ResourceChange) -> None:
        self._write(
            {
                "type": "resource.removed" if change.removed else "resource.created",
                "kind": change.kind,
                "name": change.name,
                "step": change.step,
                "service": change.service,
            }
        )

    def run_finished(self, result: RunResult) -> None:
        with self.lock:
            duration = time.monotonic() - self.started.pop(result.run_id, time.monotonic())
        event: Event = {
            "type": "run.finished",
            "status": result.status,
            "exit_code": result.exit_code,
            "duration": round(duration, 3),
        }
        summary = result.resources
        if summary is not None:
            event["resources"] = {
                "created": summary.created,
                "removed": summary.removed,
                "failed": summary.failed,
                "kept": summary.kept,
            }
        self._write(event, result.run_id)
        with self.lock:
            kept = [(run, file) for run, file in self.runs if run != result.run_id]
            closing = [file for run, file in self.runs if run == result.run_id]
            self.runs = kept
        for file in closing:
            if file is not None:
                with self.lock:
                    file.close()
        with self.lock:
            self._flush()
            if not self.runs:
                self.stopped.set()
