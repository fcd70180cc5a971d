"""A script step run as a process of this machine, in a working directory of its own, when the pipeline
asks for it (Kestra's Process task runner) and the user allowed it (`--allow-host-process`). Its process
group is killed when the step is stopped or times out, so nothing it started outlives the run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.engine.status import StepStatus
from runner.model import ContainerRun

POLL = 0.1
STOP_GRACE = 5.0


@dataclass
class HostOutcome:
    status: StepStatus
    exit_code: int | None
    message: str = ""
    stderr_lines: int = 0
    vars: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class HostRun:
    folder: Path  # the working directory, with the input files already in it
    env: Mapping[str, str]
    log: Callable[[str], None]
    should_stop: Callable[[], bool]
    timeout: float | None
    read_marker: Callable[[str], dict[str, object] | None]  # a line's outputs, when it is a marker line


def run_on_host(action: ContainerRun, run: HostRun) -> HostOutcome:
    """The step's script under its shell, stopping at the first failing command, as in a container."""
    shell = "bash" if action.shell == "bash" else "sh"
    script = "\n".join(action.script) + "\n"
    env = {**os.environ, **action.env, **run.env, "PWD": str(run.folder)}
    process = subprocess.Popen(
        [shell, "-ec", script],
        cwd=run.folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: killed whole when the step ends early
    )
    outcome = HostOutcome(StepStatus.SUCCESS, None)
    lock = threading.Lock()

    def pump(stream: object, is_error: bool) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            with lock:
                outputs = None if is_error else run.read_marker(line)
                if outputs is not None:
                    outcome.vars.update(outputs)
                    continue
                if is_error:
                    outcome.stderr_lines += 1
                run.log(line)

    readers = [
        threading.Thread(target=pump, args=(process.stdout, False), daemon=True),
        threading.Thread(target=pump, args=(process.stderr, True), daemon=True),
    ]
    for reader in readers:
        reader.start()
    deadline = None if run.timeout is None else time.monotonic() + run.timeout
    while process.poll() is None:
        if run.should_stop():
            _kill_group(process)
            outcome.status, outcome.message = StepStatus.STOPPED, "stopped by an interrupt"
            break
        if deadline is not None and time.monotonic() > deadline:
            _kill_group(process)
            outcome.status, outcome.message = StepStatus.TIMED_OUT, f"timed out after {run.timeout:g}s"
            break
        time.sleep(POLL)
    code = process.wait()
    with contextlib.suppress(ProcessLookupError):  # what it left running in the background ends with it
        os.killpg(process.pid, signal.SIGKILL)
    for reader in readers:
        reader.join(timeout=5)
    outcome.exit_code = code
    if outcome.status is StepStatus.SUCCESS and code != 0:
        outcome.status, outcome.message = StepStatus.FAILED, f"exit code {code}"
    return outcome


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole group, then SIGKILL to what is left after the grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
