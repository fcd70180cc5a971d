"""One step: taken from an earlier run, skipped by its condition, or run with its retries; its result."""

from __future__ import annotations

import sys
import time

from runner.engine.actions import Actions
from runner.engine.container_step import Outcome
from runner.engine.context import RunContext, StopCheck
from runner.engine.reuse import CarriedStep
from runner.engine.status import Block, StepResult, StepStatus
from runner.engine.templating import TemplateError
from runner.errors import RunnerError
from runner.expressions import state
from runner.model import ContainerRun, Step

ARTIFACT_DAYS = 14  # as long as Bitbucket keeps them: a later `--step` or re-run may need them


def final_status(step: Step, status: StepStatus, attempts: int) -> tuple[StepStatus, bool]:
    """A step's status after its attempts, as Kestra's worker decides it, and whether it is an allowed
    failure: a success after a failed attempt is a WARNING with warningOnRetry; an allowed failure ends
    as the step says (FAILED and shown, or WARNING); with allowWarning a WARNING is a SUCCESS."""
    if status is StepStatus.SUCCESS and attempts > 1 and step.retry and step.retry.warning_on_retry:
        status = StepStatus.WARNING
    allowed = step.allow_failure and status.is_failure
    if allowed and step.allowed_failure_state == "WARNING":
        status, allowed = StepStatus.WARNING, False
    if status is StepStatus.WARNING and step.allow_warning:
        status = StepStatus.SUCCESS
    return status, allowed


class StepRunner:
    def __init__(self, run: RunContext, actions: Actions) -> None:
        self.run = run
        self.actions = actions

    def execute(self, step: Step, block: Block, should_stop: StopCheck) -> StepResult:
        carried = self.run.options.carried.get(step.id) if block is Block.STEPS else None
        if carried is not None:
            return self._carry(step, block, carried)
        skip = step.skip_reason if step.skip_reason is not None else ("" if should_stop() else None)
        if skip is None and step.run_if is not None:
            skip = self._run_if(step)
        if skip is None and step.condition_state is not None:
            skip = self._state_condition(step, step.condition_state, block)
        if skip is not None:
            self.run.ahead.drop(step.id)
            result = StepResult(step.id, step.name, block, StepStatus.SKIPPED, message=skip)
            self.run.record(step, result)
            return result
        self.run.reporter.step_started(step, block)
        started = time.monotonic()
        outcome, attempts = self._attempts(step, block, should_stop)
        status, allowed = final_status(step, outcome.status, attempts)
        result = StepResult(
            step.id,
            step.name,
            block,
            status,
            outcome.exit_code,
            time.monotonic() - started,
            self.run.mask(outcome.message),
            allowed_failure=allowed,
            outputs=self._outputs(step, outcome),
        )
        self.run.record(step, result)
        return result

    def _carry(self, step: Step, block: Block, carried: CarriedStep) -> StepResult:
        """A step not run again: what it left in an earlier run is taken as if it had just run."""
        source = self.run.ledger.directory / "artifacts" / carried.from_run / step.id
        action = step.action
        declares = isinstance(action, ContainerRun) and action.artifacts is not None
        if not self.run.artifacts.adopt(step.id, source) and declares:
            self.run.reporter.notice(
                f"{step.name}: the artifacts of run {carried.from_run} are gone (they are kept "
                f"{ARTIFACT_DAYS} days): later steps start without them",
                warning=True,
            )
        self.run.shared.add(step.id, carried.variables, carried.masked)
        allowed = carried.status.is_failure and step.allow_failure
        result = StepResult(
            step.id,
            step.name,
            block,
            carried.status,
            message=carried.message,
            allowed_failure=allowed,
            outputs=dict(carried.outputs),
            carried_from=carried.from_run,
        )
        self.run.record(step, result)
        return result

    def _state_condition(self, step: Step, expression: str, block: Block) -> str | None:
        """None when the step runs; otherwise why it is skipped. A condition that cannot be evaluated
        skips the step, and says why: running a deploy on a condition nobody could read is worse."""
        action = step.action
        variables = {**(action.env if isinstance(action, ContainerRun) else {}), **self.run.env(block)}
        try:
            holds = state.evaluate(expression, variables)
        except state.StateError as exc:
            self.run.reporter.notice(
                f"{step.name}: condition.state {expression!r}: {exc.message}", warning=True
            )
            return f"condition.state could not be evaluated: {exc.message}"
        return None if holds else f"condition.state is false: {expression}"

    def _run_if(self, step: Step) -> str | None:
        """None when the step runs; otherwise why it is skipped."""
        if self.run.templates is None or step.run_if is None:
            return None
        try:
            shown = self.run.templates.render(step.run_if, self.run.templates.names(step))
        except TemplateError as exc:
            return f"runIf could not be evaluated: {exc.message}"
        return None if self.run.templates.truthy(shown) else f"runIf is {shown!r}"

    def _attempts(self, step: Step, block: Block, should_stop: StopCheck) -> tuple[Outcome, int]:
        """The step's last outcome, and how many attempts it took."""
        retry = step.retry
        attempts = (retry.max_attempts or sys.maxsize) if retry else 1
        interval = retry.interval if retry else 0.0
        deadline = time.monotonic() + retry.max_duration if retry and retry.max_duration else None
        outcome = Outcome(StepStatus.FAILED)
        attempt = 0
        for attempt in range(1, attempts + 1):
            try:
                outcome = self.actions.act(step, block, should_stop, attempt)
            except RunnerError as exc:
                outcome = Outcome(
                    StepStatus.FAILED, None, exc.message + (f" ({exc.hint})" if exc.hint else "")
                )
            last = attempt == attempts or (deadline is not None and time.monotonic() + interval > deadline)
            if not outcome.status.is_failure or last or should_stop():
                break
            self.run.reporter.notice(
                f"{step.name}: attempt {attempt} {outcome.status.value}; retrying in {interval:g}s"
            )
            time.sleep(interval)
            if retry is not None:
                interval = min(interval * retry.factor, retry.max_interval or float("inf"))
        return outcome, attempt

    def _outputs(self, step: Step, outcome: Outcome) -> dict[str, object]:
        outputs = dict(outcome.outputs)
        if outcome.container_id:
            outputs["containerId"] = outcome.container_id
        if outcome.exit_code is not None:
            outputs["exitCode"] = outcome.exit_code
        for path, source in step.output_aliases.items():
            if source in outputs:
                *parents, leaf = path.split(".")
                target = outputs
                for parent in parents:
                    target = target.setdefault(parent, {})  # type: ignore[assignment]
                target[leaf] = outputs[source]
        return outputs
