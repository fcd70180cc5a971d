"""Throwaway services for tests and scripts: start them, use them, and know they are gone afterwards.

    from runner import services

    with services("services.yml") as env:
        client = redis.Redis(host=env["redis"].host, port=env["redis"].port(6379))

The services block is the one of a `runner.yml` file (or a file that holds only `services:`, or the same
mapping as a dict). Everything is removed when the block ends, on an exception and on Ctrl-C; if the
process is killed, the run's reaper removes it, and the next run removes what both missed.
"""

from __future__ import annotations

import socket
import textwrap
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from runner.backend import connect
from runner.backend.base import Backend
from runner.config import config_images, engine_settings
from runner.engine.events import SilentReporter
from runner.engine.executor import Executor, RunOptions
from runner.engine.images import ImageResolver
from runner.engine.status import RunResult, StepStatus
from runner.errors import RunnerError
from runner.formats.native import load_services
from runner.formats.source import Document, load_file, load_text
from runner.model import ContainerRun, Pipeline, PortBinding
from runner.teardown.ledger import Ledger

SCHEMES = {
    6379: "redis",
    5432: "postgresql",
    3306: "mysql",
    27017: "mongodb",
    5672: "amqp",
    11211: "memcached",
    9200: "http",
    80: "http",
    8080: "http",
    443: "https",
}


REACHABLE_TIMEOUT = 30.0


class ServicesError(RunnerError):
    """A service did not start or never became ready; nothing of the attempt is left running."""


@dataclass(frozen=True)
class Service:
    """Where a running service answers, from this machine."""

    name: str
    container_id: str
    host: str
    ports: Mapping[int, int] = field(default_factory=dict)  # container port -> port on `host`

    def port(self, container_port: int | None = None) -> int:
        """The port on `host` for `container_port` (the service's only port when not given)."""
        if container_port is None:
            if len(self.ports) != 1:
                raise KeyError(f"service '{self.name}' publishes {sorted(self.ports)}: name the port")
            return next(iter(self.ports.values()))
        if container_port not in self.ports:
            raise KeyError(f"service '{self.name}' does not publish port {container_port}")
        return self.ports[container_port]

    @property
    def url(self) -> str:
        """`scheme://host:port` for the service's first port; the scheme is guessed from the port."""
        first = min(self.ports)
        return f"{SCHEMES.get(first, 'tcp')}://{self.host}:{self.ports[first]}"


class Environment(Mapping[str, Service]):
    def __init__(self, services: dict[str, Service], run_id: str) -> None:
        self._services = services
        self.run_id = run_id

    def __getitem__(self, name: str) -> Service:
        return self._services[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._services)

    def __len__(self) -> int:
        return len(self._services)


class Services:
    """A context manager around one run that only starts services."""

    def __init__(
        self,
        source: str | Path | Mapping[str, Any],
        *,
        images: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        keep: bool = False,
        backend: Backend | None = None,
    ) -> None:
        self.source = source
        self.images = dict(images or {})
        self.env = dict(env or {})
        self.keep = keep
        self.backend = backend
        self.executor: Executor | None = None
        self.result: RunResult | None = None

    def __enter__(self) -> Environment:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Environment:
        document, path = _document(self.source)
        backend = self.backend or connect(engine_settings(path if path.name else None))
        backend.ping()
        image_map = {**(config_images(path) if path.name else {}), **self.images}
        pipeline = _publish_exposed_ports(
            load_services(document, path), ImageResolver(backend, image_map), backend
        )
        options = RunOptions(image_map=image_map, env=self.env, keep=self.keep)
        self.executor = Executor(pipeline, backend, Ledger(), SilentReporter(), options)
        if not self.executor.start_services():
            failures = [
                f"{r.name}: {r.message}" for r in self.executor.results if r.status is not StepStatus.SUCCESS
            ]
            self.stop()
            raise ServicesError("services did not start: " + "; ".join(failures))
        environment = self._environment(self.executor, backend)
        try:
            _await_reachable(environment, REACHABLE_TIMEOUT)
        except ServicesError:
            self.stop()
            raise
        return environment

    def stop(self) -> RunResult | None:
        if self.executor is not None and self.result is None:
            self.result = self.executor.stop_services()
        return self.result

    def _environment(self, executor: Executor, backend: Backend) -> Environment:
        started: dict[str, Service] = {}
        engine = backend.info()
        for result in executor.results:
            container_id = str(result.outputs.get("containerId", ""))
            published = backend.published_ports(container_id) if container_id else {}
            hosts = {engine.reach(ip) for ip, _ in published.values()}
            host = hosts.pop() if len(hosts) == 1 else engine.published_host
            ports = {inner: port for inner, (_, port) in published.items()}
            started[result.step_id] = Service(result.step_id, container_id, host, ports)
        return Environment(started, executor.run_id)


def _await_reachable(environment: Environment, timeout: float) -> None:
    """The services listen inside the engine already; this waits until this process reaches them where the
    caller will, so a port forwarder that starts late (Docker Desktop, rootless engines) or a wrong host
    is found here, not in the caller's first request."""
    deadline = time.monotonic() + timeout
    for service in environment.values():
        for port in service.ports.values():
            failure = _first_connection(service.host, port, deadline)
            if failure is not None:
                raise ServicesError(
                    f"service '{service.name}' is ready inside the engine, but {service.host}:{port} does "
                    f"not answer from this machine ({failure})",
                    "if the engine's published ports are reached at another address, set "
                    "RUNNER_HOST_OVERRIDE or `host =` in runner.toml (`runner doctor` shows the host)",
                )


def _first_connection(host: str, port: int, deadline: float) -> OSError | None:
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return None
        except OSError as exc:
            if time.monotonic() >= deadline:
                return exc
            time.sleep(0.1)


def services(
    source: str | Path | Mapping[str, Any],
    *,
    images: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    keep: bool = False,
) -> Services:
    """Start the services of `source` for the length of a `with` block; see the module's documentation."""
    return Services(source, images=images, env=env, keep=keep)


def _document(source: str | Path | Mapping[str, Any]) -> tuple[Document, Path]:
    if isinstance(source, Mapping):
        data = dict(source) if "services" in source else {"services": dict(source)}
        return Document(path="<services>", data=data), Path.cwd() / "services"
    path = Path(source)
    if not path.exists() and "\n" in str(source):  # YAML text given inline
        return load_text(textwrap.dedent(str(source)), "<services>"), Path.cwd() / "services"
    return load_file(path), path.resolve()


def _publish_exposed_ports(pipeline: Pipeline, images: ImageResolver, backend: Backend) -> Pipeline:
    """A service that declares no ports gets its image's exposed ports on 127.0.0.1, so this process
    (not only the containers of the run) can reach it."""
    changed = []
    for step in pipeline.services:
        action = step.action
        if isinstance(action, ContainerRun) and not action.ports:
            ports = tuple(
                PortBinding(container_port=port) for port in backend.image_ports(images.resolve(action.image))
            )
            step = step.model_copy(update={"action": action.model_copy(update={"ports": ports})})
        changed.append(step)
    return pipeline.model_copy(update={"services": tuple(changed)})
