"""Concurrent removal. Containers go first in spirit: networks and volumes are removed alongside them,
and one still in use by a container being removed is retried until that container is gone, so the
engine's slow, serialised network teardown overlaps the container kills instead of following them.
Images go last, once every container is gone: removing an image a stopped container still uses would only
untag it, and leave it behind nameless."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from runner.backend.base import Backend, Resource
from runner.errors import RunnerError

CONTAINER_WORKERS = 16
OTHER_WORKERS = 8


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
    containers = [r for r in pending if r.kind == "container"]
    others = [r for r in pending if r.kind not in ("container", "image")]
    images = [r for r in pending if r.kind == "image"]
    with (
        ThreadPoolExecutor(max_workers=CONTAINER_WORKERS) as container_pool,
        ThreadPoolExecutor(max_workers=OTHER_WORKERS) as other_pool,
    ):
        futures: list[tuple[Resource, Future[str | None]]] = [
            (r, container_pool.submit(_remove_one, backend, r)) for r in containers
        ]
        futures += [(r, other_pool.submit(_remove_one, backend, r)) for r in others]
        wait([future for _, future in futures[: len(containers)]])
        futures += [(r, other_pool.submit(_remove_one, backend, r)) for r in images]
        for resource, future in futures:
            outcome = future.result()
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
