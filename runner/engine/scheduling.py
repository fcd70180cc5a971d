"""The order of a run: blocks run their nodes in order, groups in sequence or in parallel with their own
`errors` and `finally`, a failure or an interrupt skips what is left, a manual step pauses the run."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextvars import copy_context

from runner.engine.ahead import can_go_ahead
from runner.engine.container_step import POLL
from runner.engine.context import RunContext, StopCheck
from runner.engine.frames import LOOP_VALUES, WORKING_DIR
from runner.engine.lanes import LANE, Lane, lane_worth_it
from runner.engine.status import Block, StepResult, StepStatus
from runner.engine.steps import StepRunner
from runner.engine.templating import TemplateError
from runner.expressions import is_truthy
from runner.model import Group, Mount, Node, Step

MANUAL = "manual step: the run stopped before it (continue with --resume, or run with --manual)"


class Scheduler:
    def __init__(self, run: RunContext, steps: StepRunner) -> None:
        self.run = run
        self.steps = steps

    def run_block(self, block: Block, nodes: tuple[Node, ...], should_stop: StopCheck | None = None) -> bool:
        """Run `nodes` in order; True when one failed. Outside `errors`, `finally` and `after`, a failure,
        an interrupt or a manual step nobody starts skips the rest."""
        lane = self._lane(nodes)
        try:
            return self._run_in_order(block, nodes, should_stop, lane)
        finally:
            if lane is not None:
                lane.close()

    def _lane(self, nodes: tuple[Node, ...]) -> Lane | None:
        if not self.run.options.ahead or self.run.templates is not None or not lane_worth_it(nodes):
            return None
        return Lane(self.steps.actions.make_lane_holder, self.steps.actions.remove_container_later)

    def _run_in_order(
        self, block: Block, nodes: tuple[Node, ...], should_stop: StopCheck | None, lane: Lane | None
    ) -> bool:
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
                following = nodes[index + 1] if index + 1 < len(nodes) else None
                if following is not None and self._ahead(following, block):
                    assert isinstance(following, Step)
                    self.run.ahead.plan(node, following, block)
                token = LANE.set(lane)
                try:
                    result = self.steps.execute(node, block, stop)
                finally:
                    LANE.reset(token)
                failed = failed or result.fails_run or result.status is StepStatus.STOPPED
        return failed

    def _ahead(self, node: Node, block: Block) -> bool:
        """Whether the node's container may be made while the step before it runs: never where the
        container depends on results (templated tasks, a step in a shared working directory)."""
        carried = block is Block.STEPS and node.id in self.run.options.carried
        return (
            self.run.options.ahead
            and self.run.templates is None
            and WORKING_DIR.get() is None
            and can_go_ahead(node, carried)
        )

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
        started = time.monotonic()
        failed, outputs, message = self._run_group_nodes(group, block, outer_stop)
        if not group.reported:
            return failed and not group.allow_failure
        status = StepStatus.FAILED if message else self._group_state(group, failed, first)
        if failed and group.allow_failure:
            # the group ends WARNING (or SUCCESS): the failures inside it no longer decide the run
            for result in self.run.results[first:]:
                if result.status.is_failure:
                    result.allowed_failure = True
        result = StepResult(
            group.id,
            group.name,
            block,
            status,
            duration=time.monotonic() - started,
            message=message,
            outputs=outputs,
            group=True,
        )
        self.run.record(group, result)
        # shown above its steps: moved before the first result recorded while it ran
        self.run.results.insert(first, self.run.results.pop())
        return status.is_failure

    def _group_state(self, group: Group, failed: bool, first: int) -> StepStatus:
        """As Kestra decides a flowable's state from its children: stopped, else failed, else warning,
        else paused, else success; then the group's own allowFailure and allowWarning."""
        ids = {node.id for node in group.children()}
        children = [
            result.status for result in self.run.results[first:] if result.step_id.split("[")[0] in ids
        ]
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

    def _run_group_nodes(
        self, group: Group, block: Block, outer_stop: StopCheck
    ) -> tuple[bool, dict[str, object], str]:
        """Whether the group failed, its outputs, and why it could not run at all ("" when it ran)."""
        token = None
        if group.working_dir is not None:
            volume = self.run.teardown.create_volume(f"{group.id}-wd")
            token = WORKING_DIR.set(Mount(source=volume, target=group.working_dir))
        try:
            return self._group_body(group, block, outer_stop)
        finally:
            if token is not None:
                WORKING_DIR.reset(token)

    def _group_body(
        self, group: Group, block: Block, outer_stop: StopCheck
    ) -> tuple[bool, dict[str, object], str]:
        outputs: dict[str, object] = {}
        message = ""
        try:
            if group.depends:
                failed = self._run_graph(group, block, outer_stop)
            elif group.choose is not None:
                nodes, outputs = self._branch(group)
                failed = self._run_nodes(nodes, group, block, outer_stop)
            elif group.each is not None:
                failed = self._run_each(group, self._values(group), block, outer_stop)
            else:
                failed = self._run_nodes(group.steps, group, block, outer_stop)
        except TemplateError as exc:
            failed, message = True, exc.message
            self.skip(block, group.children(), message)
        if failed and group.errors and not self.run.interrupts.interrupted:
            self.run_block(Block.ERRORS, group.errors)
        if group.finally_:
            self.run_block(Block.FINALLY, group.finally_)
        return failed, outputs, message

    def _run_graph(self, group: Group, block: Block, outer_stop: StopCheck) -> bool:
        """Each node as soon as the nodes it waits for have passed, at most `concurrency` at once (0: no
        limit); a node whose dependency failed or was skipped never starts. With `fail_fast`, a failure
        stops the running ones and starts nothing more."""
        nodes = {node.id: node for node in group.steps}
        state: dict[str, bool] = {}  # id -> passed
        cancelled = threading.Event()

        def should_stop() -> bool:
            return cancelled.is_set() or outer_stop()

        def run_node(node: Node) -> bool:
            if isinstance(node, Group):
                return not self.run_group(node, block, should_stop)
            result = self.steps.execute(node, block, should_stop)
            return not result.fails_run and result.status not in (StepStatus.STOPPED, StepStatus.SKIPPED)

        limit = group.concurrency or len(nodes)
        with ThreadPoolExecutor(max_workers=max(1, limit), thread_name_prefix=f"dag-{group.id}") as pool:
            running: dict[Future[bool], str] = {}
            while len(state) < len(nodes):
                for node_id, node in nodes.items():
                    if node_id in state or node_id in running.values():
                        continue
                    waits = group.depends.get(node_id, ())
                    if any(state.get(dep) is False for dep in waits) or should_stop():
                        state[node_id] = False
                        self.skip(block, (node,), "not started: a task it depends on did not pass")
                    elif all(state.get(dep) for dep in waits):
                        running[pool.submit(copy_context().run, run_node, node)] = node_id
                if not running:
                    continue
                done, _ = wait(running, timeout=POLL, return_when=FIRST_COMPLETED)
                for future in done:
                    node_id = running.pop(future)
                    state[node_id] = future.result()
                    if not state[node_id] and group.fail_fast:
                        cancelled.set()
        return not all(state.values())

    def _run_nodes(self, nodes: tuple[Node, ...], group: Group, block: Block, outer_stop: StopCheck) -> bool:
        if group.parallel:
            return self._run_parallel(nodes, group, block, outer_stop)
        if block is not Block.STEPS:
            return self.run_block(block, nodes, outer_stop)
        return self._run_sequence(nodes, block, outer_stop)

    def _render(self, group: Group, text: str) -> str:
        templates = self.run.templates
        if templates is None:
            return text
        return templates.render(text, templates.names(group))

    def _branch(self, group: Group) -> tuple[tuple[Node, ...], dict[str, object]]:
        """The branch the group's expression picks, rendered once, as Kestra's If and Switch do; and the
        group's outputs (If's evaluationResult, Switch's value and defaults)."""
        text = self._render(group, group.choose or "")
        if group.truthy:
            holds = is_truthy(text)
            key: str | None = "true" if holds else None
            outputs: dict[str, object] = {"evaluationResult": holds}
        else:
            key = text
            outputs = {"value": text, "defaults": all(branch.when != text for branch in group.branches)}
        for branch in group.branches:
            if branch.when is not None and branch.when == key:
                return branch.steps, outputs
        default = next((branch.steps for branch in group.branches if branch.when is None), ())
        return default, outputs

    def _values(self, group: Group) -> list[str]:
        """The values of a loop: a JSON list, given or rendered; objects are passed on as JSON text."""
        text = self._render(group, group.each or "[]")
        try:
            values = json.loads(text)
        except ValueError:
            raise TemplateError(f"the values {text!r} are not a JSON list") from None
        if not isinstance(values, list):
            raise TemplateError(f"the values {text!r} are not a list")
        # objects as Kestra's JSON writer prints them: no spaces
        return [
            value if isinstance(value, str) else json.dumps(value, separators=(",", ":")) for value in values
        ]

    def _run_each(self, group: Group, values: list[str], block: Block, outer_stop: StopCheck) -> bool:
        """`steps` once per value, in order; with `concurrency` above 1 (0: all at once) iterations overlap.
        An iteration that fails stops the iterations not yet started."""
        outer = LOOP_VALUES.get()
        failure = threading.Event()

        def iteration(value: str) -> bool:
            if failure.is_set() or outer_stop():
                token = LOOP_VALUES.set((*outer, value))
                try:
                    self.skip(block, group.steps)
                finally:
                    LOOP_VALUES.reset(token)
                return False
            token = LOOP_VALUES.set((*outer, value))
            try:
                failed = self._run_sequence(group.steps, block, outer_stop)
            finally:
                LOOP_VALUES.reset(token)
            if failed:
                failure.set()
            return failed

        limit = group.concurrency if group.concurrency > 0 else len(values) or 1
        if limit == 1:
            return any([iteration(value) for value in values])
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix=f"each-{group.id}") as pool:
            futures = [pool.submit(copy_context().run, iteration, value) for value in values]
            return any([future.result() for future in futures])

    def _run_sequence(self, nodes: tuple[Node, ...], block: Block, should_stop: StopCheck) -> bool:
        """Nested nodes in order, stopping at the first failure (manual pauses apply at the top only)."""
        failed = False
        for index, node in enumerate(nodes):
            if should_stop() or failed:
                self.skip(block, nodes[index:])
                break
            if isinstance(node, Step) and self._waits_for_a_click(node, block):
                self._pause(block, node, nodes[index + 1 :])  # a Pause inside a group pauses the run too
                break
            if isinstance(node, Group):
                failed = self.run_group(node, block, should_stop)
                if self.run.paused and block is Block.STEPS:
                    self.skip(block, nodes[index + 1 :])
                    break
            else:
                result = self.steps.execute(node, block, should_stop)
                failed = result.fails_run or result.status is StepStatus.STOPPED
        return failed

    def _run_parallel(
        self, nodes: tuple[Node, ...], group: Group, block: Block, outer_stop: StopCheck
    ) -> bool:
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
        workers = max(1, min(limit, len(nodes)))
        failed = False
        members = frozenset(step.id for step in group.leaves())
        with (
            self.run.shared.group(members),
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"group-{group.id}") as pool,
        ):
            # each node in its thread, with the loop values around the group
            pending = {pool.submit(copy_context().run, run_node, node): node for node in nodes}
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
                self.skip(block, (*node.children(), *node.errors, *node.finally_), message)
            else:
                self.run.ahead.drop(node.id)
                self.run.record(
                    node, StepResult(node.id, node.name, block, StepStatus.SKIPPED, message=message)
                )
