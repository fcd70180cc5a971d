"""Running one `ContainerRun`: create, fill the workspace, start, stream logs, wait, and stop on demand."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from runner.backend.base import TOOL_IMAGE, Backend, ContainerSpec
from runner.engine.events import Reporter
from runner.engine.status import StepStatus
from runner.engine.variables import expand
from runner.errors import RunnerError
from runner.model import ContainerRun, Mount, ReadyCheck, Sidecar, Step
from runner.progress import activity

POLL = 0.05
STOP_GRACE = 2
MAX_LINE = 64 * 1024
READY_BACKOFF = 1.5
READY_MAX_INTERVAL = 1.0
GATE_VARIABLE = "RUNNER_GATED"
GATE_OPENS = b"go\n"
OUTPUT_MARKER = re.compile(r"^::(\{.*\})::$")


@dataclass
class Outcome:
    status: StepStatus
    exit_code: int | None = None
    message: str = ""
    container_id: str = ""
    outputs: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class StepContext:
    """What a container step needs from the run around it."""

    backend: Backend
    reporter: Reporter
    network: str | None
    join: str | None  # a container whose network namespace the step shares (its services')
    mounts: tuple[Mount, ...]
    env: dict[str, str]
    log_dir: Path
    create: Callable[[ContainerSpec, str, bool], str]
    prepare: Callable[[str], None]  # called with a created container before it starts
    should_stop: Callable[[], bool]
    mask: Callable[[str], str] = str
    started: Callable[[], None] = lambda: None  # the step's container runs: the next one may be made


# Runs the step's script and then its after-script, each as a script of its own with `set -e`. The
# container's exit code is the script's: the after-script never changes it. The scripts travel in the
# environment, so nothing has to be written into the image and no quoting is involved.
#
# A step made ahead, while the step before it ran, waits at the gate until its turn: the runner writes
# `go` to its standard input, which the script then no longer has, as no step has. Anything else (the
# engine closed its input) ends it without running the script, and the runner makes the container again.
WRAPPER = """
if [ -n "$RUNNER_GATED" ]; then
  unset RUNNER_GATED
  read -r runner_go || :
  [ "$runner_go" = go ] || exit 125
  exec </dev/null
fi
runner_shell=sh
if [ "$RUNNER_SHELL" = bash ] && command -v bash >/dev/null 2>&1; then runner_shell=bash; fi
runner_script=$RUNNER_SCRIPT
runner_after=$RUNNER_AFTER_SCRIPT
runner_exit_variable=$RUNNER_EXIT_VARIABLE
unset RUNNER_SHELL RUNNER_SCRIPT RUNNER_AFTER_SCRIPT RUNNER_EXIT_VARIABLE
"$runner_shell" -ec "$runner_script"
runner_code=$?
if [ -n "$runner_after" ]; then
  export "$runner_exit_variable=$runner_code"
  "$runner_shell" -ec "$runner_after" || echo "after-script failed with exit code $?" >&2
fi
exit "$runner_code"
"""


def container_spec(
    step: Step, action: ContainerRun, image: str, name: str, context: StepContext, gated: bool = False
) -> ContainerSpec:
    """The step's container; `gated`, its script waits for `release` (only a step with a script can)."""
    env = {**action.env, **context.env}
    entrypoint, command = action.entrypoint, action.command
    if action.script:
        entrypoint, command = ("/bin/sh", "-c"), (WRAPPER,)
        env.update(
            RUNNER_SHELL=action.shell,
            RUNNER_SCRIPT="\n".join(action.script) + "\n",
            RUNNER_AFTER_SCRIPT="\n".join(action.after_script) + "\n" if action.after_script else "",
            RUNNER_EXIT_VARIABLE=action.exit_code_variable,
        )
        if gated:
            env[GATE_VARIABLE] = "1"
    return ContainerSpec(
        name=name,
        image=image,
        labels={},
        command=command,
        entrypoint=entrypoint,
        env=env,
        workdir=action.workdir,
        network=None if context.join or action.network_mode else context.network,
        join=context.join,
        network_mode=action.network_mode,
        aliases=(step.id,) if context.network and not context.join and not action.network_mode else (),
        mounts=(*context.mounts, *action.mounts),
        ports=action.ports,
        user=action.user,
        memory=action.memory,
        cpus=action.cpus,
        host_alias=action.network_mode not in ("host", "none"),
        open_stdin=gated,
    )


def output_marker(line: str) -> dict[str, object] | None:
    """The outputs a line `::{"outputs": {...}}::` sets (Kestra's protocol), None for any other line; a
    marker line with no outputs (metrics only) sets none, and is not shown either."""
    match = OUTPUT_MARKER.match(line.strip())
    if not match:
        return None
    try:
        document = json.loads(match.group(1))
    except ValueError:
        return None
    outputs = document.get("outputs") if isinstance(document, dict) else None
    return dict(outputs) if isinstance(outputs, dict) else {}


class LogPump(threading.Thread):
    """Streams a container's output line by line to the reporter and the step's log file."""

    def __init__(
        self, context: StepContext, step: Step, container_id: str, log_name: str = "", echo: bool = True
    ) -> None:
        super().__init__(daemon=True, name=f"logs-{step.id}")
        self.context = context
        self.step = step
        self.container_id = container_id
        self.log_name = log_name or step.id
        self.echo = echo
        self.tail: list[str] = []
        self.markers = isinstance(step.action, ContainerRun) and step.action.output_markers
        self.vars: dict[str, object] = {}

    def _output_marker(self, line: str) -> bool:
        """A line `::{"outputs": {...}}::` sets outputs instead of being shown."""
        outputs = output_marker(line)
        if outputs is None:
            return False
        self.vars.update(outputs)
        return True

    def run(self) -> None:
        path = self.context.log_dir / f"{self.log_name}.log"
        pending = b""
        with open(path, "ab") as log:
            try:
                for chunk in self.context.backend.stream_logs(self.container_id):
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    if len(pending) > MAX_LINE:
                        lines.append(pending)
                        pending = b""
                    for line in lines:
                        self._emit(line, log)
            except RunnerError:
                pass  # the container went away mid-stream: the waiter reports how it ended
            if pending:
                self._emit(pending, log)

    def _emit(self, raw: bytes, log: IO[bytes]) -> None:
        line = self.context.mask(raw.decode("utf-8", errors="replace").rstrip("\r"))
        log.write(line.encode("utf-8", errors="replace") + b"\n")
        if self.markers and self._output_marker(line):
            return
        self.tail = [*self.tail[-19:], line]
        if self.echo:
            self.context.reporter.log(self.step, line)


def run_container(
    step: Step,
    action: ContainerRun,
    image: str,
    name: str,
    context: StepContext,
    timeout: float | None,
    made_ahead: str | None = None,
) -> Outcome:
    """The step in a new container, or in `made_ahead`, its container already started at its gate."""
    backend = context.backend
    if made_ahead is None:
        spec = container_spec(step, action, image, name, context)
        container_id = context.create(spec, step.id, action.detach)
        context.prepare(container_id)
        backend.start(container_id)
    else:
        container_id = made_ahead
        context.prepare(container_id)
        backend.release(container_id, GATE_OPENS)
    context.started()
    pump = LogPump(context, step, container_id)
    pump.start()
    if action.detach:
        with activity(f"waiting for {step.name} to be ready"):
            return _await_ready(step, action, container_id, context, pump)
    outcome = _await_exit(container_id, context, timeout)
    pump.join(timeout=5)
    outcome.outputs["vars"] = dict(pump.vars)
    return outcome


def _await_exit(container_id: str, context: StepContext, timeout: float | None) -> Outcome:
    backend = context.backend
    done = threading.Event()
    exit_code: list[int] = []
    failure: list[str] = []

    def wait() -> None:
        try:
            exit_code.append(backend.wait(container_id))
        except RunnerError as exc:
            failure.append(exc.message)
        done.set()

    threading.Thread(target=wait, daemon=True, name=f"wait-{container_id[:12]}").start()
    deadline = None if timeout is None else time.monotonic() + timeout
    while not done.wait(POLL):
        if context.should_stop():
            _stop(backend, container_id, done)
            return Outcome(StepStatus.STOPPED, _code(exit_code), "stopped by an interrupt", container_id)
        if deadline is not None and time.monotonic() >= deadline:
            _stop(backend, container_id, done)
            return Outcome(
                StepStatus.TIMED_OUT, _code(exit_code), f"timed out after {timeout:g}s", container_id
            )
    if failure:
        return Outcome(StepStatus.FAILED, None, failure[0], container_id)
    code = exit_code[0]
    if code == 0:
        return Outcome(StepStatus.SUCCESS, 0, "", container_id)
    state = backend.state(container_id)
    reason = "killed: out of memory" if state.oom_killed else f"exited with code {code}"
    return Outcome(StepStatus.FAILED, code, reason, container_id)


def _stop(backend: Backend, container_id: str, done: threading.Event) -> None:
    backend.kill(container_id)
    done.wait(STOP_GRACE)


def _code(exit_code: list[int]) -> int | None:
    return exit_code[0] if exit_code else None


def _await_ready(
    step: Step, action: ContainerRun, container_id: str, context: StepContext, pump: LogPump
) -> Outcome:
    ready = action.ready or ReadyCheck(timeout=60.0)
    if ready.timeout == 0:
        return Outcome(StepStatus.SUCCESS, 0, "", container_id, {"vars": {}})
    ports = (
        (ready.port,) if ready.port else tuple(p.container_port for p in action.ports if p.protocol == "tcp")
    )
    deadline = time.monotonic() + ready.timeout
    backend = context.backend
    interval = ready.interval
    while True:
        state = backend.state(container_id)
        if not state.running:
            pump.join(timeout=2)
            # the engine's log is complete once the container has exited; the stream may have missed lines
            lines = [context.mask(line) for line in backend.last_lines(container_id, 10)] or pump.tail[-10:]
            last = "\n".join(lines)
            message = f"exited with code {state.exit_code} before it was ready"
            return Outcome(
                StepStatus.FAILED,
                state.exit_code,
                message + (f"; last output:\n{last}" if last else ""),
                container_id,
            )
        if _is_ready(backend, container_id, ready.command, ports):
            published = backend.published_ports(container_id) if action.ports else {}
            engine = backend.info()
            where = ", ".join(
                f"{engine.reach(ip)}:{port}->{inner}" for inner, (ip, port) in sorted(published.items())
            )
            return Outcome(StepStatus.SUCCESS, None, f"published on {where}" if where else "", container_id)
        if context.should_stop():
            return Outcome(StepStatus.STOPPED, None, "stopped by an interrupt", container_id)
        if time.monotonic() >= deadline:
            what = f"`{ready.command}`" if ready.command else f"port {', '.join(map(str, ports))}"
            return Outcome(
                StepStatus.FAILED,
                None,
                f"not ready after {ready.timeout:g}s (waited for {what})",
                container_id,
            )
        time.sleep(interval)
        # each look is an exec in the engine (Podman keeps a process per exec for minutes): look often
        # at first, when most services become ready, then less
        interval = min(interval * READY_BACKOFF, max(ready.interval, READY_MAX_INTERVAL))


def _is_ready(backend: Backend, container_id: str, command: str | None, ports: tuple[int, ...]) -> bool:
    if command:
        return backend.exec(container_id, ("/bin/sh", "-c", command)).exit_code == 0
    if not ports:
        return True
    return _listening(backend, container_id, ports)


def _listening(backend: Backend, container_id: str, ports: tuple[int, ...]) -> bool:
    """Asked inside the engine, in the container's own network namespace: a published port's proxy
    accepts connections before the service listens, and a container address may not be routable from
    this machine (a remote engine, Docker Desktop), where a probe could even reach some other host."""
    listening = backend.listening_ports(container_id)
    if listening is None:
        raise RunnerError(
            "cannot tell whether the service listens: the image has no `cat` and the runner's own image "
            f"({TOOL_IMAGE}) is missing",
            "give the step a `ready:` command, or let the runner build its image (`runner doctor`)",
        )
    return set(ports) <= listening


SERVICE_READY_TIMEOUT = 60.0
SIDECAR_INTERVAL = 0.1


def start_sidecars(
    step: Step,
    action: ContainerRun,
    context: StepContext,
    resolve: Callable[[str], str],
    name: Callable[[str], str],
) -> str | None:
    """Start the step's services in one network namespace and wait until their ports accept connections.

    The first service owns the namespace; the others and the step itself join it, so every one of them
    answers on localhost. Returns the owner's container id (None when the step has no services)."""
    backend = context.backend
    owner: str | None = None
    started: list[tuple[str, str, tuple[int, ...]]] = []
    for sidecar in action.sidecars:
        image = resolve(sidecar.image)
        spec = ContainerSpec(
            name=name(f"{step.id}-{sidecar.name}"),
            image=image,
            labels={},
            command=sidecar.command,
            env=_sidecar_env(sidecar, action, context),
            network=None if owner else context.network,
            join=owner,
            memory=sidecar.memory,
            host_alias=owner is None,
        )
        container_id = context.create(spec, step.id, True)
        backend.start(container_id)
        LogPump(context, step, container_id, log_name=f"{step.id}.{sidecar.name}", echo=False).start()
        owner = owner or container_id
        started.append((sidecar.name, container_id, backend.image_ports(image)))
    if owner is not None:
        _await_sidecars(context, owner, started)
    return owner


def _sidecar_env(sidecar: Sidecar, action: ContainerRun, context: StepContext) -> dict[str, str]:
    if not sidecar.expand_variables:
        return sidecar.env
    known = {**action.env, **context.env}
    return {key: expand(value, known) for key, value in sidecar.env.items()}


def _await_sidecars(
    context: StepContext, owner: str, started: list[tuple[str, str, tuple[int, ...]]]
) -> None:
    names = ", ".join(name for name, _, _ in started)
    with activity(f"waiting for {names} to accept connections"):
        _await_listening(context, owner, started)


def _await_listening(
    context: StepContext, owner: str, started: list[tuple[str, str, tuple[int, ...]]]
) -> None:
    backend = context.backend
    deadline = time.monotonic() + SERVICE_READY_TIMEOUT
    waiting = list(started)
    interval = SIDECAR_INTERVAL
    while waiting:
        name, container_id, ports = waiting[0]
        state = backend.state(container_id)
        if not state.running:
            raise RunnerError(f"service '{name}' exited with code {state.exit_code} before it was ready")
        if _listening(backend, owner, ports):
            waiting.pop(0)
            continue
        if context.should_stop():
            raise RunnerError(f"stopped while waiting for service '{name}'")
        if time.monotonic() >= deadline:
            raise RunnerError(
                f"service '{name}' did not accept connections on port {', '.join(map(str, ports))} "
                f"within {SERVICE_READY_TIMEOUT:g}s"
            )
        time.sleep(interval)
        interval = min(interval * READY_BACKOFF, READY_MAX_INTERVAL)
