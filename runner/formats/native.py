"""The project's own pipeline file (`runner.yml`): the cleanest spelling of the model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from runner.durations import parse_duration
from runner.formats.gitrepo import Checkout
from runner.formats.options import LoadOptions
from runner.formats.ports import parse_port
from runner.formats.schema import Spec, validate
from runner.formats.source import Document, Loc
from runner.model import ContainerRun, Pipeline, PortBinding, ReadyCheck, Step, StopAction

STEP_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

Scalar = str | int | float | bool


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _duration(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


class ReadySpec(Spec):
    command: str | None = None
    port: int | None = None
    timeout: float = 60.0

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float | None:
        return _duration(value)


class StepSpec(Spec):
    id: str | None = None
    name: str | None = None
    image: str | None = None
    script: list[str] | None = None
    command: list[str] | None = None
    env: dict[str, Scalar] = Field(default_factory=dict)
    workdir: str | None = None
    timeout: float | None = None
    detach: bool = False
    ports: list[str] = Field(default_factory=list)
    ready: ReadySpec | None = None
    stop: str | None = None
    allow_failure: bool = False

    @field_validator("script", "command", mode="before")
    @classmethod
    def _lines(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float | None:
        return _duration(value)

    @field_validator("ports", mode="before")
    @classmethod
    def _ports(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(item) if isinstance(item, int) else item for item in value]
        return value

    @field_validator("ready", mode="before")
    @classmethod
    def _ready(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("`ready` takes a port number, a command, or {command|port, timeout}")
        if isinstance(value, int):
            return {"port": value}
        if isinstance(value, str):
            return {"command": value}
        return value


class ServiceSpec(Spec):
    image: str | None = None
    command: list[str] | None = None
    env: dict[str, Scalar] = Field(default_factory=dict)
    ports: list[str] = Field(default_factory=list)
    ready: ReadySpec | None = None

    _lines = field_validator("command", mode="before")(StepSpec._lines.__func__)  # type: ignore[attr-defined]
    _ports = field_validator("ports", mode="before")(StepSpec._ports.__func__)  # type: ignore[attr-defined]
    _ready = field_validator("ready", mode="before")(StepSpec._ready.__func__)  # type: ignore[attr-defined]


class PipelineSpec(Spec):
    name: str | None = None
    image: str | None = None
    env: dict[str, Scalar] = Field(default_factory=dict)
    services: dict[str, ServiceSpec] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(default_factory=list)
    errors: list[StepSpec] = Field(default_factory=list)
    finally_: list[StepSpec] = Field(default_factory=list, alias="finally")
    timeout: float | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float | None:
        return _duration(value)


def load(document: Document, source: Path, options: LoadOptions) -> Pipeline:
    if not isinstance(document.data, dict):
        raise document.error((), "a pipeline file is a mapping with a `steps:` list", "start with `steps:`")
    spec = validate(document, PipelineSpec)
    if not spec.steps:
        raise document.error((), "missing required key 'steps' in the top level", "add `steps:`")
    return _Compiler(document, spec, source).compile()


def load_services(document: Document, source: Path) -> Pipeline:
    """Only the services of a file: a whole pipeline file, or one that holds just `services:`."""
    if not isinstance(document.data, dict) or not isinstance(document.data.get("services"), dict):
        raise document.error(
            (), "expected a mapping with a `services:` block", "add `services:` with one entry each"
        )
    spec = validate(document, PipelineSpec)
    compiled = _Compiler(document, spec, source).compile()
    return compiled.model_copy(update={"steps": (), "errors": (), "finally_": ()})


class _Compiler:
    def __init__(self, document: Document, spec: PipelineSpec, source: Path) -> None:
        self.document = document
        self.spec = spec
        self.source = source
        self.seen: dict[str, Loc] = {}
        self.detached: set[str] = set()
        self.stopped: dict[str, Loc] = {}

    def compile(self) -> Pipeline:
        spec = self.spec
        services = tuple(self._service(key, value) for key, value in spec.services.items())
        blocks = {
            name: tuple(self._step(step, (name, index)) for index, step in enumerate(steps))
            for name, steps in (("steps", spec.steps), ("errors", spec.errors), ("finally", spec.finally_))
        }
        return Pipeline(
            name=spec.name or self.source.parent.name or "pipeline",
            source=self.source,
            context=self.source.parent,
            source_files=Checkout(self.source.parent).files,  # what .gitignore hides stays out, as in a clone
            services=services,
            steps=blocks["steps"],
            errors=blocks["errors"],
            finally_=blocks["finally"],
            timeout=spec.timeout,
        )

    def _register(self, step_id: str, loc: Loc, id_loc: Loc) -> None:
        if not STEP_ID.match(step_id):
            raise self.document.error(
                id_loc,
                f"'{step_id}' is not a valid step id",
                "use letters, digits, '-', '_' and '.', starting with a letter or digit",
            )
        if step_id in self.seen:
            first = self.document.position(self.seen[step_id])
            raise self.document.error(
                id_loc,
                f"duplicate step id '{step_id}' (first used at line {first.line})",
                "give each step its own id",
            )
        self.seen[step_id] = loc

    def _image(self, image: str | None, loc: Loc) -> str:
        chosen = image or self.spec.image
        if not chosen:
            raise self.document.error(loc, "this step has no image", "set `image:` on the step or at the top")
        return chosen

    def _env(self, own: dict[str, Scalar]) -> dict[str, str]:
        return {key: _text(value) for key, value in {**self.spec.env, **own}.items()}

    def _service(self, key: str, spec: ServiceSpec) -> Step:
        loc: Loc = ("services", key)
        self._register(key, loc, loc)
        self.detached.add(key)
        action = ContainerRun(
            image=self._image(spec.image, loc),
            command=tuple(spec.command) if spec.command else None,
            env=self._env(spec.env),
            workdir=None,
            ports=self._ports(spec.ports, (*loc, "ports")),
            detach=True,
            ready=_ready(spec.ready),
        )
        return Step(id=key, name=key, action=action)

    def _step(self, spec: StepSpec, loc: Loc) -> Step:
        block, index = loc
        step_id = spec.id or _slug(spec.name) or f"{block}-{int(index) + 1}"
        self._register(step_id, loc, (*loc, "id") if spec.id else loc)
        name = spec.name or step_id
        if spec.stop is not None:
            return self._stop_step(spec, loc, step_id, name)
        if not spec.script and not spec.detach:
            raise self.document.error(
                loc,
                f"step '{name}' does nothing",
                "give it a `script:`, `detach: true` (a service), or `stop: <step id>`",
            )
        if spec.ready is not None and not spec.detach:
            raise self.document.error(
                (*loc, "ready"), "`ready` only applies to a detached step", "add `detach: true`"
            )
        if spec.script and spec.command:
            raise self.document.error((*loc, "command"), "a step takes `script` or `command`, not both", None)
        if spec.detach:
            self.detached.add(step_id)
        action = ContainerRun(
            image=self._image(spec.image, loc),
            script=tuple(spec.script or ()),
            command=tuple(spec.command) if spec.command else None,
            env=self._env(spec.env),
            workdir=spec.workdir or "/workspace",
            ports=self._ports(spec.ports, (*loc, "ports")),
            detach=spec.detach,
            ready=_ready(spec.ready),
        )
        return Step(
            id=step_id, name=name, action=action, timeout=spec.timeout, allow_failure=spec.allow_failure
        )

    def _stop_step(self, spec: StepSpec, loc: Loc, step_id: str, name: str) -> Step:
        target = spec.stop or ""
        extra = [key for key in ("image", "script", "command", "ports", "ready") if getattr(spec, key)]
        if extra or spec.detach:
            raise self.document.error(
                loc,
                f"a `stop:` step takes no {', '.join(extra) or 'detach'}",
                "put the stop in a step of its own",
            )
        if target not in self.seen or target == step_id:
            known = ", ".join(sorted(self.detached)) or "none"
            raise self.document.error(
                (*loc, "stop"),
                f"`stop: {target}` names no earlier step",
                f"name the id of an earlier detached step (earlier detached steps: {known})",
            )
        if target not in self.detached:
            raise self.document.error(
                (*loc, "stop"),
                f"step '{target}' is not detached: it has nothing left running to stop",
                "only a step with `detach: true` (or a service) can be stopped by reference",
            )
        return Step(id=step_id, name=name, action=StopAction(target=target), allow_failure=spec.allow_failure)

    def _ports(self, ports: list[str], loc: Loc) -> tuple[PortBinding, ...]:
        return tuple(_port(self.document, text, (*loc, index)) for index, text in enumerate(ports))


def _port(document: Document, text: str, loc: Loc) -> PortBinding:
    try:
        return parse_port(text)
    except ValueError as exc:
        raise document.error(
            loc, str(exc), "write CONTAINER, HOST:CONTAINER or IP:HOST:CONTAINER, e.g. 6379:6379"
        ) from None


def _ready(spec: ReadySpec | None) -> ReadyCheck | None:
    if spec is None:
        return None
    return ReadyCheck(command=spec.command, port=spec.port, timeout=spec.timeout)


def _slug(name: str | None) -> str:
    if not name:
        return ""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
