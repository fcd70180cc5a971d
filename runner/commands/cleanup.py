from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm
from rich.table import Table

from runner.backend import connect
from runner.backend.base import REMOVAL_ORDER, Backend, Resource
from runner.durations import format_duration, parse_duration
from runner.engine.actions import CACHE_LABEL
from runner.errors import InputError
from runner.teardown.labels import RUN_ID
from runner.teardown.leaks import LeakFilter, RunResources, find_leaks, reconcile, remove_runs
from runner.teardown.ledger import Ledger
from runner.teardown.removal import RemovalReport, remove_all

COMPOSE_PROJECT = "com.docker.compose.project"


@dataclass(frozen=True)
class CleanupRequest:
    dry_run: bool = False
    run_id: str | None = None
    older_than: str | None = None
    everything: bool = False
    caches: bool = False
    labels: list[str] = field(default_factory=list)  # KEY=VALUE or KEY: resources of any tool
    compose: list[str] = field(default_factory=list)  # docker compose projects
    exited: bool = False  # stopped containers only
    logs: bool = False  # also prune the logs of past runs


def cleanup(console: Console, request: CleanupRequest) -> int:
    try:
        age = parse_duration(request.older_than) if request.older_than else None
    except ValueError as exc:
        raise InputError(f"--older-than: {exc}", "write it like 30m, 1h or 2d") from exc
    if request.logs:  # the state directory's files alone: no engine needed
        from runner.commands.logs import prune_logs

        prune_logs(console, Ledger(), request.dry_run, age)
    backend = connect()
    backend.ping()
    engine = backend.info()
    reconcile(Ledger(), engine.id)
    where = f"{engine.product} at {engine.address}"
    console.print(f"[dim]engine: {escape(where)} (only its resources are looked at)[/dim]")
    foreign = _foreign_filters(request)
    runs: list[RunResources] = []
    if foreign:
        targets = _matching(backend, foreign, request.exited, age)
    else:
        runs = find_leaks(
            backend, LeakFilter(run_id=request.run_id, older_than=age, include_alive=request.everything)
        )
        targets = [r for run in runs for r in run.resources if _wanted(r, request.exited)]
        if request.caches and not request.exited:
            targets += backend.list_resources("volume", CACHE_LABEL, sizes=True)
        targets = _with_sizes(backend, targets)
    if not targets:
        console.print("nothing to remove")
        return 0
    if request.dry_run:
        console.print(_table(targets, "would remove"))
        console.print(f"{len(targets)} resources would be removed (dry run){_reclaimed(targets)}")
        return 0
    if request.everything and sys.stdin.isatty() and not _confirmed(console, targets):
        console.print("nothing removed")
        return 0
    report = _remove(backend, targets, runs)
    done = report.removed + report.already_gone
    console.print(_table(done, "removed"))
    for resource, error in report.failed:
        console.print(f"[red]could not remove {resource.kind} {escape(resource.name)}: {escape(error)}[/red]")
    console.print(f"removed {len(done)} resources{_reclaimed(report.removed)}")
    return 1 if report.failed else 0


def _foreign_filters(request: CleanupRequest) -> list[str]:
    filters = []
    for label in request.labels:
        key, sep, value = label.partition("=")
        if not key:
            raise InputError(f"--label {label!r} names no label", "write --label KEY=VALUE or --label KEY")
        filters.append(f"{key}={value}" if sep else key)
    filters += [f"{COMPOSE_PROJECT}={project}" for project in request.compose]
    return filters


def _matching(backend: Backend, filters: list[str], exited: bool, age: float | None) -> list[Resource]:
    """Resources of any tool that carry one of `filters`; nothing that matches none is ever touched."""
    found: dict[tuple[str, str], Resource] = {}
    kinds = ("container",) if exited else REMOVAL_ORDER
    now = time.time()
    for label in filters:
        for kind in kinds:
            for resource in backend.list_resources(kind, label, sizes=True):
                if not _wanted(resource, exited):
                    continue
                if age is not None and resource.created and now - resource.created < age:
                    continue
                found[(resource.kind, resource.id)] = resource
    return list(found.values())


def _wanted(resource: Resource, exited: bool) -> bool:
    return not exited or (resource.kind == "container" and not resource.running)


def _with_sizes(backend: Backend, resources: list[Resource]) -> list[Resource]:
    """The same resources, measured: the summary says how much space their removal gives back."""
    run_ids = {r.labels.get(RUN_ID, "") for r in resources if r.labels.get(RUN_ID)}
    measured = {
        (r.kind, r.id): r
        for run_id in run_ids
        for kind in ("container", "volume")
        for r in backend.list_resources(kind, f"{RUN_ID}={run_id}", sizes=True)
    }
    return [measured.get((r.kind, r.id), r) for r in resources]


def _remove(backend: Backend, targets: list[Resource], runs: list[RunResources]) -> RemovalReport:
    if not runs:
        return remove_all(backend, targets)
    chosen = {(r.kind, r.id) for r in targets}
    kept_runs = [
        RunResources(
            run.run_id, run.pipeline, run.owner, [r for r in run.resources if (r.kind, r.id) in chosen]
        )
        for run in runs
    ]
    report = remove_runs(backend, kept_runs, Ledger())
    in_runs = {(r.kind, r.id) for run in kept_runs for r in run.resources}
    report.merge(remove_all(backend, [r for r in targets if (r.kind, r.id) not in in_runs]))
    return report


def _confirmed(console: Console, targets: list[Resource]) -> bool:
    alive = sum(1 for r in targets if r.running)
    return Confirm.ask(
        f"remove {len(targets)} resources ({alive} running containers), including runs that look alive?",
        console=console,
        default=False,
    )


def _reclaimed(resources: list[Resource]) -> str:
    total = sum(r.size or 0 for r in resources)
    return f", {_bytes(total)} reclaimed" if total else ""


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _table(resources: list[Resource], title: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, title=title, title_justify="left")
    for column in ("kind", "name", "age", "image", "size", "run"):
        table.add_column(column, justify="right" if column == "size" else "left")
    now = time.time()
    for resource in resources:
        table.add_row(
            resource.kind,
            escape(resource.name),
            format_duration(now - resource.created) if resource.created else "",
            escape(resource.image),
            _bytes(resource.size) if resource.size is not None else "",
            resource.labels.get(RUN_ID, ""),
        )
    return table
