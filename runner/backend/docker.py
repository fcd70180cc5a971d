"""The Docker engine backend: the only module that imports `docker`.

Every call goes through `_call`, so the SDK's errors become the project's errors in one place.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

import docker
import docker.errors
import docker.utils
import requests.exceptions
from docker.types import Mount as DockerMount

from runner.backend.base import ContainerSpec, ContainerState, ExecResult, Resource, ResourceKind
from runner.errors import EngineUnavailable, ImageUnavailable, ResourceGone, RunnerError

T = TypeVar("T")

BUSY_RETRIES = 60  # a network or volume may wait for its containers to go
BUSY_PAUSE = 0.25


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def _engine_down(exc: Exception) -> EngineUnavailable:
    return EngineUnavailable(
        f"no Docker engine answers at {engine_address()}: start one "
        "(`sudo systemctl start docker`, or `sudo dockerd &`) or point DOCKER_HOST at a running engine"
    )


def _call(action: Callable[[], T]) -> T:
    try:
        return action()
    except docker.errors.NotFound as exc:
        raise ResourceGone(str(exc.explanation or exc)) from exc
    except docker.errors.APIError as exc:
        raise RunnerError(f"the engine refused: {exc.explanation or exc}") from exc
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        raise _engine_down(exc) from exc


class DockerBackend:
    def __init__(self, pool_size: int = 32) -> None:
        try:
            self.api = docker.APIClient(
                version="auto", max_pool_size=pool_size, **docker.utils.kwargs_from_env()
            )
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise _engine_down(exc) from exc

    def ping(self) -> None:
        _call(self.api.ping)

    # images

    def has_image(self, image: str) -> bool:
        try:
            _call(lambda: self.api.inspect_image(image))  # type: ignore[no-untyped-call]
        except ResourceGone:
            return False
        return True

    def pull_image(self, image: str, auth: tuple[str, str] | None = None) -> None:
        repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        credentials = {"username": auth[0], "password": auth[1]} if auth else None
        try:
            self.api.pull(repository, tag=tag or "latest", auth_config=credentials)
        except docker.errors.APIError as exc:
            raise ImageUnavailable(
                f"image '{image}' is not on this machine and cannot be pulled: {exc.explanation or exc}"
            ) from exc
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise _engine_down(exc) from exc

    # creation

    def create_network(self, name: str, labels: Mapping[str, str]) -> str:
        response = _call(lambda: self.api.create_network(name, driver="bridge", labels=dict(labels)))
        return str(response["Id"])

    def create_volume(self, name: str, labels: Mapping[str, str]) -> str:
        response = _call(lambda: self.api.create_volume(name, labels=dict(labels)))
        return str(response["Name"])

    def create_container(self, spec: ContainerSpec) -> str:
        api = self.api
        host_config = api.create_host_config(
            init=True,
            network_mode=f"container:{spec.join}" if spec.join else (spec.network_mode or spec.network),
            mounts=[
                DockerMount(m.target, m.source, type="bind" if m.bind else "volume", read_only=m.read_only)
                for m in spec.mounts
            ],
            port_bindings={f"{p.container_port}/{p.protocol}": (p.host_ip, p.host_port) for p in spec.ports},
            mem_limit=spec.memory,
            nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
            auto_remove=spec.auto_remove,
            extra_hosts=(dict(spec.extra_hosts) or None) if not spec.join else None,
        )
        networking = None
        if spec.network and not spec.join and not spec.network_mode:
            endpoint = api.create_endpoint_config(aliases=list(spec.aliases) or None)
            networking = api.create_networking_config({spec.network: endpoint})  # type: ignore[arg-type]
        response = _call(
            lambda: api.create_container(
                spec.image,
                command=list(spec.command) if spec.command is not None else None,
                entrypoint=list(spec.entrypoint) if spec.entrypoint is not None else None,
                environment=dict(spec.env),
                working_dir=spec.workdir,
                labels=dict(spec.labels),
                name=spec.name,
                host_config=host_config,
                networking_config=networking,
                ports=[(p.container_port, p.protocol) for p in spec.ports] or None,
                user=spec.user,
                detach=True,
            )
        )
        return str(response["Id"])

    def image_ports(self, image: str) -> tuple[int, ...]:
        config = _call(lambda: self.api.inspect_image(image)).get("Config") or {}  # type: ignore[no-untyped-call]
        exposed = config.get("ExposedPorts") or {}
        return tuple(sorted(int(key.split("/")[0]) for key in exposed if key.endswith("/tcp")))

    def put_archive(self, container_id: str, path: str, data: bytes) -> None:
        _call(lambda: self.api.put_archive(container_id, path, data))

    def get_archive(self, container_id: str, path: str) -> Iterator[bytes]:
        stream, _ = _call(lambda: self.api.get_archive(container_id, path))
        try:
            yield from stream
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise _engine_down(exc) from exc

    # running

    def start(self, container_id: str) -> None:
        _call(lambda: self.api.start(container_id))

    def stream_logs(self, container_id: str) -> Iterator[bytes]:
        stream = _call(lambda: self.api.logs(container_id, stream=True, follow=True))
        try:
            yield from stream
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise _engine_down(exc) from exc

    def last_lines(self, container_id: str, count: int) -> list[str]:
        output = _call(lambda: self.api.logs(container_id, stream=False, follow=False, tail=count))
        return bytes(output).decode("utf-8", errors="replace").splitlines()

    def wait(self, container_id: str) -> int:
        result = _call(lambda: self.api.wait(container_id, timeout=None))
        return int(result.get("StatusCode", -1))

    def state(self, container_id: str) -> ContainerState:
        state = _call(lambda: self.api.inspect_container(container_id))["State"]
        return ContainerState(
            running=bool(state.get("Running")),
            exit_code=None if state.get("Running") else int(state.get("ExitCode", -1)),
            oom_killed=bool(state.get("OOMKilled")),
            error=str(state.get("Error") or ""),
        )

    def published_ports(self, container_id: str) -> dict[int, tuple[str, int]]:
        ports = _call(lambda: self.api.inspect_container(container_id))["NetworkSettings"]["Ports"] or {}
        published: dict[int, tuple[str, int]] = {}
        for key, bindings in ports.items():
            if bindings:
                published[int(key.split("/")[0])] = (bindings[0]["HostIp"], int(bindings[0]["HostPort"]))
        return published

    def address(self, container_id: str, network: str) -> str | None:
        networks = _call(lambda: self.api.inspect_container(container_id))["NetworkSettings"]["Networks"]
        address = (networks.get(network) or {}).get("IPAddress")
        return str(address) if address else None

    def exec(self, container_id: str, command: tuple[str, ...]) -> ExecResult:
        created = _call(lambda: self.api.exec_create(container_id, list(command)))
        output = _call(lambda: self.api.exec_start(created["Id"]))
        code = _call(lambda: self.api.exec_inspect(created["Id"]))["ExitCode"]
        return ExecResult(exit_code=int(code if code is not None else -1), output=bytes(output))

    def stop(self, container_id: str, grace: int) -> None:
        _call(lambda: self.api.stop(container_id, timeout=grace))

    def kill(self, container_id: str) -> None:
        with contextlib.suppress(RunnerError):  # already stopped or gone: the goal is reached
            _call(lambda: self.api.kill(container_id))

    # removal and listing

    def remove(self, kind: ResourceKind, ident: str) -> bool:
        remove: Callable[[], Any] = {
            "container": lambda: self.api.remove_container(ident, force=True, v=True),
            "network": lambda: self.api.remove_network(ident),
            "volume": lambda: self.api.remove_volume(ident, force=True),
        }[kind]
        for attempt in range(BUSY_RETRIES):
            try:
                _call(remove)
                return True
            except ResourceGone:
                return False
            except RunnerError as exc:
                if "already in progress" in exc.message and kind == "container":
                    return True
                if attempt == BUSY_RETRIES - 1 or not _busy(exc.message):
                    raise
                time.sleep(BUSY_PAUSE)
        return False

    def list_resources(self, kind: ResourceKind, label: str, *, sizes: bool = False) -> list[Resource]:
        if kind == "container":
            rows = _call(lambda: self.api.containers(all=True, filters={"label": label}, size=sizes))
            return [
                Resource(
                    kind=kind,
                    id=row["Id"],
                    name=row["Names"][0].lstrip("/") if row.get("Names") else row["Id"][:12],
                    labels=row.get("Labels") or {},
                    created=float(row.get("Created", 0)),
                    status=str(row.get("Status", "")),
                    image=str(row.get("Image", "")),
                    size=int(row["SizeRw"]) if sizes and row.get("SizeRw") is not None else None,
                )
                for row in rows
            ]
        if kind == "network":
            rows = _call(lambda: self.api.networks(filters={"label": label}))
            return [
                Resource(
                    kind, row["Id"], row["Name"], row.get("Labels") or {}, _timestamp(row.get("Created"))
                )
                for row in rows
            ]
        rows = _call(lambda: self.api.volumes(filters={"label": label})).get("Volumes") or []
        measured = self._volume_sizes() if sizes and rows else {}
        return [
            Resource(
                kind,
                row["Name"],
                row["Name"],
                row.get("Labels") or {},
                _timestamp(row.get("CreatedAt")),
                size=measured.get(row["Name"]),
            )
            for row in rows
        ]

    def _volume_sizes(self) -> dict[str, int]:
        volumes = _call(self.api.df).get("Volumes") or []
        return {
            row["Name"]: int(row["UsageData"]["Size"])
            for row in volumes
            if (row.get("UsageData") or {}).get("Size", -1) >= 0
        }


def _busy(message: str) -> bool:
    return any(word in message for word in ("in use", "active endpoints", "is being used", "conflict"))


def _timestamp(text: object) -> float:
    if not isinstance(text, str) or not text:
        return 0.0
    cleaned = text.replace("Z", "+00:00")
    if "." in cleaned:  # the engine gives nanoseconds; Python takes up to microseconds
        head, _, tail = cleaned.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        cleaned = f"{head}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(cleaned).timestamp()
    except ValueError:
        return 0.0
