"""`runner run --json`: one JSON object per line on standard output, each valid against the schema in the
repository, telling the whole run in order, with every secret masked; `list --json` and `ps --json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.conftest import image_args
from tests.reports.conftest import SECRET, FinishedRun
from tests.reports.schemas import events_validator, output_validator, problems

pytestmark = pytest.mark.docker


def of_type(events: list[dict[str, object]], kind: str) -> list[dict[str, object]]:
    return [event for event in events if event["type"] == kind]


def test_every_line_on_stdout_is_an_event_valid_against_the_schema(finished_run: FinishedRun) -> None:
    lines = finished_run.out.splitlines()
    assert len(lines) > 20
    check = events_validator()
    for line in lines:
        event = json.loads(line)  # nothing but JSON on standard output
        errors = sorted(check.iter_errors(event), key=str)
        assert not errors, f"{line}\n{errors[0]}"
        assert event["v"] == 1 and event["run"] == finished_run.run_id
    # the person's view went to standard error
    assert "broken FAILED" in finished_run.err


def test_the_schema_refuses_what_is_not_an_event() -> None:
    check = events_validator()
    good = {"v": 1, "type": "log", "time": "2026-01-01T00:00:00.000Z", "run": "abc", "step": "s", "line": "x"}
    assert list(check.iter_errors(good)) == []
    for broken in (
        {**good, "v": 2},
        {key: value for key, value in good.items() if key != "line"},
        {**good, "type": "step.finished"},
        {**good, "time": "yesterday"},
    ):
        assert list(check.iter_errors(broken)), broken


def test_the_events_tell_the_run_in_order(finished_run: FinishedRun) -> None:
    events = finished_run.events
    assert finished_run.code == 1
    first, last = events[0], events[-1]
    assert first["type"] == "run.started" and last["type"] == "run.finished"
    assert first["engine"] and first["pipeline"] == f"{finished_run.project.name} default"
    planned = [(s["name"], s["block"]) for s in first["steps"]]  # type: ignore[index, union-attr]
    assert planned == [
        ("build", "steps"),
        ("lint", "steps"),
        ("unit", "steps"),
        ("broken", "steps"),
        ("never", "steps"),
        ("cleanup", "finally"),
    ]
    finished = {e["name"]: e for e in of_type(events, "step.finished") if not e["group"]}
    assert {name: e["status"] for name, e in finished.items()} == {
        "build": "SUCCESS",
        "lint": "SUCCESS",
        "unit": "SUCCESS",
        "broken": "FAILED",
        "never": "SKIPPED",
        "cleanup": "SUCCESS",
    }
    assert finished["broken"]["exit_code"] == 3 and finished["broken"]["message"] == "exited with code 3"
    assert finished["never"]["exit_code"] is None
    assert finished["cleanup"]["block"] == "finally"
    assert all(isinstance(e["duration"], float) for e in finished.values())
    started = [e["name"] for e in of_type(events, "step.started")]
    assert started[0] == "build" and started[-1] == "cleanup" and "never" not in started
    assert set(started[1:3]) == {"lint", "unit"}
    # each step's events come between its start and its end
    position = {id(e): i for i, e in enumerate(events)}
    for name in ("build", "broken", "cleanup"):
        begin = next(e for e in of_type(events, "step.started") if e["name"] == name)
        lines = [e for e in of_type(events, "log") if e["step"] == begin["step"]]
        assert lines and all(
            position[id(begin)] < position[id(line)] < position[id(finished[name])] for line in lines
        )
    assert [e["line"] for e in of_type(events, "log") if e["step"] == "cleanup"][-1] == "cleaning up"
    assert last["status"] == "failed" and last["exit_code"] == 1


def test_every_resource_created_is_reported_removed(finished_run: FinishedRun) -> None:
    events = finished_run.events
    created = Counter((e["kind"], e["name"]) for e in of_type(events, "resource.created"))
    removed = Counter((e["kind"], e["name"]) for e in of_type(events, "resource.removed"))
    assert created == removed
    kinds = {kind for kind, _ in created}
    assert {"container", "network"} <= kinds
    services = [e for e in of_type(events, "resource.created") if e["service"]]
    assert [e["step"] for e in services] == ["build"] and "redis" in str(services[0]["name"])
    summary = events[-1]["resources"]
    assert isinstance(summary, Mapping) and summary["created"] == sum(created.values()) == summary["removed"]


def test_no_event_holds_the_secret(finished_run: FinishedRun) -> None:
    assert SECRET not in finished_run.out and SECRET not in finished_run.err
    lines = [e["line"] for e in of_type(finished_run.events, "log")]
    assert "building with $SECRET" in lines and "about to fail with $SECRET" in lines
    journal = (finished_run.state / "logs" / finished_run.run_id / "events.jsonl").read_text(encoding="utf-8")
    assert SECRET not in journal
    assert journal.splitlines() == finished_run.out.splitlines()  # the journal holds the same lines


def test_list_json_describes_every_pipeline_and_the_chosen_one(finished_run: FinishedRun) -> None:
    listed = finished_run.runner("list", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert problems(output_validator("list"), data) == []
    assert data["v"] == 1 and data["format"] == "bitbucket" and data["chosen"] == "default"
    (default,) = data["pipelines"]
    nodes = default["blocks"][0]["nodes"]
    assert [n.get("name") for n in nodes] == ["build", "parallel 2", "broken", "never"]
    assert [s["name"] for s in nodes[1]["steps"]] == ["lint", "unit"]
    assert nodes[0]["services"][0]["name"] == "redis" and nodes[0]["number"] == 1
    assert default["blocks"][1]["block"] == "finally"


def test_ps_json_is_json_with_the_engine_and_runs(finished_run: FinishedRun) -> None:
    listed = finished_run.runner("ps", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert problems(output_validator("ps"), data) == []
    assert data["v"] == 1 and data["engine"]["address"]
    assert finished_run.run_id not in [run["run"] for run in data["runs"]]  # it left nothing
    assert [c["run"] for c in data["continuable"]] == [finished_run.run_id]  # a failed run: --rerun-failed


KESTRA_FLOW = """
id: masked
namespace: test
tasks:
  - id: leak
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: busybox
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
    commands:
      - echo '::{"outputs":{"token":"'"$TOKEN"'"}}::'
      - echo "token is $TOKEN"
      - exit 1
"""


def test_a_secret_in_a_step_output_a_log_line_and_a_failure_is_masked_in_every_output(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yml"
    flow.write_text(KESTRA_FLOW, encoding="utf-8")
    junit = tmp_path / "junit.xml"
    env = {**os.environ, "RUNNER_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "run",
            str(flow),
            "--json",
            "--junit",
            str(junit),
            "--secret",
            f"TOKEN={SECRET}",
            *image_args(),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    (leak,) = of_type(events, "step.finished")
    assert leak["outputs"]["vars"] == {"token": "$SECRET"}  # type: ignore[index]
    assert [e["line"] for e in of_type(events, "log")] == ["token is $SECRET"]
    report = junit.read_text(encoding="utf-8")
    assert "token is $SECRET" in report
    run_id = str(events[0]["run"])
    page = subprocess.run(
        [sys.executable, "-m", "runner", "report", run_id, "-o", "-"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert page.returncode == 0, page.stderr
    assert "token is $SECRET" in page.stdout
    everything = done.stdout + done.stderr + report + page.stdout
    everything += "".join(p.read_text() for p in (tmp_path / "state" / "logs").rglob("*") if p.is_file())
    assert SECRET not in everything
