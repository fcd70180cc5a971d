"""The Docker engine backend: the only module that imports `docker`.

Every call goes through `_call`, so the SDK's errors become the project's errors in one place.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

import docker
import docker.errors
import docker.tls
import requests.exceptions
from docker.types import Mount as DockerMount

from runner.backend import procnet
from runner.backend.base import (
    TOOL_IMAGE,
    ContainerSpec,
    ContainerState,
    EngineInfo,
    EngineSettings,
    ExecResult,
    Resource,
    ResourceKind,
)
from runner.backend.discovery import Endpoint, resolve_endpoint
from runner.errors import EngineUnavailable, ImageUnavailable, ResourceGone, RunnerError
from runner.progress import Update

try:  # the SDK's ssh:// transport imports paramiko (docker[ssh]), even to run the `ssh` binary as here
    from docker.transport.sshconn import SSHConnection, SSHConnectionPool, SSHHTTPAdapter, SSHSocket
except ImportError:
    SSH_TRANSPORT = False
else:
    SSH_TRANSPORT = True

    class _SSHSocket(SSHSocket):
        """The SDK's socket over the `ssh` binary, made to behave as a socket where the runner relies on it.

        recv(n) of the SDK waits for all n bytes, and ignores the timeout: a lease's reader waited
        forever for its few bytes. Its close writes to ssh's stdin, which fails once ssh has exited, as it
        does as soon as the engine ends a stream: an exec's output, read in full, was lost to the error.
        """

        def recv(self, n: int, flags: int = 0) -> bytes:
            """Up to n bytes, as soon as there are any; TimeoutError when none come within the timeout."""
            assert self.proc is not None and self.proc.stdout is not None, "connect() first"
            stream = self.proc.stdout
            fd = stream.fileno()
            os.set_blocking(fd, False)
            try:
                # what the HTTP parser read ahead is in the buffer: read1 returns it before reading the pipe
                chunk = stream.read1(n)  # type: ignore[attr-defined]
                if not chunk and not select.select([fd], [], [], self.gettimeout())[0]:
                    raise TimeoutError("timed out")
                return bytes(chunk or stream.read1(n))  # type: ignore[attr-defined]
            finally:
                os.set_blocking(fd, True)

        def close(self) -> None:
            try:
                super().close()
            except OSError:
                if self.proc is not None and self.proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        self.proc.stdin.close()
                    self.proc.poll()

    class _SSHConnection(SSHConnection):
        def connect(self) -> None:
            sock = _SSHSocket(self.ssh_host or "")
            sock.settimeout(self.timeout)
            sock.connect()
            self.sock = sock

    class _SSHConnectionPool(SSHConnectionPool):
        def __init__(self, timeout: int, maxsize: int, host: str) -> None:
            super().__init__(timeout=timeout, maxsize=maxsize, host=host)
            self.connect_timeout = timeout

        def _new_conn(self) -> Any:  # an _SSHConnection: the stubs' SSHConnection misses urllib3's protocol
            return _SSHConnection(timeout=self.connect_timeout, host=self.ssh_host)

    class _SSHAdapter(SSHHTTPAdapter):
        def get_connection(self, url: str | bytes, proxies: Any = None) -> SSHConnectionPool:
            return _SSHConnectionPool(self.timeout, self.max_pool_size, self.ssh_host)


T = TypeVar("T")

BUSY_RETRIES = 60  # a network or volume may wait for its containers to go
BUSY_PAUSE = 0.25
ENGINE_SOCKET = "/var/run/docker.sock"  # where an engine host's socket is when nothing says otherwise
PODMAN_SOCKET = "/run/podman/podman.sock"
LOOPBACK = "127.0.0.1"
ANY_ADDRESS = "0.0.0.0"
HOST_ALIAS = "host.docker.internal"
ORCHESTRATOR_LABELS = ("com.docker.swarm.",)  # resources an orchestrator owns: never ours to remove
MISSING_TOOL_CODES = (126, 127)  # exec: the command cannot run, or is not there


class DockerBackend:
    """The Docker Engine API, as Docker, Docker Desktop, rootless Docker and Podman serve it."""

    def __init__(self, settings: EngineSettings | None = None, pool_size: int = 32) -> None:
        self.settings = settings or EngineSettings()
        self.endpoint = resolve_endpoint(self.settings.engine, self.settings.configured_engine)
        self._info: EngineInfo | None = None
        self._info_lock = threading.Lock()
        # the connections that wrote to a container's input, kept until the container is removed: some
        # transports end a connection by killing their client (ssh), which could cut the line off
        self._writers: dict[str, Any] = {}
        self._writers_lock = threading.Lock()
        if self.endpoint.scheme == "ssh" and not SSH_TRANSPORT:
            raise EngineUnavailable(
                f"{self.endpoint.address} (chosen by {self.endpoint.source}) needs the SDK's ssh transport, "
                "which is not installed",
                "pip install 'docker[ssh]' (the runner's own dependencies include it), or use tcp:// or a "
                "docker context",
            )
        try:
            self.api = docker.APIClient(
                base_url=self.endpoint.address,
                version="auto",
                max_pool_size=pool_size,
                tls=_tls(self.endpoint),
                use_ssh_client=self.endpoint.scheme == "ssh",
                timeout=120,
            )
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise self._down(exc) from exc
        if self.endpoint.scheme == "ssh" and SSH_TRANSPORT:
            quiet = _SSHAdapter(self.endpoint.address, timeout=120, max_pool_size=pool_size, shell_out=True)
            self.api.mount("http+docker://ssh", quiet)

    def _down(self, exc: Exception) -> EngineUnavailable:
        return EngineUnavailable(
            f"no engine answers at {self.endpoint.address} (chosen by {self.endpoint.source})",
            "start it (`sudo systemctl start docker`, `sudo dockerd &`, or Podman's "
            "`podman system service`), or choose another with --engine, `engine =` in runner.toml, "
            "DOCKER_HOST or `docker context use`; `runner doctor` shows what was tried",
        )

    def _call(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except docker.errors.NotFound as exc:
            raise ResourceGone(str(exc.explanation or exc)) from exc
        except docker.errors.APIError as exc:
            raise RunnerError(f"the engine refused: {exc.explanation or exc}") from exc
        except (requests.exceptions.ConnectionError, docker.errors.DockerException, OSError) as exc:
            raise self._down(exc) from exc

    def ping(self) -> None:
        self._call(self.api.ping)

    def info(self) -> EngineInfo:
        with self._info_lock:
            if self._info is None:
                self._info = self._describe()
            return self._info

    def _describe(self) -> EngineInfo:
        info = self._call(self.api.info)
        version = self._call(self.api.version)
        components = " ".join(str(c.get("Name", "")) for c in version.get("Components") or [])
        system = str(info.get("OperatingSystem") or "")
        product = (
            "Podman"
            if "podman" in components.lower()
            else "Docker Desktop"
            if "docker desktop" in system.lower()
            else "Docker Engine"
        )
        name = str(info.get("Name") or "")
        remote = self.endpoint.scheme in ("tcp", "ssh") and name != socket.gethostname()
        engine_id = str(info.get("ID") or "")
        if product == "Podman" or not engine_id:
            # Podman answers a new random ID on every call: its storage root on its host is what lasts
            stable = f"{product}\0{name}\0{info.get('DockerRootDir', '')}\0{self.endpoint.address}"
            engine_id = hashlib.sha256(stable.encode()).hexdigest()[:32]
        host, host_source = self._published_host()
        host_socket, _ = self._host_socket(product, remote)
        return EngineInfo(
            id=engine_id,
            name=name,
            address=self.endpoint.address,
            source=self.endpoint.source,
            product=product,
            version=str(info.get("ServerVersion") or version.get("Version") or ""),
            api_version=str(self.api.api_version),
            os=system or str(info.get("OSType") or ""),
            arch=str(info.get("Architecture") or version.get("Arch") or ""),
            rootless=any("rootless" in str(o) for o in info.get("SecurityOptions") or ())
            or (product == "Podman" and "/run/user/" in self.endpoint.address),
            remote=remote,
            published_host=host,
            published_host_source=host_source,
            host_socket=host_socket,
            selector=self._selector(),
        )

    def _selector(self) -> str | None:
        if self.endpoint.context:
            return self.endpoint.context
        # DOCKER_HOST with its TLS variables reaches a child process through the environment as it is
        return None if self.endpoint.source == "DOCKER_HOST" else self.endpoint.address

    def _published_host(self) -> tuple[str, str]:
        if self.settings.host_override:
            return self.settings.host_override, self.settings.host_override_source
        hostname = self.endpoint.hostname
        if hostname and hostname not in ("localhost", "127.0.0.1", "::1"):
            return hostname, f"the host of {self.endpoint.address}"
        return LOOPBACK, "the engine is on this machine"

    def _host_socket(self, product: str, remote: bool) -> tuple[str, str]:
        if self.settings.host_socket:
            return self.settings.host_socket, self.settings.host_socket_source
        if self.endpoint.scheme == "unix" and product != "Docker Desktop":
            return self.endpoint.address.removeprefix("unix://"), "the socket this machine uses"
        default = PODMAN_SOCKET if product == "Podman" else ENGINE_SOCKET
        return default, "the engine's default socket on its own host"

    def _default_host_ip(self) -> str:
        """Published ports stay on loopback where this machine is the engine's host; on a remote engine
        loopback would be the remote machine's, out of everyone's reach."""
        return ANY_ADDRESS if self.info().remote else LOOPBACK

    # images

    def has_image(self, image: str) -> bool:
        try:
            self._call(lambda: self.api.inspect_image(image))  # type: ignore[no-untyped-call]
        except ResourceGone:
            return False
        return True

    def pull_image(
        self, image: str, auth: tuple[str, str] | None = None, progress: Update | None = None
    ) -> None:
        repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        if "@" in image:  # a digest: the whole reference is the name, there is no tag
            repository, tag = image, ""
        credentials = {"username": auth[0], "password": auth[1]} if auth else None
        errors: list[str] = []
        layers = _PulledLayers()
        try:
            # The engine answers 200 and reports some failures inside the progress stream.
            for entry in self.api.pull(
                repository, tag=tag or None, auth_config=credentials, stream=True, decode=True
            ):
                if isinstance(entry, dict) and entry.get("error"):
                    errors.append(str(entry["error"]).strip())
                elif isinstance(entry, dict) and progress is not None:
                    layers.note(entry, progress)
        except docker.errors.APIError as exc:
            errors.append(str(exc.explanation or exc))
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise self._down(exc) from exc
        if errors or not self.has_image(image):
            said = errors[-1] if errors else "the engine reported no error, yet the image is missing"
            raise ImageUnavailable(f"image '{image}' is not on this machine and cannot be pulled: {said}")

    # creation

    def create_network(self, name: str, labels: Mapping[str, str]) -> str:
        response = self._call(lambda: self.api.create_network(name, driver="bridge", labels=dict(labels)))
        return str(response["Id"])

    def create_volume(self, name: str, labels: Mapping[str, str]) -> str:
        response = self._call(lambda: self.api.create_volume(name, labels=dict(labels)))
        return str(response["Name"])

    def ensure_volume(self, name: str, labels: Mapping[str, str]) -> str:
        # Docker answers a second create of a name with the existing volume; Podman refuses it.
        with contextlib.suppress(ResourceGone):
            return str(self._call(lambda: self.api.inspect_volume(name))["Name"])
        try:
            return self.create_volume(name, labels)
        except RunnerError:
            return str(self._call(lambda: self.api.inspect_volume(name))["Name"])

    def create_container(self, spec: ContainerSpec) -> str:
        api = self.api
        default_ip = self._default_host_ip() if spec.ports else LOOPBACK
        host_config = api.create_host_config(
            init=True,
            network_mode=f"container:{spec.join}" if spec.join else (spec.network_mode or spec.network),
            mounts=[
                DockerMount(m.target, m.source, type="bind" if m.bind else "volume", read_only=m.read_only)
                for m in spec.mounts
            ],
            port_bindings={
                f"{p.container_port}/{p.protocol}": (p.host_ip or default_ip, p.host_port) for p in spec.ports
            },
            mem_limit=spec.memory,
            nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
            auto_remove=spec.auto_remove,
            extra_hosts=self._host_alias(spec.network) if spec.host_alias and not spec.join else None,
        )
        networking = None
        if spec.network and not spec.join and not spec.network_mode:
            endpoint = api.create_endpoint_config(aliases=list(spec.aliases) or None)
            networking = api.create_networking_config({spec.network: endpoint})  # type: ignore[arg-type]
        response = self._call(
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
                stdin_open=spec.open_stdin,
            )
        )
        return str(response["Id"])

    def _host_alias(self, network: str | None) -> dict[str, str] | None:
        if self.info().product != "Podman":
            return {HOST_ALIAS: "host-gateway"}
        # Podman before 5 writes the `host-gateway` keyword into /etc/hosts as it is: name the gateway of
        # the container's network instead, which is this machine as seen from the container.
        gateway = self._gateway(network or "podman")
        return {HOST_ALIAS: gateway} if gateway else None

    def _gateway(self, network: str) -> str | None:
        try:
            described = self._call(lambda: self.api.inspect_network(network))
        except RunnerError:
            return None
        configs = (described.get("IPAM") or {}).get("Config") or []
        return next((str(c["Gateway"]) for c in configs if c.get("Gateway") and "." in c["Gateway"]), None)

    def image_ports(self, image: str) -> tuple[int, ...]:
        config = self._call(lambda: self.api.inspect_image(image)).get("Config") or {}  # type: ignore[no-untyped-call]
        exposed = config.get("ExposedPorts") or {}
        return tuple(sorted(int(key.split("/")[0]) for key in exposed if key.endswith("/tcp")))

    def image_volumes(self, image: str) -> tuple[str, ...]:
        config = self._call(lambda: self.api.inspect_image(image)).get("Config") or {}  # type: ignore[no-untyped-call]
        return tuple(sorted(config.get("Volumes") or {}))

    def commit(self, container_id: str, tag: str) -> str:
        repository, _, version = tag.rpartition(":")
        committed = self._call(lambda: self.api.commit(container_id, repository, version))
        return str(committed["Id"])

    def image_labels(self, image: str) -> Mapping[str, str]:
        try:
            config = self._call(lambda: self.api.inspect_image(image)).get("Config") or {}  # type: ignore[no-untyped-call]
        except ResourceGone:
            return {}
        return dict(config.get("Labels") or {})

    def put_archive(self, container_id: str, path: str, data: bytes | Iterable[bytes]) -> None:
        self._call(lambda: self.api.put_archive(container_id, path, data))

    def get_archive(self, container_id: str, path: str) -> Iterator[bytes]:
        stream, _ = self._call(lambda: self.api.get_archive(container_id, path))
        try:
            yield from stream
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise self._down(exc) from exc

    # running

    def start(self, container_id: str) -> None:
        self._call(lambda: self.api.start(container_id))

    def release(self, container_id: str, line: bytes) -> None:
        attached = self._call(lambda: self.api.attach_socket(container_id, params={"stdin": 1, "stream": 1}))
        sock: socket.socket = getattr(attached, "_sock", attached)
        try:
            sock.sendall(line)
        except OSError as exc:
            with contextlib.suppress(OSError):
                sock.close()
            raise self._down(exc) from exc
        with self._writers_lock:
            self._writers[container_id] = sock

    def stream_logs(self, container_id: str) -> Iterator[bytes]:
        stream = self._call(lambda: self.api.logs(container_id, stream=True, follow=True))
        try:
            yield from stream
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise self._down(exc) from exc

    def last_lines(self, container_id: str, count: int) -> list[str]:
        output = self._call(lambda: self.api.logs(container_id, stream=False, follow=False, tail=count))
        return bytes(output).decode("utf-8", errors="replace").splitlines()

    def error_lines(self, container_id: str, count: int) -> list[str]:
        output = self._call(
            lambda: self.api.logs(container_id, stdout=False, stderr=True, stream=False, tail=count)
        )
        return bytes(output).decode("utf-8", errors="replace").splitlines()

    def wait(self, container_id: str) -> int:
        result = self._call(lambda: self.api.wait(container_id, timeout=None))
        return int(result.get("StatusCode", -1))

    def state(self, container_id: str) -> ContainerState:
        state = self._call(lambda: self.api.inspect_container(container_id))["State"]
        return ContainerState(
            running=bool(state.get("Running")),
            exit_code=None if state.get("Running") else int(state.get("ExitCode", -1)),
            oom_killed=bool(state.get("OOMKilled")),
            error=str(state.get("Error") or ""),
        )

    def published_ports(self, container_id: str) -> dict[int, tuple[str, int]]:
        ports = self._call(lambda: self.api.inspect_container(container_id))["NetworkSettings"]["Ports"] or {}
        published: dict[int, tuple[str, int]] = {}
        for key, bindings in ports.items():
            if bindings:
                published[int(key.split("/")[0])] = (bindings[0]["HostIp"], int(bindings[0]["HostPort"]))
        return published

    def listening_ports(self, container_id: str) -> frozenset[int] | None:
        try:
            result = self.exec(container_id, procnet.READ_COMMAND)
            text = result.output.decode("utf-8", errors="replace")
            if procnet.looks_like_tables(text):
                return procnet.listening_ports(text)
            if not self.state(container_id).running:
                return frozenset()
            if result.exit_code in MISSING_TOOL_CODES or "executable file not found" in text:
                return self._probe_from_outside(container_id)
        except RunnerError:
            # a container that exits while it is probed listens on nothing; the caller sees it exited
            if not self.state(container_id).running:
                return frozenset()
            raise
        return None

    def _probe_from_outside(self, container_id: str) -> frozenset[int] | None:
        """Read the tables from a short-lived container of the runner's own image in the same network
        namespace, for images that have no `cat`. It carries the labels of the container it looks into,
        so whatever sweeps that one sweeps it too."""
        if not self.has_image(TOOL_IMAGE):
            return None
        labels = self._call(lambda: self.api.inspect_container(container_id))["Config"].get("Labels") or {}
        probe = self._call(
            lambda: self.api.create_container(
                TOOL_IMAGE,
                entrypoint=list(procnet.PYTHON_READ_COMMAND[:1]),
                command=list(procnet.PYTHON_READ_COMMAND[1:]),
                labels={k: v for k, v in labels.items() if k.startswith("dev.runner.")},
                host_config=self.api.create_host_config(network_mode=f"container:{container_id}"),
                detach=True,
            )
        )["Id"]
        try:
            self.start(probe)
            self.wait(probe)
            text = bytes(self._call(lambda: self.api.logs(probe, stdout=True, stderr=False))).decode()
        finally:
            self.remove("container", probe)
        return procnet.listening_ports(text) if procnet.looks_like_tables(text) else None

    def exec(self, container_id: str, command: tuple[str, ...]) -> ExecResult:
        try:
            created = self._call(lambda: self.api.exec_create(container_id, list(command)))
            output = self._call(lambda: self.api.exec_start(created["Id"]))
        except ResourceGone:
            raise
        except RunnerError as exc:
            if "not found" in exc.message or "no such file" in exc.message.lower():
                # Docker refuses a missing executable at start; Podman runs it and answers 127
                return ExecResult(exit_code=127, output=exc.message.encode())
            raise
        code = self._call(lambda: self.api.exec_inspect(created["Id"]))["ExitCode"]
        return ExecResult(exit_code=int(code if code is not None else -1), output=bytes(output))

    def hold(self, container_id: str, command: tuple[str, ...], ready: bytes, timeout: float) -> StdinLease:
        created = self._call(
            lambda: self.api.exec_create(container_id, list(command), stdin=True, stdout=True, stderr=True)
        )
        raw = self._call(lambda: self.api.exec_start(created["Id"], socket=True))
        lease = StdinLease(raw)
        if not lease.read_until(ready, timeout):
            said = lease.received.decode("utf-8", errors="replace").strip()
            lease.close()
            raise RunnerError(f"the lease command did not answer {ready!r}" + (f": {said}" if said else ""))
        return lease

    def build_image(
        self,
        context: bytes | Iterable[bytes],
        tag: str,
        buildargs: Mapping[str, str],
        progress: Update | None = None,
    ) -> None:
        # the SDK hands `fileobj` to requests as the body, which streams any iterable of chunks
        body: Any = io.BytesIO(context) if isinstance(context, bytes) else context

        def build() -> None:
            for entry in self.api.build(
                fileobj=body,
                custom_context=True,
                tag=tag,
                buildargs=dict(buildargs),
                rm=True,
                forcerm=True,
                decode=True,
            ):
                if isinstance(entry, dict) and entry.get("error"):
                    raise RunnerError(f"building {tag} failed: {str(entry['error']).strip()}")
                step = BUILD_STEP.match(str(entry.get("stream", ""))) if isinstance(entry, dict) else None
                if step is not None and progress is not None:
                    progress(int(step.group(1)) - 1, int(step.group(2)))  # the step is starting, not done

        self._call(build)

    def stop(self, container_id: str, grace: int) -> None:
        self._call(lambda: self.api.stop(container_id, timeout=grace))

    def kill(self, container_id: str) -> None:
        with contextlib.suppress(RunnerError):  # already stopped or gone: the goal is reached
            self._call(lambda: self.api.kill(container_id))

    # removal and listing

    def remove(self, kind: ResourceKind, ident: str) -> bool:
        try:
            return self._remove(kind, ident)
        finally:
            if kind == "container":
                with self._writers_lock:
                    writer = self._writers.pop(ident, None)
                if writer is not None:
                    with contextlib.suppress(OSError):
                        writer.close()

    def _remove(self, kind: ResourceKind, ident: str) -> bool:
        remove: Callable[[], Any] = {
            "container": lambda: self.api.remove_container(ident, force=True, v=True),
            "network": lambda: self.api.remove_network(ident),
            "volume": lambda: self.api.remove_volume(ident, force=True),
            "image": lambda: self.api.remove_image(ident, force=True),
        }[kind]
        for attempt in range(BUSY_RETRIES):
            try:
                self._call(remove)
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
        return [r for r in self._list(kind, label, sizes) if not _orchestrated(r.labels)]

    def _list(self, kind: ResourceKind, label: str, sizes: bool) -> list[Resource]:
        if kind == "container":
            rows = self._call(lambda: self.api.containers(all=True, filters={"label": label}, size=sizes))
            return [
                Resource(
                    kind=kind,
                    id=row["Id"],
                    name=row["Names"][0].lstrip("/") if row.get("Names") else row["Id"][:12],
                    labels=row.get("Labels") or {},
                    created=float(row.get("Created", 0)),
                    status=str(row.get("Status", "")),
                    running=str(row.get("State", "")).lower() in ("running", "restarting"),
                    image=str(row.get("Image", "")),
                    size=int(row["SizeRw"]) if sizes and row.get("SizeRw") is not None else None,
                )
                for row in rows
            ]
        if kind == "network":
            rows = self._call(lambda: self.api.networks(filters={"label": label}))
            return [
                Resource(
                    kind, row["Id"], row["Name"], row.get("Labels") or {}, _timestamp(row.get("Created"))
                )
                for row in rows
            ]
        if kind == "image":
            return [
                Resource(
                    kind,
                    row["Id"],
                    next((tag for tag in row.get("RepoTags") or () if tag != "<none>:<none>"), row["Id"]),
                    row.get("Labels") or {},
                    float(row.get("Created", 0)),
                    size=int(row["Size"]) if sizes and row.get("Size") is not None else None,
                )
                for row in self._call(lambda: self.api.images(filters={"label": label}))
            ]
        rows = self._call(lambda: self.api.volumes(filters={"label": label})).get("Volumes") or []
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
        volumes = self._call(self.api.df).get("Volumes") or []
        return {
            row["Name"]: int(row["UsageData"]["Size"])
            for row in volumes
            if (row.get("UsageData") or {}).get("Size", -1) >= 0
        }


class StdinLease:
    """An exec's stdin, held open by this process: the engine closes it when the connection ends."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.sock: socket.socket | None = getattr(raw, "_sock", raw)
        self.received = b""

    def read_until(self, marker: bytes, timeout: float) -> bool:
        """Read the multiplexed output until `marker` appears; False on timeout or end of stream."""
        deadline = time.monotonic() + timeout
        buffer = b""
        while marker not in self.received:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.sock is None:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(4096)
            except (TimeoutError, OSError):
                return False
            if not chunk:
                return False
            buffer += chunk
            while len(buffer) >= 8:
                _, size = struct.unpack(">BxxxL", buffer[:8])
                if len(buffer) < 8 + size:
                    break
                self.received += buffer[8 : 8 + size]
                buffer = buffer[8 + size :]
        if self.sock is not None:
            self.sock.settimeout(None)
        return True

    def close(self) -> None:
        if self.sock is None:
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError, AttributeError):
            self.raw.close()
        self.sock = None


def _tls(endpoint: Endpoint) -> docker.tls.TLSConfig | bool:
    settings = endpoint.tls
    if settings is None:
        return False
    if not settings.cert_path:
        return docker.tls.TLSConfig(verify=settings.verify)
    files = {name: os.path.join(settings.cert_path, f"{name}.pem") for name in ("ca", "cert", "key")}
    present = {name: path for name, path in files.items() if os.path.exists(path)}
    client_cert = (present["cert"], present["key"]) if "cert" in present and "key" in present else None
    return docker.tls.TLSConfig(
        client_cert=client_cert,
        ca_cert=present.get("ca") if settings.verify else None,
        verify=present.get("ca", True) if settings.verify else False,
    )


def _orchestrated(labels: Mapping[str, str]) -> bool:
    return any(key.startswith(ORCHESTRATOR_LABELS) for key in labels)


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


BUILD_STEP = re.compile(r"Step (\d+)/(\d+) :")


class _PulledLayers:
    """The bytes a pull has downloaded, summed over its layers as the engine reports each one."""

    def __init__(self) -> None:
        self.layers: dict[str, tuple[int, int]] = {}  # layer id -> (downloaded, size)

    def note(self, entry: Mapping[str, Any], progress: Update) -> None:
        layer, status = str(entry.get("id", "")), str(entry.get("status", ""))
        detail = entry.get("progressDetail") or {}
        if not layer or not isinstance(detail, Mapping):
            return
        if status == "Downloading" and isinstance(detail.get("total"), int):
            self.layers[layer] = (int(detail.get("current") or 0), int(detail["total"]))
        elif status in ("Download complete", "Pull complete", "Already exists") and layer in self.layers:
            size = self.layers[layer][1]
            self.layers[layer] = (size, size)
        else:
            return
        progress(sum(done for done, _ in self.layers.values()), sum(size for _, size in self.layers.values()))
