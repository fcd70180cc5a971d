"""The out-of-process leases that guard a run, in two layers.

1. Beside the engine: a shared reaper container (speaking Ryuk's protocol) holds the run's label filter,
   and the runner holds the lease over its own engine connection: an exec inside the reaper whose stdin
   this process keeps open. When the runner, or its whole machine, dies, the engine closes that stdin,
   the lease connection inside the reaper ends, and the reaper removes the run's resources. No port is
   published and nothing on the client's network has to reach the reaper, so this works for remote
   engines and Podman alike. Where only the stock Ryuk image can run, its TCP port is used as Ryuk's
   own clients do.
2. On the client: the process watchdog of `runner.teardown.reaper`, which sweeps as soon as the runner
   dies, and which alone can be told "done" (so `--keep` runs use only it).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from runner.backend.base import Backend, ContainerSpec, Lease
from runner.errors import RunnerError
from runner.model import Mount, PortBinding
from runner.teardown import provision, ryuk
from runner.teardown.labels import RUN_ID
from runner.teardown.reaper import Lease as WatchdogLease

REAPER_LABEL = "dev.runner.reaper"
SHARED_LABEL = "dev.runner.reaper.shared"  # set only on reapers that runs start, with the timeouts below
SOURCE_LABEL = "dev.runner.reaper.source"  # the reaper's source hash: only a current one takes leases
REAPER_PORT = 8080
RECONNECTION_TIMEOUT = "5s"  # a killed runner's resources go this long after its lease breaks
IDLE_TIMEOUT = "60s"  # a reaper nobody uses leaves after this
READY_TIMEOUT = 30.0
SOCKET_TARGET = "/var/run/docker.sock"
ACK = b"ACK"
# set in a cluster run's own container: its label value, which that container and the run's image carry
CLUSTER_RUN_VARIABLE = "RUNNER_CLUSTER_RUN"
CLUSTER_RUN_LABEL = "dev.runner.cluster-run"
CLUSTER_IMAGE_VARIABLE = "RUNNER_CLUSTER_IMAGE"  # the run's own image in the registry, deleted once pulled

Notice = Callable[[str], None]


class ReaperUnavailable(RunnerError):
    """No reaper container can guard this run on this engine; the process watchdog alone does."""


class EngineLease:
    """A lease on the engine's shared reaper container, held over this process's engine connection."""

    def __init__(self, backend: Backend, run_id: str, notice: Notice) -> None:
        self.backend = backend
        self.run_id = run_id
        self.notice = notice
        self.held: Lease | None = None
        self.also: list[Lease] = []  # a cluster run's own container and image, which it cannot remove
        self.connection: socket.socket | None = None
        self.description = ""

    def wait_ready(self, timeout: float = 10.0) -> None:
        image = provision.ensure(self.backend, self.notice)
        if image is None:
            raise ReaperUnavailable(
                "the runner's image is missing and could not be built, and no registry has the stock Ryuk"
            )
        filters = f"label={RUN_ID}={self.run_id}"
        if image == provision.STOCK_RYUK:
            self._hold_over_tcp(image, filters)
            return
        # A shared reaper may exit (idle) between being found and the exec: look again once.
        for attempt in range(2):
            container_id = self._live_reaper(image) or self._start_reaper(image)
            try:
                self.held = self.backend.hold(
                    container_id, ("python3", "/reaper/ryuk.py", "lease", filters), ACK, READY_TIMEOUT
                )
                self.description = "reaper container, lease over the engine connection"
                cluster_run = os.environ.get(CLUSTER_RUN_VARIABLE)
                if cluster_run:
                    # the job's container ends with this process: the node's reaper removes it, and the
                    # run's image, once the lease breaks
                    own = f"label={CLUSTER_RUN_LABEL}={cluster_run}"
                    self.also.append(
                        self.backend.hold(
                            container_id, ("python3", "/reaper/ryuk.py", "lease", own), ACK, READY_TIMEOUT
                        )
                    )
                    self.description += ", and over this cluster run's own container"
                return
            except RunnerError as exc:
                if attempt:
                    raise ReaperUnavailable(f"the reaper did not take the lease: {exc.message}") from exc

    def release(self) -> None:
        # the run removed its resources itself: the reaper's prune finds nothing left
        self._close()

    def abandon(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.held is not None:
            self.held.close()
            self.held = None
        # `also` stays held: a cluster run's own container is still running, and its lease must end
        # with this process, not before
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _live_reaper(self, image: str) -> str | None:
        """A running reaper that runs started from this very source: engines name images differently in
        listings (Podman prefixes `localhost/`), so the source hash on the container decides."""
        current = f"{SOURCE_LABEL}={provision.source_hash()}"
        for container in self.backend.list_resources("container", current):
            if container.running and container.labels.get(SHARED_LABEL) == RECONNECTION_TIMEOUT:
                return container.id
        return None

    def _start_reaper(self, image: str, publish: bool = False) -> str:
        spec = ContainerSpec(
            name=f"runner-reaper-{self.run_id}",
            image=image,
            labels={
                REAPER_LABEL: "true",
                SHARED_LABEL: RECONNECTION_TIMEOUT,
                SOURCE_LABEL: provision.source_hash(),
                "org.testcontainers.ryuk": "true",
            },
            env={"RYUK_RECONNECTION_TIMEOUT": RECONNECTION_TIMEOUT, "RYUK_CONNECTION_TIMEOUT": IDLE_TIMEOUT},
            mounts=(Mount(source=self.backend.info().host_socket, target=SOCKET_TARGET, bind=True),),
            ports=(PortBinding(container_port=REAPER_PORT, host_ip=""),) if publish else (),
            auto_remove=True,
        )
        container_id = self.backend.create_container(spec)
        self.backend.start(container_id)
        deadline = time.monotonic() + READY_TIMEOUT
        while not any(line.endswith("Started!") for line in self.backend.last_lines(container_id, 5)):
            state = self.backend.state(container_id)
            if time.monotonic() > deadline or not state.running:
                said = "; ".join(self.backend.last_lines(container_id, 3))
                self.backend.remove("container", container_id)
                raise ReaperUnavailable(
                    f"the reaper container did not start (mounting {self.backend.info().host_socket})"
                    + (f": {said}" if said else ""),
                    "if the engine's socket is elsewhere on its host, set engine_socket in runner.toml "
                    "or RUNNER_ENGINE_SOCKET",
                )
            time.sleep(0.05)
        return container_id

    def _hold_over_tcp(self, image: str, filters: str) -> None:
        """The stock Ryuk image has no shell to exec into: register over its published port."""
        container_id = self._start_reaper(image, publish=True)
        port = self.backend.published_ports(container_id)[REAPER_PORT][1]
        host = self.backend.info().published_host
        connection = socket.create_connection((host, port), timeout=5)
        try:
            acknowledged = ryuk.register(connection, filters)
        except OSError as exc:
            connection.close()
            raise ReaperUnavailable(f"the reaper did not answer at {host}:{port}: {exc}") from exc
        if not acknowledged:
            connection.close()
            raise ReaperUnavailable("the reaper did not acknowledge the run")
        connection.settimeout(None)
        self.connection = connection
        self.description = f"stock Ryuk container ({image}), lease over its port {host}:{port}"


class GuardedLease:
    """Both layers when the engine can run a reaper, the watchdog alone otherwise; chosen before the
    first resource is created, and never silently: `describe()` names the guard in force."""

    def __init__(
        self,
        backend: Backend,
        run_id: str,
        *,
        prefer_container: bool = True,
        notice: Notice | None = None,
        engine: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.notice = notice or (lambda text: None)
        self.container = EngineLease(backend, run_id, self.notice) if prefer_container else None
        self.watchdog = WatchdogLease(run_id, engine)
        self.why_not_container = "" if prefer_container else "--keep: only the watchdog can be told to keep"

    def wait_ready(self, timeout: float = 10.0) -> None:
        self.watchdog.wait_ready(timeout)
        if self.container is None:
            return
        try:
            self.container.wait_ready(timeout)
        except (RunnerError, OSError) as exc:
            self.why_not_container = exc.message if isinstance(exc, RunnerError) else str(exc)
            self.container = None
            self.notice(
                f"no reaper container guards this run ({self.why_not_container}); the process watchdog "
                "does, which a crash of this machine or a kill of its whole cgroup would defeat"
            )

    def release(self) -> None:
        if self.container is not None:
            self.container.release()
        self.watchdog.release()

    def abandon(self) -> None:
        if self.container is not None:
            self.container.abandon()
        self.watchdog.abandon()

    def describe(self) -> str:
        if self.container is not None and self.container.description:
            return f"{self.container.description}; process watchdog"
        return "process watchdog only" + (f" ({self.why_not_container})" if self.why_not_container else "")
