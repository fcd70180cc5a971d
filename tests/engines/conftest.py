"""The engines the portability tests run on: this machine's Docker, Podman's Docker API, and a Docker
engine reached over tcp:// whose container addresses this machine cannot route (a dockerd inside a
Podman container, its subnets marked unreachable here). Each is started by the project's own scripts,
once per session, and checked for leftovers when its tests are done."""

from __future__ import annotations

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
ENGINES = ("local", "podman", "remote")
SCRIPTS = {"podman": "scripts/podman.sh", "remote": "scripts/remote-engine.sh"}
REAPER_LABEL = "dev.runner.reaper.shared"


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


def _start(name: str) -> str:
    script = TOP / SCRIPTS[name]
    done = subprocess.run(
        ["bash", str(script), "start"], capture_output=True, text=True, timeout=900, check=False, cwd=TOP
    )
    if done.returncode != 0:
        message = f"{script.name} start failed:\n{done.stderr[-3000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    last = done.stdout.strip().splitlines()[-1]
    return last.removeprefix("DOCKER_HOST=")


def _stop(name: str) -> None:
    subprocess.run(["bash", str(TOP / SCRIPTS[name]), "stop"], capture_output=True, timeout=300, check=False)


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    name = str(request.param)
    address = "unix:///var/run/docker.sock" if name == "local" else _start(name)
    env = {k: v for k, v in os.environ.items() if k != "RUNNER_ENGINE"}
    env["DOCKER_HOST"] = address
    started = Engine(name, address, env)
    before = set(started.labelled())
    try:
        yield started
        left = set(started.wait_until_gone(RUN_LABEL, within=20)) - before
        assert not left, f"resources left on the {name} engine: {sorted(left)}"
    finally:
        if name != "local":
            backend = started.backend()
            for reaper in backend.list_resources("container", REAPER_LABEL):
                backend.remove("container", reaper.id)
            _stop(name)
