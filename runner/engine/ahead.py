"""The next step, made ahead. While a step runs, the container of the step after it is created, given its
files and started, its script held at a gate (see WRAPPER) until its turn: the slow part of a step on the
engine, starting a container (its network, its init), then overlaps the step before it.

Only a step whose container cannot depend on how the current one ends is made ahead, and its container is
used only if, when its turn comes, the runner would make the very same one; otherwise it is removed and the
step runs as any other. Files that come from earlier steps (artifacts) are put in when its turn comes."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context

from runner.backend.base import ContainerSpec
from runner.engine.container_step import GATE_VARIABLE
from runner.engine.status import Block
from runner.errors import RunnerError
from runner.model import ContainerRun, Node, Step


@dataclasses.dataclass(frozen=True)
class Made:
    spec: ContainerSpec  # as `comparable` gives it
    container_id: str


MakeAhead = Callable[[Step, Block], Made | None]


def comparable(spec: ContainerSpec) -> ContainerSpec:
    """A container as it would be made at its turn: without its name (each is new) and its gate."""
    env = {key: value for key, value in spec.env.items() if key != GATE_VARIABLE}
    return dataclasses.replace(spec, name="", env=env, open_stdin=False)


def can_go_ahead(node: Node, carried: bool) -> bool:
    """Whether the step's container could be made before the step before it ends: a plain script in a
    container of its own, that nothing but the pipeline decides (no condition, no click, no services that
    start with it, no pipes, not a step taken from an earlier run)."""
    if not isinstance(node, Step) or carried or node.manual:
        return False
    if node.skip_reason is not None or node.run_if is not None or node.condition_state is not None:
        return False
    action = node.action
    return (
        isinstance(action, ContainerRun)
        and bool(action.script)
        and not action.detach
        and not action.on_host
        and not action.sidecars
        and not action.pipes
        and not action.after_pipes
    )


class StepsAhead:
    """Which step follows which, and the containers made ahead for them, by step id."""

    def __init__(self, remove: Callable[[str], None]) -> None:
        # removes a container made ahead, by its id, in the background: never by its step, whose own
        # container may already be starting when one made ahead turns out not to fit
        self.remove = remove
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ahead")
        self.following: dict[str, tuple[Step, Block]] = {}
        self.made: dict[str, Future[Made | None]] = {}
        self.lock = threading.Lock()
        self.closed = False

    def plan(self, current: Step, following: Step, block: Block) -> None:
        with self.lock:
            self.following[current.id] = (following, block)

    def start_after(self, current_id: str, make: MakeAhead) -> None:
        """The current step's container started: make the one of the step planned to follow it."""
        with self.lock:
            planned = self.following.pop(current_id, None)
            if planned is None or self.closed:
                return
            step, block = planned
            # in the current step's context: the next one is made in the same lane
            self.made[step.id] = self.pool.submit(copy_context().run, make, step, block)

    def take(self, step_id: str, spec: ContainerSpec, running: Callable[[str], bool]) -> str | None:
        """The container made ahead for the step, when it is the one `spec` describes and still waits at
        its gate; None otherwise (one that does not fit is removed)."""
        with self.lock:
            future = self.made.pop(step_id, None)
        if future is None:
            return None
        try:
            made = future.result()
        except RunnerError:  # what was made of it is already removed
            return None
        if made is None:
            return None
        if made.spec == comparable(spec) and running(made.container_id):
            return made.container_id
        self.remove(made.container_id)
        return None

    def drop(self, step_id: str) -> None:
        """The step will not run: its container made ahead goes."""
        with self.lock:
            self.following.pop(step_id, None)
            future = self.made.pop(step_id, None)
        if future is not None:
            future.add_done_callback(self._remove_made)

    def _remove_made(self, future: Future[Made | None]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        made = future.result()
        if made is not None:
            self.remove(made.container_id)

    def close(self) -> None:
        """Nothing more is made ahead, and what is being made is finished, so the sweep sees it."""
        with self.lock:
            self.closed = True
        self.pool.shutdown(wait=True)
