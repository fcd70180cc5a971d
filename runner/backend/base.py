"""What the engine and the teardown manager need from a container engine, and nothing more."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from runner.model import Mount, PortBinding
from runner.progress import Update

ResourceKind = Literal["container", "network", "volume", "image"]
# The runner's own image: the reaper, and a probe for images that lack the tools to look inside.
TOOL_IMAGE = "runner/reaper:latest"
# images last: one is removed only once no container of it is left
REMOVAL_ORDER: tuple[ResourceKind, ...] = ("container", "network", "volume", "image")


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    labels: Mapping[str, str]
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    network: str | None = None
    join: str | None = None  # share this container's network namespace instead of joining `network`
    network_mode: str | None = None  # host, none, bridge...: instead of `network`
    aliases: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    ports: tuple[PortBinding, ...] = ()
    user: str | None = None
    memory: int | None = None
    cpus: float | None = None
    auto_remove: bool = False  # the engine removes it when it exits
    host_alias: bool = False  # `host.docker.internal` names the engine's host inside the container
    open_stdin: bool = False  # its standard input is a pipe that clients may write to (`release`)


@dataclass(frozen=True)
class Resource:
    """A container, network or volume as the engine lists it."""

    kind: ResourceKind
    id: str
    name: str
    labels: Mapping[str, str]
    created: float  # seconds since the epoch
    status: str = ""  # the engine's words, for people
    image: str = ""
    size: int | None = None  # bytes it holds on disk, when asked for
    running: bool = False  # a container that runs (or restarts); never true for networks and volumes


@dataclass(frozen=True)
class ContainerState:
    running: bool
    exit_code: int | None
    oom_killed: bool = False
    error: str = ""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: bytes


@dataclass(frozen=True)
class EngineInfo:
    """What the runner must know about the engine it talks to, decided by the backend alone."""

    id: str  # stable for one engine: runs are recorded against it
    name: str  # the engine host's name
    address: str  # how the client reaches its API
    source: str  # why this engine was chosen, for people
    product: str  # "Docker Engine", "Docker Desktop", "Podman", ...
    version: str
    api_version: str
    os: str
    arch: str
    rootless: bool
    remote: bool  # paths of this machine mean nothing to the engine: bind mounts name the engine's
    published_host: str  # where this machine reaches a published port
    published_host_source: str  # why, for people
    host_socket: str  # the engine's API socket as a path on the engine's host (what a container mounts)
    selector: str | None = None  # what --engine takes to choose this engine again; None: the environment

    def reach(self, bound: str) -> str:
        """Where this machine reaches a port the engine published on the address `bound`: the engine's
        host, unless a local engine bound it to one address of this machine's own."""
        unnamed = bound in ("", "0.0.0.0", "::", "127.0.0.1", "::1")
        return self.published_host if unnamed or self.remote else bound


class Lease(Protocol):
    """A hold on the engine that ends when this process dies, whatever kills it."""

    def close(self) -> None: ...


class Backend(Protocol):
    """The only door to the engine. Implementations map their own errors to `runner.errors`."""

    def ping(self) -> None: ...

    def info(self) -> EngineInfo:
        """What the engine is and where its published ports are; raises EngineUnavailable."""
        ...

    def has_image(self, image: str) -> bool: ...

    def pull_image(
        self, image: str, auth: tuple[str, str] | None = None, progress: Update | None = None
    ) -> None:
        """Pull `image`, with (username, password) when the registry needs them; `progress` is told the
        bytes downloaded so far and the total the registry announced."""
        ...

    def create_network(self, name: str, labels: Mapping[str, str]) -> str: ...

    def create_volume(self, name: str, labels: Mapping[str, str]) -> str:
        """A new volume; an existing one of that name is an error."""
        ...

    def ensure_volume(self, name: str, labels: Mapping[str, str]) -> str:
        """The volume `name`, created with `labels` unless it exists (kept as it is then)."""
        ...

    def create_container(self, spec: ContainerSpec) -> str: ...

    def image_ports(self, image: str) -> tuple[int, ...]:
        """The TCP ports the image declares (EXPOSE)."""
        ...

    def image_labels(self, image: str) -> Mapping[str, str]:
        """The image's labels; empty when the image is missing."""
        ...

    def put_archive(self, container_id: str, path: str, data: bytes | Iterable[bytes]) -> None:
        """Unpack a tar archive into the container at `path`; given as chunks, it is streamed."""
        ...

    def get_archive(self, container_id: str, path: str) -> Iterator[bytes]:
        """A tar stream of `path` in the container (running or stopped), as chunks."""
        ...

    def commit(self, container_id: str, tag: str) -> str:
        """A new image `tag` of the container's files and settings (its labels included); its id."""
        ...

    def image_volumes(self, image: str) -> tuple[str, ...]:
        """The paths the image declares as volumes (VOLUME): what a container writes there is no part
        of an image committed from it."""
        ...

    def start(self, container_id: str) -> None: ...

    def release(self, container_id: str, line: bytes) -> None:
        """Write `line` to the standard input of a running container created with `open_stdin`."""
        ...

    def stream_logs(self, container_id: str) -> Iterator[bytes]:
        """Output chunks as they come, until the container exits."""
        ...

    def wait(self, container_id: str) -> int: ...

    def last_lines(self, container_id: str, count: int) -> list[str]:
        """The last `count` lines a container wrote, read at once (not streamed)."""
        ...

    def error_lines(self, container_id: str, count: int) -> list[str]:
        """The last `count` lines a container wrote to its standard error alone."""
        ...

    def state(self, container_id: str) -> ContainerState: ...

    def published_ports(self, container_id: str) -> dict[int, tuple[str, int]]:
        """container port -> (host ip, host port)."""
        ...

    def listening_ports(self, container_id: str) -> frozenset[int] | None:
        """The TCP ports something listens on in the container's network namespace, seen from inside
        the engine (never by connecting from this machine); None when the engine cannot tell."""
        ...

    def exec(self, container_id: str, command: tuple[str, ...]) -> ExecResult: ...

    def hold(self, container_id: str, command: tuple[str, ...], ready: bytes, timeout: float) -> Lease:
        """Run `command` in the container with its stdin held open by this process, and return once it
        printed `ready`. The command reads end-of-input when the lease is closed, or when this process or
        its machine dies, however abruptly. Raises RunnerError when `ready` does not come in time."""
        ...

    def build_image(
        self,
        context: bytes | Iterable[bytes],
        tag: str,
        buildargs: Mapping[str, str],
        progress: Update | None = None,
    ) -> None:
        """Build `tag` from a tar archive holding a Dockerfile and its files (given as chunks, streamed)."""
        ...

    def kill(self, container_id: str) -> None: ...

    def stop(self, container_id: str, grace: int) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        ...

    def remove(self, kind: ResourceKind, ident: str) -> bool:
        """Remove a resource (a container by force, with its anonymous volumes); False if it was gone."""
        ...

    def list_resources(self, kind: ResourceKind, label: str, *, sizes: bool = False) -> list[Resource]:
        """Every resource of `kind` that carries `label` (a key, or key=value); with `sizes`, what each holds
        on disk (slower: the engine measures it)."""
        ...


@dataclass(frozen=True)
class EngineSettings:
    """How the user chose the engine: `--engine`, runner.toml and the environment, already read."""

    engine: str | None = None  # --engine: an address or a docker context name; wins over everything
    configured_engine: str | None = None  # `engine =` in runner.toml; wins over DOCKER_HOST
    host_override: str | None = None  # where published ports are reached from here
    host_override_source: str = ""
    host_socket: str | None = None  # the engine's socket as a path on the engine's host
    host_socket_source: str = ""
