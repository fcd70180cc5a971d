"""Steps made ahead, on the in-memory backend: the next step's container is made and started while a step
runs, its script held at its gate; it runs only at its turn, is used only when it is the container the step
would get then, and goes when the step will not run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from runner.backend.base import TOOL_IMAGE, ContainerSpec
from runner.engine.ahead import Made, StepsAhead, comparable
from runner.engine.container_step import GATE_VARIABLE
from runner.engine.status import Block, StepStatus
from runner.errors import RunnerError
from runner.model import Step
from runner.teardown.ledger import Ledger
from tests.engine.memory_backend import DEFAULT_IMAGES, Image, MemoryBackend
from tests.engine.test_semantics_memory import Watching, execute, parallel, pipeline, sh

Write = Callable[..., Path]
S = StepStatus


def gated(backend: MemoryBackend, step: str) -> list[bool]:
    """For each container made for the step, in order: whether it was made ahead (at its gate)."""
    return [GATE_VARIABLE in spec.env for spec in backend.created_for(step)]


def test_the_next_step_is_started_while_a_step_runs_but_runs_only_at_its_turn(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: one, script: [echo started, sleep 0.3, echo one]}
          - {id: two, script: echo two}
    """)
    seen: dict[str, object] = {}

    def look() -> None:
        made = backend.list_resources("container", "dev.runner.step=two")
        seen["two running while one runs"] = [c.running for c in made]

    reporter = Watching(when_printed={("one", "one"): look})
    run = execute(path, backend, ledger, reporter)
    assert run.result.exit_code == 0
    assert run.reporter.order == ["one", "two"]
    assert run.reporter.output("two") == ["two"]
    assert seen == {"two running while one runs": [True]}
    assert gated(backend, "two") == [True]  # made once, ahead, and used
    assert gated(backend, "one") == [False]  # nothing runs before the first step
    assert backend.leftovers() == []


def test_a_failure_removes_the_step_made_ahead_without_running_it(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: boom, script: [sleep 0.2, exit 3]}
          - {id: never, script: echo never}
        finally:
          - {id: last, script: echo last}
    """)
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 1
    assert run.get("never").status is S.SKIPPED
    assert run.reporter.output("never") == []
    assert gated(backend, "never") == [True]
    assert backend.leftovers() == []


def test_a_step_whose_container_would_differ_at_its_turn_gets_a_new_one(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    # a `finally` step sees which steps failed before it: that changed while it waited at its gate
    path = write("""
        image: busybox
        steps: [{id: ok, script: "true"}]
        finally:
          - {id: bad, script: [sleep 0.2, "false"]}
          - {id: after, script: 'echo "failed: $RUNNER_FAILED_STEPS"'}
    """)
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 1
    assert run.reporter.output("after") == ["failed: bad"]
    assert gated(backend, "after") == [True, False]  # the one made ahead was dropped
    assert backend.leftovers() == []


def test_a_step_that_waits_for_a_click_is_never_made_ahead(
    tmp_path: Path, backend: MemoryBackend, ledger: Ledger
) -> None:
    steps = (sh("one", "sleep 0.2"), sh("deploy", "echo deployed", manual=True))
    run = execute(pipeline(tmp_path, steps), backend, ledger, confirm_manual=lambda step: True)
    assert run.result.exit_code == 0
    assert run.reporter.output("deploy") == ["deployed"]
    assert gated(backend, "deploy") == [False]
    assert backend.leftovers() == []


def test_steps_in_order_share_one_lane_and_parallel_ones_do_not(tmp_path: Path, ledger: Ledger) -> None:
    backend = MemoryBackend({**DEFAULT_IMAGES, TOOL_IMAGE: Image()})
    steps = (
        sh("one", "listen 8080", "echo one"),
        sh("two", "listen 8080", "echo two"),  # the same port: `one` and its processes are gone
        sh("svc", "listen 6379", "sleep infinity", detach=True),
        sh("three", "wait-for svc 6379 2", "echo three"),
        parallel("both", sh("left", "listen 9000"), sh("right", "listen 9000")),
    )
    run = execute(pipeline(tmp_path, steps), backend, ledger)
    assert run.result.exit_code == 0, run.result.results
    holders = [spec for spec in backend.created_specs if spec.image == TOOL_IMAGE]
    assert len(holders) == 1
    joined = {step: {spec.join for spec in backend.created_for(step)} for step in ("one", "two", "three")}
    assert len({frozenset(ids) for ids in joined.values()}) == 1 and None not in joined["one"]
    for alone in ("svc", "left", "right"):
        assert {spec.join for spec in backend.created_for(alone)} == {None}
    assert backend.leftovers() == []
    assert backend.faults == []


def test_a_container_made_ahead_that_does_not_fit_is_removed_by_its_id_never_by_its_step() -> None:
    # The step's own container may be starting while the one made ahead is removed in the background:
    # a removal by step would take it too.
    removed: list[str] = []
    ahead = StepsAhead(remove=removed.append)
    current, following = sh("one", "true"), sh("two", "true")
    made_spec = ContainerSpec(name="runner-x-two-1", image="busybox", labels={}, env={"A": "1"})

    ahead.plan(current, following, Block.STEPS)
    ahead.start_after("one", lambda step, block: Made(comparable(made_spec), "made-ahead-id"))
    at_its_turn = dataclasses.replace(made_spec, name="runner-x-two-2", env={"A": "2"})
    assert ahead.take("two", at_its_turn, running=lambda container_id: True) is None
    ahead.close()
    assert removed == ["made-ahead-id"]


def test_a_step_that_will_not_run_loses_only_the_container_made_ahead_for_it() -> None:
    removed: list[str] = []
    ahead = StepsAhead(remove=removed.append)
    ahead.plan(sh("one", "true"), sh("two", "true"), Block.STEPS)
    spec = ContainerSpec(name="runner-x-two-1", image="busybox", labels={})
    ahead.start_after("one", lambda step, block: Made(comparable(spec), "made-ahead-id"))
    ahead.drop("two")
    ahead.close()
    assert removed == ["made-ahead-id"]


def test_a_container_that_could_not_be_made_ahead_leaves_nothing_for_the_step_to_remove() -> None:
    removed: list[str] = []
    ahead = StepsAhead(remove=removed.append)
    ahead.plan(sh("one", "true"), sh("two", "true"), Block.STEPS)

    def refused(step: Step, block: Block) -> Made | None:
        raise RunnerError("the engine refused: no space left on device")

    ahead.start_after("one", refused)
    spec = ContainerSpec(name="runner-x-two-2", image="busybox", labels={})
    assert ahead.take("two", spec, running=lambda container_id: True) is None
    ahead.close()
    assert removed == []


def test_a_start_that_fails_ahead_removes_the_container_it_made(
    write: Write, ledger: Ledger
) -> None:
    backend = FailingStarts(DEFAULT_IMAGES, failing_step="two")
    path = write("""
        image: busybox
        steps:
          - {id: one, script: [sleep 0.2, echo one]}
          - {id: two, script: echo two}
    """)
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 0
    assert run.reporter.output("two") == ["two"]  # made at its turn instead
    assert gated(backend, "two") == [True, False]
    assert backend.leftovers() == []


class FailingStarts(MemoryBackend):
    """Refuses to start the first container made ahead for one step."""

    def __init__(self, images: dict[str, Image], failing_step: str) -> None:
        super().__init__(images)
        self.failing_step = failing_step
        self.refused = False

    def start(self, container_id: str) -> None:
        with self.condition:
            spec = self._container(container_id).spec
        if not self.refused and spec.labels.get("dev.runner.step") == self.failing_step:
            self.refused = True
            raise RunnerError("the engine refused: cannot start")
        super().start(container_id)
