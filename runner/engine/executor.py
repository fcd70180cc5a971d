"""Runs a `Pipeline`: services and steps in order, `errors` after a failure, `finally` always, a sweep."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

from runner.backend.base import Backend
from runner.engine.artifacts import ArtifactStore, bundles, prune
from runner.engine.builtin import BuiltinAction, BuiltinContext, run_builtin
from runner.engine.container_step import POLL, Outcome, StepContext, run_container, start_sidecars
from runner.engine.events import Reporter
from runner.engine.images import ImageResolver
from runner.engine.interrupts import Interrupts
from runner.engine.reuse import CarriedStep
from runner.engine.status import Block, ResourceSummary, RunResult, StepResult, StepStatus
from runner.engine.templating import RunTemplates, TemplateError
from runner.engine.variables import SHARED_FILE, SharedVariables, expand, parse, read_file
from runner.engine.workspace import SourceTree
from runner.errors import ImageUnavailable, InputError, ResourceGone, RunnerError
from runner.expressions import state
from runner.model import (
    WORKSPACE,
    ContainerRun,
    Group,
    LogAction,
    Mount,
    Node,
    PipeCall,
    Pipeline,
    Step,
    StopAction,
)
from runner.teardown.labels import PREFIX, Owner
from runner.teardown.leaks import LeakFilter, find_leaks, reconcile, remove_runs
from runner.teardown.lease import GuardedLease
from runner.teardown.ledger import Ledger
from runner.teardown.manager import TeardownManager

ENGINE_SOCKET_TARGET = "/var/run/docker.sock"  # where a step that drives the engine finds its socket
CACHE_LABEL = PREFIX + "cache"
STATUS_VARIABLE = "RUNNER_PIPELINE_STATUS"
FAILED_STEPS_VARIABLE = "RUNNER_FAILED_STEPS"

ConfirmManual = Callable[[Step], bool]
StopCheck = Callable[[], bool]
STOP_GRACE = 10
MANUAL = "manual step: the run stopped before it (continue with --resume, or run with --manual)"
ARTIFACT_DAYS = 14  # as long as Bitbucket keeps them: a later `--step` or re-run may need them


@dataclass(frozen=True)
class RunOptions:
    image_map: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)  # name -> value, masked in every log line
    keep: bool = False
    bind: bool = False
    sweep_dead_runs: bool = True
    lease: bool = True
    max_parallel: int = 4
    confirm_manual: ConfirmManual | None = None  # None: the run stops before a manual step
    carried: Mapping[str, CarriedStep] = field(default_factory=dict)  # steps not run again, by id
    parent: str = ""  # the run this one resumes or re-runs
    selection: Mapping[str, object] = field(default_factory=dict)  # how the pipeline was chosen, kept
    build_number: int = 0


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


def script_segments(
    script: tuple[str, ...], pipes: tuple[tuple[int, PipeCall], ...]
) -> list[tuple[tuple[str, ...], PipeCall | None]]:
    """A script cut at its pipes: (shell lines, None) and ((), pipe) in order."""
    segments: list[tuple[tuple[str, ...], PipeCall | None]] = []
    start = 0
    for position, pipe in pipes:
        if position > start:
            segments.append((script[start:position], None))
        segments.append(((), pipe))
        start = position
    if start < len(script):
        segments.append((script[start:], None))
    return segments


def _nothing(container_id: str) -> None:
    """A container that needs no files put into it before it starts."""


def depths(pipeline: Pipeline) -> dict[str, int]:
    """How many reported groups hold each node: the summary indents a step or group that much."""
    found: dict[str, int] = {}

    def walk(nodes: tuple[Node, ...], depth: int) -> None:
        for node in nodes:
            found[node.id] = depth
            if isinstance(node, Group):
                inner = depth + 1 if node.reported else depth
                for children in (node.steps, node.errors, node.finally_):
                    walk(children, inner)

    for nodes in (pipeline.services, pipeline.steps, pipeline.errors, pipeline.finally_, pipeline.after):
        walk(nodes, 0)
    return found


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
        self.workspace: tuple[Mount, ...] = ()
        self.seed_lock = threading.Lock()
        self.confirm_lock = threading.Lock()
        self.seeded = not pipeline.workspace or self.options.bind
        self.source = SourceTree(pipeline.context, pipeline.source_files)
        self.removals = ThreadPoolExecutor(max_workers=4, thread_name_prefix="remove")
        self.pending_removals: list[Future[object]] = []
        self.log_dir = ledger.directory / "logs" / self.run_id
        self.artifacts = ArtifactStore(ledger.directory / "artifacts" / self.run_id)
        self.deadline: float | None = None
        self.paused = False
        self.session_lease: GuardedLease | None = None
        self.guard = "none (this run is not guarded)"
        self.templates = RunTemplates(pipeline.templating, self.run_id) if pipeline.templating else None
        self.shared = SharedVariables(self.options.secrets)
        self.depths = depths(pipeline)

    # the run

    def run(self) -> RunResult:
        self._check_paths()
        lease = self._begin()
        self.interrupts.install()
        try:
            return self._complete(lease, self._phases)
        finally:
            self.interrupts.restore()

    def start_services(self) -> bool:
        """Start the pipeline's services and leave them running; True when every one is ready.
        `stop_services` ends the run, whatever happened."""
        self.session_lease = self._begin()
        try:
            self._before_work(self.session_lease)
            self._prepare_run()
            return not self._run_block(Block.SERVICES, self.pipeline.services)
        except BaseException:
            self.stop_services()
            raise

    def stop_services(self) -> RunResult:
        return self._complete(self.session_lease, lambda lease: None)

    def _check_paths(self) -> None:
        """Bind mounts name paths of the engine's machine: on a remote engine, this machine's paths would
        silently mean other (or no) files there, so such a run is refused before anything starts."""
        if not self.backend.info().remote:
            return
        where = self.backend.info().address
        if self.options.bind:
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
        self.ledger.start_run(
            self.run_id,
            self.pipeline.name,
            str(self.pipeline.source),
            str(self.owner),
            engine=self.backend.info().id,
            selection=self.options.selection,
            build_number=self.options.build_number,
            parent=self.options.parent,
        )
        # a kept run must outlive its runner: only the process watchdog can be told so ("done")
        lease = (
            GuardedLease(
                self.backend,
                self.run_id,
                prefer_container=not self.options.keep,
                notice=self.reporter.notice,
                engine=self.backend.info().selector,
            )
            if self.options.lease
            else None
        )
        self.reporter.run_started(self.pipeline, self.run_id)
        return lease

    def _complete(self, lease: GuardedLease | None, work: Callable[[GuardedLease | None], None]) -> RunResult:
        try:
            try:
                work(lease)
            finally:
                resources = self._finish()
        except BaseException:
            with contextlib.suppress(RunnerError):
                self.ledger.end_run(self.run_id, "error", None)
            if lease is not None:
                lease.abandon()  # the reaper removes what this process could not
            raise
        if lease is not None:
            lease.release()
        result = self._result(resources)
        self.ledger.end_run(self.run_id, result.status, result.exit_code)
        self.reporter.run_finished(result)
        return result

    def _result(self, resources: ResourceSummary | None) -> RunResult:
        return RunResult(
            self.run_id,
            self.pipeline.name,
            self.results,
            self.interrupts.interrupted,
            resources,
            paused=self.paused,
            log_dir=str(self.log_dir),
            guard=self.guard,
            deciding_blocks=None
            if self.pipeline.cleanup_failures_fail_run
            else (Block.SERVICES, Block.STEPS),
        )

    def _before_work(self, lease: GuardedLease | None) -> None:
        if self.options.sweep_dead_runs:
            self._sweep_dead_runs()
        if lease is not None:
            lease.wait_ready()
            self.guard = lease.describe()
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        root = self.ledger.directory / "artifacts"
        keep = {self.run_id, *(carried.from_run for carried in self.options.carried.values())}
        prune(root, keep, time.time() - ARTIFACT_DAYS * 86400)

    def _phases(self, lease: GuardedLease | None) -> None:
        self._before_work(lease)
        failed = self._main_phase()
        if failed and not self.interrupts.interrupted:
            self._run_block(Block.ERRORS, self.pipeline.errors)
        self._run_block(Block.FINALLY, self.pipeline.finally_)
        if self.pipeline.after:
            if self.templates is not None:
                self.templates.state = self._state().upper()
            self._run_block(Block.AFTER, self.pipeline.after, lambda: self.interrupts.abandon_finally)

    def _state(self) -> str:
        return self._result(None).status

    def _sweep_dead_runs(self) -> None:
        reconcile(self.ledger, self.backend.info().id)
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
        if self._run_block(Block.SERVICES, self.pipeline.services):
            self._skip(Block.STEPS, self.pipeline.steps)
            return True
        return self._run_block(Block.STEPS, self.pipeline.steps)

    def _prepare_run(self) -> None:
        self.network = self.teardown.create_network()
        if self.options.bind:
            self.workspace = (Mount(source=str(self.pipeline.context), target=WORKSPACE, bind=True),)
        elif self.pipeline.workspace:
            self.workspace = (Mount(source=self.teardown.create_volume("workspace"), target=WORKSPACE),)

    # blocks, groups and steps

    def _stopping(self, block: Block) -> bool:
        if block in (Block.FINALLY, Block.AFTER):
            return self.interrupts.abandon_finally
        return self.interrupts.interrupted

    def _run_block(self, block: Block, nodes: tuple[Node, ...], should_stop: StopCheck | None = None) -> bool:
        """Run `nodes` in order; True when one failed. Outside `errors`, `finally` and `after`, a failure,
        an interrupt or a manual step nobody starts skips the rest."""
        stop = should_stop or (lambda: self._stopping(block))
        keep_going = block in (Block.ERRORS, Block.FINALLY, Block.AFTER)
        failed = False
        for index, node in enumerate(nodes):
            if stop() or (failed and not keep_going):
                self._skip(block, nodes[index:])
                break
            if isinstance(node, Step) and self._waits_for_a_click(node, block):
                self._pause(block, node, nodes[index + 1 :])
                break
            if isinstance(node, Group):
                failed = self._run_group(node, block, stop) or failed
                if self.paused and block is Block.STEPS:  # a manual step of the group nobody started
                    self._skip(block, nodes[index + 1 :])
                    break
            else:
                result = self._run_step(node, block, stop)
                failed = failed or result.fails_run or result.status is StepStatus.STOPPED
        return failed

    def _waits_for_a_click(self, step: Step, block: Block) -> bool:
        """A manual step nobody starts: the run pauses before it (a step that ran before a resume is
        not asked about again)."""
        return (
            step.manual
            and block is Block.STEPS
            and step.id not in self.options.carried
            and not self._confirmed(step)
        )

    def _confirmed(self, step: Step) -> bool:
        confirm = self.options.confirm_manual
        with self.confirm_lock:  # parallel manual steps are asked about one at a time
            return confirm is not None and confirm(step)

    def _pause(self, block: Block, step: Step, rest: tuple[Node, ...]) -> None:
        self.paused = True
        self._record(step, StepResult(step.id, step.name, block, StepStatus.PAUSED, message=MANUAL))
        self._skip(block, rest)

    def _run_group(self, group: Group, block: Block, outer_stop: StopCheck) -> bool:
        """The group's nodes, then its own `errors` when one failed, then its own `finally`; True when
        the group failed (an allowed failure of the group does not count)."""
        first = len(self.results)
        failed = self._run_group_nodes(group, block, outer_stop)
        if not group.reported:
            return failed and not group.allow_failure
        status = self._group_state(group, failed)
        if failed and group.allow_failure:
            # the group ends WARNING (or SUCCESS): the failures inside it no longer decide the run
            for result in self.results[first:]:
                if result.status.is_failure:
                    result.allowed_failure = True
        result = StepResult(group.id, group.name, block, status, group=True)
        result.depth = self.depths.get(group.id, 0)
        self.results.insert(first, result)
        if self.templates is not None:
            self.templates.record(group.id, status.value, {})
        self.ledger.step_result(self.run_id, group.id, group.name, status.value, None, 0.0, "")
        self.reporter.step_finished(group, result)
        return status.is_failure

    def _group_state(self, group: Group, failed: bool) -> StepStatus:
        """As Kestra decides a flowable's state from its children: stopped, else failed, else warning,
        else paused, else success; then the group's own allowFailure and allowWarning."""
        latest = {result.step_id: result.status for result in self.results}
        children = [latest[node.id] for node in group.steps if node.id in latest]
        status = StepStatus.SUCCESS
        if not self.interrupts.interrupted:
            # a sibling stopped because another one failed (failFast): the group failed, it was not killed
            children = [StepStatus.FAILED if child is StepStatus.STOPPED else child for child in children]
        for candidate in (StepStatus.STOPPED, StepStatus.FAILED, StepStatus.WARNING, StepStatus.PAUSED):
            if candidate in children or (candidate is StepStatus.FAILED and StepStatus.TIMED_OUT in children):
                status = candidate
                break
        if status is StepStatus.FAILED and not failed:
            status = StepStatus.WARNING  # every failure inside was an allowed one
        if children and all(child is StepStatus.SKIPPED for child in children):
            status = StepStatus.SKIPPED
        if status.is_failure and group.allow_failure:
            status = StepStatus.WARNING
        if status is StepStatus.WARNING and group.allow_warning:
            status = StepStatus.SUCCESS
        return status

    def _run_group_nodes(self, group: Group, block: Block, outer_stop: StopCheck) -> bool:
        if group.parallel:
            failed = self._run_parallel(group, block, outer_stop)
        else:
            failed = (
                self._run_block(block, group.steps, outer_stop)
                if block is not Block.STEPS
                else (self._run_sequence(group.steps, block, outer_stop))
            )
        if failed and group.errors and not self.interrupts.interrupted:
            self._run_block(Block.ERRORS, group.errors)
        if group.finally_:
            self._run_block(Block.FINALLY, group.finally_)
        return failed

    def _run_sequence(self, nodes: tuple[Node, ...], block: Block, should_stop: StopCheck) -> bool:
        """Nested nodes in order, stopping at the first failure (manual pauses apply at the top only)."""
        failed = False
        for index, node in enumerate(nodes):
            if should_stop() or failed:
                self._skip(block, nodes[index:])
                break
            if isinstance(node, Group):
                failed = self._run_group(node, block, should_stop)
            else:
                result = self._run_step(node, block, should_stop)
                failed = result.fails_run or result.status is StepStatus.STOPPED
        return failed

    def _run_parallel(self, group: Group, block: Block, outer_stop: StopCheck) -> bool:
        cancelled = threading.Event()
        failure = threading.Event()

        def should_stop() -> bool:
            return cancelled.is_set() or outer_stop()

        def run_node(node: Node) -> bool:
            if failure.is_set() and not group.start_after_failure:
                self._skip(block, (node,), "not started: another task of the group failed")
                return False
            if isinstance(node, Step) and self._waits_for_a_click(node, block):
                # as on Bitbucket, the group's other steps run; the run pauses once the group has ended
                self.paused = True
                self._record(node, StepResult(node.id, node.name, block, StepStatus.PAUSED, message=MANUAL))
                return False
            if isinstance(node, Group):
                return self._run_group(node, block, should_stop)
            result = self._run_step(node, block, should_stop)
            return result.fails_run

        limit = group.concurrency or self.options.max_parallel
        workers = max(1, min(limit, len(group.steps)))
        failed = False
        members = frozenset(step.id for step in group.leaves())
        with (
            self.shared.group(members),
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"group-{group.id}") as pool,
        ):
            pending = {pool.submit(run_node, node): node for node in group.steps}
            while pending:
                done, _ = wait(pending, timeout=POLL, return_when=FIRST_COMPLETED)
                for future in done:
                    node = pending.pop(future)
                    if future.result():
                        failed = True
                        failure.set()
                        if group.fail_fast or (isinstance(node, Step) and node.fail_fast):
                            cancelled.set()
        return failed

    def _skip(self, block: Block, nodes: tuple[Node, ...], message: str = "") -> None:
        for node in nodes:
            if isinstance(node, Group):
                if node.reported:
                    skipped = StepResult(
                        node.id, node.name, block, StepStatus.SKIPPED, message=message, group=True
                    )
                    self._record(node, skipped)
                self._skip(block, (*node.steps, *node.errors, *node.finally_), message)
            else:
                self._record(node, StepResult(node.id, node.name, block, StepStatus.SKIPPED, message=message))

    def _run_step(self, step: Step, block: Block, should_stop: StopCheck) -> StepResult:
        carried = self.options.carried.get(step.id) if block is Block.STEPS else None
        if carried is not None:
            return self._carry(step, block, carried)
        skip = step.skip_reason if step.skip_reason is not None else ("" if should_stop() else None)
        if skip is None and step.run_if is not None:
            skip = self._run_if(step)
        if skip is None and step.condition_state is not None:
            skip = self._state_condition(step, step.condition_state, block)
        if skip is not None:
            result = StepResult(step.id, step.name, block, StepStatus.SKIPPED, message=skip)
            self._record(step, result)
            return result
        self.reporter.step_started(step, block)
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
            self._mask(outcome.message),
            allowed_failure=allowed,
            outputs=self._outputs(step, outcome),
        )
        self._record(step, result)
        return result

    def _carry(self, step: Step, block: Block, carried: CarriedStep) -> StepResult:
        """A step not run again: what it left in an earlier run is taken as if it had just run."""
        source = self.ledger.directory / "artifacts" / carried.from_run / step.id
        action = step.action
        declares = isinstance(action, ContainerRun) and action.artifacts is not None
        if not self.artifacts.adopt(step.id, source) and declares:
            self.reporter.notice(
                f"{step.name}: the artifacts of run {carried.from_run} are gone (they are kept "
                f"{ARTIFACT_DAYS} days): later steps start without them",
                warning=True,
            )
        self.shared.add(step.id, carried.variables, carried.masked)
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
        self._record(step, result)
        return result

    def _state_condition(self, step: Step, expression: str, block: Block) -> str | None:
        """None when the step runs; otherwise why it is skipped. A condition that cannot be evaluated
        skips the step, and says why: running a deploy on a condition nobody could read is worse."""
        action = step.action
        variables = {**(action.env if isinstance(action, ContainerRun) else {}), **self._env(block)}
        try:
            holds = state.evaluate(expression, variables)
        except state.StateError as exc:
            self.reporter.notice(f"{step.name}: condition.state {expression!r}: {exc.message}", warning=True)
            return f"condition.state could not be evaluated: {exc.message}"
        return None if holds else f"condition.state is false: {expression}"

    def _run_if(self, step: Step) -> str | None:
        """None when the step runs; otherwise why it is skipped."""
        if self.templates is None or step.run_if is None:
            return None
        try:
            shown = self.templates.render(step.run_if, self.templates.names(step))
        except TemplateError as exc:
            return f"runIf could not be evaluated: {exc.message}"
        return None if self.templates.truthy(shown) else f"runIf is {shown!r}"

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
                outcome = self._act(step, block, should_stop, attempt)
            except RunnerError as exc:
                outcome = Outcome(
                    StepStatus.FAILED, None, exc.message + (f" ({exc.hint})" if exc.hint else "")
                )
            last = attempt == attempts or (deadline is not None and time.monotonic() + interval > deadline)
            if not outcome.status.is_failure or last or should_stop():
                break
            self.reporter.notice(
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

    def _record(self, step: Step | Group, result: StepResult) -> None:
        result.depth = self.depths.get(step.id, 0)
        self.results.append(result)
        if self.templates is not None:
            self.templates.record(step.id, result.status.value, result.outputs, result.message)
        variables, masked = self.shared.produced(step.id)
        self.ledger.step_result(
            self.run_id,
            step.id,
            step.name,
            result.status.value,
            result.exit_code,
            result.duration,
            str(self.log_dir / f"{step.id}.log"),
            variables,
            masked,
            result.outputs,
        )
        self.reporter.step_finished(step, result)

    # actions

    def _act(self, step: Step, block: Block, should_stop: StopCheck, attempt: int = 1) -> Outcome:
        action = step.action
        if self.templates is not None:
            names = self.templates.names(step, attempt)
            action = self.templates.render_fields(action, names)
        if isinstance(action, StopAction):
            return self._stop(action)
        if not isinstance(action, ContainerRun):
            return self._builtin(step, action, should_stop, attempt)
        try:
            return self._container(step, action, block, should_stop)
        finally:
            if not action.detach:
                self._remove_later(step.id)

    def _builtin(self, step: Step, action: BuiltinAction, should_stop: StopCheck, attempt: int) -> Outcome:
        templates = self.templates

        def render_text(text: str) -> str:
            return templates.render(text, templates.names(step, attempt)) if templates else text

        def log(line: str) -> None:
            line = self._mask(line)
            if templates is not None and isinstance(action, LogAction) and action.level == "ERROR":
                templates.error_log(step.id, line.removeprefix("ERROR "))
            with open(self.log_dir / f"{step.id}.log", "a", encoding="utf-8") as file:
                file.write(line + "\n")
            self.reporter.log(step, line)

        context = BuiltinContext(
            render=render_text,
            is_truthy=templates.truthy if templates else bool,
            log=log,
            warn=lambda text: self.reporter.notice(f"{step.name}: {text}", warning=True),
            should_stop=should_stop,
            engine_host=self.backend.info().published_host,
        )
        result = run_builtin(action, context)
        return Outcome(result.status, None, result.message, outputs=result.outputs)

    def _container(
        self, step: Step, action: ContainerRun, block: Block, should_stop: Callable[[], bool]
    ) -> Outcome:
        auth = action.registry_auth
        image = self.images.resolve(
            action.image, (auth.username, auth.password) if auth else None, action.pull
        )
        context = StepContext(
            backend=self.backend,
            reporter=self.reporter,
            network=self.network,
            join=None,
            mounts=self._mounts(action),
            env=self._env(block, action),
            log_dir=self.log_dir,
            create=self.teardown.create_container,
            prepare=lambda container_id: self._prepare_container(container_id, action),
            should_stop=should_stop,
            mask=self._mask,
        )
        if action.sidecars:
            owner = start_sidecars(step, action, context, self.images.resolve, self.teardown.name)
            context = replace(context, join=owner)
        timeout = self._timeout(step, block)
        if action.pipes or action.after_pipes:
            outcome = self._run_segments(step, action, image, context, timeout)
        else:
            outcome = run_container(step, action, image, self.teardown.name(step.id), context, timeout)
            self._take_shared(step, action, outcome.container_id)
        if action.artifacts and outcome.container_id and action.workdir:
            try:
                _, refused = self.artifacts.collect(
                    self.backend, outcome.container_id, action.workdir, bundles(action.artifacts), step.id
                )
                for path in refused:
                    self.reporter.notice(
                        f"{step.name}: artifact '{path}' is not kept: it links outside the directory or is "
                        "not a plain file",
                        warning=True,
                    )
            except RunnerError as exc:
                self.reporter.notice(f"{step.name}: could not collect artifacts: {exc.message}", warning=True)
        if action.detach and outcome.status is not StepStatus.SUCCESS:
            self._remove_later(step.id)
        return outcome

    def _run_segments(
        self, step: Step, action: ContainerRun, image: str, context: StepContext, timeout: float | None
    ) -> Outcome:
        """A script with pipes: its shell parts and its pipes run one after another, each in a container of
        its own over one volume that holds the step's files. The first failure ends the step."""
        files = Mount(
            source=self.teardown.create_volume(f"{step.id}-files"), target=action.workdir or WORKSPACE
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        shared = {
            "mounts": (*action.mounts, files),
            "artifacts": None,
            "sidecars": (),
            "after_script": (),
            "pipes": (),
            "after_pipes": (),
        }
        outcome = Outcome(StepStatus.SUCCESS, 0)
        for index, segment in enumerate(script_segments(action.script, action.pipes)):
            part, part_image = self._segment(action, image, segment, shared, action.env, context.env)
            part = part.model_copy(update={"source": action.source if index == 0 else "none"})
            prepare = context.prepare if index == 0 else _nothing
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            outcome = run_container(
                step,
                part,
                part_image,
                self.teardown.name(step.id),
                replace(context, prepare=prepare),
                remaining,
            )
            self._take_shared(step, action, outcome.container_id)
            if outcome.status is not StepStatus.SUCCESS:
                break
        # The after-script (and its pipes) reads the script's exit code, and never changes the step's result.
        env = {**action.env, action.exit_code_variable: str(outcome.exit_code or 0)}
        for segment in script_segments(action.after_script, action.after_pipes):
            part, part_image = self._segment(
                action, image, segment, {**shared, "source": "none"}, env, context.env
            )
            after = run_container(
                step, part, part_image, self.teardown.name(step.id), replace(context, prepare=_nothing), None
            )
            self._take_shared(step, action, after.container_id)
            if after.status is not StepStatus.SUCCESS:
                self.reporter.notice(f"{step.name}: after-script failed: {after.message}", warning=True)
                break
        return outcome

    def _segment(
        self,
        action: ContainerRun,
        image: str,
        segment: tuple[tuple[str, ...], PipeCall | None],
        shared: Mapping[str, object],
        env: Mapping[str, str],
        run_env: Mapping[str, str],
    ) -> tuple[ContainerRun, str]:
        """One part of a script cut at its pipes, as a container run of its own, with its image."""
        lines, pipe = segment
        if pipe is None:
            return action.model_copy(update={**shared, "script": lines, "env": dict(env)}), image
        pipe_env = pipe.env
        if pipe.expand_variables:
            known = {**env, **run_env}
            pipe_env = {key: expand(value, known) for key, value in pipe.env.items()}
        update = {
            **shared,
            "image": pipe.image,
            "script": (),
            "env": {**env, **pipe_env},
            "registry_auth": None,
        }
        return action.model_copy(update=update), self._pipe_image(pipe)

    def _pipe_image(self, pipe: PipeCall) -> str:
        try:
            return self.images.resolve(pipe.image)
        except ImageUnavailable as exc:
            raise ImageUnavailable(f"pipe '{pipe.name}': {exc.message}", exc.hint) from exc

    def _mounts(self, action: ContainerRun) -> tuple[Mount, ...]:
        mounts = list(self.workspace if action.source == "workspace" else ())
        for cache in action.caches:
            target = cache.path if cache.path.startswith("/") else f"{action.workdir or '/'}/{cache.path}"
            mounts.append(Mount(source=self._cache_volume(cache.name, cache.key), target=target))
        if action.docker_socket:
            # a path on the engine's host, so this works on a remote engine too
            host_socket = self.backend.info().host_socket
            mounts.append(Mount(source=host_socket, target=ENGINE_SOCKET_TARGET, bind=True))
        return tuple(mounts)

    def _cache_volume(self, name: str, key: str) -> str:
        """A named volume that outlives the run: caches are kept on purpose, and never swept."""
        digest = hashlib.sha256(f"{self.pipeline.source}\0{name}\0{key}".encode()).hexdigest()[:12]
        volume = f"runner-cache-{name}-{digest}"
        return self.backend.ensure_volume(
            volume, {CACHE_LABEL: name, PREFIX + "pipeline": self.pipeline.name}
        )

    def _take_shared(self, step: Step, action: ContainerRun, container_id: str) -> None:
        """The variables a finished container shares, read whatever its result: `final:` may need them."""
        outputs = action.shared_outputs
        if outputs is None or not outputs.names or not container_id:
            return
        shared = parse(read_file(self.backend, container_id), outputs.names)
        self.shared.add(step.id, shared.values)
        if shared.values:
            shown = ", ".join(
                f"{name}={'$SECRET' if self.shared.is_masked(value) else self._mask(value)}"
                for name, value in shared.values.items()
            )
            self.reporter.notice(f"{step.name}: shares {shown}")
        if shared.undeclared:
            self.reporter.notice(
                f"{step.name}: {', '.join(shared.undeclared)} written to ${outputs.path_variable} but not "
                "shared: add them to output-variables",
                warning=True,
            )
        for line in shared.malformed[:3]:
            self.reporter.notice(
                f"{step.name}: ignored a line of ${outputs.path_variable} that is not KEY=VALUE: "
                f"{self._mask(line)!r}",
                warning=True,
            )

    def _env(self, block: Block, action: ContainerRun | None = None) -> dict[str, str]:
        env = {**self.options.env, **self.shared.current()}
        if action is not None and action.shared_outputs is not None:
            env[action.shared_outputs.path_variable] = SHARED_FILE
        if block in (Block.ERRORS, Block.FINALLY, Block.AFTER):
            failed = [r.name for r in self.results if r.fails_run]
            env[STATUS_VARIABLE] = self._status_so_far(failed)
            env[FAILED_STEPS_VARIABLE] = ",".join(failed)
        return env

    def _status_so_far(self, failed: list[str]) -> str:
        if self.interrupts.interrupted:
            return "stopped"
        if failed:
            return "failed"
        if any(r.status is StepStatus.WARNING for r in self.results):
            return "warning"
        return "paused" if self.paused else "success"

    def _mask(self, line: str) -> str:
        values = (*self.options.secrets.values(), *self.pipeline.secrets, *self.shared.masked_values())
        # the longest first: a shared value that holds a secret is hidden whole, not around the secret
        for value in sorted(values, key=len, reverse=True):
            if value:
                line = line.replace(value, "$SECRET")
        return line

    def _timeout(self, step: Step, block: Block) -> float | None:
        limits = [step.timeout] if step.timeout else []
        if self.deadline is not None and block in (Block.SERVICES, Block.STEPS):
            limits.append(max(self.deadline - time.monotonic(), 0.001))
        return min(limits) if limits else None

    def _stop(self, action: StopAction) -> Outcome:
        if action.by == "step":
            records = self.teardown.containers_of(action.target)
            if not records:
                return Outcome(StepStatus.SUCCESS, None, f"nothing of '{action.target}' is running")
            report = self.teardown.stop_step(action.target)
            names = ", ".join(r.name for r in records)
        else:
            ident = action.target.strip()
            if not ident:
                return Outcome(StepStatus.FAILED, None, "no container id to stop")
            if not action.remove:
                self.backend.kill(ident) if action.kill else self.backend.stop(ident, STOP_GRACE)
                return Outcome(StepStatus.SUCCESS, None, f"stopped {ident[:12]}")
            if action.kill:
                self.backend.kill(ident)
            report = self.teardown.remove_container(ident)
            if not report.removed and not report.failed and not self.backend.remove("container", ident):
                return Outcome(StepStatus.FAILED, None, f"no such container: {ident}")
            names = ident[:12]
        if report.failed:
            resource, error = report.failed[0]
            return Outcome(StepStatus.FAILED, None, f"could not remove {resource.name}: {error}")
        return Outcome(StepStatus.SUCCESS, None, f"stopped and removed {names}")

    def _prepare_container(self, container_id: str, action: ContainerRun) -> None:
        if action.source == "workspace":
            self._seed_workspace(container_id)
        elif action.source == "copy" and action.clone and action.workdir:
            self.backend.put_archive(
                container_id, "/", self.source.archive(action.workdir, action.clone_paths)
            )
        if action.source == "copy" and action.download_artifacts and action.workdir:
            restored = self.artifacts.archive(action.workdir, action.download_names)
            if restored is not None:
                self.backend.put_archive(container_id, "/", restored)

    def _seed_workspace(self, container_id: str) -> None:
        if self.seeded:
            return
        with self.seed_lock:
            if not self.seeded:
                self.backend.put_archive(container_id, WORKSPACE, self.source.archive())
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
