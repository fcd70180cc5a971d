"""The engines the portability tests run on: this machine's Docker, Podman's Docker API, a Docker
engine reached over tcp:// whose container addresses this machine cannot route (a dockerd inside a
Podman container, its subnets marked unreachable here), and this machine's Docker reached over ssh://
(a private sshd on 127.0.0.1, whose client configuration reaches the SDK through a wrapper first in PATH).
Each is started by the project's own scripts, once per session, and checked for leftovers when its tests
are done."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runner.backend import connect
from runner.backend.base import Backend, EngineSettings
from tests.conftest import RUN_LABEL

TOP = Path(__file__).resolve().parents[2]
ENGINES = ("local", "podman", "remote", "ssh")
SCRIPTS = {"podman": "scripts/podman.sh", "remote": "scripts/remote-engine.sh", "ssh": "scripts/sshd.sh"}
REAPER_LABEL = "dev.runner.reaper.shared"
PATH_PREPEND = "PATH_PREPEND="
SSH_CLIENTS_GONE_WITHIN = 10.0


@dataclass
class Engine:
    name: str
    address: str  # DOCKER_HOST for the runner under test
    env: dict[str, str] = field(default_factory=dict)

    def backend(self) -> Backend:
        return connect(EngineSettings(engine=self.address))

    def labelled(self, label: str = RUN_LABEL) -> list[str]:
        backend = self.backend()
        return [
            r.name for kind in ("container", "network", "volume") for r in backend.list_resources(kind, label)
        ]

    def wait_until_gone(self, label: str, within: float) -> list[str]:
        deadline = time.monotonic() + within
        left = self.labelled(label)
        while left and time.monotonic() < deadline:
            time.sleep(0.25)
            left = self.labelled(label)
        return left


@dataclass(frozen=True)
class Started:
    address: str
    path_prepend: str | None = None  # a directory the engine's client programs (ssh) must be found in first


def _start(name: str) -> Started:
    script = TOP / SCRIPTS[name]
    done = subprocess.run(
        ["bash", str(script), "start"], capture_output=True, text=True, timeout=900, check=False, cwd=TOP
    )
    if done.returncode != 0:
        message = f"{script.name} start failed:\n{done.stderr[-3000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    lines = done.stdout.strip().splitlines()
    prepend = next((line.removeprefix(PATH_PREPEND) for line in lines if line.startswith(PATH_PREPEND)), None)
    return Started(lines[-1].removeprefix("DOCKER_HOST="), prepend)


def _stop(name: str) -> None:
    subprocess.run(["bash", str(TOP / SCRIPTS[name]), "stop"], capture_output=True, timeout=300, check=False)


def _ssh_clients(state: str) -> list[int]:
    """Live processes of the wrapper's ssh (matched by its configuration file) that this process did not
    start: the SDK clients of runners that are done, had they left any."""
    config = f"-F {state}/ssh_config"
    found: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if config in args and fields[0] != "Z" and int(fields[1]) != os.getpid():
            found.append(int(proc.name))
    return found


def _ssh_clients_left(state: str, within: float) -> list[int]:
    deadline = time.monotonic() + within
    left = _ssh_clients(state)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = _ssh_clients(state)
    return left


@contextlib.contextmanager
def _path_first(directory: str | None) -> Iterator[None]:
    """`directory` first in this process's PATH, for the SDK's in-process clients, then PATH as it was."""
    if directory is None:
        yield
        return
    saved = os.environ.get("PATH")
    os.environ["PATH"] = os.pathsep.join(p for p in (directory, saved) if p)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    name = str(request.param)
    started = Started("unix:///var/run/docker.sock") if name == "local" else _start(name)
    with _path_first(started.path_prepend):
        yield from _engine(name, started)


def _engine(name: str, started: Started) -> Iterator[Engine]:
    env = {k: v for k, v in os.environ.items() if k != "RUNNER_ENGINE"}
    env["DOCKER_HOST"] = started.address
    running = Engine(name, started.address, env)
    before = set(running.labelled())
    try:
        yield running
        left = set(running.wait_until_gone(RUN_LABEL, within=20)) - before
        assert not left, f"resources left on the {name} engine: {sorted(left)}"
        if started.path_prepend is not None:
            clients = _ssh_clients_left(str(Path(started.path_prepend).parent), SSH_CLIENTS_GONE_WITHIN)
            assert not clients, f"ssh clients left by runners on the {name} engine: pids {clients}"
    finally:
        if name != "local":
            backend = running.backend()
            for reaper in backend.list_resources("container", REAPER_LABEL):
                backend.remove("container", reaper.id)
            _stop(name)
