"""The order of a run: blocks run their nodes in order, groups in sequence or in parallel with their own
`errors` and `finally`, a failure or an interrupt skips what is left, a manual step pauses the run."""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from runner.engine.container_step import POLL
from runner.engine.context import RunContext, StopCheck
from runner.engine.status import Block, StepResult, StepStatus
from runner.engine.steps import StepRunner
from runner.model import Group, Node, Step

MANUAL = "manual step: the run stopped before it (continue with --resume, or run with --manual)"


class Scheduler:
    def __init__(self, run: RunContext, steps: StepRunner) -> None:
        self.run = run
        self.steps = steps

    def run_block(self, block: Block, nodes: tuple[Node, ...], should_stop: StopCheck | None = None) -> bool:
        """Run `nodes` in order; True when one failed. Outside `errors`, `finally` and `after`, a failure,
        an interrupt or a manual step nobody starts skips the rest."""
        stop = should_stop or (lambda: self.run.stopping(block))
        keep_going = block in (Block.ERRORS, Block.FINALLY, Block.AFTER)
        failed = False
        for index, node in enumerate(nodes):
            if stop() or (failed and not keep_going):
                self.skip(block, nodes[index:])
                break
            if isinstance(node, Step) and self._waits_for_a_click(node, block):
                self._pause(block, node, nodes[index + 1 :])
                break
            if isinstance(node, Group):
                failed = self.run_group(node, block, stop) or failed
                if self.run.paused and block is Block.STEPS:  # a manual step of the group nobody started
                    self.skip(block, nodes[index + 1 :])
                    break
            else:
                result = self.steps.execute(node, block, stop)
                failed = failed or result.fails_run or result.status is StepStatus.STOPPED
        return failed

    def _waits_for_a_click(self, step: Step, block: Block) -> bool:
        """A manual step nobody starts: the run pauses before it (a step that ran before a resume is
        not asked about again)."""
        return (
            step.manual
            and block is Block.STEPS
            and step.id not in self.run.options.carried
            and not self._confirmed(step)
        )

    def _confirmed(self, step: Step) -> bool:
        confirm = self.run.options.confirm_manual
        with self.run.confirm_lock:  # parallel manual steps are asked about one at a time
            return confirm is not None and confirm(step)

    def _pause(self, block: Block, step: Step, rest: tuple[Node, ...]) -> None:
        self.run.paused = True
        self.run.record(step, StepResult(step.id, step.name, block, StepStatus.PAUSED, message=MANUAL))
        self.skip(block, rest)

    def run_group(self, group: Group, block: Block, outer_stop: StopCheck) -> bool:
        """The group's nodes, then its own `errors` when one failed, then its own `finally`; True when
        the group failed (an allowed failure of the group does not count)."""
        first = len(self.run.results)
        failed = self._run_group_nodes(group, block, outer_stop)
        if not group.reported:
            return failed and not group.allow_failure
        status = self._group_state(group, failed)
        if failed and group.allow_failure:
            # the group ends WARNING (or SUCCESS): the failures inside it no longer decide the run
            for result in self.run.results[first:]:
                if result.status.is_failure:
                    result.allowed_failure = True
        result = StepResult(group.id, group.name, block, status, group=True)
        result.depth = self.run.depths.get(group.id, 0)
        self.run.results.insert(first, result)
        if self.run.templates is not None:
            self.run.templates.record(group.id, status.value, {})
        self.run.ledger.step_result(self.run.run_id, group.id, group.name, status.value, None, 0.0, "")
        self.run.reporter.step_finished(group, result)
        return status.is_failure

    def _group_state(self, group: Group, failed: bool) -> StepStatus:
        """As Kestra decides a flowable's state from its children: stopped, else failed, else warning,
        else paused, else success; then the group's own allowFailure and allowWarning."""
        latest = {result.step_id: result.status for result in self.run.results}
        children = [latest[node.id] for node in group.steps if node.id in latest]
        status = StepStatus.SUCCESS
        if not self.run.interrupts.interrupted:
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
                self.run_block(block, group.steps, outer_stop)
                if block is not Block.STEPS
                else (self._run_sequence(group.steps, block, outer_stop))
            )
        if failed and group.errors and not self.run.interrupts.interrupted:
            self.run_block(Block.ERRORS, group.errors)
        if group.finally_:
            self.run_block(Block.FINALLY, group.finally_)
        return failed

    def _run_sequence(self, nodes: tuple[Node, ...], block: Block, should_stop: StopCheck) -> bool:
        """Nested nodes in order, stopping at the first failure (manual pauses apply at the top only)."""
        failed = False
        for index, node in enumerate(nodes):
            if should_stop() or failed:
                self.skip(block, nodes[index:])
                break
            if isinstance(node, Group):
                failed = self.run_group(node, block, should_stop)
            else:
                result = self.steps.execute(node, block, should_stop)
                failed = result.fails_run or result.status is StepStatus.STOPPED
        return failed

    def _run_parallel(self, group: Group, block: Block, outer_stop: StopCheck) -> bool:
        cancelled = threading.Event()
        failure = threading.Event()

        def should_stop() -> bool:
            return cancelled.is_set() or outer_stop()

        def run_node(node: Node) -> bool:
            if failure.is_set() and not group.start_after_failure:
                self.skip(block, (node,), "not started: another task of the group failed")
                return False
            if isinstance(node, Step) and self._waits_for_a_click(node, block):
                # as on Bitbucket, the group's other steps run; the run pauses once the group has ended
                self.run.paused = True
                self.run.record(
                    node, StepResult(node.id, node.name, block, StepStatus.PAUSED, message=MANUAL)
                )
                return False
            if isinstance(node, Group):
                return self.run_group(node, block, should_stop)
            result = self.steps.execute(node, block, should_stop)
            return result.fails_run

        limit = group.concurrency or self.run.options.max_parallel
        workers = max(1, min(limit, len(group.steps)))
        failed = False
        members = frozenset(step.id for step in group.leaves())
        with (
            self.run.shared.group(members),
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

    def skip(self, block: Block, nodes: tuple[Node, ...], message: str = "") -> None:
        for node in nodes:
            if isinstance(node, Group):
                if node.reported:
                    skipped = StepResult(
                        node.id, node.name, block, StepStatus.SKIPPED, message=message, group=True
                    )
                    self.run.record(node, skipped)
                self.skip(block, (*node.steps, *node.errors, *node.finally_), message)
            else:
                self.run.record(
                    node, StepResult(node.id, node.name, block, StepStatus.SKIPPED, message=message)
                )
