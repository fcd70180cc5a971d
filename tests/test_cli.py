"""The command line as a user meets it: exit codes, signals, kill -9, cleanup."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.backend import connect
from runner.backend.base import REMOVAL_ORDER
from tests.conftest import BUSYBOX, RUN_LABEL, Completed, image_args

Write = Callable[..., Path]
Cli = Callable[..., Completed]

LONG_STEP = """
    image: busybox
    steps:
      - {id: svc, detach: true, script: sleep 600}
      - {id: started, script: echo started}
      - {id: long, script: "echo long-running; sleep 120"}
      - {id: never, script: echo never}
    finally:
      - {id: cleanup, script: echo cleanup-ran}
"""


def labelled_of(run_id: str) -> list[str]:
    backend = connect()
    return [
        r.name
        for kind in REMOVAL_ORDER
        for r in backend.list_resources(kind, f"{RUN_LABEL}={run_id}")
    ]


def start_runner(path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(path), "--no-color", *image_args(), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 60) -> tuple[str, str]:
    """Read the runner's output until `marker`; returns (output so far, run id)."""
    assert process.stdout is not None
    seen, run_id = "", ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        if not run_id and " run " in line:
            run_id = line.rsplit("run ", 1)[1].strip()
        if marker in line:
            return seen, run_id
    raise AssertionError(f"never saw {marker!r} in:\n{seen}")


def wait_until_gone(run_id: str, within: float) -> list[str]:
    deadline = time.monotonic() + within
    left = labelled_of(run_id)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = labelled_of(run_id)
    return left


def test_version(cli: Cli) -> None:
    completed = cli("--version")
    assert completed.code == 0 and completed.out.startswith("runner ")


def test_validate_reports_bad_input_with_exit_2(cli: Cli, write: Write) -> None:
    path = write("image: busybox\nsteps:\n  - script: echo\n    imgae: x\n")
    completed = cli("validate", str(path))
    assert completed.code == 2
    assert completed.err.splitlines() == [
        f"{path}:4:5: unknown key 'imgae' in 'steps.0'",
        "  hint: did you mean 'image'?",
    ]
    assert "Traceback" not in completed.err


def test_validate_accepts_the_demo(cli: Cli) -> None:
    completed = cli("validate", "examples/redis.yml")
    assert completed.code == 0, completed.err
    assert "valid" in completed.out


def test_a_missing_file_is_exit_2(cli: Cli) -> None:
    completed = cli("run", "no/such/runner.yml")
    assert completed.code == 2
    assert "cannot read no/such/runner.yml" in completed.err


def test_bad_option_values_are_exit_2(cli: Cli, write: Write) -> None:
    path = write("image: busybox\nsteps: [{script: echo}]\n")
    completed = cli("run", str(path), "--image", "no-equals-sign")
    assert completed.code == 2
    assert "--image 'no-equals-sign' is not NAME=VALUE" in completed.err


def test_no_engine_is_one_clear_line_and_exit_3(write: Write) -> None:
    path = write("image: busybox\nsteps: [{script: echo}]\n")
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    completed = subprocess.run(
        [sys.executable, "-m", "runner", "run", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert completed.returncode == 3
    error, hint = completed.stderr.splitlines()  # what is wrong, then how to fix it
    assert error == "error: no engine answers at unix:///nonexistent/docker.sock (chosen by DOCKER_HOST)"
    assert hint.startswith("  hint: start it") and "runner doctor" in hint
    assert "Traceback" not in completed.stderr


@pytest.mark.docker
def test_doctor_says_why_no_run_would_work_and_exits_3() -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    completed = subprocess.run(
        [sys.executable, "-m", "runner", "doctor", "--no-color"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert completed.returncode == 3, completed.stdout + completed.stderr
    assert "no engine answers at unix:///nonexistent/docker.sock (chosen by DOCKER_HOST)" in completed.stdout
    assert "hint: start it" in completed.stdout and "a run would not work" in completed.stdout
    assert "Traceback" not in completed.stdout + completed.stderr


def test_a_failing_pipeline_exits_1_after_finally(cli: Cli, write: Write) -> None:
    path = write("""
        image: busybox
        steps: [{id: bad, script: exit 5}, {id: skipped, script: echo no}]
        finally: [{id: cleanup, script: echo cleanup-ran}]
    """)
    completed = cli("run", str(path), *image_args())
    assert completed.code == 1, completed.out + completed.err
    assert "cleanup │ cleanup-ran" in completed.out
    assert "\x1b[" not in completed.out  # not a terminal: plain text
    lines = completed.out.splitlines()
    assert any(line.split()[:4] == ["bad", "steps", "FAILED", "5"] for line in lines)
    assert any(line.split()[:3] == ["skipped", "steps", "SKIPPED"] for line in lines)
    assert "skipped │" not in completed.out  # made ahead while `bad` ran, and removed without running
    assert "5 resources created, all removed" in completed.out  # network, volume, 3 containers


@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_an_interrupt_stops_the_step_runs_finally_and_exits_130(write: Write, signum: int) -> None:
    path = write(LONG_STEP)
    process = start_runner(path)
    _, run_id = read_until(process, "long-running")
    process.send_signal(signum)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 130, rest
    assert "cleanup │ cleanup-ran" in rest
    assert "never │" not in rest
    assert any(line.split()[:3] == ["long", "steps", "STOPPED"] for line in rest.splitlines()), rest
    assert labelled_of(run_id) == []


@pytest.mark.docker
def test_a_second_interrupt_abandons_finally_but_still_sweeps(write: Write) -> None:
    path = write("""
        image: busybox
        steps: [{id: long, script: "echo long-running; sleep 120"}]
        finally:
          - {id: slow-cleanup, script: "echo in-finally; sleep 120"}
          - {id: after, script: echo after}
    """)
    process = start_runner(path)
    _, run_id = read_until(process, "long-running")
    process.send_signal(signal.SIGINT)
    read_until(process, "in-finally")
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    lines = [line.split()[:3] for line in rest.splitlines()]
    assert ["slow-cleanup", "finally", "STOPPED"] in lines
    assert ["after", "finally", "SKIPPED"] in lines
    assert labelled_of(run_id) == []


@pytest.mark.docker
def test_kill_9_of_the_process_group_leaves_nothing_after_the_reaper(write: Write) -> None:
    path = write(LONG_STEP)
    process = start_runner(path)
    _, run_id = read_until(process, "long-running")
    assert len(labelled_of(run_id)) >= 3  # network, volume, the service and the running step
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert wait_until_gone(run_id, within=15) == []


@pytest.mark.docker
def test_cleanup_removes_an_orphan_and_leaves_unlabelled_containers_alone(cli: Cli, write: Write) -> None:
    backend = connect()
    foreign = subprocess.run(
        ["docker", "run", "-d", "--init", "--label", "test.foreign=1", BUSYBOX, "sleep", "600"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        path = write(LONG_STEP)
        process = start_runner(path, "--keep")
        _, run_id = read_until(process, "long-running")
        # a runner killed so hard that its reaper dies too: only labels and the ledger are left
        os.killpg(process.pid, signal.SIGKILL)
        reaper = subprocess.run(
            ["pgrep", "-f", f"runner.teardown.reaper {run_id}"], capture_output=True, text=True
        )
        for pid in reaper.stdout.split():
            os.kill(int(pid), signal.SIGKILL)
        process.wait(timeout=10)
        assert labelled_of(run_id)
        listed = cli("ps")
        assert run_id in listed.out and "leaked" in listed.out
        dry = cli("cleanup", "--dry-run")
        assert dry.code == 0 and run_id in dry.out and "would be removed" in dry.out
        assert labelled_of(run_id)
        completed = cli("cleanup")
        assert completed.code == 0, completed.err
        assert run_id in completed.out
        assert labelled_of(run_id) == []
        assert backend.state(foreign).running
    finally:
        subprocess.run(["docker", "rm", "-f", foreign], capture_output=True, check=False)


@pytest.mark.docker
def test_the_demo_runs_and_leaves_nothing(cli: Cli) -> None:
    completed = cli("run", "examples/redis.yml", *image_args())
    assert completed.code == 0, completed.out + completed.err
    assert "get and check │ got: hello from runner" in completed.out
    assert any(line.split()[:3] == ["stop", "redis", "finally"] for line in completed.out.splitlines())
    # network, volume, the holder of the lane the three steps share, the service, 3 steps
    assert "7 resources created, all removed" in completed.out


@pytest.mark.docker
def test_env_options_and_the_image_map_in_runner_toml(cli: Cli, write: Write, tmp_path: Path) -> None:
    (tmp_path / "runner.toml").write_text(f'[images]\nbusybox = "{BUSYBOX}"\n', encoding="utf-8")
    (tmp_path / "vars.env").write_text(
        "# comment\nexport FROM_FILE='file value'\nBOTH=file\n", encoding="utf-8"
    )
    path = write("""
        image: busybox
        steps: [{id: show, script: 'echo "$FROM_FILE|$FROM_CLI|$BOTH"'}]
    """)
    completed = cli(
        "run", str(path), "--env-file", str(tmp_path / "vars.env"), "--env", "FROM_CLI=cli", "-e", "BOTH=cli"
    )
    assert completed.code == 0, completed.out + completed.err
    assert "show │ file value|cli|cli" in completed.out


@pytest.mark.docker
def test_a_run_first_removes_what_dead_runs_left(cli: Cli, write: Write) -> None:
    path = write(LONG_STEP)
    process = start_runner(path, "--keep")  # guarded by the watchdog process, killed below with the runner
    _, dead_run = read_until(process, "long-running")
    reaper = subprocess.run(
        ["pgrep", "-f", f"runner.teardown.reaper {dead_run}"], capture_output=True, text=True
    )
    os.killpg(process.pid, signal.SIGKILL)
    for pid in reaper.stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    process.wait(timeout=10)
    assert labelled_of(dead_run)
    quick = write("image: busybox\nsteps: [{script: echo hi}]\n", "quick.yml")
    completed = cli("run", str(quick), *image_args())
    assert completed.code == 0, completed.out + completed.err
    assert "earlier run(s) whose runner died" in completed.out
    assert labelled_of(dead_run) == []


@pytest.mark.docker
def test_cleanup_leaves_live_and_young_runs_unless_told(cli: Cli, write: Write) -> None:
    from tests.engine.helpers import run_file

    result, _ = run_file(
        write("image: busybox\nsteps: [{id: idle, detach: true, script: sleep 600}]\n"), keep=True
    )
    try:
        assert labelled_of(result.run_id)
        assert result.run_id not in cli("cleanup", "--dry-run").out  # its owner, this process, is alive
        assert result.run_id not in cli("cleanup", "--all", "--older-than", "1h", "--dry-run").out
        assert cli("cleanup", "--older-than", "soon").code == 2
        completed = cli("cleanup", "--all")
        assert completed.code == 0 and result.run_id in completed.out
        assert labelled_of(result.run_id) == []
    finally:
        cli("cleanup", "--run", result.run_id)


@pytest.mark.docker
def test_verbose_shows_service_output_and_quiet_shows_only_the_end(cli: Cli, write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: svc, detach: true, script: "echo service-says-hi; sleep 600"}
          - {id: step, script: "sleep 0.5; echo step-output"}
    """)
    verbose = cli("run", str(path), "-v", *image_args())
    assert "svc  │ service-says-hi" in verbose.out and "step logs:" in verbose.out
    normal = cli("run", str(path), *image_args())
    assert "service-says-hi" not in normal.out and "step │ step-output" in normal.out
    quiet = cli("run", str(path), "-q", *image_args())
    assert quiet.code == 0
    assert "step-output" not in quiet.out and "all removed" in quiet.out


# Loaded by the runner under test through PYTHONPATH. Once runner.entry has installed its handlers, it
# holds the runner at a chosen point of its start-up and says so on a pipe, so that the signal lands there
# every time instead of wherever a sleep in the test happens to end.
BLOCKING_SITECUSTOMIZE = r"""
import os
import sys
import time

AT = os.environ["RUNNER_TEST_BLOCK_AT"]
MARKER_FD = int(os.environ["RUNNER_TEST_MARKER_FD"])

# Marker and wait run in an exec of a string, as the methods that dataclasses and namedtuple build do:
# CPython handles a KeyboardInterrupt that leaves such an exec in a way of its own, and the runner must
# cope. Written from inside the exec, the marker guarantees that the signal lands there.
WAIT = (
    "os.write(fd, b'blocked\\n')\n"
    "os.close(fd)\n"
    "deadline = time.monotonic() + 60\n"
    "while time.monotonic() < deadline:\n"
    "    time.sleep(0.01)\n"
)


def block():
    exec(WAIT, {"os": os, "time": time, "fd": MARKER_FD})


def block_in_parse_args(frame, event, arg):
    if event == "call" and frame.f_code.co_name == "parse_args" and "click" in frame.f_code.co_filename:
        sys.setprofile(None)
        block()


class BlockAtTheCli:
    def find_spec(self, name, path=None, target=None):
        if name == "runner.cli":  # imported by runner.entry once its handlers are in place
            sys.meta_path.remove(self)
            if AT == "import":
                block()
            else:
                sys.setprofile(block_in_parse_args)
        return None


sys.meta_path.insert(0, BlockAtTheCli())
"""


def start_blocked_runner(path: Path, site: Path, at: str) -> subprocess.Popen[str]:
    """Start the runner held at `at` ("import": the import of the command line; "parse": the parsing of
    its arguments), and return once it is held there."""
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKING_SITECUSTOMIZE, encoding="utf-8")
    marker_read, marker_write = os.pipe()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "RUNNER_TEST_BLOCK_AT": at,
        "RUNNER_TEST_MARKER_FD": str(marker_write),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(path), "--no-color", *image_args()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=env,
        pass_fds=(marker_write,),
    )
    os.close(marker_write)
    with os.fdopen(marker_read, "rb") as marker:
        ready, _, _ = select.select([marker], [], [], 60)
        line = marker.readline() if ready else b""
    if line != b"blocked\n":
        process.kill()
        out, _ = process.communicate(timeout=60)
        raise AssertionError(f"the runner was never held at {at}:\n{out}")
    return process


@pytest.mark.parametrize("at", ["import", "parse"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_while_the_runner_starts_is_an_interrupt(
    write: Write, tmp_path: Path, signum: int, at: str
) -> None:
    process = start_blocked_runner(write(LONG_STEP), tmp_path / "site", at)
    process.send_signal(signum)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130, out
    assert "Traceback" not in out and "Abort" not in out, out


def test_a_long_diagnostic_stays_on_one_line_when_piped(cli: Cli, write: Write) -> None:
    name = "aPropertyWhoseNameMakesTheWarningLongerThanAnyTerminal" * 3
    path = write(
        f"""
        id: long
        namespace: company.team
        tasks:
          - id: hello
            type: io.kestra.plugin.core.log.Log
            message: hi
            {name}: 1
        """,
        "flow.yml",
    )
    completed = cli("validate", str(path))
    assert completed.code == 0, completed.err
    lines = [line for line in completed.out.splitlines() if ": warning: " in line]
    assert len(lines) == 1 and lines[0].startswith(f"{path}:7:5: warning: ") and name in lines[0]
