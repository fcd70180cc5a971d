"""What a run takes from earlier runs: the steps it does not run again, with their artifacts and shared
variables. A resumed run continues a paused one; a re-run runs the failed and skipped steps of a finished
one; a run of some steps (`--step`) takes what the steps before them left in their last local run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from runner.engine.selection import numbered
from runner.engine.status import StepStatus
from runner.errors import InputError
from runner.model import ContainerRun, Pipeline, Step
from runner.teardown.ledger import Ledger, RunRecord, StepRecord

RESUMABLE = frozenset({"paused"})  # stopped before a manual step
RERUNNABLE = frozenset({"failed", "interrupted", "error", "leaked"})


@dataclass(frozen=True)
class CarriedStep:
    """A step not run again: its result, its artifacts and its shared variables come from `from_run`."""

    step_id: str
    from_run: str
    status: StepStatus
    message: str
    variables: Mapping[str, str] = field(default_factory=dict)
    masked: tuple[str, ...] = ()
    outputs: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, record: StepRecord, status: StepStatus, message: str) -> CarriedStep:
        return cls(
            record.step_id, record.run_id, status, message, record.variables, record.masked, record.outputs
        )


@dataclass(frozen=True)
class Continuation:
    """An earlier run this one continues: its steps not run again, and the manual step that starts now."""

    parent: RunRecord
    carried: dict[str, CarriedStep]
    triggered: tuple[str, ...] = ()  # manual steps started by the resume itself


@dataclass(frozen=True)
class Continuable:
    record: RunRecord
    how: str  # "resume" or "rerun-failed"
    where: str  # the step it stopped at or failed in

    @property
    def command(self) -> str:
        return f"runner run --{self.how} {self.record.run_id}"


def continuable(ledger: Ledger, source: str | None = None, limit: int = 5) -> list[Continuable]:
    """The newest runs that can be resumed or re-run (of one file, or of any), leaving out those a later
    run has already continued."""
    records = ledger.runs_of(source, 50) if source else ledger.runs(50)
    continued = {record.parent for record in records if record.parent}
    found: list[Continuable] = []
    for record in records:
        how = resumable(record)
        if how is None or record.run_id in continued:
            continue
        wanted = "PAUSED" if how == "resume" else None
        steps = ledger.steps(record.run_id)
        stopped = (
            [s for s in steps if s.status == wanted]
            if wanted
            else [s for s in steps if s.status in ("FAILED", "TIMED_OUT", "STOPPED")]
        )
        where = (
            f"{'paused before' if wanted else 'failed in'} '{stopped[0].name}'"
            if stopped
            else f"ended {record.status}"
        )
        found.append(Continuable(record, how, where))
        if len(found) == limit:
            break
    return found


def resumable(record: RunRecord) -> str | None:
    """How a run can be continued: "resume", "rerun-failed", or None."""
    if record.status in RESUMABLE:
        return "resume"
    if record.status in RERUNNABLE:
        return "rerun-failed"
    return None


def find_run(ledger: Ledger, source: str, wanted: str | None, mode: str) -> RunRecord:
    """The run `--resume`/`--rerun-failed` names (an id or its start), else the newest of this file that
    can be continued that way."""
    flag = f"--{mode}"
    if wanted:
        found = ledger.find_runs(wanted)
        if not found:
            raise InputError(
                f"{flag}: no run {wanted!r} in the ledger", "`runner list` shows the runs of a file"
            )
        if len({r.run_id for r in found}) > 1:
            ids = ", ".join(r.run_id for r in found[:5])
            raise InputError(f"{flag}: {wanted!r} is the start of several runs: {ids}", "give more of the id")
        record = found[0]
        later = ledger.continued_by(record.run_id)
        if later:
            raise InputError(
                f"{flag}: run {record.run_id} was already continued by run {later[-1].run_id}",
                f"continue that one instead, if it can be: `runner list {record.source}` shows which can",
            )
        if resumable(record) != mode:
            raise InputError(
                f"{flag}: run {record.run_id} ended {record.status}, so it cannot be continued this way",
                _hint(record),
            )
        return record
    for record in ledger.runs_of(source):
        if record.status == "running":
            continue
        if resumable(record) == mode and not ledger.continued_by(record.run_id):
            return record
    raise InputError(
        f"{flag}: no run of {source} can be continued this way",
        "--resume continues a run that stopped before a manual step; --rerun-failed re-runs a failed or "
        "interrupted one",
    )


def _hint(record: RunRecord) -> str:
    how = resumable(record)
    if how is None:
        return "only a paused, failed or interrupted run can be continued"
    return f"continue it with --{how} {record.run_id}"


def resume(ledger: Ledger, pipeline: Pipeline, parent: RunRecord) -> Continuation:
    """Every step that ran keeps its result; the paused manual step starts now, and the rest follow."""
    records = {record.step_id: record for record in ledger.steps(parent.run_id)}
    carried: dict[str, CarriedStep] = {}
    triggered: list[str] = []
    for _, step in numbered(pipeline):
        record = records.get(step.id)
        if record is None or record.status == StepStatus.SKIPPED:
            continue
        if record.status == StepStatus.PAUSED:
            triggered.append(step.id)
            continue
        carried[step.id] = CarriedStep.of(record, StepStatus(record.status), f"ran in run {parent.run_id}")
    return Continuation(parent, carried, tuple(triggered))


def rerun_failed(ledger: Ledger, pipeline: Pipeline, parent: RunRecord) -> Continuation:
    """The steps that passed keep their result; the failed, stopped and skipped ones run again."""
    records = {record.step_id: record for record in ledger.steps(parent.run_id)}
    carried: dict[str, CarriedStep] = {}
    for _, step in numbered(pipeline):
        record = records.get(step.id)
        if record is not None and record.status == StepStatus.SUCCESS:
            carried[step.id] = CarriedStep.of(record, StepStatus.SUCCESS, f"passed in run {parent.run_id}")
    if len(carried) == len(numbered(pipeline)):
        raise InputError(
            f"--rerun-failed: every step of run {parent.run_id} passed; nothing to run again",
            "run the pipeline again without --rerun-failed",
        )
    return Continuation(parent, carried)


def from_last_runs(
    ledger: Ledger, pipeline: Pipeline, earlier: tuple[Step, ...]
) -> tuple[dict[str, CarriedStep], list[str]]:
    """For steps left out before the chosen ones: what each left in the last local run where it passed,
    and a warning for each that leaves something but never passed here."""
    carried: dict[str, CarriedStep] = {}
    warnings: list[str] = []
    for step in earlier:
        record = ledger.last_passed(str(pipeline.source), pipeline.name, step.id)
        if record is not None:
            message = f"not selected: its artifacts and variables come from run {record.run_id}"
            carried[step.id] = CarriedStep.of(record, StepStatus.SKIPPED, message)
        elif leaves_something(step):
            warnings.append(
                f"step '{step.name}' is not selected and has not passed in an earlier run here: "
                "the selected steps start without its artifacts and variables"
            )
    return carried, warnings


def leaves_something(step: Step) -> bool:
    action = step.action
    if not isinstance(action, ContainerRun):
        return False
    return bool(action.artifacts) or bool(action.shared_outputs and action.shared_outputs.names)
