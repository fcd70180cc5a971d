"""One immutable description of a pipeline: what every input format compiles to.

The engine runs this and nothing else; it knows no YAML and no format's vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_SHELL = ("/bin/sh", "-c")
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


class ContainerRun(Frozen):
    kind: Literal["container"] = "container"
    image: str
    script: tuple[str, ...] = ()  # shell lines, run as one script with `set -e`
    shell: tuple[str, ...] = DEFAULT_SHELL
    command: tuple[str, ...] | None = None  # argv for the image's entrypoint, when there is no script
    entrypoint: tuple[str, ...] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = WORKSPACE
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
    id: str
    name: str
    action: Action
    timeout: float | None = None
    allow_failure: bool = False


class Pipeline(Frozen):
    name: str
    source: Path
    context: Path  # the directory whose files fill the workspace
    services: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = ()
    errors: tuple[Step, ...] = ()
    finally_: tuple[Step, ...] = ()
    timeout: float | None = None
    workspace: bool = True

    def all_steps(self) -> tuple[Step, ...]:
        return (*self.services, *self.steps, *self.errors, *self.finally_)
