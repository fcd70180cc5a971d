"""Find and remove what earlier runs left behind, by their labels."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.backend.base import REMOVAL_ORDER, Backend, Resource
from runner.teardown import labels
from runner.teardown.ledger import Ledger, RunRecord
from runner.teardown.removal import RemovalReport, remove_all


@dataclass
class RunResources:
    run_id: str
    pipeline: str
    owner: labels.Owner | None
    resources: list[Resource] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.owner is not None and self.owner.is_alive()

    @property
    def oldest(self) -> float:
        return min((r.created for r in self.resources if r.created), default=time.time())


def labelled_runs(backend: Backend) -> list[RunResources]:
    """Every run that still has a labelled resource on the engine, grouped by run id."""
    runs: dict[str, RunResources] = {}
    for kind in REMOVAL_ORDER:
        for resource in backend.list_resources(kind, labels.RUN_ID):
            run_id = resource.labels.get(labels.RUN_ID, "")
            if run_id not in runs:
                owner = labels.Owner.parse(resource.labels.get(labels.OWNER, ""))
                runs[run_id] = RunResources(run_id, resource.labels.get(labels.PIPELINE, ""), owner)
            runs[run_id].resources.append(resource)
    return list(runs.values())


@dataclass(frozen=True)
class LeakFilter:
    run_id: str | None = None
    older_than: float | None = None  # seconds
    include_alive: bool = False
    exclude_run: str | None = None

    def matches(self, run: RunResources) -> bool:
        if self.exclude_run and run.run_id == self.exclude_run:
            return False
        if self.run_id and run.run_id != self.run_id:
            return False
        if self.older_than is not None and time.time() - run.oldest < self.older_than:
            return False
        if self.run_id:
            return True  # naming a run is explicit consent, alive or not
        return self.include_alive or not run.alive


def find_leaks(backend: Backend, leak_filter: LeakFilter) -> list[RunResources]:
    return [run for run in labelled_runs(backend) if leak_filter.matches(run)]


def reconcile(ledger: Ledger, engine: str | None = None) -> list[str]:
    """Mark the runs that the ledger still shows running, but whose runner is dead, as killed; with
    `engine`, only the runs of that engine: another engine's resources are not visible from here."""
    ended = []
    for record in ledger.unfinished(engine):
        if not still_going(record):
            ledger.end_run(record.run_id, "killed", None)
            ended.append(record.run_id)
    return ended


def still_going(record: RunRecord) -> bool:
    """Whether the ledger shows the run running and its runner is alive (or cannot be told: an owner
    recorded in a form this runner does not read is taken for alive, so nothing of it is touched)."""
    if record.status != "running":
        return False
    owner = labels.Owner.parse(record.owner)
    return owner is None or owner.is_alive()


def remove_runs(
    backend: Backend,
    runs: list[RunResources],
    ledger: Ledger | None = None,
    on_removed: Callable[[Resource], None] | None = None,
) -> RemovalReport:
    report = remove_all(backend, [r for run in runs for r in run.resources], on_removed=on_removed)
    if ledger is not None:
        for run in runs:
            record = ledger.run(run.run_id)
            if record is not None and record.status == "running":
                ledger.end_run(run.run_id, "leaked", None)
            for resource in run.resources:
                ledger.removed(run.run_id, resource.kind, resource.name)
    return report
