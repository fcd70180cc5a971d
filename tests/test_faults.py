"""Faults a run meets: an OOM kill, a step that ignores SIGTERM, a service that never gets ready, two runs
of one pipeline at once, a full state directory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.engine.status import StepStatus
from tests.conftest import image_args
from tests.engine.helpers import run_file
from tests.test_cli import labelled_of

pytestmark = pytest.mark.docker
Write = Callable[..., Path]


def test_an_oom_killed_step_fails_and_says_so(write: Write) -> None:
    path = write(
        """
        id: oom
        namespace: faults
        tasks:
          - id: hungry
            type: io.kestra.plugin.docker.Run
            containerImage: busybox
            memory: {memory: 16MB}
            commands: [dd, if=/dev/zero, of=/dev/null, bs=200M, count=1]
        """,
        "flow.yml",
    )
    result, _ = run_file(path)
    step = result.results[0]
    assert (step.status, step.exit_code) == (StepStatus.FAILED, 137)
    assert step.message == "killed: out of memory"
    assert labelled_of(result.run_id) == []


def test_a_step_that_ignores_sigterm_is_still_stopped_at_its_timeout(write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: stubborn, script: ["trap '' TERM INT", "sleep 60"], timeout: 1s}
        finally: [{id: last, script: echo last}]
    """)
    result, _ = run_file(path)
    assert result.results[0].status is StepStatus.TIMED_OUT
    assert result.results[0].duration < 5
    assert result.results[1].status is StepStatus.SUCCESS


def test_a_service_that_never_gets_ready_fails_in_its_time(write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: svc, detach: true, script: sleep 60, ready: {command: "false", timeout: 1s}}
          - {id: use, script: echo never}
    """)
    result, _ = run_file(path)
    assert [r.status for r in result.results] == [StepStatus.FAILED, StepStatus.SKIPPED]
    assert result.results[0].message == "not ready after 1s (waited for `false`)"
    assert labelled_of(result.run_id) == []


def test_two_runs_of_one_pipeline_at_once_do_not_touch_each_other(write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: svc, detach: true, script: sleep 60}
          - {id: work, script: [sleep 2, echo done]}
    """)
    command = [sys.executable, "-m", "runner", "run", str(path), "--no-color", *image_args()]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    outputs = [first.communicate(timeout=120)[0], second.communicate(timeout=120)[0]]
    assert (first.returncode, second.returncode) == (0, 0), outputs
    run_ids = {out.split(" run ", 1)[1].split()[0] for out in outputs}
    assert len(run_ids) == 2
    assert all("all removed" in out for out in outputs)
    assert all(labelled_of(run_id) == [] for run_id in run_ids)


def test_a_full_state_directory_refuses_to_start_the_run(write: Write) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    path = write("image: busybox\nsteps: [{id: a, script: echo}]\n")
    with tempfile.TemporaryDirectory() as mount:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mount], capture_output=True
        )
        if mounted.returncode != 0:
            pytest.skip("no tmpfs mount here")
        try:
            try:
                with open(Path(mount) / "filler", "wb") as filler:
                    while True:
                        filler.write(b"\0" * 4096)
                        filler.flush()
            except OSError:
                pass  # the filesystem is full
            env = {**os.environ, "RUNNER_STATE_DIR": str(Path(mount) / "state")}
            completed = subprocess.run(
                [sys.executable, "-m", "runner", "run", str(path), *image_args()],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
        finally:
            subprocess.run(["umount", mount], capture_output=True)
    assert completed.returncode == 3, completed.stdout + completed.stderr
    assert "cannot write the run ledger" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.skipif(
    not os.environ.get("RUNNER_TEST_ENGINE_RESTART"),
    reason="restarts this machine's Docker engine, which can take the engine down with it: "
    "run it on purpose with RUNNER_TEST_ENGINE_RESTART=1",
)
def test_an_engine_restart_mid_step_is_a_clear_error_and_cleanup_removes_the_rest(write: Write) -> None:
    import time

    from tests.test_cli import read_until, start_runner

    path = write("""
        image: busybox
        steps:
          - {id: svc, detach: true, script: sleep 600}
          - {id: long, script: ["echo long-running", "sleep 60"]}
        finally: [{id: last, script: echo last}]
    """)
    process = start_runner(path)
    _, run_id = read_until(process, "long-running")
    root = Path(__file__).parents[1]
    try:
        subprocess.run(["pkill", "-x", "dockerd"], check=True)
        out, _ = process.communicate(timeout=120)
    finally:
        for _ in range(120):  # the old engine must be gone before a new one can start
            if subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True).returncode != 0:
                break
            time.sleep(0.5)
        subprocess.run(["bash", str(root / "scripts" / "engine.sh")], check=True, capture_output=True)
    assert process.returncode not in (0, None), out
    assert "no Docker engine answers" in out
    assert "Traceback" not in out
    cleaned = subprocess.run(
        [sys.executable, "-m", "runner", "cleanup"], capture_output=True, text=True, timeout=120
    )
    assert cleaned.returncode == 0, cleaned.stderr
    assert labelled_of(run_id) == []
