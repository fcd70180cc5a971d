from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runner.backend import connect
from runner.backend.base import Resource
from runner.durations import format_duration, parse_duration
from runner.engine.executor import CACHE_LABEL
from runner.errors import InputError
from runner.teardown.leaks import LeakFilter, find_leaks, remove_runs
from runner.teardown.ledger import Ledger
from runner.teardown.removal import remove_all


def cleanup(
    console: Console,
    *,
    dry_run: bool,
    run_id: str | None,
    older_than: str | None,
    everything: bool,
    caches: bool,
) -> int:
    try:
        age = parse_duration(older_than) if older_than else None
    except ValueError as exc:
        raise InputError(f"--older-than: {exc}", "write it like 30m, 1h or 2d") from exc
    backend = connect()
    backend.ping()
    runs = find_leaks(backend, LeakFilter(run_id=run_id, older_than=age, include_alive=everything))
    resources = [resource for run in runs for resource in run.resources]
    cached = backend.list_resources("volume", CACHE_LABEL) if caches else []
    if not resources and not cached:
        console.print("nothing to remove")
        return 0
    if dry_run:
        console.print(_table(resources + cached, "would remove"))
        console.print(
            f"{len(resources)} resources of {len(runs)} run(s) and {len(cached)} caches would be removed "
            "(dry run)"
        )
        return 0
    report = remove_runs(backend, runs, Ledger())
    report.merge(remove_all(backend, cached))
    console.print(_table(report.removed + report.already_gone, "removed"))
    for resource, error in report.failed:
        console.print(f"[red]could not remove {resource.kind} {escape(resource.name)}: {escape(error)}[/red]")
    removed = len(report.removed) + len(report.already_gone)
    caches_note = f" and {len(cached)} caches" if caches else ""
    console.print(f"removed {removed} resources of {len(runs)} run(s){caches_note}")
    return 1 if report.failed else 0


def _table(resources: list[Resource], title: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, title=title, title_justify="left")
    for column in ("kind", "name", "run", "age", "image"):
        table.add_column(column)
    now = time.time()
    for resource in resources:
        age = format_duration(now - resource.created) if resource.created else ""
        table.add_row(
            resource.kind,
            escape(resource.name),
            resource.labels.get("dev.runner.run-id", ""),
            age,
            escape(resource.image),
        )
    return table
