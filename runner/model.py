"""One immutable description of a pipeline: what every input format compiles to.

The engine runs this and nothing else; it knows no YAML and no format's vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

WORKSPACE = "/workspace"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PortBinding(Frozen):
    container_port: int
    protocol: Literal["tcp", "udp"] = "tcp"
    host_ip: str = "127.0.0.1"
    host_port: int | None = None  # None: the engine picks a free port

    def __str__(self) -> str:
        host = f"{self.host_ip}:{self.host_port or ''}"
        return f"{host}->{self.container_port}/{self.protocol}"


class ReadyCheck(Frozen):
    """How to tell that a detached container is ready: a command inside it, or a TCP port."""

    command: str | None = None
    port: int | None = None
    timeout: float = 60.0
    interval: float = 0.1


class Mount(Frozen):
    source: str  # a volume name, or a host path when `bind` is set
    target: str
    bind: bool = False
    read_only: bool = False


class Artifacts(Frozen):
    """Files a step leaves for later steps, as globs relative to its working directory."""

    paths: tuple[str, ...] = ()


class Cache(Frozen):
    """A directory kept between runs in a named volume; `key` separates versions of it."""

    name: str
    path: str
    key: str = ""


class Sidecar(Frozen):
    """A service that runs beside one step and shares its network namespace (it answers on localhost)."""

    name: str
    image: str
    env: dict[str, str] = Field(default_factory=dict)
    command: tuple[str, ...] | None = None
    memory: int | None = None


class RegistryAuth(Frozen):
    username: str
    password: str


class PipeCall(Frozen):
    """A script item that runs a prepackaged image over the step's files (Bitbucket's `pipe:`)."""

    name: str
    image: str
    env: dict[str, str] = Field(default_factory=dict)


class ContainerRun(Frozen):
    kind: Literal["container"] = "container"
    image: str
    registry_auth: RegistryAuth | None = None  # for pulling `image`
    script: tuple[str, ...] = ()  # shell lines, run as one script with `set -e`
    pipes: tuple[tuple[int, PipeCall], ...] = ()  # (position in `script`, pipe): run between its lines
    after_script: tuple[str, ...] = ()  # runs after `script` whatever its result, never changing it
    shell: Literal["sh", "bash"] = "sh"  # bash falls back to sh in images without it
    exit_code_variable: str = "RUNNER_EXIT_CODE"  # what `after_script` reads the script's exit code from
    command: tuple[str, ...] | None = None  # argv for the image's entrypoint, when there is no script
    entrypoint: tuple[str, ...] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = WORKSPACE
    source: Literal["workspace", "copy", "none"] = "workspace"
    """workspace: mount the run's shared volume at /workspace; copy: a fresh copy of the source tree in
    `workdir` (unless `clone` is off), plus the artifacts of earlier steps when `download_artifacts`."""
    clone: bool = True
    download_artifacts: bool = True
    artifacts: Artifacts | None = None
    caches: tuple[Cache, ...] = ()
    sidecars: tuple[Sidecar, ...] = ()
    docker_socket: bool = False  # the step drives the engine itself (a `docker` service)
    mounts: tuple[Mount, ...] = ()
    ports: tuple[PortBinding, ...] = ()
    detach: bool = False
    ready: ReadyCheck | None = None
    user: str | None = None
    memory: int | None = None  # bytes


class StopAction(Frozen):
    """Stop and remove what an earlier step started, by reference to that step's id."""

    kind: Literal["stop"] = "stop"
    target: str


Action = Annotated[ContainerRun | StopAction, Field(discriminator="kind")]


class Step(Frozen):
    kind: Literal["step"] = "step"
    id: str
    name: str
    action: Action
    timeout: float | None = None
    allow_failure: bool = False
    manual: bool = False  # the run pauses before it and asks
    skip_reason: str | None = None  # set when a condition decided, before the run, not to run it
    fail_fast: bool = False  # in a group: its failure stops the group's other steps


class Group(Frozen):
    """Steps that run at the same time; the next node waits for all of them."""

    kind: Literal["group"] = "group"
    id: str
    name: str
    steps: tuple[Step, ...]
    fail_fast: bool = False  # any failure stops the others


Node = Annotated[Step | Group, Field(discriminator="kind")]


class LoadWarning(Frozen):
    where: str  # file:line:col
    message: str


class Pipeline(Frozen):
    name: str
    source: Path
    context: Path  # the directory whose files fill the workspace
    source_files: tuple[str, ...] | None = None  # the files of `context` to copy; None: all of them
    services: tuple[Step, ...] = ()
    steps: tuple[Node, ...] = ()
    errors: tuple[Node, ...] = ()
    finally_: tuple[Node, ...] = ()
    timeout: float | None = None
    workspace: bool = True  # create the shared /workspace volume
    warnings: tuple[LoadWarning, ...] = ()

    def all_steps(self) -> tuple[Step, ...]:
        nodes = (*self.services, *self.steps, *self.errors, *self.finally_)
        return tuple(step for node in nodes for step in (node.steps if isinstance(node, Group) else (node,)))
