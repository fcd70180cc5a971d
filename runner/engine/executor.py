"""Runs a `Pipeline` from start to end: the ledger's record, the guard, services and steps (through the
scheduler), `errors` after a failure, `finally` always, `afterExecution`, and the sweep."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from runner.backend.base import Backend
from runner.engine.actions import Actions
from runner.engine.artifacts import prune
from runner.engine.context import ConfirmManual, RunContext, RunOptions, new_run_id
from runner.engine.events import Reporter
from runner.engine.interrupts import Interrupts
from runner.engine.scheduling import Scheduler
from runner.engine.status import Block, ResourceSummary, RunResult, StepResult, StepStatus
from runner.engine.steps import ARTIFACT_DAYS, StepRunner
from runner.engine.templating import TemplateError
from runner.errors import InputError, ResourceGone, RunnerError
from runner.model import WORKSPACE, ContainerRun, Mount, Pipeline
from runner.teardown.labels import Owner
from runner.teardown.leaks import LeakFilter, find_leaks, reconcile, remove_runs
from runner.teardown.lease import GuardedLease
from runner.teardown.ledger import Ledger
from runner.teardown.manager import TeardownManager

__all__ = ["ConfirmManual", "Executor", "RunOptions"]


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
        self.owner = Owner.current()
        run_id = (options.run_id if options else "") or new_run_id()
        teardown = TeardownManager(backend, ledger, run_id, pipeline.name, self.owner, reporter.resource)
        self.context = RunContext(
            pipeline, backend, ledger, reporter, options or RunOptions(), interrupts or Interrupts(), teardown
        )
        self.actions = Actions(self.context)
        self.steps = StepRunner(self.context, self.actions)
        self.scheduler = Scheduler(self.context, self.steps)
        self.session_lease: GuardedLease | None = None
        self.guard = "none (this run is not guarded)"
        self.outputs: dict[str, object] = {}

    @property
    def run_id(self) -> str:
        return self.context.run_id

    @property
    def results(self) -> list[StepResult]:
        return self.context.results

    def run(self) -> RunResult:
        self._check_paths()
        lease = self._begin()
        self.context.interrupts.install()
        try:
            return self._complete(lease, self._phases)
        finally:
            self.context.interrupts.restore()

    def start_services(self) -> bool:
        """Start the pipeline's services and leave them running; True when every one is ready.
        `stop_services` ends the run, whatever happened."""
        self.session_lease = self._begin()
        try:
            self._before_work(self.session_lease)
            self._prepare_run()
            return not self.scheduler.run_block(Block.SERVICES, self.pipeline.services)
        except BaseException:
            self.stop_services()
            raise

    def stop_services(self) -> RunResult:
        return self._complete(self.session_lease, lambda lease: None)

    def _check_paths(self) -> None:
        """Bind mounts name paths of the engine's machine: on a remote engine, this machine's paths would
        silently mean other (or no) files there, so such a run is refused before anything starts."""
        if not self.context.backend.info().remote:
            return
        where = self.context.backend.info().address
        if self.context.options.bind:
            raise InputError(
                f"--bind mounts {self.pipeline.context} of this machine, but the engine at {where} runs on "
                "another machine, where that path names other files or none",
                "drop --bind: without it the directory is copied into a volume, which works on any engine",
            )
        for step in self.pipeline.all_steps():
            action = step.action
            if not isinstance(action, ContainerRun):
                continue
            for mount in action.mounts:
                if mount.bind:
                    raise InputError(
                        f"step '{step.id}' bind-mounts {mount.source} at {mount.target}, but the engine at "
                        f"{where} runs on another machine, where that path names other files or none",
                        "use a local engine for this pipeline (--engine), or pass the files through the "
                        "workspace or a volume",
                    )

    def _begin(self) -> GuardedLease | None:
        # recorded first: a run the ledger cannot record must not start unguarded
        self.context.ledger.start_run(
            self.context.run_id,
            self.pipeline.name,
            str(self.pipeline.source),
            str(self.owner),
            engine=self.context.backend.info().id,
            selection=self.context.options.selection,
            build_number=self.context.options.build_number,
            parent=self.context.options.parent,
        )
        # a kept run must outlive its runner: only the process watchdog can be told so ("done")
        lease = (
            GuardedLease(
                self.context.backend,
                self.context.run_id,
                prefer_container=not self.context.options.keep,
                notice=self.context.reporter.notice,
                engine=self.context.backend.info().selector,
            )
            if self.context.options.lease
            else None
        )
        self.context.reporter.run_started(self.pipeline, self.context.run_id)
        return lease

    def _complete(self, lease: GuardedLease | None, work: Callable[[GuardedLease | None], None]) -> RunResult:
        try:
            try:
                work(lease)
            finally:
                resources = self._finish()
        except BaseException:
            with contextlib.suppress(RunnerError):
                self.context.ledger.end_run(self.context.run_id, "error", None)
            if lease is not None:
                lease.abandon()  # the reaper removes what this process could not
            raise
        if lease is not None:
            lease.release()
        result = self._result(resources)
        self.context.ledger.end_run(self.context.run_id, result.status, result.exit_code)
        self.context.reporter.run_finished(result)
        return result

    def _result(self, resources: ResourceSummary | None) -> RunResult:
        return RunResult(
            self.context.run_id,
            self.pipeline.name,
            self.context.results,
            self.context.interrupts.interrupted,
            resources,
            paused=self.context.paused,
            log_dir=str(self.context.log_dir),
            guard=self.guard,
            deciding_blocks=None
            if self.pipeline.cleanup_failures_fail_run
            else (Block.SERVICES, Block.STEPS),
            exit_state=self.context.exit_state,
            outputs=self.outputs,
        )

    def _before_work(self, lease: GuardedLease | None) -> None:
        if self.context.options.sweep_dead_runs:
            self._sweep_dead_runs()
        if lease is not None:
            lease.wait_ready()
            self.guard = lease.describe()
        self.context.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        root = self.context.ledger.directory / "artifacts"
        keep = {self.context.run_id, *(carried.from_run for carried in self.context.options.carried.values())}
        prune(root, keep, time.time() - ARTIFACT_DAYS * 86400)

    def _phases(self, lease: GuardedLease | None) -> None:
        self._before_work(lease)
        failed = self._main_phase()
        if failed and not self.context.interrupts.interrupted and self.context.exit_state is None:
            self.scheduler.run_block(Block.ERRORS, self.pipeline.errors)
        self.scheduler.run_block(Block.FINALLY, self.pipeline.finally_)
        self._render_outputs()
        if self.pipeline.after:
            if self.context.templates is not None:
                self.context.templates.state = self._state().upper()
            self.scheduler.run_block(
                Block.AFTER, self.pipeline.after, lambda: self.context.interrupts.abandon_finally
            )

    def _render_outputs(self) -> None:
        """The pipeline's outputs, rendered once the run has its results; one that cannot be rendered
        fails the run, as in Kestra."""
        templates = self.context.templates
        if templates is None or not self.pipeline.outputs:
            return
        names = templates.names(None)
        for output_id, expression in self.pipeline.outputs.items():
            try:
                self.outputs[output_id] = templates.render(expression, names)
            except TemplateError as exc:
                message = f"output '{output_id}' could not be rendered: {exc.message}"
                self.context.results.append(
                    StepResult("outputs", "outputs", Block.STEPS, StepStatus.FAILED, message=message)
                )

    def _state(self) -> str:
        return self._result(None).status

    def _sweep_dead_runs(self) -> None:
        reconcile(self.context.ledger, self.context.backend.info().id)
        leaks = find_leaks(self.context.backend, LeakFilter(exclude_run=self.context.run_id))
        if leaks:
            report = remove_runs(self.context.backend, leaks, self.context.ledger)
            self.context.reporter.notice(
                f"removed {len(report.removed)} resources left by {len(leaks)} earlier run(s) "
                "whose runner died"
            )

    def _main_phase(self) -> bool:
        """Services then steps; True when one failed (the rest are then skipped)."""
        if self.pipeline.timeout is not None:
            self.context.deadline = time.monotonic() + self.pipeline.timeout
        try:
            self._prepare_run()
        except RunnerError as exc:
            self.context.reporter.notice(f"could not prepare the run: {exc.message}", warning=True)
            self.context.results.append(
                StepResult("setup", "setup", Block.STEPS, StepStatus.FAILED, message=exc.message)
            )
            self.scheduler.skip(Block.SERVICES, self.pipeline.services)
            self.scheduler.skip(Block.STEPS, self.pipeline.steps)
            return True
        if self.scheduler.run_block(Block.SERVICES, self.pipeline.services):
            self.scheduler.skip(Block.STEPS, self.pipeline.steps)
            return True
        return self.scheduler.run_block(Block.STEPS, self.pipeline.steps)

    def _prepare_run(self) -> None:
        self.context.network = self.context.teardown.create_network()
        if self.context.options.bind:
            self.context.workspace = (Mount(source=str(self.pipeline.context), target=WORKSPACE, bind=True),)
        elif self.pipeline.workspace:
            self.context.workspace = (
                Mount(source=self.context.teardown.create_volume("workspace"), target=WORKSPACE),
            )

    def _finish(self) -> ResourceSummary:
        self.context.ahead.close()
        for future in self.context.pending_removals:
            with contextlib.suppress(RunnerError, ResourceGone):
                future.result()
        self.context.removals.shutdown(wait=True)
        if self.context.options.keep:
            created = len(self.context.teardown.records)
            return ResourceSummary(created, 0, [], [], kept=True, sweep_seconds=0.0)
        sweep = self.context.teardown.sweep()
        return ResourceSummary(
            created=sweep.created,
            removed=sweep.removed,
            left_running=[f"{r.step} ({r.name})" for r in sweep.left_running],
            failed=[f"{res.kind} {res.name}: {error}" for res, error in sweep.removal.failed],
            kept=False,
            sweep_seconds=sweep.seconds,
        )
