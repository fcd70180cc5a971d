"""Steps that run one after another share a network namespace, as the containers of a pod share their
pause container's: the first step of a lane makes a small holder container on the run's network, and each
step's container joins the holder's namespace instead of being given one of its own. Starting a container
that joins a namespace costs the engine a third of one that gets a network endpoint (71 ms against 236 ms
measured here, `bench/bench.py` part 1), and the start is most of a short step.

What a step sees is unchanged: the run's network, its services by name, `host.docker.internal`, and
nothing left by the step before it (its container, and every process in it, is gone). Two steps of a lane
never run at once, so they never contend for a port. Only steps that need nothing of a network of their
own join: not a service (others reach it by its name), not a step that publishes ports, picks its network
or starts services beside it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar

from runner.model import ContainerRun, Node, Step

# A lane pays for its holder's start once: from this many steps on, it saves more than it costs.
LANE_FROM = 3


def joins_lane(action: ContainerRun) -> bool:
    return not (
        action.detach
        or action.network_mode
        or action.ports
        or action.sidecars
        or action.on_host
        or action.pipes
        or action.after_pipes
    )


def lane_worth_it(nodes: tuple[Node, ...]) -> bool:
    """Whether enough of a block's own steps would join a lane to pay for its holder."""
    joining = [
        node
        for node in nodes
        if isinstance(node, Step) and isinstance(node.action, ContainerRun) and joins_lane(node.action)
    ]
    return len(joining) >= LANE_FROM


class Lane:
    """One lane's holder, made when its first step needs it and removed when the lane ends."""

    def __init__(self, make_holder: Callable[[], str | None], remove: Callable[[str], None]) -> None:
        self.make_holder = make_holder  # the holder's container id; None when it cannot be made here
        self.remove = remove
        self.holder: str | None = None
        self.tried = False
        self.lock = threading.Lock()

    def namespace(self) -> str | None:
        """The container whose network namespace the lane's steps join; None: each gets its own."""
        with self.lock:
            if not self.tried:
                self.tried = True
                self.holder = self.make_holder()
            return self.holder

    def close(self) -> None:
        with self.lock:
            holder, self.holder, self.tried = self.holder, None, True
        if holder is not None:
            self.remove(holder)


LANE: ContextVar[Lane | None] = ContextVar("lane", default=None)
