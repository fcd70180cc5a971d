"""A run's journal as one self-contained HTML page: a header, a timeline of steps and services, the
resources the run made, and each step's output folded under its bar.

The page needs no network (a Content-Security-Policy forbids loading anything) and no JavaScript:
everything is laid out here, in Python, with inline CSS; the one small script only adds conveniences
(a click on a bar opens its output, buttons that open or close every output). Journals that end early
(a run still going, a runner that was killed) render too: a step with no result is drawn up to the
journal's last event.

Markup contract: what tests and scripts may query. Classes and data attributes not listed here are
styling only.

``<header class="run" data-run="RUN" data-status="STATUS">``
    The run's facts in a ``<dl class="facts">``, each ``<div data-fact="NAME">`` (pipeline, run,
    source, engine, status, started, duration, resources). STATUS is run.finished's status, or
    ``unfinished`` when the journal has none.

``<div class="timeline" data-start="TIME" data-end="TIME" data-seconds="SECONDS">``
    The run's span, which every percentage below is of. It holds ``<div class="axis">`` (``.tick``
    labels) and the lanes, in this order: services, then steps and groups as planned.

``<div class="lane step" data-step="ID" data-status="STATUS" data-block="BLOCK">``
    One per step (group results excluded), exactly once. STATUS is the step's status from the schema,
    ``UNFINISHED`` (started, no result: still running, or its runner died) or ``PENDING`` (planned, not
    reached, in a journal without an end). ``data-group="GROUP"`` when it is in a group,
    ``data-carried-from="RUN"`` when its result was carried from an earlier run. Inside:
    ``.label`` (the name and ``.badge`` elements: ``.badge.block`` with the block's name for steps
    outside ``steps``, ``.badge.allowed``, ``.badge.carried``), and ``.track`` holding exactly one
    ``.bar``: ``style="left:L%;width:W%"`` for a step that ran, or ``.bar.marker`` with
    ``style="left:L%"`` alone for one that never started (a diamond where it was skipped, or at the
    journal's end while it is pending).

``<details class="log" data-step="ID" data-lines="N">``
    In each step lane, closed; N counts every line the step wrote. ``<summary>`` holds ``.status``,
    ``.exit-code``, ``.duration``, ``.message`` and ``.line-count`` (those that apply); then come
    ``.outputs`` (the step's outputs as JSON), ``<p class="earlier" data-left-out="K">`` when lines
    were left out (only the last MAX_LOG_LINES are shown; the note names the ``runner logs``
    command), and ``<pre class="lines">`` with the lines as text, one a line, ANSI escapes removed.
    Output of ids that have no lane is in ``<section class="other-output">``, in ``details.log``
    elements of the same shape.

``<div class="lane group" data-group="ID" data-status="STATUS" data-block="BLOCK">``
    A group (from a result with ``group: true``, or named by its steps in run.started): a ``.bracket``,
    not a bar, from its first step's start to the later of its last step's end and its own result.

``<div class="lane service" data-service="NAME" data-step="STEP">``
    A service container (resource events with ``service: true``): one ``.bar`` from its
    resource.created to its resource.removed, ``.bar.open`` when it was never removed (drawn to the
    run's end).

``<div id="finally-start" data-time="TIME">``
    A vertical line across the timeline where the first step of the ``finally`` block started, its
    ``style="left:L%"`` of the same span as the bars.

``<table class="resources">``
    ``<tr data-kind="KIND" data-name="NAME" data-step="STEP" data-removed="true|false">`` a row per
    resource created or removed: kind, name, step, created at, removed at (``never``, or ``not yet``
    in a journal without an end).

``<ul class="notices">``
    ``<li data-warning="true|false">`` the run's notices.
"""

from __future__ import annotations

import html
import json
import math
import re
import shlex
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from runner.durations import format_duration

MAX_LOG_LINES = 2000
UNFINISHED = "UNFINISHED"
PENDING = "PENDING"
FINALLY = "finally"

# CSI sequences (colours, cursor moves), OSC sequences (titles, hyperlinks) and the two-byte escapes:
# a browser would show them as garbage, and they carry nothing a reader of the page needs.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_NICE_TICKS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
_MOST_TICKS = 8
_STATUS_WORDS = {
    UNFINISHED: "running / unknown",
    PENDING: "not reached yet",
}


def render_report(events: Sequence[Mapping[str, object]]) -> str:
    """The page for one run's events, in the order the journal holds them."""
    journal = _Journal.read(events)
    document = _Page(journal).render()
    # A lone surrogate (from a JSON escape in a log line) cannot be written as UTF-8 at all.
    return document.encode("utf-8", "replace").decode("utf-8")


def _text(event: Mapping[str, object], key: str) -> str:
    value = event.get(key)
    return value if isinstance(value, str) else ""


def _number(event: Mapping[str, object], key: str) -> float | None:
    value = event.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _integer(event: Mapping[str, object], key: str) -> int | None:
    value = event.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(event: Mapping[str, object]) -> datetime | None:
    value = event.get("time")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one that is no time in UTC (year 1 at +14:00)
        return None


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def clean_line(line: str) -> str:
    """A log line as a terminal would leave it on screen, without the escapes that drew it."""
    line = _ANSI.sub("", line)
    if "\r" in line:
        # A progress bar rewrites its line after each carriage return; only the last text stays.
        line = line.rstrip("\r").rsplit("\r", 1)[-1]
    return _CONTROL.sub("", line)


@dataclass
class _Step:
    step_id: str
    name: str = ""
    block: str = ""
    group: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    status: str | None = None
    exit_code: int | None = None
    duration: float | None = None
    message: str = ""
    allowed_failure: bool = False
    carried_from: str = ""
    outputs: Mapping[str, object] = field(default_factory=dict)
    is_group: bool = False


@dataclass
class _Output:
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    total: int = 0


@dataclass
class _Resource:
    kind: str
    name: str
    step: str
    service: bool
    created: datetime | None = None
    removed: datetime | None = None


@dataclass
class _Notice:
    time: datetime | None
    text: str
    warning: bool


@dataclass
class _Journal:
    run_id: str = ""
    pipeline: str = ""
    source: str = ""
    engine: str = ""
    started_at: datetime | None = None
    first_time: datetime | None = None
    last_time: datetime | None = None
    finished: Mapping[str, object] | None = None
    finished_at: datetime | None = None
    finally_started: datetime | None = None
    planned: list[str] = field(default_factory=list)
    steps: dict[str, _Step] = field(default_factory=dict)
    outputs: dict[str, _Output] = field(default_factory=dict)
    resources: list[_Resource] = field(default_factory=list)
    notices: list[_Notice] = field(default_factory=list)

    @classmethod
    def read(cls, events: Sequence[Mapping[str, object]]) -> _Journal:
        journal = cls()
        for event in events:
            journal._take(event)
        return journal

    def _take(self, event: Mapping[str, object]) -> None:
        kind = _text(event, "type")
        when = _time(event)
        if when is not None:
            if self.first_time is None or when < self.first_time:
                self.first_time = when
            if self.last_time is None or when > self.last_time:
                self.last_time = when
        if not self.run_id:
            self.run_id = _text(event, "run")
        if kind == "log":  # by far the most frequent: kept first and cheap
            output = self.outputs.get(_text(event, "step"))
            if output is None:
                output = self.outputs[_text(event, "step")] = _Output()
            output.lines.append(_text(event, "line"))
            output.total += 1
        elif kind == "run.started":
            self._run_started(event, when)
        elif kind in ("step.started", "step.finished") and not _text(event, "step"):
            return  # a step event naming no step cannot be drawn anywhere
        elif kind == "step.started":
            step = self._step(event)
            if step.started is None:
                step.started = when
            if step.block == FINALLY and self.finally_started is None:
                self.finally_started = when
        elif kind == "step.finished":
            self._step_finished(event, when)
        elif kind in ("resource.created", "resource.removed"):
            self._resource(event, when, created=kind == "resource.created")
        elif kind == "notice":
            self.notices.append(_Notice(when, _text(event, "text"), event.get("warning") is True))
        elif kind == "run.finished":
            self.finished, self.finished_at = event, when

    def _run_started(self, event: Mapping[str, object], when: datetime | None) -> None:
        self.pipeline = _text(event, "pipeline")
        self.source = _text(event, "source")
        self.engine = _text(event, "engine")
        self.started_at = when
        planned = event.get("steps")
        for item in planned if isinstance(planned, list) else []:
            if not isinstance(item, Mapping) or not _text(item, "step"):
                continue
            step = self._step(item)
            step.group = _text(item, "group") or None
            if step.step_id not in self.planned:
                self.planned.append(step.step_id)

    def _step(self, event: Mapping[str, object]) -> _Step:
        step_id = _text(event, "step")
        step = self.steps.get(step_id)
        if step is None:
            step = self.steps[step_id] = _Step(step_id)
        step.name = step.name or _text(event, "name")
        step.block = step.block or _text(event, "block")
        return step

    def _step_finished(self, event: Mapping[str, object], when: datetime | None) -> None:
        step = self._step(event)
        step.finished = when
        step.status = _text(event, "status") or None
        step.exit_code = _integer(event, "exit_code")
        step.duration = _number(event, "duration")
        step.message = _text(event, "message")
        step.allowed_failure = event.get("allowed_failure") is True
        step.carried_from = _text(event, "carried_from")
        outputs = event.get("outputs")
        step.outputs = outputs if isinstance(outputs, Mapping) else {}
        step.is_group = step.is_group or event.get("group") is True

    def _resource(self, event: Mapping[str, object], when: datetime | None, *, created: bool) -> None:
        kind, name = _text(event, "kind"), _text(event, "name")
        if created:
            self.resources.append(
                _Resource(kind, name, _text(event, "step"), event.get("service") is True, created=when)
            )
            return
        for resource in reversed(self.resources):
            if resource.kind == kind and resource.name == name and resource.removed is None:
                resource.removed = when
                return
        # Removed without a creation in the journal (a sweep of what an earlier run left): still listed.
        self.resources.append(
            _Resource(kind, name, _text(event, "step"), event.get("service") is True, removed=when)
        )

    @property
    def ended(self) -> bool:
        return self.finished is not None

    @property
    def start(self) -> datetime:
        return self.started_at or self.first_time or datetime.fromtimestamp(0, UTC)

    @property
    def end(self) -> datetime:
        candidates = [moment for moment in (self.last_time, self.finished_at) if moment is not None]
        return max([self.start, *candidates])


@dataclass(frozen=True)
class _Span:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        # A span of zero (a journal of one event) would divide by zero; a millisecond draws the same.
        return max((self.end - self.start).total_seconds(), 0.001)

    def percent(self, moment: datetime) -> float:
        share = (moment - self.start).total_seconds() / self.seconds * 100
        return min(max(share, 0.0), 100.0)

    def offset(self, moment: datetime | None) -> str:
        if moment is None:
            return "—"
        return f"+{format_duration(max((moment - self.start).total_seconds(), 0.0))}"


@dataclass(frozen=True)
class _Bar:
    left: float
    width: float | None  # None: a marker, for a step that never ran
    start: datetime
    end: datetime


def _pct(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") + "%"


def _clock(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Logs:
    """Each step's output as a fold: its status, exit code and time above, its last lines inside."""

    def __init__(self, journal: _Journal, span: _Span) -> None:
        self.journal = journal
        self.span = span

    def log(self, step: _Step, status: str) -> str:
        output = self.journal.outputs.get(step.step_id, _Output())
        word = _STATUS_WORDS.get(status, status)
        facts = [f'<span class="status" data-status="{_e(status)}">{_e(word)}</span>']
        if step.exit_code is not None:
            facts.append(f'<span class="exit-code">exit {step.exit_code}</span>')
        if step.duration is not None:
            facts.append(f'<span class="duration">{_e(format_duration(max(step.duration, 0.0)))}</span>')
        elif step.started is not None:
            running = (self.span.end - step.started).total_seconds()
            facts.append(f'<span class="duration">≥ {_e(format_duration(max(running, 0.0)))}</span>')
        if step.message:
            facts.append(f'<span class="message">{_e(step.message)}</span>')
        count = "no output" if not output.total else f"{output.total} line{'s' if output.total != 1 else ''}"
        facts.append(f'<span class="line-count">{count}</span>')
        return self.details(step.step_id, "".join(facts), output, step.outputs)

    def details(self, step_id: str, summary: str, output: _Output, outputs: Mapping[str, object]) -> str:
        body = []
        if outputs:
            shown = json.dumps(outputs, ensure_ascii=False, sort_keys=True, default=str)
            body.append(f'<p class="outputs"><span>outputs</span> <code>{_e(shown)}</code></p>')
        left_out = output.total - len(output.lines)
        if left_out:
            command = f"runner logs {shlex.quote(self.journal.run_id or 'RUN')} {shlex.quote(step_id)}"
            body.append(
                f'<p class="earlier" data-left-out="{left_out}">{left_out} earlier '
                f"line{'s' if left_out != 1 else ''} in <code>{_e(command)}</code></p>"
            )
        if output.lines:
            text = "\n".join(clean_line(line) for line in output.lines)
            body.append(f'<pre class="lines">{_e(text)}</pre>')
        return (
            f'<details class="log" data-step="{_e(step_id)}" data-lines="{output.total}">'
            f"<summary>{summary}</summary>"
            f'<div class="log-body">{"".join(body)}</div></details>'
        )


class _Timeline:
    """The time axis, a lane per step (groups as brackets, services beside them), and the line where
    `finally` began."""

    def __init__(self, journal: _Journal, span: _Span, logs: _Logs) -> None:
        self.journal = journal
        self.span = span
        self.logs = logs
        self.groups = self._group_ids()

    def _group_ids(self) -> dict[str, str]:
        """Each group reference of a step (its id or its name), mapped to the id of the group's lane."""
        steps = self.journal.steps
        by_name = {step.name: step.step_id for step in steps.values() if step.is_group and step.name}
        groups: dict[str, str] = {step.step_id: step.step_id for step in steps.values() if step.is_group}
        for step in list(steps.values()):
            if step.group is None or step.group in groups or step.group == step.step_id:
                continue
            group_id = step.group if step.group in steps else by_name.get(step.group, step.group)
            groups[step.group] = group_id
            if group_id not in steps:
                # Named by its steps but never reported: a lane of its own still frames them.
                steps[group_id] = _Step(group_id, name=step.group, block=step.block)
            steps[group_id].is_group = True
        return groups

    def _group_of(self, step: _Step) -> str | None:
        return self.groups.get(step.group) if step.group is not None else None

    def _depth(self, step: _Step) -> int:
        depth, seen, group = 0, {step.step_id}, self._group_of(step)
        while group is not None and group not in seen:
            seen.add(group)
            depth += 1
            group = self._group_of(self.journal.steps[group])
        return depth

    def _ordered(self) -> Iterator[_Step]:
        """Steps and groups as planned, then those the plan did not name; a group right before its steps."""
        steps = self.journal.steps
        planned = set(self.journal.planned)
        order = [*self.journal.planned, *(step_id for step_id in steps if step_id not in planned)]
        shown: set[str] = set()

        def with_groups(step: _Step, inside: frozenset[str]) -> Iterator[_Step]:
            group = self._group_of(step)
            # `inside` stops a journal whose groups hold each other from recursing for ever.
            if group is not None and group not in shown and group not in inside:
                yield from with_groups(steps[group], inside | {step.step_id})
            if step.step_id not in shown:
                shown.add(step.step_id)
                yield step

        for step_id in order:
            yield from with_groups(steps[step_id], frozenset())

    def _status(self, step: _Step) -> str:
        if step.status:
            return step.status
        if step.started is not None:
            return UNFINISHED
        return "SKIPPED" if self.journal.ended else PENDING

    def _bar(self, step: _Step) -> _Bar:
        end = self.span.end
        if step.started is not None:
            until = step.finished if step.finished is not None else end
            return self._bar_between(step.started, max(until, step.started))
        if step.finished is not None:
            if step.status != "SKIPPED" and not step.carried_from and step.duration:
                # Its start is missing from the journal; its duration tells where it was, though never
                # before the run's start (which also keeps a nonsense duration from overflowing).
                before_start = (step.finished - self.span.start).total_seconds()
                ran = timedelta(seconds=max(min(step.duration, before_start), 0.0))
                return self._bar_between(step.finished - ran, step.finished)
            return _Bar(self.span.percent(step.finished), None, step.finished, step.finished)
        return _Bar(100.0, None, end, end)

    def _bar_between(self, start: datetime, end: datetime) -> _Bar:
        left = self.span.percent(start)
        return _Bar(left, max(self.span.percent(end) - left, 0.0), start, end)

    def render(self) -> str:
        span = self.span
        lanes = [self._service_lane(resource) for resource in self._services()]
        for step in self._ordered():
            lanes.append(self._group_lane(step) if step.is_group else self._step_lane(step))
        if not lanes:
            lanes.append('<p class="empty">No step or service in this journal.</p>\n')
        return (
            '<section class="timeline-section">\n<h2>Timeline</h2>\n'
            f"{_LEGEND}"
            f'<div class="timeline" data-start="{_iso(span.start)}" data-end="{_iso(span.end)}" '
            f'data-seconds="{span.seconds:.3f}">\n'
            f"{self._axis()}"
            f'<div class="lanes">\n{"".join(lanes)}</div>\n'
            f"{self._overlay()}"
            "</div>\n</section>\n"
        )

    def _ticks(self) -> list[float]:
        seconds = self.span.seconds
        every = next((nice for nice in _NICE_TICKS if seconds / nice <= _MOST_TICKS), None)
        if every is None:
            every = math.ceil(seconds / _MOST_TICKS / 3600) * 3600
        return [index * every for index in range(int(seconds / every + 1e-9) + 1)]

    def _tick_label(self, offset: float) -> str:
        if self.span.seconds < 10:
            return f"{offset:.1f}s"
        if self.span.seconds < 120:
            return f"{offset:.0f}s"
        minutes, seconds = divmod(round(offset), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"

    def _axis(self) -> str:
        ticks = "".join(
            f'<span class="tick" style="left:{_pct(offset / self.span.seconds * 100)}">'
            f"{_e(self._tick_label(offset))}</span>"
            for offset in self._ticks()
        )
        return (
            '<div class="axis"><div class="label">time since start</div>'
            f'<div class="ticks">{ticks}</div></div>\n'
        )

    def _overlay(self) -> str:
        lines = "".join(
            f'<div class="gridline" style="left:{_pct(offset / self.span.seconds * 100)}"></div>'
            for offset in self._ticks()
        )
        started = self.journal.finally_started
        if started is not None:
            lines += (
                f'<div id="finally-start" style="left:{_pct(self.span.percent(started))}" '
                f'data-time="{_iso(started)}" '
                f'title="the finally block started at {_e(self.span.offset(started))}">'
                "<span>finally</span></div>"
            )
        return f'<div class="overlay" aria-hidden="true">{lines}</div>\n'

    def _bar_html(self, bar: _Bar, title: str, *extra_classes: str) -> str:
        classes = " ".join(["bar", *(["marker"] if bar.width is None else []), *extra_classes])
        style = f"left:{_pct(bar.left)}"
        if bar.width is not None:
            style += f";width:{_pct(bar.width)}"
        return f'<div class="{classes}" style="{style}" title="{_e(title)}"></div>'

    def _step_lane(self, step: _Step) -> str:
        status, bar = self._status(step), self._bar(step)
        block = step.block or "steps"
        name = step.name or step.step_id
        badges = []
        if block != "steps":
            badges.append(f'<span class="badge block" data-block="{_e(block)}">{_e(block)}</span>')
        if step.allowed_failure:
            badges.append('<span class="badge allowed">allowed to fail</span>')
        if step.carried_from:
            badges.append(f'<span class="badge carried">from {_e(step.carried_from)}</span>')
        attributes = [
            f'data-step="{_e(step.step_id)}"',
            f'data-status="{_e(status)}"',
            f'data-block="{_e(block)}"',
        ]
        group = self._group_of(step)
        if group is not None:
            attributes.append(f'data-group="{_e(group)}"')
        if step.carried_from:
            attributes.append(f'data-carried-from="{_e(step.carried_from)}"')
        when = (
            f"{self.span.offset(bar.start)} → {self.span.offset(bar.end)}"
            if bar.width is not None
            else f"never started (at {self.span.offset(bar.start)})"
        )
        title = f"{name}: {_STATUS_WORDS.get(status, status)}, {when}"
        bar_html = self._bar_html(bar, title)
        return (
            f'<div class="lane step" {" ".join(attributes)}>'
            f'<div class="label" style="--depth:{self._depth(step)}" title="{_e(step.step_id)}">'
            f'<span class="name">{_e(name)}</span>{"".join(" " + badge for badge in badges)}</div>'
            f'<div class="track">{bar_html}</div>'
            f"{self.logs.log(step, status)}</div>\n"
        )

    def _group_lane(self, group: _Step) -> str:
        steps = self.journal.steps
        members = [
            step for step in steps.values() if not step.is_group and self._in_group(step, group.step_id)
        ]
        bars = [self._bar(step) for step in members]
        moments = [moment for bar in bars if bar.width is not None for moment in (bar.start, bar.end)]
        moments += [moment for moment in (group.started, group.finished) if moment is not None]
        status = self._status(group) if group.status or group.started else ""
        bracket = ""
        if moments:
            first, last = min(moments), max(moments)
            left = self.span.percent(first)
            width = self.span.percent(last) - left
            title = f"{group.name or group.step_id}: {self.span.offset(first)} → {self.span.offset(last)}"
            style = f"left:{_pct(left)};width:{_pct(width)}"
            bracket = f'<div class="bracket" style="{style}" title="{_e(title)}"></div>'
        word = _STATUS_WORDS.get(status, status)
        status_html = (
            f' <span class="group-status" data-status="{_e(status)}">{_e(word)}</span>' if status else ""
        )
        return (
            f'<div class="lane group" data-group="{_e(group.step_id)}" data-status="{_e(status)}" '
            f'data-block="{_e(group.block or "steps")}">'
            f'<div class="label" style="--depth:{self._depth(group)}" title="{_e(group.step_id)}">'
            '<span class="badge group">group</span> '
            f'<span class="name">{_e(group.name or group.step_id)}</span>'
            f"{status_html}</div>"
            f'<div class="track">{bracket}</div></div>\n'
        )

    def _in_group(self, step: _Step, group_id: str) -> bool:
        seen: set[str] = set()
        group = self._group_of(step)
        while group is not None and group not in seen:
            if group == group_id:
                return True
            seen.add(group)
            group = self._group_of(self.journal.steps[group])
        return False

    def _services(self) -> list[_Resource]:
        return [r for r in self.journal.resources if r.service and r.kind in ("container", "")]

    def _service_lane(self, service: _Resource) -> str:
        start = service.created or self.span.start
        end = service.removed or self.span.end
        bar = self._bar_between(start, max(start, end))
        removed = f"removed at {self.span.offset(service.removed)}" if service.removed else "never removed"
        title = f"service {service.name}: created at {self.span.offset(service.created)}, {removed}"
        bar_html = self._bar_html(bar, title, *([] if service.removed else ["open"]))
        return (
            f'<div class="lane service" data-service="{_e(service.name)}" data-step="{_e(service.step)}">'
            f'<div class="label" title="{_e(service.name)}"><span class="badge service">service</span> '
            f'<span class="name">{_e(service.name)}</span></div>'
            f'<div class="track">{bar_html}</div></div>\n'
        )


class _Page:
    def __init__(self, journal: _Journal) -> None:
        self.journal = journal
        self.span = _Span(journal.start, journal.end)
        self.logs = _Logs(journal, self.span)

    def render(self) -> str:
        journal = self.journal
        title = " · ".join(filter(None, (journal.pipeline or "run", journal.run_id, self._run_status())))
        parts = [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            # No page of ours loads anything; this makes sure a line of output cannot make it try.
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n",
            f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
            self._header(),
            "<main>\n",
            _Timeline(journal, self.span, self.logs).render(),
            self._notices(),
            self._resources(),
            self._other_output(),
            "</main>\n",
            f"<script>{_SCRIPT}</script>\n</body>\n</html>\n",
        ]
        return "".join(parts)

    # header

    def _run_status(self) -> str:
        finished = self.journal.finished
        return (_text(finished, "status") or "unknown") if finished is not None else "unfinished"

    def _header(self) -> str:
        journal, finished = self.journal, self.journal.finished
        status = self._run_status()
        if finished is None:
            status_text = "unfinished: still running, or its runner stopped before writing the end"
        else:
            code = _integer(finished, "exit_code")
            status_text = status if code is None else f"{status} (exit code {code})"
        duration = _number(finished, "duration") if finished is not None else None
        if duration is None:
            duration_text = f"{format_duration(self.span.seconds)} up to the last event"
        else:
            duration_text = format_duration(duration)
        facts = [
            ("run", "run", journal.run_id or "—"),
            ("source", "source", journal.source or "—"),
            ("engine", "engine", journal.engine or "—"),
            ("started", "started", _clock(journal.started_at or journal.first_time)),
            ("duration", "duration", duration_text),
            ("resources", "resources", self._resource_counts()),
        ]
        rows = "".join(
            f'<div data-fact="{name}"><dt>{_e(label)}</dt><dd>{_e(value)}</dd></div>'
            for name, label, value in facts
        )
        return (
            f'<header class="run" data-run="{_e(journal.run_id)}" data-status="{_e(status)}">\n'
            f'<h1><span data-fact="pipeline">{_e(journal.pipeline or "(pipeline unknown)")}</span> '
            f'<span class="run-status" data-fact="status" data-status="{_e(status)}">'
            f"{_e(status_text)}</span></h1>\n"
            f'<dl class="facts">{rows}</dl>\n</header>\n'
        )

    def _resource_counts(self) -> str:
        resources = self.journal.resources
        created = sum(1 for r in resources if r.created is not None)
        removed = sum(1 for r in resources if r.removed is not None)
        failed: list[str] = []
        kept = False
        summary = self.journal.finished.get("resources") if self.journal.finished is not None else None
        if isinstance(summary, Mapping):
            counted_created, counted_removed = _integer(summary, "created"), _integer(summary, "removed")
            created = created if counted_created is None else counted_created
            removed = removed if counted_removed is None else counted_removed
            listed = summary.get("failed")
            failed = [str(name) for name in listed] if isinstance(listed, list) else []
            kept = summary.get("kept") is True
        text = f"{created} created, {removed} removed"
        if failed:
            text += f", {len(failed)} could not be removed: {', '.join(failed)}"
        if kept:
            text += " (kept on request)"
        return text

    def _other_output(self) -> str:
        lanes = {step_id for step_id, step in self.journal.steps.items() if not step.is_group}
        others = [(step_id, lines) for step_id, lines in self.journal.outputs.items() if step_id not in lanes]
        if not others:
            return ""
        blocks = "".join(
            self.logs.details(
                step_id,
                f'<span class="name">{_e(step_id or "(the run itself)")}</span>'
                f'<span class="line-count">{output.total} line{"s" if output.total != 1 else ""}</span>',
                output,
                {},
            )
            for step_id, output in others
        )
        return (
            '<section class="other-output">\n<h2>Other output</h2>\n'
            "<p>Lines of ids with no step in the journal (services, for instance).</p>\n"
            f"{blocks}\n</section>\n"
        )

    # resources and notices

    def _resources(self) -> str:
        resources = self.journal.resources
        heading = '<section class="resources-section">\n<h2>Resources</h2>\n'
        if not resources:
            return f'{heading}<p class="empty">None.</p>\n</section>\n'
        rows = []
        for resource in resources:
            removed = resource.removed is not None
            if removed:
                removed_text = self._moment(resource.removed)
            elif self.journal.ended:
                removed_text = '<span class="never">never</span>'
            else:
                removed_text = '<span class="not-yet">not yet</span>'
            created_text = self._moment(resource.created)
            service = ' <span class="badge service">service</span>' if resource.service else ""
            step = _e(resource.step) if resource.step else '<span class="run-own">the run</span>'
            rows.append(
                f'<tr data-kind="{_e(resource.kind)}" data-name="{_e(resource.name)}" '
                f'data-step="{_e(resource.step)}" data-removed="{"true" if removed else "false"}">'
                f"<td>{_e(resource.kind)}</td><td><code>{_e(resource.name)}</code>{service}</td>"
                f"<td>{step}</td>"
                f"<td>{created_text}</td><td>{removed_text}</td></tr>\n"
            )
        return (
            f'{heading}<table class="resources">\n'
            "<thead><tr><th>kind</th><th>name</th><th>step</th><th>created</th><th>removed</th></tr></thead>\n"
            f"<tbody>\n{''.join(rows)}</tbody>\n</table>\n</section>\n"
        )

    def _notices(self) -> str:
        if not self.journal.notices:
            return ""
        items = "".join(
            f'<li data-warning="{"true" if notice.warning else "false"}">'
            f'<span class="when">{_e(self.span.offset(notice.time))}</span> {_e(notice.text)}</li>\n'
            for notice in self.journal.notices
        )
        return (
            '<section class="notices-section">\n<h2>Notices</h2>\n'
            f'<ul class="notices">\n{items}</ul>\n</section>\n'
        )

    def _moment(self, moment: datetime | None) -> str:
        return f'<span title="{_e(_clock(moment))}">{_e(self.span.offset(moment))}</span>'


_LEGEND = (
    '<ul class="legend">'
    + "".join(
        f'<li><span class="swatch" data-status="{status}"></span>{word}</li>'
        for status, word in (
            ("SUCCESS", "success"),
            ("FAILED", "failed / timed out"),
            ("STOPPED", "stopped"),
            ("WARNING", "warning"),
            ("PAUSED", "paused"),
            ("SKIPPED", "skipped"),
            (UNFINISHED, "running / unknown"),
        )
    )
    + '<li><span class="swatch marker" data-status="SKIPPED"></span>never started</li>'
    + '<li><span class="swatch service"></span>service</li>'
    + '<li><span class="swatch group"></span>group</li>'
    + '<li><span class="swatch finally"></span>finally starts</li>'
    + "</ul>\n"
)

_CSS = """
:root {
  --label-w: 15rem; --pad-r: 1.25rem; --lane-h: 1.9rem;
  --ink: #1f2328; --muted: #59636e; --line: #d8dee4; --faint: #eef1f4; --paper: #fff; --page: #f5f6f8;
  --success: #2f9e44; --failed: #d9363e; --stopped: #e3c414; --skipped: #9aa0a6; --warning: #f08c00;
  --paused: #3b7ddd; --unfinished: #7d8da1; --service: #1a7f86; --finally: #8250df;
  --sans: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Liberation Sans", "DejaVu Sans",
    sans-serif;
  --mono: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace;
  color-scheme: light;
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 var(--sans); color: var(--ink); background: var(--page); }
code, pre { font-family: var(--mono); font-size: 12.5px; }
h1 { font-size: 1.45rem; margin: 0 0 .6rem; display: flex; flex-wrap: wrap; align-items: center; gap: .6rem; }
h2 { font-size: 1.05rem; margin: 0 0 .75rem; }
header.run { background: var(--paper); border-bottom: 1px solid var(--line); padding: 1.25rem 2rem 1rem; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .35rem 1.5rem;
  margin: 0; }
.facts div { min-width: 0; }
.facts dt { font-size: 11px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
main { padding: 1.25rem 2rem 3rem; }
section { background: var(--paper); border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.25rem;
  margin-bottom: 1.25rem; }
[data-status="SUCCESS"], [data-status="success"] { --c: var(--success); }
[data-status="FAILED"], [data-status="TIMED_OUT"], [data-status="failed"], [data-status="killed"] {
  --c: var(--failed); }
[data-status="STOPPED"], [data-status="interrupted"], [data-status="cancelled"] { --c: var(--stopped); }
[data-status="SKIPPED"], [data-status="PENDING"] { --c: var(--skipped); }
[data-status="WARNING"], [data-status="warning"] { --c: var(--warning); }
[data-status="PAUSED"], [data-status="paused"] { --c: var(--paused); }
[data-status="UNFINISHED"], [data-status="unfinished"], [data-status="unknown"] { --c: var(--unfinished); }
.run-status { font-size: .8rem; font-weight: 600; padding: .15rem .6rem; border-radius: 999px;
  border: 1px solid var(--c, var(--line)); background: color-mix(in srgb, var(--c, #fff) 16%, white); }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: .35rem 1.1rem; padding: 0; margin: 0 0 .9rem;
  font-size: 12px; color: var(--muted); }
.legend li { display: flex; align-items: center; gap: .4rem; }
.swatch { display: inline-block; width: 1.1rem; height: .7rem; border-radius: 2px; background: var(--c); }
.swatch[data-status="UNFINISHED"] {
  background: repeating-linear-gradient(135deg, var(--c) 0 4px, #c5ced9 4px 8px); }
.swatch.marker { width: .6rem; height: .6rem; transform: rotate(45deg); }
.swatch.service { background: var(--service); }
.swatch.group { height: .45rem; background: none; border: 2px solid #6e7781; border-bottom: 0; }
.swatch.finally { width: 0; height: .9rem; border-left: 2px dashed var(--finally); border-radius: 0; }
.timeline { position: relative; padding-right: var(--pad-r); }
.axis, .lane { display: grid; grid-template-columns: var(--label-w) minmax(0, 1fr); }
.axis { border-bottom: 1px solid var(--line); font-size: 11px; color: var(--muted); }
.axis .label { padding: .2rem .5rem; align-self: end; }
.ticks { position: relative; height: 1.6rem; }
.tick { position: absolute; bottom: .2rem; transform: translateX(-50%); white-space: nowrap;
  font-variant-numeric: tabular-nums; }
.tick:first-child { transform: none; }
.lane { position: relative; z-index: 1; border-bottom: 1px solid var(--faint); }
.lane:hover { background: rgba(9, 105, 218, .035); }
.lane > .label { padding: 0 .6rem 0 calc(.5rem + var(--depth, 0) * 1.1rem); display: flex;
  align-items: center; gap: .35rem; height: var(--lane-h); min-width: 0; white-space: nowrap; }
.lane > .label .name { overflow: hidden; text-overflow: ellipsis; font-weight: 500; }
.track { position: relative; height: var(--lane-h); }
.bar { position: absolute; top: .42rem; bottom: .42rem; min-width: 3px; border-radius: 3px;
  background: var(--c); box-shadow: inset 0 -1px 0 rgba(0, 0, 0, .12); cursor: pointer; }
.lane[data-status="UNFINISHED"] .bar {
  background: repeating-linear-gradient(135deg, var(--c) 0 6px, #c5ced9 6px 12px); }
.bar.marker { width: .7rem; height: .7rem; min-width: 0; top: 50%; bottom: auto; border-radius: 2px;
  transform: translate(-50%, -50%) rotate(45deg); }
.lane[data-status="PENDING"] .bar.marker { background: var(--paper); border: 2px solid var(--c); }
.lane.service .bar { --c: var(--service); background: var(--service); }
.lane.service .bar.open { background: linear-gradient(90deg, var(--service) 80%, rgba(26, 127, 134, .15)); }
.lane.group { border-bottom: 0; }
.lane.group > .label { height: 1.5rem; font-size: 12px; color: var(--muted); }
.lane.group .track { height: 1.5rem; }
.bracket { position: absolute; top: .75rem; height: .55rem; border: 2px solid #6e7781; border-bottom: 0;
  border-radius: 3px 3px 0 0; }
.group-status { font-size: 11px; }
.badge { font-size: 10.5px; font-weight: 600; line-height: 1; padding: .2rem .4rem; border-radius: 4px;
  background: var(--faint); color: var(--muted); text-transform: lowercase; flex: none; }
.badge.block[data-block="finally"] {
  background: color-mix(in srgb, var(--finally) 14%, white); color: var(--finally); }
.badge.block[data-block="errors"] {
  background: color-mix(in srgb, var(--failed) 12%, white); color: #a4262c; }
.badge.service { background: color-mix(in srgb, var(--service) 14%, white); color: var(--service); }
.badge.allowed { background: color-mix(in srgb, var(--warning) 16%, white); color: #9a5b00; }
.lane > details { grid-column: 1 / -1; margin-top: -.3rem; padding: 0 0 .3rem .5rem; }
summary { cursor: pointer; font-size: 12px; color: var(--muted); display: flex; flex-wrap: wrap;
  gap: .15rem .75rem; align-items: baseline; list-style: none; }
summary::before { content: "▸"; font-size: 10px; }
details[open] > summary::before { content: "▾"; }
summary::-webkit-details-marker { display: none; }
summary .status, .group-status {
  font-weight: 600; color: color-mix(in srgb, var(--c, var(--ink)) 75%, black); }
summary .message { color: var(--ink); }
.log-body { position: relative; z-index: 3; background: var(--paper); margin: .3rem var(--pad-r) .4rem 0; }
details.log:not([open]) .log-body { display: none; }
pre.lines { margin: 0; padding: .6rem .8rem; max-height: 28rem; overflow: auto; white-space: pre-wrap;
  overflow-wrap: anywhere; background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px;
  line-height: 1.45; }
.earlier, .outputs { margin: 0 0 .35rem; font-size: 12px; color: var(--muted); }
.overlay { position: absolute; top: 0; bottom: 0; left: var(--label-w); right: var(--pad-r);
  pointer-events: none; }
.gridline { position: absolute; top: 1.6rem; bottom: 0; border-left: 1px solid rgba(31, 35, 40, .07); }
#finally-start { position: absolute; top: 0; bottom: 0; width: 0; border-left: 2px dashed var(--finally);
  z-index: 2; }
#finally-start span { position: absolute; top: .1rem; left: .3rem; font-size: 10.5px; font-weight: 600;
  color: #fff; background: var(--finally); padding: .1rem .4rem; border-radius: 999px; }
.resources { border-collapse: collapse; width: 100%; font-size: 13px; }
.resources th { text-align: left; font-size: 11px; text-transform: uppercase; letter-spacing: .05em;
  color: var(--muted); border-bottom: 1px solid var(--line); padding: .35rem .6rem; }
.resources td { padding: .3rem .6rem; border-bottom: 1px solid var(--faint); overflow-wrap: anywhere; }
.resources tbody tr:nth-child(even) { background: #fafbfc; }
.never { color: var(--failed); font-weight: 600; }
.not-yet { color: var(--muted); }
.run-own { color: var(--muted); font-style: italic; }
.notices { margin: 0; padding-left: 1.2rem; }
.notices li[data-warning="true"] { color: #9a5b00; }
.notices .when, .empty { color: var(--muted); }
.toolbar { display: flex; gap: .5rem; margin: -.25rem 0 .75rem; }
.toolbar button { font: inherit; font-size: 12px; padding: .2rem .6rem; border: 1px solid var(--line);
  border-radius: 6px; background: var(--paper); cursor: pointer; }
"""

# Conveniences only: without them every fold still opens by its summary.
_SCRIPT = """
(function () {
  document.querySelectorAll('.lane.step .bar').forEach(function (bar) {
    bar.addEventListener('click', function () {
      var log = bar.closest('.lane').querySelector('details.log');
      if (log) { log.open = !log.open; }
    });
  });
  var legend = document.querySelector('.legend');
  if (!legend) { return; }
  var toolbar = document.createElement('div');
  toolbar.className = 'toolbar';
  [['open every output', true], ['close every output', false]].forEach(function (choice) {
    var button = document.createElement('button');
    button.type = 'button';
    button.textContent = choice[0];
    button.addEventListener('click', function () {
      document.querySelectorAll('details.log').forEach(function (log) { log.open = choice[1]; });
    });
    toolbar.appendChild(button);
  });
  legend.after(toolbar);
})();
"""
