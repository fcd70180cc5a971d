"""A JUnit XML report of a run, from its events: a test suite per pipeline (a subflow's run is a suite of
its own), a test case per step. What CI servers read: failures with the step's exit code and last lines,
skipped steps as skipped, `final:`/`finally` steps under the class `PIPELINE.finally`."""

from __future__ import annotations

import re
import socket
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

FAILURE_LINES = 20  # the last lines of a failed step, in its failure's text
OUTPUT_LINES = 2000  # the last lines of each step kept as its system-out
FAILED = ("FAILED", "TIMED_OUT")
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# what XML 1.0 cannot hold at all, escaped or not: a log's control characters would make the file unreadable
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Text as a report shows it: without colour codes, and only characters XML can carry."""
    return NOT_XML.sub("\ufffd", ANSI.sub("", text))


@dataclass
class _Suite:
    run: str
    pipeline: str
    source: str
    started: str
    planned: list[Mapping[str, object]] = field(default_factory=list)
    finished: list[Mapping[str, object]] = field(default_factory=list)
    lines: dict[str, deque[str]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    duration: float | None = None
    status: str = "running"


class JunitReport:
    """Fed the run's events one by one, it keeps what the report needs (the last lines of each step, not
    the whole log), so a run that prints gigabytes costs no more memory."""

    def __init__(self) -> None:
        self.suites: dict[str, _Suite] = {}

    def add(self, event: Mapping[str, object]) -> None:
        kind, run = event.get("type"), str(event.get("run", ""))
        if kind == "run.started":
            self.suites[run] = _Suite(
                run,
                str(event.get("pipeline", "")),
                str(event.get("source", "")),
                str(event.get("time", "")),
                planned=list(_mappings(event.get("steps"))),
            )
            return
        suite = self.suites.get(run)
        if suite is None:
            return
        if kind == "log":
            step = str(event.get("step", ""))
            lines = suite.lines.setdefault(step, deque(maxlen=OUTPUT_LINES))
            if len(lines) == OUTPUT_LINES:
                suite.dropped[step] = suite.dropped.get(step, 0) + 1
            lines.append(xml_text(str(event.get("line", ""))))
        elif kind == "step.finished" and not event.get("group"):
            suite.finished.append(event)
        elif kind == "run.finished":
            duration = event.get("duration")
            suite.duration = float(duration) if isinstance(duration, int | float) else None
            suite.status = str(event.get("status", ""))

    def xml(self) -> str:
        root = ET.Element("testsuites", name="runner")
        totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
        hostname = socket.gethostname()
        for suite in self.suites.values():
            element = self._suite(suite, hostname)
            root.append(element)
            for key in ("tests", "failures", "errors"):
                totals[key] += int(element.get(key, "0"))
            totals["time"] += float(element.get("time", "0"))
        for key in ("tests", "failures", "errors"):
            root.set(key, str(totals[key]))
        root.set("time", _seconds(totals["time"]))
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    def _suite(self, suite: _Suite, hostname: str) -> ET.Element:
        element = ET.Element("testsuite", name=xml_text(suite.pipeline), id=suite.run, hostname=hostname)
        if suite.started:
            # to the second, without a zone: the form the strictest readers take (it is UTC)
            element.set("timestamp", suite.started[:19])
        element.set("file", suite.source)
        properties = ET.SubElement(element, "properties")
        for name, value in (("run", suite.run), ("source", suite.source), ("status", suite.status)):
            ET.SubElement(properties, "property", name=name, value=value)
        counts = {"failures": 0, "errors": 0, "skipped": 0}
        blocks = {str(p.get("step")): str(p.get("block", "steps")) for p in suite.planned}
        # in the pipeline's order, as its file has them, not in the order parallel steps happened to end
        order = {step: index for index, step in enumerate(blocks)}
        finished = sorted(suite.finished, key=lambda e: order.get(str(e.get("step")), len(order)))
        for event in finished:
            case = self._case(suite, event, blocks)
            element.append(case)
            for child, counted in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
                if case.find(child) is not None:
                    counts[counted] += 1
        element.set("tests", str(len(suite.finished)))
        for key, count in counts.items():
            element.set(key, str(count))
        total = suite.duration
        if total is None:
            total = sum(_number(e.get("duration")) for e in suite.finished)
        element.set("time", _seconds(total))
        # some readers insist on both, even empty: each step's output is in its own test case
        ET.SubElement(element, "system-out")
        ET.SubElement(element, "system-err")
        return element

    def _case(self, suite: _Suite, event: Mapping[str, object], blocks: dict[str, str]) -> ET.Element:
        step = str(event.get("step", ""))
        block = str(event.get("block") or blocks.get(step, "steps"))
        status = str(event.get("status", ""))
        message = xml_text(str(event.get("message", "")))
        exit_code = event.get("exit_code")
        classname = suite.pipeline if block == "steps" else f"{suite.pipeline}.{block}"
        name = xml_text(str(event.get("name", step)))
        case = ET.Element("testcase", name=name, classname=xml_text(classname), time=_seconds(event))
        lines = list(suite.lines.get(step, ()))
        allowed = bool(event.get("allowed_failure"))
        if status in FAILED and not allowed:
            failure = ET.SubElement(case, "failure", type=status, message=message or status.lower())
            tail = "\n".join(lines[-FAILURE_LINES:])
            code = "none" if exit_code is None else str(exit_code)
            failure.text = f"exit code: {code}\n{tail}" if tail else f"exit code: {code}"
        elif status == "STOPPED":
            ET.SubElement(case, "error", type=status, message=message or "stopped")
        elif status == "SKIPPED":
            ET.SubElement(case, "skipped", message=message or "skipped")
        elif status == "PAUSED":
            ET.SubElement(case, "skipped", message=message or "waits to be started by hand")
        out = []
        if allowed and status in FAILED:
            out.append(f"[{status.lower()}, allowed to fail: {message}]")
        if event.get("carried_from"):
            out.append(f"[not run again: the result of run {event.get('carried_from')}]")
        dropped = suite.dropped.get(step, 0)
        if dropped:
            out.append(f"[{dropped} earlier lines: runner logs {suite.run} {step}]")
        out.extend(lines)
        if out:
            ET.SubElement(case, "system-out").text = "\n".join(out)
        return case


def junit_xml(events: Iterable[Mapping[str, object]]) -> str:
    report = JunitReport()
    for event in events:
        report.add(event)
    return report.xml()


def _mappings(value: object) -> Iterable[Mapping[str, object]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, Mapping))


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _seconds(value: object) -> str:
    seconds = _number(value.get("duration")) if isinstance(value, Mapping) else _number(value)
    return f"{seconds:.3f}"
