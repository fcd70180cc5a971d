"""`runner doctor`: what a run would use, checked for real, each problem with a hint.

Each check is a small function returning `Check`s; a failed check whose `blocking` is set means a run
would not work, and only then is the exit code non-zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runner.backend import connect
from runner.backend.base import Backend, EngineInfo
from runner.config import config_images, engine_settings
from runner.errors import ExitCode, RunnerError
from runner.teardown import provision
from runner.teardown.leaks import LeakFilter, find_leaks
from runner.teardown.lease import GuardedLease
from runner.teardown.ledger import SCHEMA_VERSION, Ledger

OK, WARN, FAIL = "ok", "warning", "problem"
STYLE = {OK: "green", WARN: "yellow", FAIL: "red"}


@dataclass(frozen=True)
class Check:
    name: str
    state: str  # OK, WARN or FAIL
    detail: str
    hint: str = ""
    blocking: bool = False  # a run cannot work while this fails


def doctor(console: Console) -> int:
    checks: list[Check] = []
    backend = _engine(checks)
    checks += _state_dir()
    if backend is not None:
        info = backend.info()
        checks += _engine_facts(info)
        checks += _images(backend)
        checks += _guard(backend, info)
        checks += _leaks(backend)
    _show(console, checks)
    blocked = [c for c in checks if c.state == FAIL and c.blocking]
    console.print(
        "a run would not work: fix the problems above" if blocked else "a run would work on this engine"
    )
    return int(ExitCode.ENGINE_UNAVAILABLE) if blocked else 0


def _engine(checks: list[Check]) -> Backend | None:
    try:
        backend = connect(engine_settings(None))
        started = time.monotonic()
        backend.ping()
        info = backend.info()
    except RunnerError as exc:
        checks.append(Check("engine", FAIL, exc.message, exc.hint or "", blocking=True))
        return None
    took = (time.monotonic() - started) * 1000
    checks.append(
        Check("engine", OK, f"{info.product} {info.version} at {info.address} (chosen by {info.source})")
    )
    checks.append(Check("API", OK, f"version {info.api_version}, answered in {took:.0f} ms"))
    return backend


def _engine_facts(info: EngineInfo) -> list[Check]:
    where = "another machine" if info.remote else "this machine"
    checks = [
        Check("platform", OK, f"{info.os} {info.arch}, engine host {info.name or '?'} ({where})"),
        Check("rootless", OK, "yes" if info.rootless else "no"),
        Check("published ports", OK, f"reached at {info.published_host} ({info.published_host_source})"),
        Check("engine socket", OK, f"{info.host_socket} on the engine's host (mounted by the reaper)"),
    ]
    if info.remote:
        checks.append(
            Check(
                "bind mounts",
                WARN,
                "paths of this machine mean nothing to a remote engine: --bind and volumes of host paths "
                "are refused",
                "the workspace is copied into a volume instead, which works on any engine",
            )
        )
    return checks


def _state_dir() -> list[Check]:
    try:
        ledger = Ledger()
    except RunnerError as exc:
        return [Check("state", FAIL, exc.message, exc.hint or "", blocking=True)]
    return [Check("state", OK, f"{ledger.directory} (ledger schema {SCHEMA_VERSION})")]


def _images(backend: Backend) -> list[Check]:
    try:
        mapped = config_images(Path.cwd() / "runner.yml")
    except RunnerError as exc:
        return [Check("image map", FAIL, exc.message, exc.hint or "", blocking=True)]
    if not mapped:
        return [Check("image map", OK, "none (runner.toml [images] or --image NAME=LOCAL)")]
    missing = [local for local in mapped.values() if not backend.has_image(local)]
    detail = ", ".join(f"{name}={local}" for name, local in mapped.items())
    if missing:
        return [Check("image map", WARN, detail, f"not on this engine: {', '.join(missing)}")]
    return [Check("image map", OK, detail)]


def _guard(backend: Backend, info: EngineInfo) -> list[Check]:
    """Takes a real lease, as a run would, so the answer is what a run gets."""
    image = provision.tool_image()
    notes: list[str] = []
    checks = []
    if provision.is_current(backend, image):
        checks.append(Check("reaper image", OK, f"{image} is present and current"))
    else:
        checks.append(Check("reaper image", WARN, f"{image} is missing or out of date: building it now"))
    lease = GuardedLease(backend, f"doctor-{int(time.time())}", notice=notes.append, engine=info.selector)
    started = time.monotonic()
    try:
        lease.wait_ready()
    except (RunnerError, RuntimeError) as exc:
        message = exc.message if isinstance(exc, RunnerError) else str(exc)
        return [*checks, Check("guard", FAIL, message, "see `runner cleanup` and the engine's logs")]
    took = time.monotonic() - started
    guard = lease.describe()
    lease.release()
    state = OK if lease.container is not None else WARN
    hint = "" if state == OK else _reaper_hint(info)
    checks.append(Check("guard", state, f"{guard} (lease taken in {took:.1f}s)", hint))
    checks += [Check("reaper image", OK, note) for note in notes if note.startswith("built")]
    return checks


def _reaper_hint(info: EngineInfo) -> str:
    return (
        f"the reaper container mounts {info.host_socket} of the engine's host; if the socket is elsewhere "
        "set engine_socket in runner.toml or RUNNER_ENGINE_SOCKET; the image builds from a Debian bookworm "
        f"base ({provision.LOCAL_BASE} or {provision.REGISTRY_BASE} from a registry)"
    )


def _leaks(backend: Backend) -> list[Check]:
    leaks = find_leaks(backend, LeakFilter())
    if not leaks:
        return [Check("leaks", OK, "no resources of dead runs on this engine")]
    count = sum(len(run.resources) for run in leaks)
    return [
        Check("leaks", WARN, f"{count} resources of {len(leaks)} dead run(s)", "remove them: runner cleanup")
    ]


def _show(console: Console, checks: list[Check]) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False, show_header=False)
    for column in ("check", "state", "detail"):
        table.add_column(column)
    for check in checks:
        style = STYLE[check.state]
        detail = escape(check.detail) + (f"\n[dim]hint: {escape(check.hint)}[/dim]" if check.hint else "")
        table.add_row(check.name, f"[{style}]{check.state}[/{style}]", detail)
    console.print(table)
