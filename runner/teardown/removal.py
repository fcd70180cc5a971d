"""Concurrent, ordered removal: containers first, then networks, then volumes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from runner.backend.base import REMOVAL_ORDER, Backend, Resource
from runner.errors import RunnerError

MAX_WORKERS = 16


@dataclass
class RemovalReport:
    removed: list[Resource] = field(default_factory=list)
    already_gone: list[Resource] = field(default_factory=list)
    failed: list[tuple[Resource, str]] = field(default_factory=list)

    def merge(self, other: RemovalReport) -> None:
        self.removed += other.removed
        self.already_gone += other.already_gone
        self.failed += other.failed


def remove_all(
    backend: Backend, resources: Iterable[Resource], on_removed: Callable[[Resource], None] | None = None
) -> RemovalReport:
    report = RemovalReport()
    pending = list(resources)
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        for kind in REMOVAL_ORDER:
            batch = [resource for resource in pending if resource.kind == kind]
            for resource, outcome in zip(
                batch, pool.map(lambda r: _remove_one(backend, r), batch), strict=True
            ):
                if outcome is None:
                    report.removed.append(resource)
                elif outcome == "":
                    report.already_gone.append(resource)
                else:
                    report.failed.append((resource, outcome))
                if outcome in (None, "") and on_removed:
                    on_removed(resource)
    return report


def _remove_one(backend: Backend, resource: Resource) -> str | None:
    """None when removed, "" when it was already gone, else the error."""
    try:
        return None if backend.remove(resource.kind, resource.id) else ""
    except RunnerError as exc:
        return exc.message
