"""The teardown manager: every resource a run creates passes through here.

It records each resource three times — in memory, as labels on the resource, and write-ahead in the
ledger — so that `finally` can stop a container by reference to its step, the end of the run can
remove whatever is left, and a later run or the reaper can remove it if this process dies.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from runner.backend.base import REMOVAL_ORDER, Backend, ContainerSpec, Resource, ResourceKind
from runner.teardown import labels
from runner.teardown.ledger import Ledger
from runner.teardown.removal import RemovalReport, remove_all


@dataclass
class Record:
    kind: ResourceKind
    name: str
    step: str
    ident: str = ""
    detached: bool = False
    removed: bool = False

    def as_resource(self) -> Resource:
        return Resource(self.kind, self.ident or self.name, self.name, {}, time.time())


@dataclass(frozen=True)
class ResourceChange:
    """A resource of the run created (confirmed by the engine) or removed, for whoever shows the run."""

    kind: ResourceKind
    name: str
    step: str
    service: bool  # a container that runs beside steps
    removed: bool


ResourceObserver = Callable[[ResourceChange], None]


@dataclass
class SweepReport:
    removal: RemovalReport
    left_running: list[Record]  # detached containers the pipeline never stopped
    created: int
    removed: int
    seconds: float


class TeardownManager:
    def __init__(
        self,
        backend: Backend,
        ledger: Ledger,
        run_id: str,
        pipeline: str,
        owner: labels.Owner,
        observer: ResourceObserver | None = None,
    ) -> None:
        self.backend = backend
        self.observer = observer
        self.ledger = ledger
        self.run_id = run_id
        self.pipeline = pipeline
        self.owner = owner
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self.counter = 0

    def name(self, suffix: str) -> str:
        with self.lock:
            self.counter += 1
            return f"runner-{self.run_id}-{suffix}-{self.counter}"

    def labels(self, step: str = "") -> dict[str, str]:
        return labels.run_labels(self.run_id, self.pipeline, self.owner, step)

    def _track(self, kind: ResourceKind, name: str, step: str, detached: bool = False) -> Record:
        self.ledger.intend(self.run_id, kind, name, step)
        record = Record(kind, name, step, detached=detached)
        with self.lock:
            self.records.append(record)
        return record

    def _confirm(self, record: Record, ident: str) -> None:
        record.ident = ident
        self.ledger.confirm(self.run_id, record.kind, record.name, ident)
        self._tell(record, removed=False)

    def _tell(self, record: Record, removed: bool) -> None:
        if self.observer is not None:
            self.observer(ResourceChange(record.kind, record.name, record.step, record.detached, removed))

    def create_network(self) -> str:
        record = self._track("network", f"runner-{self.run_id}-net", "")
        self._confirm(record, self.backend.create_network(record.name, self.labels()))
        return record.name

    def create_volume(self, purpose: str) -> str:
        record = self._track("volume", f"runner-{self.run_id}-{purpose}", "")
        self._confirm(record, self.backend.create_volume(record.name, self.labels()))
        return record.name

    def create_container(self, spec: ContainerSpec, step: str, detached: bool) -> str:
        record = self._track("container", spec.name, step, detached)
        spec = dataclasses.replace(spec, labels={**self.labels(step), **spec.labels})
        self._confirm(record, self.backend.create_container(spec))
        return record.ident

    def commit_image(self, container_id: str, tag: str) -> str:
        """An image of the container, labelled as the run's (it keeps the container's labels)."""
        record = self._track("image", tag, "")
        self._confirm(record, self.backend.commit(container_id, tag))
        return record.name

    def containers_of(self, step: str) -> list[Record]:
        with self.lock:
            return [r for r in self.records if r.kind == "container" and r.step == step and not r.removed]

    def stop_step(self, step: str) -> RemovalReport:
        """Stop and remove every container that `step` started: a stop by reference."""
        return self._remove(self.containers_of(step))

    def remove_container(self, ident: str) -> RemovalReport:
        with self.lock:
            found = [r for r in self.records if r.kind == "container" and ident in (r.ident, r.name)]
        return self._remove(found)

    def _remove(self, records: list[Record]) -> RemovalReport:
        by_ident = {r.ident or r.name: r for r in records}

        def mark(resource: Resource) -> None:
            record = by_ident[resource.id]
            record.removed = True
            self.ledger.removed(self.run_id, record.kind, record.name)
            self._tell(record, removed=True)

        return remove_all(self.backend, [r.as_resource() for r in records], on_removed=mark)

    def sweep(self) -> SweepReport:
        """Remove everything of this run that is still there, including what only the labels know."""
        started = time.monotonic()
        with self.lock:
            remaining = [r for r in self.records if not r.removed]
            known = {r.name for r in self.records} | {r.ident for r in self.records}
        left_running = [r for r in remaining if r.kind == "container" and r.detached]
        report = self._remove(remaining)
        stray = [
            resource
            for kind in REMOVAL_ORDER
            for resource in self.backend.list_resources(kind, f"{labels.RUN_ID}={self.run_id}")
            if resource.name not in known and resource.id not in known
        ]
        if stray:
            report.merge(remove_all(self.backend, stray))
        with self.lock:
            created = len(self.records) + len(stray)
            removed = (
                sum(1 for r in self.records if r.removed)
                + len(stray)
                - len([f for f, _ in report.failed if f in stray])
            )
        return SweepReport(report, left_running, created, removed, time.monotonic() - started)
