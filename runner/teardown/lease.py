"""The out-of-process lease that guards a run: a reaper container that speaks Ryuk's protocol where one
can run, else the process watchdog of `runner.teardown.reaper`.

The container is shared: runs find a live one by its label and take a lease on it over TCP, so only the
first run of a while pays for starting it. Unlike a process it also survives a kill of the runner's
whole cgroup (a CI job stopped from outside).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Protocol

from runner.backend.base import Backend, ContainerSpec
from runner.errors import RunnerError
from runner.model import Mount, PortBinding
from runner.teardown.labels import RUN_ID
from runner.teardown.reaper import Lease as WatchdogLease

REAPER_IMAGE = "runner/reaper:latest"
REAPER_LABEL = "dev.runner.reaper"
SHARED_LABEL = "dev.runner.reaper.shared"  # set only on reapers that runs start, with the timeouts below
REAPER_PORT = 8080
RECONNECTION_TIMEOUT = "5s"  # a killed runner's resources go this long after its connection breaks
IDLE_TIMEOUT = "60s"  # a reaper nobody uses leaves after this
READY_TIMEOUT = 20.0


class RunLease(Protocol):
    def wait_ready(self, timeout: float = 10.0) -> None: ...

    def release(self) -> None: ...

    def abandon(self) -> None: ...


class ReaperUnavailable(RunnerError):
    """No reaper container can guard this run here; the process watchdog does."""


class ReaperLease:
    """A lease on a reaper container: while the TCP connection lives, the run's resources are safe; when
    it breaks, the reaper removes everything labelled with the run id."""

    def __init__(self, backend: Backend, run_id: str) -> None:
        self.backend = backend
        self.run_id = run_id
        self.connection: socket.socket | None = None

    def wait_ready(self, timeout: float = 10.0) -> None:
        port = self._live_reaper() or self._start_reaper()
        self.connection = self._register(port)

    def release(self) -> None:
        # the run removed its resources itself: the reaper's prune finds nothing left
        self._close()

    def abandon(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _live_reaper(self) -> int | None:
        for container in self.backend.list_resources("container", f"{SHARED_LABEL}={RECONNECTION_TIMEOUT}"):
            if container.running:
                published = self.backend.published_ports(container.id).get(REAPER_PORT)
                if published:
                    return published[1]
        return None

    def _start_reaper(self) -> int:
        socket_path = _engine_socket()
        if socket_path is None or not self.backend.has_image(REAPER_IMAGE):
            raise ReaperUnavailable("no reaper image or engine socket here")
        spec = ContainerSpec(
            name=f"runner-reaper-{self.run_id}",
            image=REAPER_IMAGE,
            labels={
                REAPER_LABEL: "true",
                SHARED_LABEL: RECONNECTION_TIMEOUT,
                "org.testcontainers.ryuk": "true",
            },
            env={"RYUK_RECONNECTION_TIMEOUT": RECONNECTION_TIMEOUT, "RYUK_CONNECTION_TIMEOUT": IDLE_TIMEOUT},
            mounts=(Mount(source=socket_path, target="/var/run/docker.sock", bind=True),),
            ports=(PortBinding(container_port=REAPER_PORT),),
            auto_remove=True,
        )
        container_id = self.backend.create_container(spec)
        self.backend.start(container_id)
        deadline = time.monotonic() + READY_TIMEOUT
        while not any(line.endswith("Started!") for line in self.backend.last_lines(container_id, 5)):
            if time.monotonic() > deadline or not self.backend.state(container_id).running:
                self.backend.remove("container", container_id)
                raise ReaperUnavailable("the reaper container did not start")
            time.sleep(0.05)
        return self.backend.published_ports(container_id)[REAPER_PORT][1]

    def _register(self, port: int) -> socket.socket:
        """Send the run's filter and read the ACK before anything is created: an unacknowledged lease
        guards nothing."""
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            connection.sendall(f"label={RUN_ID}={self.run_id}\n".encode())
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = connection.recv(16)
                if not chunk:
                    break
                answer += chunk
        except OSError as exc:
            connection.close()
            raise ReaperUnavailable(f"the reaper did not answer: {exc}") from exc
        if answer.strip() != b"ACK":
            connection.close()
            raise ReaperUnavailable("the reaper did not acknowledge the run")
        connection.settimeout(None)
        return connection


class GuardedLease:
    """The reaper container when it can run, else the process watchdog, decided before the first
    resource is created."""

    def __init__(self, backend: Backend, run_id: str, *, prefer_container: bool = True) -> None:
        self.run_id = run_id
        self.container = ReaperLease(backend, run_id) if prefer_container else None
        self.watchdog: WatchdogLease | None = None if prefer_container else WatchdogLease(run_id)
        self.chosen: RunLease | None = None

    def wait_ready(self, timeout: float = 10.0) -> None:
        if self.container is not None:
            try:
                self.container.wait_ready(timeout)
                self.chosen = self.container
                return
            except (RunnerError, OSError):
                self.container = None
        self.watchdog = self.watchdog or WatchdogLease(self.run_id)
        self.watchdog.wait_ready(timeout)
        self.chosen = self.watchdog

    def release(self) -> None:
        for lease in (self.chosen, self.watchdog):
            if lease is not None:
                lease.release()

    def abandon(self) -> None:
        for lease in (self.chosen, self.watchdog):
            if lease is not None:
                lease.abandon()

    @property
    def kind(self) -> str:
        return "reaper container" if isinstance(self.chosen, ReaperLease) else "process watchdog"


def _engine_socket() -> str | None:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return None
    path = host.removeprefix("unix://")
    return path if os.path.exists(path) else None
