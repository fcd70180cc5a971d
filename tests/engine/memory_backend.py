"""A `Backend` that keeps containers, networks and volumes in memory, for tests of the engine's order and
state logic that must run in seconds without an engine.

A container runs its program in a thread, through a tiny shell that knows a few words, so a test states
what a step does in words the fake honours exactly:

    echo [-n] TEXT...   print TEXT; $NAME and ${NAME} come from the container's environment
    exit [N]            end the script with N (default: the last status)
    sleep SECONDS       real time, so keep it short (`infinity` too); a kill or a stop ends it at once
    true, false, :      status 0, 1, 0
    listen PORT         something listens on PORT in the container's network namespace until it exits
    connect HOST PORT   status 0 when HOST (localhost, or a name or alias on a shared network) listens
    wait-for HOST PORT [SECONDS]   wait until `connect` would pass; status 1 after SECONDS (default 10)
    read                wait for end of input: at once for a container, until the lease closes for `hold`
    ignore-term         SIGTERM no longer ends the container: `stop` waits out its grace, then kills

The step wrapper of `container_step` is run for what it does: RUNNER_SCRIPT with `set -e`, then
RUNNER_AFTER_SCRIPT seeing the exit code, and the script's code as the container's. Any other line raises
ScriptError when the container is created or the command is run: a test that needs a new word teaches
it here, instead of passing on a line nobody ran.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import re
import shlex
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.backend.base import (
    Backend,
    ContainerSpec,
    ContainerState,
    EngineInfo,
    ExecResult,
    Resource,
    ResourceKind,
)
from runner.engine.container_step import GATE_OPENS, GATE_VARIABLE, WRAPPER
from runner.errors import ImageUnavailable, ResourceGone, RunnerError
from runner.progress import Update

KILLED = 137
TERMINATED = 143
FIRST_HOST_PORT = 32768
LOOPBACK = "127.0.0.1"
SHELLS = ("/bin/sh", "sh", "/bin/bash", "bash")
CHUNK = 64 * 1024
WAIT_FOR_LIMIT = 10.0  # a `wait-for` nobody answers fails the step rather than hanging the test
EXIT_TIMEOUT = 5.0  # a program that outlives a kill this long is a bug of the fake, not a slow engine

INFO = EngineInfo(
    id="memory",
    name="memory",
    address="memory://",
    source="the test chose the memory backend",
    product="Memory",
    version="1.0",
    api_version="1.43",
    os="linux",
    arch="x86_64",
    rootless=False,
    remote=False,
    published_host=LOOPBACK,
    published_host_source="the memory backend publishes on loopback",
    host_socket="/var/run/docker.sock",
)


class ScriptError(Exception):
    """A line the memory shell does not know: the test is wrong, not the engine. Not a RunnerError on
    purpose: the engine would turn that into a failed step, which a test might expect."""


@dataclass(frozen=True)
class Image:
    ports: tuple[int, ...] = ()  # what it EXPOSEs
    labels: Mapping[str, str] = field(default_factory=dict)
    script: str = ""  # its default command, in memory-shell lines; empty: it exits 0 at once


DEFAULT_IMAGES: dict[str, Image] = {
    "busybox": Image(),
    "redis": Image(ports=(6379,), script="listen 6379\nsleep infinity"),
}


def image_key(image: str) -> str:
    """`redis` and `redis:latest` name one image, as on an engine."""
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in last else f"{image}:latest"


# the shell

Line = tuple[str, tuple[str, ...]]
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_OPERATORS = frozenset("();<>|&")


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def _seconds(text: str) -> float | None:
    if text == "infinity":
        return float("inf")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def _no_arguments(args: tuple[str, ...]) -> str | None:
    return "takes no arguments" if args else None


CHECKS: dict[str, Callable[[tuple[str, ...]], str | None]] = {
    "echo": lambda args: None,
    "exit": lambda args: (
        None
        if not args or (len(args) == 1 and args[0].isdigit() and int(args[0]) < 256)
        else "takes one code from 0 to 255"
    ),
    "sleep": lambda args: (
        None
        if len(args) == 1 and _seconds(args[0]) is not None
        else "takes one number of seconds (or infinity)"
    ),
    "true": _no_arguments,
    "false": _no_arguments,
    ":": _no_arguments,
    "listen": lambda args: None if len(args) == 1 and _port(args[0]) else "takes one port",
    "connect": lambda args: None if len(args) == 2 and _port(args[1]) else "takes a host and a port",
    "wait-for": lambda args: (
        None
        if len(args) in (2, 3) and _port(args[1]) and (len(args) == 2 or _seconds(args[2]) is not None)
        else "takes a host, a port and at most a number of seconds"
    ),
    "read": _no_arguments,
    "ignore-term": _no_arguments,
}


def _expand(line: str, env: Mapping[str, str]) -> str:
    # single quotes keep a `$` as it is, as in sh
    parts = re.split(r"('[^']*')", line)
    return "".join(
        part
        if part.startswith("'")
        else _VARIABLE.sub(lambda match: env.get(match.group(1) or match.group(2), ""), part)
        for part in parts
    )


def parse(program: str, env: Mapping[str, str]) -> list[Line]:
    lines: list[Line] = []
    for raw in program.splitlines():
        try:
            lexer = shlex.shlex(_expand(raw, env), posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words = list(lexer)
        except ValueError as exc:
            raise ScriptError(f"the memory shell cannot read {raw!r}: {exc}") from None
        if not words:
            continue
        if any(set(word) <= _OPERATORS for word in words):
            raise ScriptError(f"{raw!r}: the memory shell has no pipes, redirections, lists or subshells")
        word, *args = words
        check = CHECKS.get(word)
        if check is None:
            raise ScriptError(
                f"the memory shell does not know {word!r} (in {raw!r}): "
                "teach it in tests/engine/memory_backend.py, or say it with the words it knows"
            )
        problem = check(tuple(args))
        if problem:
            raise ScriptError(f"{raw!r}: {word} {problem}")
        lines.append((word, tuple(args)))
    return lines


@dataclass(frozen=True)
class Program:
    """What a container's main process runs, decided when it is created."""

    script: str
    env: Mapping[str, str]
    errexit: bool
    after: str = ""  # the wrapper's after-script
    exit_variable: str = ""
    gated: bool = False  # the wrapper waits for `release` before the script runs


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Signalled(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _run_lines(process: _Process, lines: list[Line], errexit: bool) -> int:
    try:
        status = 0
        for word, args in lines:
            status = process.do(word, args, status)
            if status and errexit:
                return status
        return status
    except _Exit as exc:
        return exc.code


# resources


@dataclass(eq=False)
class _Container:
    id: str
    spec: ContainerSpec
    created: float
    program: Program
    network: str | None  # the id of the network it is reachable on (its namespace owner's, when joined)
    namespace: str  # the id of the container whose network namespace it shares (its own by default)
    state: str = "created"  # created, running, exited
    exit_code: int = 0
    started: float = 0.0
    finished: float = 0.0
    output: list[bytes] = field(default_factory=list)
    listening: set[int] = field(default_factory=set)
    published: dict[int, tuple[str, int]] = field(default_factory=dict)
    archives: dict[str, bytes] = field(default_factory=dict)
    killed: bool = False
    released: bool = False  # `go` was written to its input (see the wrapper's gate)
    terminated: bool = False
    ignore_term: bool = False
    removed: bool = False

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(eq=False)
class _Network:
    id: str
    name: str
    labels: dict[str, str]
    created: float


@dataclass(eq=False)
class _Volume:
    name: str
    labels: dict[str, str]
    created: float


class _Process:
    """One program in a container: its main process, an exec, or the command a lease holds."""

    def __init__(
        self,
        backend: MemoryBackend,
        container: _Container,
        write: Callable[[bytes], None],
        *,
        main: bool,
        input_ended: Callable[[], bool],
    ) -> None:
        self.backend = backend
        self.container = container
        self.write = write
        self.main = main
        self.input_ended = input_ended

    def _signal(self) -> int | None:
        container = self.container
        if self.main:
            if container.killed:
                return KILLED
            if container.terminated and not container.ignore_term:
                return TERMINATED
            return None
        # an exec is not PID 1: signals do not reach it, the end of its container does
        return None if container.running else KILLED

    def _check(self) -> None:
        with self.backend.condition:
            code = self._signal()
        if code is not None:
            raise _Signalled(code)

    def _pause(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        with self.backend.condition:
            self.backend.condition.wait_for(
                lambda: self._signal() is not None or until(),
                timeout=None if seconds == float("inf") else seconds,
            )
        self._check()

    def do(self, word: str, args: tuple[str, ...], last: int) -> int:
        self._check()
        if word == "echo":
            newline = not (args and args[0] == "-n")
            text = " ".join(args if newline else args[1:])
            self.write((text + ("\n" if newline else "")).encode())
            return 0
        if word == "exit":
            raise _Exit(int(args[0]) if args else last)
        if word == "sleep":
            self._pause(float(_seconds(args[0]) or 0.0))
            return 0
        if word == "false":
            return 1
        if word == "listen":
            self.backend._listen(self.container, int(args[0]))
            return 0
        if word == "connect":
            if self.backend._answers(self.container, args[0], int(args[1])):
                return 0
            self.write(f"connect: {args[0]}:{args[1]}: connection refused\n".encode())
            return 1
        if word == "wait-for":
            host, port = args[0], int(args[1])
            limit = _seconds(args[2]) if len(args) == 3 else WAIT_FOR_LIMIT
            self._pause(float(limit or 0.0), lambda: self.backend._answers(self.container, host, port))
            if self.backend._answers(self.container, host, port):
                return 0
            self.write(f"wait-for: {host}:{port}: nothing answered\n".encode())
            return 1
        if word == "read":
            self._pause(float("inf"), self.input_ended)
            return 0
        if word == "ignore-term":
            with self.backend.condition:
                self.container.ignore_term = True
                self.backend.condition.notify_all()
            return 0
        return 0  # true and `:`


class MemoryLease:
    """A command held by `hold`: it reads end of input once this is closed."""

    def __init__(self, backend: MemoryBackend, command: tuple[str, ...]) -> None:
        self.backend = backend
        self.command = command
        self.received = b""
        self.closed = False
        self.ended = False

    def _write(self, data: bytes) -> None:
        self.received += data

    def close(self) -> None:
        with self.backend.condition:
            self.closed = True
            self.backend.condition.notify_all()


class MemoryBackend:
    """Every method of `Backend`, over dicts. Errors are the ones the Docker backend maps the engine's to:
    ResourceGone for what is not there, RunnerError("the engine refused: ...") for a refusal."""

    def __init__(self, images: Mapping[str, Image] | None = None, busy_timeout: float = 2.0) -> None:
        self.images = {image_key(name): image for name, image in (images or DEFAULT_IMAGES).items()}
        # the Docker backend retries a network or volume that is still in use for a while: so does this
        self.busy_timeout = busy_timeout
        self.condition = threading.Condition(threading.RLock())
        self.containers: dict[str, _Container] = {}
        self.networks: dict[str, _Network] = {}
        self.volumes: dict[str, _Volume] = {}
        self.created_specs: list[ContainerSpec] = []  # every container ever created, in order
        self.puts: list[tuple[str, str, bytes]] = []  # (container name, path, archive)
        self.builds: list[tuple[str, dict[str, str]]] = []
        self.leases: list[MemoryLease] = []
        self.faults: list[str] = []  # errors of the fake's own threads: a test must see none
        self._counter = 0
        self._next_port = FIRST_HOST_PORT

    # what a test asks

    def leftovers(self) -> list[str]:
        """Everything still there, as `kind name`."""
        with self.condition:
            return [
                *(f"container {c.spec.name}" for c in self.containers.values()),
                *(f"network {n.name}" for n in self.networks.values()),
                *(f"volume {v.name}" for v in self.volumes.values()),
            ]

    def created_for(self, step: str, label: str = "dev.runner.step") -> list[ContainerSpec]:
        return [spec for spec in self.created_specs if spec.labels.get(label) == step]

    # lookups (the caller holds the lock)

    def _new_id(self, kind: str) -> str:
        self._counter += 1
        return hashlib.sha256(f"{kind}-{self._counter}".encode()).hexdigest()

    def _find_container(self, ident: str) -> _Container | None:
        found = self.containers.get(ident)
        if found is not None:
            return found
        named = [c for c in self.containers.values() if c.spec.name == ident]
        if named:
            return named[0]
        prefixed = [c for c in self.containers.values() if ident and c.id.startswith(ident)]
        if len(prefixed) > 1:
            raise RunnerError(f"the engine refused: multiple IDs found with provided prefix: {ident}")
        return prefixed[0] if prefixed else None

    def _container(self, ident: str) -> _Container:
        found = self._find_container(ident)
        if found is None:
            raise ResourceGone(f"No such container: {ident}")
        return found

    def _find_network(self, ident: str) -> _Network | None:
        found = self.networks.get(ident)
        if found is not None:
            return found
        named = [n for n in self.networks.values() if n.name == ident or (ident and n.id.startswith(ident))]
        return named[0] if named else None

    def _running(self, container_id: str) -> _Container:
        container = self._container(container_id)
        if not container.running:
            raise RunnerError(f"the engine refused: container {container.id} is not running")
        return container

    # the shell's view of the engine

    def _listen(self, container: _Container, port: int) -> None:
        with self.condition:
            container.listening.add(port)
            self.condition.notify_all()

    def _namespace_ports(self, namespace: str) -> frozenset[int]:
        return frozenset(
            port
            for c in self.containers.values()
            if c.namespace == namespace and c.running
            for port in c.listening
        )

    def _answers(self, container: _Container, host: str, port: int) -> bool:
        with self.condition:
            if host in ("localhost", LOOPBACK):
                return port in self._namespace_ports(container.namespace)
            return any(
                port in self._namespace_ports(other.namespace)
                for other in self.containers.values()
                if other.running
                and other.network is not None
                and other.network == container.network
                and not other.spec.join
                and host in (other.spec.name, *other.spec.aliases)
            )

    # engine

    def ping(self) -> None:
        pass

    def info(self) -> EngineInfo:
        return INFO

    # images

    def has_image(self, image: str) -> bool:
        with self.condition:
            return image_key(image) in self.images

    def pull_image(
        self, image: str, auth: tuple[str, str] | None = None, progress: Update | None = None
    ) -> None:
        raise ImageUnavailable(
            f"image '{image}' is not on this machine and cannot be pulled: the memory backend has no registry"
        )

    def image_ports(self, image: str) -> tuple[int, ...]:
        with self.condition:
            known = self.images.get(image_key(image))
        if known is None:
            raise ResourceGone(f"No such image: {image}")
        return known.ports

    def build_image(
        self, context: bytes, tag: str, buildargs: Mapping[str, str], progress: Update | None = None
    ) -> None:
        try:
            with tarfile.open(fileobj=io.BytesIO(context)) as archive:
                members = {member.name.removeprefix("./"): member for member in archive.getmembers()}
                dockerfile = archive.extractfile(members["Dockerfile"]) if "Dockerfile" in members else None
                text = dockerfile.read().decode("utf-8", errors="replace") if dockerfile else None
        except tarfile.TarError as exc:
            raise RunnerError(f"building {tag} failed: {exc}") from exc
        if text is None:
            raise RunnerError(f"building {tag} failed: the context holds no Dockerfile")
        labels = {
            key: value
            for line in text.splitlines()
            if line.strip().upper().startswith("LABEL ")
            for key, _, value in (pair.partition("=") for pair in shlex.split(line.strip()[6:]))
        }
        with self.condition:
            self.images[image_key(tag)] = Image(labels=labels)
            self.builds.append((tag, dict(buildargs)))

    # creation

    def create_network(self, name: str, labels: Mapping[str, str]) -> str:
        with self.condition:
            if any(n.name == name for n in self.networks.values()):
                raise RunnerError(f"the engine refused: network with name {name} already exists")
            network = _Network(self._new_id("network"), name, dict(labels), time.time())
            self.networks[network.id] = network
            return network.id

    def create_volume(self, name: str, labels: Mapping[str, str]) -> str:
        with self.condition:
            if name in self.volumes:
                raise RunnerError(f"the engine refused: volume {name} already exists")
            self.volumes[name] = _Volume(name, dict(labels), time.time())
            return name

    def ensure_volume(self, name: str, labels: Mapping[str, str]) -> str:
        with self.condition:
            if name not in self.volumes:
                self.volumes[name] = _Volume(name, dict(labels), time.time())
            return name

    def create_container(self, spec: ContainerSpec) -> str:
        with self.condition:
            clash = next((c for c in self.containers.values() if c.spec.name == spec.name), None)
            if clash is not None:
                raise RunnerError(
                    f'the engine refused: Conflict. The container name "/{spec.name}" is already in use '
                    f'by container "{clash.id}"'
                )
            image = self.images.get(image_key(spec.image))
            if image is None:
                raise ResourceGone(f"No such image: {spec.image}")
            program = self._program(spec, image)
            container_id = self._new_id("container")
            network: str | None = None
            namespace = container_id
            if spec.join:
                owner = self._container(spec.join)
                network, namespace = owner.network, owner.namespace
            elif spec.network and not spec.network_mode:
                found = self._find_network(spec.network)
                if found is None:
                    raise ResourceGone(f"network {spec.network} not found")
                network = found.id
            for mount in spec.mounts:
                if not mount.bind and mount.source not in self.volumes:
                    # as an engine does: a named volume that is not there is made, without labels
                    self.volumes[mount.source] = _Volume(mount.source, {}, time.time())
            self.containers[container_id] = _Container(
                container_id, spec, time.time(), program, network, namespace
            )
            self.created_specs.append(spec)
            return container_id

    def _program(self, spec: ContainerSpec, image: Image) -> Program:
        """The container's command in memory-shell terms; raises ScriptError for a line it does not know."""
        env = dict(spec.env)
        argv = (*(spec.entrypoint or ()), *(spec.command or ()))
        if not argv:
            program = Program(image.script, env, errexit=False)
        elif len(argv) == 3 and argv[0] in SHELLS and argv[1] in ("-c", "-ec") and argv[2] == WRAPPER:
            own = (
                "RUNNER_SHELL",
                "RUNNER_SCRIPT",
                "RUNNER_AFTER_SCRIPT",
                "RUNNER_EXIT_VARIABLE",
                GATE_VARIABLE,
            )
            program = Program(
                env.get("RUNNER_SCRIPT", ""),
                {k: v for k, v in env.items() if k not in own},  # the wrapper unsets them
                errexit=True,
                after=env.get("RUNNER_AFTER_SCRIPT", ""),
                exit_variable=env.get("RUNNER_EXIT_VARIABLE", ""),
                gated=bool(env.get(GATE_VARIABLE)),
            )
        else:
            script, errexit = _shell_text(argv)
            program = Program(script, env, errexit)
        parse(program.script, program.env)
        parse(program.after, {**program.env, program.exit_variable: "0"})
        return program

    def image_labels(self, image: str) -> Mapping[str, str]:
        with self.condition:
            known = self.images.get(image_key(image))
        return dict(known.labels) if known is not None else {}

    def put_archive(self, container_id: str, path: str, data: bytes | Iterable[bytes]) -> None:
        data = data if isinstance(data, bytes) else b"".join(data)  # the whole stream, as the engine reads it
        with self.condition:
            container = self._container(container_id)
            container.archives[path] = data
            self.puts.append((container.spec.name, path, data))

    def get_archive(self, container_id: str, path: str) -> Iterator[bytes]:
        with self.condition:
            container = self._container(container_id)
            data = container.archives.get(path)
        if data is None:
            raise ResourceGone(f"Could not find the file {path} in container {container_id}")
        for start in range(0, len(data), CHUNK):
            yield data[start : start + CHUNK]

    # running

    def start(self, container_id: str) -> None:
        with self.condition:
            container = self._container(container_id)
            if container.running:
                return
            if container.spec.join:
                owner = self._find_container(container.spec.join)
                if owner is None or not owner.running:
                    raise RunnerError(
                        "the engine refused: cannot join the network namespace of a container that is not "
                        f"running: {container.spec.join}"
                    )
            container.published = self._publish(container.spec)
            container.state = "running"
            container.started = time.time()
            container.killed = container.terminated = container.ignore_term = False
            container.listening.clear()
            self.condition.notify_all()
        threading.Thread(
            target=self._main, args=(container,), daemon=True, name=f"memory-{container.spec.name}"
        ).start()

    def _publish(self, spec: ContainerSpec) -> dict[int, tuple[str, int]]:
        taken = {address for c in self.containers.values() if c.running for address in c.published.values()}
        published: dict[int, tuple[str, int]] = {}
        for binding in spec.ports:
            if binding.host_port:
                address = (binding.host_ip or LOOPBACK, binding.host_port)
            else:
                address = (binding.host_ip or LOOPBACK, self._next_port)
                self._next_port += 1
            if address in taken:
                raise RunnerError(
                    f"the engine refused: Bind for {address[0]}:{address[1]} failed: "
                    "port is already allocated"
                )
            taken.add(address)
            published[binding.container_port] = address
        return published

    def _main(self, container: _Container) -> None:
        def write(data: bytes) -> None:
            with self.condition:
                if not container.removed:
                    container.output.append(data)
                    self.condition.notify_all()

        program = container.program
        process = _Process(self, container, write, main=True, input_ended=lambda: False)
        try:
            if program.gated:
                with self.condition:
                    self.condition.wait_for(lambda: container.released or container.killed)
                if not container.released:
                    raise _Signalled(KILLED)
            code = _run_lines(process, parse(program.script, program.env), program.errexit)
            if program.after:
                env = {**program.env, program.exit_variable: str(code)}
                after = _run_lines(process, parse(program.after, env), errexit=True)
                if after:
                    write(f"after-script failed with exit code {after}\n".encode())
        except _Signalled as exc:
            code = exc.code
        except Exception as exc:  # a bug of the fake: the test must fail, not hang
            self.faults.append(f"{container.spec.name}: {exc!r}")
            code = 255
        with self.condition:
            container.state = "exited"
            container.exit_code = code
            container.finished = time.time()
            container.listening.clear()
            container.published = {}
            if container.spec.auto_remove and not container.removed:
                self._forget(container)
            self.condition.notify_all()

    def release(self, container_id: str, line: bytes) -> None:
        with self.condition:
            container = self._running(container_id)
            if not container.spec.open_stdin:
                raise RunnerError("the engine refused: the container's input is not open")
            container.released = line == GATE_OPENS
            self.condition.notify_all()

    def commit(self, container_id: str, tag: str) -> str:
        with self.condition:
            container = self._container(container_id)
            base = self.images.get(image_key(container.spec.image), Image())
            labels = {**base.labels, **container.spec.labels}
            self.images[image_key(tag)] = Image(ports=base.ports, labels=labels, script=base.script)
            return image_key(tag)

    def image_volumes(self, image: str) -> tuple[str, ...]:
        return ()

    def stream_logs(self, container_id: str) -> Iterator[bytes]:
        with self.condition:
            container = self._container(container_id)
        position = 0
        while True:
            with self.condition:
                self.condition.wait_for(functools.partial(_news, container, position))
                chunks = container.output[position:]
                position = len(container.output)
            if not chunks:
                return
            yield from chunks

    def wait(self, container_id: str) -> int:
        with self.condition:
            container = self._container(container_id)
            self.condition.wait_for(lambda: container.state == "exited" or container.removed)
            if container.state != "exited":
                raise ResourceGone(f"No such container: {container_id}")
            return container.exit_code

    def last_lines(self, container_id: str, count: int) -> list[str]:
        with self.condition:
            output = b"".join(self._container(container_id).output)
        lines = output.decode("utf-8", errors="replace").splitlines()
        return lines[-count:] if count > 0 else []

    def error_lines(self, container_id: str, count: int) -> list[str]:
        """The memory engine's scripts write only to standard output."""
        with self.condition:
            self._container(container_id)
        return []

    def state(self, container_id: str) -> ContainerState:
        with self.condition:
            container = self._container(container_id)
            return ContainerState(
                running=container.running, exit_code=None if container.running else container.exit_code
            )

    def published_ports(self, container_id: str) -> dict[int, tuple[str, int]]:
        with self.condition:
            return dict(self._container(container_id).published)

    def listening_ports(self, container_id: str) -> frozenset[int] | None:
        with self.condition:
            container = self._container(container_id)
            # as the Docker backend answers: a container that has exited listens on nothing
            return self._namespace_ports(container.namespace) if container.running else frozenset()

    def exec(self, container_id: str, command: tuple[str, ...]) -> ExecResult:
        with self.condition:
            container = self._running(container_id)
        script, errexit = _shell_text(command)
        lines = parse(script, container.program.env)
        output = bytearray()
        process = _Process(self, container, output.extend, main=False, input_ended=lambda: True)
        try:
            code = _run_lines(process, lines, errexit)
        except _Signalled as exc:
            code = exc.code
        return ExecResult(exit_code=code, output=bytes(output))

    def hold(self, container_id: str, command: tuple[str, ...], ready: bytes, timeout: float) -> MemoryLease:
        with self.condition:
            container = self._running(container_id)
        script, errexit = _shell_text(command)
        lines = parse(script, container.program.env)
        lease = MemoryLease(self, command)

        def write(data: bytes) -> None:
            with self.condition:
                lease._write(data)
                self.condition.notify_all()

        def run() -> None:
            process = _Process(self, container, write, main=False, input_ended=lambda: lease.closed)
            with contextlib.suppress(_Signalled):
                _run_lines(process, lines, errexit)
            with self.condition:
                lease.ended = True
                self.condition.notify_all()

        threading.Thread(target=run, daemon=True, name=f"memory-hold-{container.spec.name}").start()
        with self.condition:
            answered = self.condition.wait_for(lambda: ready in lease.received or lease.ended, timeout)
            if not answered or ready not in lease.received:
                lease.close()
                said = lease.received.decode("utf-8", errors="replace").strip()
                raise RunnerError(
                    f"the lease command did not answer {ready!r}" + (f": {said}" if said else "")
                )
            self.leases.append(lease)
        return lease

    def kill(self, container_id: str) -> None:
        with self.condition:
            container = self._find_container(container_id)
            # already stopped or gone: the goal is reached, as the Docker backend has it
            if container is not None and container.running:
                container.killed = True
                self.condition.notify_all()

    def stop(self, container_id: str, grace: int) -> None:
        with self.condition:
            container = self._container(container_id)
            if not container.running:
                return
            container.terminated = True
            self.condition.notify_all()
            if not self.condition.wait_for(lambda: not container.running, timeout=grace):
                container.killed = True
                self.condition.notify_all()
                self._await_exit(container)

    def _await_exit(self, container: _Container) -> None:
        if not self.condition.wait_for(lambda: not container.running, timeout=EXIT_TIMEOUT):
            self.faults.append(f"{container.spec.name}: still running {EXIT_TIMEOUT:g}s after a kill")
            raise RunnerError(f"the engine refused: container {container.id} does not stop")

    # removal and listing

    def _forget(self, container: _Container) -> None:
        container.removed = True
        self.containers.pop(container.id, None)

    def remove(self, kind: ResourceKind, ident: str) -> bool:
        with self.condition:
            if kind == "container":
                container = self._find_container(ident)
                if container is None:
                    return False
                if container.running:
                    container.killed = True
                    self.condition.notify_all()
                    self._await_exit(container)
                if container.removed:  # another removal finished first
                    return False
                self._forget(container)
                self.condition.notify_all()
                return True
            if kind == "image":
                return self.images.pop(image_key(ident), None) is not None
            if kind == "network":
                network = self._find_network(ident)
                if network is None:
                    return False
                self._await_unused(
                    lambda: [c for c in self.containers.values() if c.running and c.network == network.id],
                    lambda users: f"network {network.name} is in use by {users} (it has active endpoints)",
                )
                return self.networks.pop(network.id, None) is not None
            volume = self.volumes.get(ident)
            if volume is None:
                return False
            self._await_unused(
                lambda: [
                    c
                    for c in self.containers.values()
                    if any(not m.bind and m.source == volume.name for m in c.spec.mounts)
                ],
                lambda users: f"remove {volume.name}: volume is in use - [{users}]",
            )
            return self.volumes.pop(volume.name, None) is not None

    def _await_unused(self, users: Callable[[], list[_Container]], refusal: Callable[[str], str]) -> None:
        if not self.condition.wait_for(lambda: not users(), timeout=self.busy_timeout):
            names = ", ".join(c.spec.name for c in users())
            raise RunnerError(f"the engine refused: {refusal(names)}")

    def list_resources(self, kind: ResourceKind, label: str, *, sizes: bool = False) -> list[Resource]:
        key, has_value, value = label.partition("=")

        def matches(labels: Mapping[str, str]) -> bool:
            return key in labels and (not has_value or labels[key] == value)

        with self.condition:
            if kind == "container":
                return [
                    Resource(
                        kind,
                        c.id,
                        c.spec.name,
                        dict(c.spec.labels),
                        c.created,
                        status=_status(c),
                        image=c.spec.image,
                        size=sum(len(data) for data in c.archives.values()) if sizes else None,
                        running=c.running,
                    )
                    for c in self.containers.values()
                    if matches(c.spec.labels)
                ]
            if kind == "network":
                return [
                    Resource(kind, n.id, n.name, dict(n.labels), n.created)
                    for n in self.networks.values()
                    if matches(n.labels)
                ]
            if kind == "image":
                return [
                    Resource(kind, name, name, dict(i.labels), 0.0)
                    for name, i in self.images.items()
                    if matches(i.labels)
                ]
            return [
                Resource(kind, v.name, v.name, dict(v.labels), v.created, size=0 if sizes else None)
                for v in self.volumes.values()
                if matches(v.labels)
            ]


def _shell_text(argv: tuple[str, ...]) -> tuple[str, bool]:
    """(memory-shell text, errexit) for an argv: `sh -c TEXT` runs TEXT, anything else is one command."""
    if len(argv) == 3 and argv[0] in SHELLS and argv[1] in ("-c", "-ec"):
        return argv[2], argv[1] == "-ec"
    return shlex.join(argv), False


def _news(container: _Container, position: int) -> bool:
    """Whether a log stream that has read `position` chunks has something to do."""
    return position < len(container.output) or not container.running or container.removed


def _status(container: _Container) -> str:
    if container.running:
        return f"Up {int(time.time() - container.started)} seconds"
    if container.state == "exited":
        return f"Exited ({container.exit_code}) {int(time.time() - container.finished)} seconds ago"
    return "Created"


if TYPE_CHECKING:
    backend: Backend = MemoryBackend()  # mypy checks here that the fake is a whole Backend
