"""Running part of a pipeline and continuing a run, through the command line on the real engine: `--step`,
`--no-final`, `--resume` after a manual step and `--rerun-failed`, in all three formats."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from runner.cli import optional_values
from runner.engine.selection import numbered, only, select_steps
from runner.errors import InputError
from runner.formats import load_pipeline
from runner.teardown.ledger import SCHEMA_VERSION, Ledger
from tests.conftest import image_args
from tests.test_cli import Cli

BITBUCKET = """
pipelines:
  default:
    - step:
        name: Build
        script:
          - echo "built in build $BITBUCKET_BUILD_NUMBER" > out.txt
          - echo "VERSION=1.$BITBUCKET_BUILD_NUMBER" >> $BITBUCKET_PIPELINES_VARIABLES_PATH
        artifacts: [out.txt]
        output-variables: [VERSION]
    - parallel:
        - step:
            name: Lint
            script: ['echo lint']
        - step:
            name: Unit tests
            script: ['test ! -f fail-me']
    - step:
        name: Deploy
        trigger: manual
        script:
          - 'echo "deploying $VERSION: $(cat out.txt)"'
    - final:
        name: Tidy
        script:
          - echo "tidy sees $VERSION $BITBUCKET_BUILD_NUMBER"
"""


def project(tmp_path: Path, text: str = BITBUCKET, name: str = "bitbucket-pipelines.yml") -> Path:
    path = tmp_path / name
    path.write_text(text.lstrip(), encoding="utf-8")
    return path


def run_id(output: str) -> str:
    found = re.search(r"^run (\w+) ", output, re.MULTILINE)
    assert found, output
    return found.group(1)


def step_lines(output: str) -> dict[str, str]:
    """The summary line of each step: `name -> status` as the run printed it."""
    lines: dict[str, str] = {}
    for line in output.splitlines():
        found = re.match(r"^([✓✗‖\-⏱■]) (.+?) (SUCCESS|FAILED|SKIPPED|PAUSED|TIMED_OUT|STOPPED)", line)
        if found:
            lines[found.group(2)] = found.group(3)
    return lines


# which steps a pattern names: pure logic over the model


def test_steps_are_named_by_number_name_id_group_or_glob(tmp_path: Path) -> None:
    pipeline = load_pipeline(project(tmp_path))
    assert [(n, s.name) for n, s in numbered(pipeline)] == [
        (1, "Build"),
        (2, "Lint"),
        (3, "Unit tests"),
        (4, "Deploy"),
    ]
    assert select_steps(pipeline, ["4"]) == ["deploy"]
    assert select_steps(pipeline, ["unit TESTS"]) == ["unit-tests"]
    assert select_steps(pipeline, ["*t*", "1"]) == ["build", "lint", "unit-tests"]
    with pytest.raises(InputError) as raised:
        select_steps(pipeline, ["deploi"])
    assert "names no step" in raised.value.message
    assert raised.value.hint is not None and "1 Build, 2 Lint, 3 Unit tests, 4 Deploy" in raised.value.hint


def test_the_steps_left_out_are_skipped_and_the_earlier_ones_lend_their_files(tmp_path: Path) -> None:
    pipeline = load_pipeline(project(tmp_path))
    part = only(pipeline, ["lint", "deploy"])
    assert [s.name for s in part.earlier] == ["Build", "Unit tests"]
    leaves = {s.id: s for s in part.pipeline.all_steps()}
    assert leaves["build"].skip_reason == "not selected"
    assert leaves["deploy"].skip_reason is None and not leaves["deploy"].manual
    assert leaves["tidy"].skip_reason is None
    assert only(pipeline, ["lint"], final=False).pipeline.finally_[0].skip_reason == "--no-final"  # type: ignore[union-attr]


def test_a_bare_resume_takes_no_value_and_a_run_id_after_it_is_its_value() -> None:
    assert optional_values(["run", "--resume"]) == ["run", "--resume="]
    assert optional_values(["run", "--resume", "pipeline.yml"]) == ["run", "--resume=", "pipeline.yml"]
    assert optional_values(["run", "--rerun-failed", "3fa9"]) == ["run", "--rerun-failed", "3fa9"]
    assert optional_values(["run", "--resume", "-q"]) == ["run", "--resume=", "-q"]


def test_a_version_2_ledger_is_migrated_and_its_runs_read(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE runs (run_id TEXT PRIMARY KEY, pipeline TEXT, source TEXT, owner TEXT,
                started REAL, ended REAL, status TEXT, exit_code INTEGER, engine TEXT NOT NULL DEFAULT '');
            CREATE TABLE resources (run_id TEXT, kind TEXT, name TEXT, ident TEXT, step TEXT, state TEXT,
                created REAL, removed REAL, PRIMARY KEY (run_id, kind, name));
            CREATE TABLE steps (run_id TEXT, step_id TEXT, name TEXT, status TEXT, exit_code INTEGER,
                duration REAL, log_path TEXT, PRIMARY KEY (run_id, step_id));
            INSERT INTO runs VALUES ('old', 'p', '/f.yml', 'o', 1.0, 2.0, 'paused', 0, 'e');
            INSERT INTO steps VALUES ('old', 'build', 'Build', 'SUCCESS', 0, 1.0, '/log');
            PRAGMA user_version = 2;
            """
        )
    ledger = Ledger(tmp_path)
    record = ledger.run("old")
    assert record is not None and record.selection == {} and record.build_number == 0 and record.parent == ""
    [step] = ledger.steps("old")
    assert (step.step_id, step.status, step.variables, step.outputs) == ("build", "SUCCESS", {}, {})
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# on the real engine


@pytest.mark.docker
def test_resume_after_a_manual_step_runs_it_with_what_the_steps_before_left_and_final_again(
    tmp_path: Path, cli: Cli
) -> None:
    path = project(tmp_path)
    first = cli("run", *image_args(), str(path))
    assert first.code == 0, first.err
    paused = run_id(first.out)
    assert step_lines(first.out)["Deploy"] == "PAUSED"
    assert f"runner run --resume {paused}" in first.out
    assert "tidy sees 1.1 1" in first.out

    listed = cli("list", str(path))
    assert f"{paused}  " in listed.out and "paused before 'Deploy'" in listed.out
    assert "  1. Build" in listed.out and "4. Deploy (manual)" in listed.out
    assert f"runner run --resume {paused}" in cli("ps").out

    resumed = cli("run", *image_args(), "--resume", str(path))
    assert resumed.code == 0, resumed.err
    assert f"continuing run {paused}: 3 step(s) keep their result" in resumed.out
    assert step_lines(resumed.out) == {
        "Build": "SUCCESS",
        "Lint": "SUCCESS",
        "Unit tests": "SUCCESS",
        "Deploy": "SUCCESS",
        "Tidy": "SUCCESS",
    }
    assert f"SUCCESS (run {paused})" in resumed.out
    # the artifact and the shared variable of the build step, and the build number of the run resumed
    assert "deploying 1.1: built in build 1" in resumed.out
    assert "tidy sees 1.1 1" in resumed.out
    assert "▶ Build" not in resumed.out
    # once continued, a run is no longer offered
    assert paused not in cli("list", str(path)).out
    again = cli("run", *image_args(), "--resume", paused)
    assert again.code == 2 and f"run {paused} was already continued by run {run_id(resumed.out)}" in again.err


@pytest.mark.docker
def test_rerun_failed_runs_what_failed_or_was_skipped_and_final_again(tmp_path: Path, cli: Cli) -> None:
    path = project(tmp_path)
    (tmp_path / "fail-me").write_text("", encoding="utf-8")
    first = cli("run", *image_args(), "--manual", str(path))
    assert first.code == 1
    failed = run_id(first.out)
    assert step_lines(first.out) == {
        "Build": "SUCCESS",
        "Lint": "SUCCESS",
        "Unit tests": "FAILED",
        "Deploy": "SKIPPED",
        "Tidy": "SUCCESS",
    }
    assert f"runner run --rerun-failed {failed}" in first.out

    (tmp_path / "fail-me").unlink()
    rerun = cli("run", *image_args(), "--manual", "--rerun-failed", failed)
    assert rerun.code == 0, rerun.out + rerun.err
    assert "▶ Build" not in rerun.out and "▶ Lint" not in rerun.out
    assert "▶ Unit tests" in rerun.out and "▶ Deploy" in rerun.out and "▶ Tidy" in rerun.out
    assert "deploying 1.1: built in build 1" in rerun.out
    assert "tidy sees 1.1 1" in rerun.out

    nothing = cli("run", *image_args(), "--rerun-failed", run_id(rerun.out))
    assert nothing.code == 2 and "cannot be continued" in nothing.err


@pytest.mark.docker
def test_step_takes_the_artifacts_of_the_last_local_run_of_the_steps_before(tmp_path: Path, cli: Cli) -> None:
    path = project(tmp_path)
    alone = cli("run", *image_args(), "--step", "deploy", str(path))
    assert alone.code == 0, alone.out
    assert "cat: out.txt: No such file or directory" in alone.out  # the build never ran here
    assert "step 'Build' is not selected and has not passed in an earlier run here" in alone.out
    assert step_lines(alone.out)["Build"] == "SKIPPED" and "▶ Build" not in alone.out
    assert "tidy sees  1" in alone.out  # final still runs, without the build's variable

    build = cli("run", *image_args(), "-s", "1", "--no-final", str(path))
    assert build.code == 0, build.out
    assert "▶ Tidy" not in build.out and step_lines(build.out)["Tidy"] == "SKIPPED"
    built = run_id(build.out)

    deploy = cli("run", *image_args(), "--step", "Dep*", str(path))
    assert deploy.code == 0, deploy.out + deploy.err
    assert "deploying 1.2: built in build 2" in deploy.out
    assert f"SKIPPED (run {built})" in deploy.out
    assert "▶ Lint" not in deploy.out and "▶ Tidy" in deploy.out


@pytest.mark.docker
def test_step_and_rerun_in_the_native_format(tmp_path: Path, cli: Cli) -> None:
    text = """
name: native
image: busybox
steps:
  - {name: one, script: ['echo one ran']}
  - {name: two, script: ['echo two ran', 'test ! -f /workspace/fail-me']}
  - {name: three, script: ['echo three ran']}
finally:
  - {name: last, script: ['echo last ran']}
"""
    path = project(tmp_path, text, "runner.yml")
    some = cli("run", *image_args(), "--step", "three", str(path))
    assert some.code == 0, some.out
    assert "three ran" in some.out and "last ran" in some.out and "one ran" not in some.out
    (tmp_path / "fail-me").write_text("", encoding="utf-8")
    failed = cli("run", *image_args(), str(path))
    assert failed.code == 1
    (tmp_path / "fail-me").unlink()
    rerun = cli("run", *image_args(), "--rerun-failed", str(path))
    assert rerun.code == 0, rerun.out
    assert "one ran" not in rerun.out and "two ran" in rerun.out and "three ran" in rerun.out


@pytest.mark.docker
def test_step_in_a_kestra_flow_takes_the_outputs_of_the_task_before(tmp_path: Path, cli: Cli) -> None:
    text = """
id: flow
namespace: tests
tasks:
  - id: produce
    type: io.kestra.plugin.core.debug.Return
    format: "made-{{ 6 * 7 }}"
  - id: consume
    type: io.kestra.plugin.core.log.Log
    message: "consumed {{ outputs.produce.value }}"
finally:
  - id: closing
    type: io.kestra.plugin.core.log.Log
    message: closing ran
"""
    path = project(tmp_path, text, "flow.yml")
    whole = cli("run", str(path))
    assert whole.code == 0, whole.out + whole.err
    produced = run_id(whole.out)
    one = cli("run", "--step", "consume", str(path))
    assert one.code == 0, one.out + one.err
    assert "consumed made-42" in one.out and "closing ran" in one.out
    assert f"SKIPPED (run {produced})" in one.out
