"""`runner logs`: a past run's steps and logs from another terminal, a run followed as it goes, and the
logs of old runs pruned by age and size."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runner.teardown.labels import Owner
from runner.teardown.ledger import Ledger
from tests.conftest import image_args
from tests.reports.conftest import FinishedRun
from tests.test_cli import wait_until_gone

pytestmark = pytest.mark.docker

TICKS = """
    image: busybox
    steps:
      - {id: ticks, script: 'for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.5; done'}
      - {id: after, script: echo after}
"""


def test_without_arguments_it_shows_the_newest_runs_steps(finished_run: FinishedRun) -> None:
    shown = finished_run.runner("logs", "--no-color")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines()[2:] if line.strip()}
    assert rows["build"][0] == "SUCCESS" and rows["never"][0] == "SKIPPED"
    assert rows["broken"][:2] == ["FAILED", "3"]
    assert finished_run.run_id in shown.stdout.splitlines()[0]


def test_one_steps_log_by_name_by_run_and_by_file(finished_run: FinishedRun) -> None:
    expected = [
        '+ echo "line one"',
        "line one",
        '+ echo "about to fail with $TOKEN"',
        "about to fail with $SECRET",
        "+ exit 3",
    ]
    for words in (
        ["broken"],
        [finished_run.run_id, "broken"],
        [finished_run.run_id[:6], "broken"],
        ["bitbucket-pipelines.yml", "broken"],
    ):
        shown = finished_run.runner("logs", *words)
        assert shown.returncode == 0, (words, shown.stderr)
        assert shown.stdout.splitlines() == expected, words
    tail = finished_run.runner("logs", finished_run.run_id, "broken", "--tail", "2")
    assert tail.stdout.splitlines() == expected[-2:]


def test_tail_of_the_whole_run_prefixes_each_line_with_its_step(finished_run: FinishedRun) -> None:
    shown = finished_run.runner("logs", "--tail", "3", "--no-color")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 3
    assert [line.split("│")[0].strip() for line in lines] == ["broken", "cleanup", "cleanup"]
    assert lines[-1].split("│ ", 1)[1] == "cleaning up"


def test_a_step_the_run_does_not_have_is_refused_with_its_steps(finished_run: FinishedRun) -> None:
    shown = finished_run.runner("logs", finished_run.run_id, "deploy")
    assert shown.returncode == 2
    assert "has no step 'deploy'" in shown.stderr and "build, lint" in shown.stderr
    assert "Traceback" not in shown.stderr


def start_run(tmp_path: Path, state: Path, text: str) -> subprocess.Popen[str]:
    (tmp_path / "runner.yml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "--no-color", *image_args()],
        cwd=tmp_path,
        env={**os.environ, "RUNNER_STATE_DIR": str(state)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def follower(tmp_path: Path, state: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "logs", "-f", "--no-color", *args],
        cwd=tmp_path,
        env={**os.environ, "RUNNER_STATE_DIR": str(state)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def newest_run(state: Path, within: float = 60) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        runs = Ledger(state).runs(limit=1)
        if runs and (state / "logs" / runs[0].run_id / "events.jsonl").exists():
            return runs[0].run_id
        time.sleep(0.1)
    raise AssertionError("no run started")


def test_follow_prints_a_running_runs_lines_as_they_come_and_ends_with_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run = start_run(tmp_path, state, TICKS)
    try:
        run_id = newest_run(state)
        watching = follower(tmp_path, state)
        assert watching.stdout is not None
        arrivals: list[tuple[float, str]] = []
        for line in watching.stdout:
            arrivals.append((time.monotonic(), line.rstrip("\n")))
        assert watching.wait(timeout=60) == 0
        run_output, _ = run.communicate(timeout=60)
        ended = time.monotonic()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    texts = [text for _, text in arrivals]
    ticks = [text for text in texts if text.endswith(tuple(f"tick {n}" for n in range(1, 7)))]
    assert [t.split("│ ")[1] for t in ticks] == [f"tick {n}" for n in range(1, 7)], texts
    assert any(text.endswith("│ after") for text in texts)
    assert texts[-1] == f"run {run_id} success"
    # the lines came while the step ran, not all at the end
    first_tick = next(at for at, text in arrivals if text.endswith("tick 1"))
    last_tick = next(at for at, text in arrivals if text.endswith("tick 6"))
    assert last_tick - first_tick > 1.0 and first_tick < ended - 1.0
    assert "tick 6" in run_output


def test_follow_ends_when_the_runner_is_killed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run = start_run(tmp_path, state, TICKS.replace("1 2 3 4 5 6", "$(seq 1 200)"))
    run_id = newest_run(state)
    watching = follower(tmp_path, state, run_id, "ticks")
    assert watching.stdout is not None
    try:
        first = watching.stdout.readline()
        assert first.startswith("▶ ticks") or "tick" in first, first
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        rest = watching.communicate(timeout=30)[0]
    finally:
        if watching.poll() is None:
            watching.kill()
    assert watching.returncode == 0
    assert rest.splitlines()[-1] == f"run {run_id}: its runner is gone; these are all the lines it wrote"
    assert wait_until_gone(run_id, within=60) == []  # the watchdog removes what the killed run left


def old_run_folder(logs: Path, run_id: str, size: int, age_days: float) -> Path:
    folder = logs / run_id
    folder.mkdir(parents=True)
    (folder / "step.log").write_bytes(b"x" * size)
    then = time.time() - age_days * 86400
    for path in (folder / "step.log", folder):
        os.utime(path, (then, then))
    return folder


def test_old_logs_are_pruned_after_a_run_by_age_then_by_size(tmp_path: Path) -> None:
    state = tmp_path / "state"
    logs = state / "logs"
    ancient = old_run_folder(logs, "aaaaaaaaaa", 10, age_days=40)
    big_old = old_run_folder(logs, "bbbbbbbbbb", 3_000_000, age_days=3)
    recent = old_run_folder(logs, "cccccccccc", 1_000, age_days=1)
    (tmp_path / "runner.toml").write_text('[logs]\nkeep = "30d"\nmax_size = "2MB"\n', encoding="utf-8")
    run = start_run(tmp_path, state, "image: busybox\nsteps: [{id: one, script: echo one}]\n")
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0, output
    assert not ancient.exists() and not big_old.exists()  # past its age; then the oldest beyond the size
    assert recent.exists() and (logs / newest_run(state)).exists()


def test_cleanup_logs_prunes_by_older_than_and_keeps_running_runs(tmp_path: Path) -> None:
    state = tmp_path / "state"
    logs = state / "logs"
    old = old_run_folder(logs, "dddddddddd", 100, age_days=2)
    live = old_run_folder(logs, "eeeeeeeeee", 100, age_days=2)
    Ledger(state).start_run("eeeeeeeeee", "p", "p.yml", str(Owner.current()))  # this process: alive
    env = {**os.environ, "RUNNER_STATE_DIR": str(state)}
    command = [sys.executable, "-m", "runner", "cleanup", "--logs", "--older-than", "1d"]
    dry = subprocess.run(
        [*command, "--dry-run"], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert "would remove the logs of 1 run(s)" in dry.stdout and old.exists()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert "removed the logs of 1 run(s)" in done.stdout
    assert not old.exists() and live.exists()


def test_a_wrong_logs_setting_is_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "runner.toml").write_text('[logs]\nkeep = "soon"\n', encoding="utf-8")
    env = {**os.environ, "RUNNER_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-m", "runner", "cleanup", "--logs"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 2
    assert "[logs] keep" in done.stderr and 'keep = "14d"' in done.stderr
