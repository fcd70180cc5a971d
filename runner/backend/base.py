"""What the engine and the teardown manager need from a container engine, and nothing more."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from runner.model import Mount, PortBinding

ResourceKind = Literal["container", "network", "volume"]
REMOVAL_ORDER: tuple[ResourceKind, ...] = ("container", "network", "volume")


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
    extra_hosts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    """A container, network or volume as the engine lists it."""

    kind: ResourceKind
    id: str
    name: str
    labels: Mapping[str, str]
    created: float  # seconds since the epoch
    status: str = ""
    image: str = ""
    size: int | None = None  # bytes it holds on disk, when asked for

    @property
    def running(self) -> bool:
        return self.kind == "container" and self.status.startswith(("Up", "Restarting"))


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


class Backend(Protocol):
    """The only door to the engine. Implementations map their own errors to `runner.errors`."""

    def ping(self) -> None: ...

    def has_image(self, image: str) -> bool: ...

    def pull_image(self, image: str, auth: tuple[str, str] | None = None) -> None:
        """Pull `image`, with (username, password) when the registry needs them."""
        ...

    def create_network(self, name: str, labels: Mapping[str, str]) -> str: ...

    def create_volume(self, name: str, labels: Mapping[str, str]) -> str: ...

    def create_container(self, spec: ContainerSpec) -> str: ...

    def image_ports(self, image: str) -> tuple[int, ...]:
        """The TCP ports the image declares (EXPOSE)."""
        ...

    def put_archive(self, container_id: str, path: str, data: bytes) -> None: ...

    def get_archive(self, container_id: str, path: str) -> Iterator[bytes]:
        """A tar stream of `path` in the container (running or stopped), as chunks."""
        ...

    def start(self, container_id: str) -> None: ...

    def stream_logs(self, container_id: str) -> Iterator[bytes]:
        """Output chunks as they come, until the container exits."""
        ...

    def wait(self, container_id: str) -> int: ...

    def last_lines(self, container_id: str, count: int) -> list[str]:
        """The last `count` lines a container wrote, read at once (not streamed)."""
        ...

    def state(self, container_id: str) -> ContainerState: ...

    def published_ports(self, container_id: str) -> dict[int, tuple[str, int]]:
        """container port -> (host ip, host port)."""
        ...

    def address(self, container_id: str, network: str) -> str | None: ...

    def exec(self, container_id: str, command: tuple[str, ...]) -> ExecResult: ...

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
