"""Actions that need no container and run in the runner itself: log, fail, sleep, assert, return, and
Redis string commands."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner.durations import iso_duration
from runner.engine.status import StepStatus
from runner.errors import RunnerError
from runner.model import (
    AssertAction,
    ExitAction,
    FailAction,
    LogAction,
    RedisAction,
    ReturnAction,
    SleepAction,
    ValuesAction,
)

BuiltinAction = (
    LogAction
    | FailAction
    | SleepAction
    | AssertAction
    | ReturnAction
    | ValuesAction
    | ExitAction
    | RedisAction
)
ENGINE_HOST_NAMES = ("host.docker.internal",)  # in a container: the engine's host
LOOPBACK_NAMES = ("localhost", "127.0.0.1")
NO_PASSWORD = "without any password configured"


@dataclass
class BuiltinResult:
    status: StepStatus
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    exit_state: str | None = None  # the run ends in this state


@dataclass(frozen=True)
class BuiltinContext:
    render: Callable[[str], str]
    is_truthy: Callable[[str], bool]
    log: Callable[[str], None]
    warn: Callable[[str], None]
    should_stop: Callable[[], bool]
    engine_host: str = "127.0.0.1"  # where this process reaches ports the engine publishes


def run_builtin(action: BuiltinAction, context: BuiltinContext) -> BuiltinResult:
    runners: dict[str, Callable[[Any, BuiltinContext], BuiltinResult]] = {
        "log": _log,
        "fail": _fail,
        "sleep": _sleep,
        "assert": _assert,
        "return": _return,
        "values": _values,
        "exit": _exit,
        "redis": _redis,
    }
    return runners[action.kind](action, context)


def _log(action: LogAction, context: BuiltinContext) -> BuiltinResult:
    for message in action.messages:
        for line in context.render(message).splitlines() or [""]:
            context.log(line if action.level == "INFO" else f"{action.level} {line}")
    return BuiltinResult(StepStatus.SUCCESS)


def _fail(action: FailAction, context: BuiltinContext) -> BuiltinResult:
    message = context.render(action.message)
    if action.condition is None:
        return BuiltinResult(StepStatus.FAILED, message)
    if context.is_truthy(context.render(action.condition)):
        context.log(f"ERROR {message}")
        return BuiltinResult(StepStatus.FAILED, "Fail on a condition")
    return BuiltinResult(StepStatus.SUCCESS)


def _sleep(action: SleepAction, context: BuiltinContext) -> BuiltinResult:
    text = context.render(action.duration)
    try:
        seconds = iso_duration(text)
    except ValueError as exc:
        return BuiltinResult(StepStatus.FAILED, str(exc))
    context.log(f"Waiting for {text}")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if context.should_stop():
            return BuiltinResult(StepStatus.STOPPED, "stopped by an interrupt")
        time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))
    return BuiltinResult(StepStatus.SUCCESS)


def _assert(action: AssertAction, context: BuiltinContext) -> BuiltinResult:
    failed = 0
    for condition in action.conditions:
        try:
            holds = not _falsy(context.render(condition))
        except RunnerError:
            holds = False
        if not holds:
            failed += 1
            context.log(f"ERROR Assertion `{condition}` failed!")
    if not failed:
        return BuiltinResult(StepStatus.SUCCESS)
    message = f"{failed} assertion(s) failed!"
    if action.message:
        message += "\n" + context.render(action.message)
    return BuiltinResult(StepStatus.FAILED, message)


def _falsy(text: str) -> bool:
    return text.strip() in ("false", "0", "-0", "")


def _return(action: ReturnAction, context: BuiltinContext) -> BuiltinResult:
    value = context.render(action.format)
    context.log(value)
    return BuiltinResult(StepStatus.SUCCESS, outputs={"value": value})


def _values(action: ValuesAction, context: BuiltinContext) -> BuiltinResult:
    def render(value: Any) -> Any:
        if isinstance(value, str):
            return context.render(value)
        if isinstance(value, dict):
            return {key: render(item) for key, item in value.items()}
        if isinstance(value, list):
            return [render(item) for item in value]
        return value

    return BuiltinResult(StepStatus.SUCCESS, outputs={"values": render(action.values)})


def _exit(action: ExitAction, context: BuiltinContext) -> BuiltinResult:
    context.log(f"the flow ends here, {action.state}")
    return BuiltinResult(StepStatus.SUCCESS, exit_state=action.state)


# Redis


def _client(url: str, context: BuiltinContext) -> Any:
    import redis

    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or "localhost"
    # These tasks run in the runner, not in a container: a flow's address of the engine's host (and, when
    # the engine is remote, of "this machine", where a flow expects its published ports) is the engine host.
    remote = context.engine_host not in LOOPBACK_NAMES
    aliased = host in ENGINE_HOST_NAMES or (remote and host in LOOPBACK_NAMES)
    rewritten = url.replace(host, context.engine_host, 1) if aliased else url
    client = redis.Redis.from_url(
        rewritten, decode_responses=True, socket_timeout=10, socket_connect_timeout=5
    )
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        if NO_PASSWORD not in str(exc):
            raise
        # the URL carries a password the server does not have: connect as a forgiving client would
        context.warn(f"the Redis server at {host} has no password; connected without the one in the URL")
        client = redis.Redis.from_url(_without_password(rewritten), decode_responses=True, socket_timeout=10)
    return client


def _without_password(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    netloc = parsed.hostname or ""
    if parsed.port:
        netloc += f":{parsed.port}"
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))


def _redis(action: RedisAction, context: BuiltinContext) -> BuiltinResult:
    import redis

    url = context.render(action.url)
    try:
        client = _client(url, context)
        with client:
            return _redis_command(action, client, context)
    except redis.exceptions.RedisError as exc:
        return BuiltinResult(StepStatus.FAILED, f"Redis at {_without_password(url)}: {exc}")


def _redis_command(action: RedisAction, client: Any, context: BuiltinContext) -> BuiltinResult:
    if action.operation == "delete":
        keys = [context.render(key) for key in action.keys]
        count = int(client.delete(*keys)) if keys else 0
        if action.failed_on_missing and count < len(keys):
            return BuiltinResult(StepStatus.FAILED, f"Missing keys, only {count} key deleted")
        return BuiltinResult(StepStatus.SUCCESS, outputs={"count": count})
    key = context.render(action.key)
    if action.operation == "set":
        value = context.render(action.value)
        if action.as_json:
            try:
                value = json.dumps(json.loads(value), separators=(",", ":"))
            except ValueError:
                return BuiltinResult(StepStatus.FAILED, f"the value of '{key}' is not valid JSON")
        old = client.set(key, value, get=action.return_old)
        outputs = {"oldValue": _decode(old, action.as_json)} if action.return_old and old is not None else {}
        return BuiltinResult(StepStatus.SUCCESS, outputs=outputs)
    data = client.get(key)
    if data is None and action.failed_on_missing:
        return BuiltinResult(StepStatus.FAILED, f"Missing keys '{key}'")
    # a missing key has no `data` at all, as Kestra drops null outputs
    outputs = {"key": key} if data is None else {"data": _decode(data, action.as_json), "key": key}
    return BuiltinResult(StepStatus.SUCCESS, outputs=outputs)


def _decode(value: str, as_json: bool) -> Any:
    return json.loads(value) if as_json else value
