"""Runs a `Pipeline`: services and steps in order, `errors` after a failure, `finally` always, a sweep."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from runner.backend.base import Backend
from runner.engine import workspace
from runner.engine.container_step import Outcome, StepContext, run_container
from runner.engine.events import Reporter
from runner.engine.images import ImageResolver
from runner.engine.interrupts import Interrupts
from runner.engine.status import Block, ResourceSummary, RunResult, StepResult, StepStatus
from runner.errors import ResourceGone, RunnerError
from runner.model import WORKSPACE, ContainerRun, Mount, Pipeline, Step, StopAction
from runner.teardown.labels import Owner
from runner.teardown.leaks import LeakFilter, find_leaks, remove_runs
from runner.teardown.ledger import Ledger
from runner.teardown.manager import TeardownManager
from runner.teardown.reaper import Lease


@dataclass(frozen=True)
class RunOptions:
    image_map: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    keep: bool = False
    bind: bool = False
    sweep_dead_runs: bool = True
    lease: bool = True


def new_run_id() -> str:
    return secrets.token_hex(5)


class Executor:
    def __init__(
        self,
        pipeline: Pipeline,
        backend: Backend,
        ledger: Ledger,
        reporter: Reporter,
        options: RunOptions | None = None,
        interrupts: Interrupts | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.backend = backend
        self.ledger = ledger
        self.reporter = reporter
        self.options = options or RunOptions()
        self.interrupts = interrupts or Interrupts()
        self.run_id = new_run_id()
        self.owner = Owner.current()
        self.teardown = TeardownManager(backend, ledger, self.run_id, pipeline.name, self.owner)
        self.images = ImageResolver(backend, self.options.image_map)
        self.results: list[StepResult] = []
        self.network: str | None = None
        self.mounts: tuple[Mount, ...] = ()
        self.seed_lock = threading.Lock()
        self.seeded = not pipeline.workspace or self.options.bind
        self.removals = ThreadPoolExecutor(max_workers=4, thread_name_prefix="remove")
        self.pending_removals: list[Future[object]] = []
        self.log_dir = ledger.directory / "logs" / self.run_id
        self.deadline: float | None = None

    # the run

    def run(self) -> RunResult:
        # recorded first: a run the ledger cannot record must not start unguarded
        self.ledger.start_run(self.run_id, self.pipeline.name, str(self.pipeline.source), str(self.owner))
        lease = Lease(self.run_id) if self.options.lease else None
        self.interrupts.install()
        self.reporter.run_started(self.pipeline, self.run_id)
        try:
            try:
                self._phases(lease)
            finally:
                resources = self._finish()
        except BaseException:
            with contextlib.suppress(RunnerError):
                self.ledger.end_run(self.run_id, "error", None)
            if lease is not None:
                lease.abandon()  # the reaper removes what this process could not
            raise
        finally:
            self.interrupts.restore()
        if lease is not None:
            lease.release()
        result = RunResult(
            self.run_id,
            self.pipeline.name,
            self.results,
            self.interrupts.interrupted,
            resources,
            str(self.log_dir),
        )
        self.ledger.end_run(self.run_id, result.status, result.exit_code)
        self.reporter.run_finished(result)
        return result

    def _phases(self, lease: Lease | None) -> None:
        if self.options.sweep_dead_runs:
            self._sweep_dead_runs()
        if lease is not None:
            lease.wait_ready()
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        failed = self._main_phase()
        if failed and not self.interrupts.interrupted:
            self._run_block(Block.ERRORS, self.pipeline.errors, stop_on_failure=False)
        self._run_block(Block.FINALLY, self.pipeline.finally_, stop_on_failure=False, in_finally=True)

    def _sweep_dead_runs(self) -> None:
        leaks = find_leaks(self.backend, LeakFilter(exclude_run=self.run_id))
        if leaks:
            report = remove_runs(self.backend, leaks, self.ledger)
            self.reporter.notice(
                f"removed {len(report.removed)} resources left by {len(leaks)} earlier run(s) "
                "whose runner died"
            )

    def _main_phase(self) -> bool:
        """Services then steps; True when one failed (the rest are then skipped)."""
        if self.pipeline.timeout is not None:
            self.deadline = time.monotonic() + self.pipeline.timeout
        try:
            self._prepare_run()
        except RunnerError as exc:
            self.reporter.notice(f"could not prepare the run: {exc.message}", warning=True)
            self.results.append(
                StepResult("setup", "setup", Block.STEPS, StepStatus.FAILED, message=exc.message)
            )
            self._skip(Block.SERVICES, self.pipeline.services)
            self._skip(Block.STEPS, self.pipeline.steps)
            return True
        if self._run_block(Block.SERVICES, self.pipeline.services, stop_on_failure=True):
            self._skip(Block.STEPS, self.pipeline.steps)
            return True
        return self._run_block(Block.STEPS, self.pipeline.steps, stop_on_failure=True)

    def _prepare_run(self) -> None:
        self.network = self.teardown.create_network()
        if self.options.bind:
            self.mounts = (Mount(source=str(self.pipeline.context), target=WORKSPACE, bind=True),)
        elif self.pipeline.workspace:
            self.mounts = (Mount(source=self.teardown.create_volume("workspace"), target=WORKSPACE),)

    def _run_block(
        self, block: Block, steps: tuple[Step, ...], *, stop_on_failure: bool, in_finally: bool = False
    ) -> bool:
        failed = False
        for index, step in enumerate(steps):
            stopping = self.interrupts.abandon_finally if in_finally else self.interrupts.interrupted
            if stopping or (failed and stop_on_failure):
                self._skip(block, steps[index:])
                break
            result = self._run_step(step, block, in_finally)
            failed = failed or result.fails_run or result.status is StepStatus.STOPPED
        return failed

    def _skip(self, block: Block, steps: tuple[Step, ...]) -> None:
        for step in steps:
            result = StepResult(step.id, step.name, block, StepStatus.SKIPPED)
            self._record(step, result)

    def _run_step(self, step: Step, block: Block, in_finally: bool) -> StepResult:
        self.reporter.step_started(step, block)
        started = time.monotonic()
        try:
            outcome = self._act(step, block, in_finally)
        except RunnerError as exc:
            outcome = Outcome(StepStatus.FAILED, None, exc.message + (f" ({exc.hint})" if exc.hint else ""))
        result = StepResult(
            step.id,
            step.name,
            block,
            outcome.status,
            outcome.exit_code,
            time.monotonic() - started,
            outcome.message,
            allowed_failure=step.allow_failure and outcome.status.is_failure,
        )
        if outcome.container_id:
            result.outputs["containerId"] = outcome.container_id
        if outcome.exit_code is not None:
            result.outputs["exitCode"] = outcome.exit_code
        self._record(step, result)
        return result

    def _record(self, step: Step, result: StepResult) -> None:
        self.results.append(result)
        self.ledger.step_result(
            self.run_id,
            step.id,
            step.name,
            result.status.value,
            result.exit_code,
            result.duration,
            str(self.log_dir / f"{step.id}.log"),
        )
        self.reporter.step_finished(step, result)

    # actions

    def _act(self, step: Step, block: Block, in_finally: bool) -> Outcome:
        action = step.action
        if isinstance(action, StopAction):
            return self._stop_by_reference(action.target)
        return self._container(step, action, block, in_finally)

    def _container(self, step: Step, action: ContainerRun, block: Block, in_finally: bool) -> Outcome:
        image = self.images.resolve(action.image)

        def should_stop() -> bool:
            return self.interrupts.abandon_finally if in_finally else self.interrupts.interrupted

        context = StepContext(
            backend=self.backend,
            reporter=self.reporter,
            network=self.network,
            mounts=self.mounts,
            env=dict(self.options.env),
            log_dir=self.log_dir,
            create=self.teardown.create_container,
            prepare=self._seed_workspace,
            should_stop=should_stop,
        )
        outcome = run_container(
            step, action, image, self.teardown.name(step.id), context, self._timeout(step, block)
        )
        if not action.detach or outcome.status is not StepStatus.SUCCESS:
            self._remove_later(step.id)
        return outcome

    def _timeout(self, step: Step, block: Block) -> float | None:
        limits = [step.timeout] if step.timeout else []
        if self.deadline is not None and block in (Block.SERVICES, Block.STEPS):
            limits.append(max(self.deadline - time.monotonic(), 0.001))
        return min(limits) if limits else None

    def _stop_by_reference(self, target: str) -> Outcome:
        records = self.teardown.containers_of(target)
        if not records:
            return Outcome(StepStatus.SUCCESS, None, f"nothing of '{target}' is running")
        report = self.teardown.stop_step(target)
        if report.failed:
            resource, error = report.failed[0]
            return Outcome(StepStatus.FAILED, None, f"could not remove {resource.name}: {error}")
        names = ", ".join(r.name for r in records)
        return Outcome(StepStatus.SUCCESS, None, f"stopped and removed {names}")

    def _seed_workspace(self, container_id: str) -> None:
        if self.seeded:
            return
        with self.seed_lock:
            if not self.seeded:
                self.backend.put_archive(container_id, WORKSPACE, workspace.archive(self.pipeline.context))
                self.seeded = True

    def _remove_later(self, step_id: str) -> None:
        self.pending_removals.append(self.removals.submit(self.teardown.stop_step, step_id))

    # the end

    def _finish(self) -> ResourceSummary:
        for future in self.pending_removals:
            with contextlib.suppress(RunnerError, ResourceGone):
                future.result()
        self.removals.shutdown(wait=True)
        if self.options.keep:
            created = len(self.teardown.records)
            return ResourceSummary(created, 0, [], [], kept=True, sweep_seconds=0.0)
        sweep = self.teardown.sweep()
        return ResourceSummary(
            created=sweep.created,
            removed=sweep.removed,
            left_running=[f"{r.step} ({r.name})" for r in sweep.left_running],
            failed=[f"{res.kind} {res.name}: {error}" for res, error in sweep.removal.failed],
            kept=False,
            sweep_seconds=sweep.seconds,
        )
