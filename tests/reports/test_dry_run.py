"""`runner run --dry-run`: the plan of a run, images looked up on the engine, and nothing started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.teardown.ledger import Ledger
from tests.conftest import BUSYBOX, image_args, labelled
from tests.reports.schemas import output_validator, problems

pytestmark = pytest.mark.docker

PIPELINE = """
    image: busybox
    definitions:
      caches:
        deps: deps-cache
      services:
        redis:
          image: redis
    pipelines:
      default:
        - step:
            name: build
            caches: [deps]
            services: [redis]
            script: [echo build > out.txt]
            artifacts: [out.txt]
        - parallel:
            - step: {name: lint, script: [echo lint]}
            - step: {name: test, image: "registry.invalid/nobody/python:3.12", script: [echo test]}
        - step: {name: deploy, trigger: manual, script: [echo deploy]}
        - final:
            name: cleanup
            script: [echo cleanup]
"""


def plan(
    tmp_path: Path, *args: str, text: str = PIPELINE, engine: str | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "bitbucket-pipelines.yml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            *(["--engine", engine] if engine else []),
            "run",
            "-n",
            "--no-color",
            *image_args(),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "RUNNER_STATE_DIR": str(tmp_path / "state")},
        timeout=60,
        check=False,
    )


def test_the_plan_shows_steps_images_services_caches_artifacts_manual_and_final(tmp_path: Path) -> None:
    before = labelled()
    shown = plan(tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = [line.strip("│├└─ ") for line in shown.stdout.splitlines()]
    assert f"1. build  busybox → {BUSYBOX} present" in lines
    assert "service redis: redis → runner/redis:bookworm present" in lines
    assert "caches: deps (deps-cache)" in lines and "artifacts: out.txt" in lines
    assert "parallel 2" in lines
    assert "3. test  registry.invalid/nobody/python:3.12 would be pulled" in lines
    assert "manual: asks before it runs" in lines
    finally_at = lines.index("finally (always runs last)")
    assert lines[finally_at + 1].startswith("cleanup  busybox")
    assert "nothing was started" in shown.stdout
    assert labelled() == before  # no container, network or volume
    assert Ledger(tmp_path / "state").runs() == []  # and no run recorded


def test_the_plan_as_json(tmp_path: Path) -> None:
    shown = plan(tmp_path, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert problems(output_validator("plan"), data) == []
    assert data["v"] == 1 and data["engine"] and data["engine_problem"] == ""
    steps, final = data["blocks"]
    assert (steps["block"], final["block"]) == ("steps", "finally")
    build, group, deploy = steps["nodes"]
    assert build["image"] == {"image": "busybox", "mapped_to": BUSYBOX, "state": "present"}
    assert build["caches"] == [{"name": "deps", "path": "deps-cache"}] and build["artifacts"] == ["out.txt"]
    assert group["parallel"] is True and [s["name"] for s in group["steps"]] == ["lint", "test"]
    assert group["steps"][1]["image"]["state"] == "would be pulled"
    assert deploy["manual"] == "asks before it runs" and deploy["number"] == 4
    assert final["nodes"][0]["name"] == "cleanup"


def test_an_invalid_file_exits_2_with_its_position(tmp_path: Path) -> None:
    shown = plan(tmp_path, text="pipelines:\n  default:\n    - step: {scrip: [echo]}\n")
    assert shown.returncode == 2
    assert "bitbucket-pipelines.yml:3:14: unknown key 'scrip'" in shown.stderr
    assert "did you mean 'script'" in shown.stderr and "Traceback" not in shown.stderr


def test_without_an_engine_the_plan_is_shown_and_the_exit_says_no_run_could_start(tmp_path: Path) -> None:
    shown = plan(tmp_path, engine=f"unix://{tmp_path}/nothing.sock")
    assert shown.returncode == 3
    assert "busybox → runner/busybox:latest unknown (no engine answered)" in shown.stdout
    assert "no engine answered" in shown.stdout and "could not start now" in shown.stdout


def test_the_schema_of_the_plan_refuses_what_is_not_one() -> None:
    check = output_validator("plan")
    good = {
        "v": 1,
        "pipeline": "p",
        "source": "p.yml",
        "engine": "",
        "engine_problem": "no engine",
        "blocks": [{"block": "steps", "nodes": [{"step": "a", "name": "a", "kind": "container"}]}],
        "warnings": [],
    }
    assert problems(check, good) == []
    assert problems(check, {**good, "blocks": [{"block": "later", "nodes": []}]})
    assert problems(check, {**good, "blocks": [{"block": "steps", "nodes": [{"name": "no id"}]}]})
    assert problems(check, {key: value for key, value in good.items() if key != "engine"})
