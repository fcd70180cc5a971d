"""`runner run --junit FILE`: a report valid against the JUnit schema CI servers read, with a test case
per step, failures with their exit code and last lines, skipped steps, and final steps marked."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import xmlschema

from runner.reports.junit import FAILURE_LINES, junit_xml
from tests.reports.conftest import SECRET, FinishedRun

JUNIT_SCHEMA = Path(__file__).parent.parent / "schemas" / "junit-10.xsd"


def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(JUNIT_SCHEMA))


@pytest.mark.docker
def test_the_report_of_a_real_run_is_valid_and_says_what_happened(finished_run: FinishedRun) -> None:
    text = finished_run.junit.read_text(encoding="utf-8")
    schema().validate(text)
    root = ET.fromstring(text)
    (suite,) = root.findall("testsuite")
    pipeline = f"{finished_run.project.name} default"
    assert suite.get("name") == pipeline and suite.get("id") == finished_run.run_id
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "1", "1")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == ["build", "lint", "unit", "broken", "never", "cleanup"]
    failure = cases["broken"].find("failure")
    assert failure is not None and failure.get("message") == "exited with code 3"
    assert failure.text is not None and failure.text.startswith("exit code: 3\n")
    assert failure.text.splitlines()[-2:] == ["about to fail with $SECRET", "+ exit 3"]
    assert cases["never"].find("skipped") is not None
    assert cases["cleanup"].get("classname") == f"{pipeline}.finally"
    assert cases["build"].get("classname") == pipeline
    assert cases["lint"].find("failure") is None and float(cases["lint"].get("time", "0")) >= 1.0
    out = cases["build"].find("system-out")
    assert out is not None and out.text is not None and '<b>&amp; "quoted"</b>' in out.text
    assert SECRET not in text


def event(kind: str, **fields: object) -> dict[str, object]:
    return {"v": 1, "type": kind, "time": "2026-01-01T00:00:00.000Z", "run": "r1", **fields}


def finished(step: str, status: str, **fields: object) -> dict[str, object]:
    values: dict[str, object] = {
        "step": step,
        "name": step,
        "block": "steps",
        "status": status,
        "exit_code": None,
        "duration": 0.5,
        "message": "",
        "outputs": {},
        "group": False,
        "allowed_failure": False,
    }
    return event("step.finished", **{**values, **fields})


def test_control_characters_colours_and_long_logs_still_make_valid_xml() -> None:
    events = [
        event("run.started", pipeline="p", source="p.yml", engine="e", steps=[]),
        *(event("log", step="noisy", line=f"line {n}") for n in range(50)),
        event("log", step="noisy", line="\x1b[31mred\x1b[0m bell\x07 nul\x00 end"),
        finished("noisy", "TIMED_OUT", message="timed out after 1s"),
        finished("group", "FAILED", group=True),
        finished("allowed", "FAILED", exit_code=1, allowed_failure=True, message="exited with code 1"),
        finished("stopped", "STOPPED", message="stopped by an interrupt"),
        event("run.finished", status="failed", exit_code=1, duration=2.0),
    ]
    text = junit_xml(events)
    schema().validate(text)
    suite = ET.fromstring(text).find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == ["noisy", "allowed", "stopped"]  # a group's own result is no test case
    failure = cases["noisy"].find("failure")
    assert failure is not None and failure.get("type") == "TIMED_OUT" and failure.text is not None
    lines = failure.text.splitlines()
    assert lines[0] == "exit code: none" and len(lines) == FAILURE_LINES + 1
    assert lines[-1] == "red bell\ufffd nul\ufffd end"
    assert cases["allowed"].find("failure") is None  # allowed to fail: the run passed it
    assert "allowed to fail" in (cases["allowed"].findtext("system-out") or "")
    assert cases["stopped"].find("error") is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")


def test_test_cases_keep_the_pipelines_order_whatever_order_parallel_steps_ended_in() -> None:
    planned = [{"step": name, "name": name, "block": "steps", "group": None} for name in ("a", "b", "c")]
    events = [
        event("run.started", pipeline="p", source="p.yml", engine="e", steps=planned),
        finished("c", "SUCCESS"),
        finished("b", "SUCCESS"),
        finished("late", "SUCCESS"),  # not planned (a step of a loop): after the planned ones
        finished("a", "SUCCESS"),
    ]
    suite = ET.fromstring(junit_xml(events)).find("testsuite")
    assert suite is not None
    assert [case.get("name") for case in suite.findall("testcase")] == ["a", "b", "c", "late"]
