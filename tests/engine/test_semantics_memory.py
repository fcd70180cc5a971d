"""The engine's order and state semantics on the in-memory backend, in seconds: which steps run, in which
order and with which status, what `errors` and `finally` see, timeouts, interrupts, stops by reference,
and that the sweep leaves nothing. tests/engine/test_semantics.py keeps what needs a real engine's files,
images and ports; the scripts here are in the memory shell's words (see memory_backend.py)."""

from __future__ import annotations

import io
import signal
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from runner.backend.base import ContainerSpec, ExecResult
from runner.engine import reuse
from runner.engine.executor import Executor, RunOptions
from runner.engine.interrupts import HARD_EXIT_AFTER, Interrupts
from runner.engine.selection import triggered
from runner.engine.status import Block, RunResult, StepResult, StepStatus
from runner.errors import ImageUnavailable, InputError, ResourceGone, RunnerError
from runner.formats import load_pipeline
from runner.model import (
    ContainerRun,
    Group,
    Mount,
    Node,
    Pipeline,
    PortBinding,
    ReadyCheck,
    Retry,
    Step,
    Templating,
)
from runner.teardown.leaks import LeakFilter, find_leaks, remove_runs
from runner.teardown.ledger import Ledger
from tests.engine.helpers import RecordingReporter, statuses
from tests.engine.memory_backend import KILLED, TERMINATED, MemoryBackend, ScriptError

Write = Callable[..., Path]
S = StepStatus


class PressedInterrupts(Interrupts):
    """Ctrl-C pressed by the test through the handler a signal would call. The process's own handlers
    stay as pytest set them, so a stray real signal still reaches pytest."""

    def install(self) -> None:
        pass

    def restore(self) -> None:
        pass

    def press(self) -> None:
        # the third one ends the process with os._exit: that would be the test process
        assert self.count < HARD_EXIT_AFTER - 1
        self._handle(signal.SIGINT, None)


@dataclass
class Watching(RecordingReporter):
    """Acts when a step starts or prints a line: how a test does something at a known moment of a run."""

    when_started: dict[str, Callable[[], None]] = field(default_factory=dict)
    when_printed: dict[tuple[str, str], Callable[[], None]] = field(default_factory=dict)

    def step_started(self, step: Step, block: Block) -> None:
        super().step_started(step, block)
        action = self.when_started.pop(step.id, None)
        if action is not None:
            action()

    def log(self, step: Step, line: str) -> None:
        super().log(step, line)
        action = self.when_printed.pop((step.id, line), None)
        if action is not None:
            action()


@dataclass
class Run:
    result: RunResult
    reporter: Watching
    ledger: Ledger

    def get(self, step_id: str) -> StepResult:
        return next(r for r in self.result.results if r.step_id == step_id)


def execute(
    source: Pipeline | Path,
    backend: MemoryBackend,
    ledger: Ledger,
    reporter: Watching | None = None,
    interrupts: Interrupts | None = None,
    **options: Any,
) -> Run:
    pipeline = source if isinstance(source, Pipeline) else load_pipeline(source)
    reporter = reporter or Watching()
    run_options = RunOptions(lease=False, sweep_dead_runs=False, **options)
    executor = Executor(pipeline, backend, ledger, reporter, run_options, interrupts or PressedInterrupts())
    return Run(executor.run(), reporter, ledger)


def sh(step_id: str, *script: str, image: str = "busybox", **fields: Any) -> Step:
    action_fields = {key: fields.pop(key) for key in ("detach", "ports", "ready") if key in fields}
    action = ContainerRun(image=image, script=script, **action_fields)
    return Step(id=step_id, name=step_id, action=action, **fields)


def parallel(group_id: str, *nodes: Node, **fields: Any) -> Group:
    return Group(id=group_id, name=group_id, steps=nodes, **fields)


def pipeline(tmp_path: Path, steps: tuple[Node, ...], **fields: Any) -> Pipeline:
    return Pipeline(name="memory", source=tmp_path / "runner.yml", context=tmp_path, steps=steps, **fields)


def left_running(run: Run) -> list[str]:
    assert run.result.resources is not None
    return [name.split(" ")[0] for name in run.result.resources.left_running]


# the real suite's semantics, ported


def test_steps_run_in_order_and_finally_runs_on_success(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: one, script: echo one}
          - {id: two, script: echo two}
        errors:
          - {id: alert, script: echo alert}
        finally:
          - {id: last, script: echo last}
    """)
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 0
    assert run.reporter.order == ["one", "two", "last"]
    assert statuses(run.result) == {"one": S.SUCCESS, "two": S.SUCCESS, "last": S.SUCCESS}
    assert run.reporter.output("last") == ["last"]
    assert backend.leftovers() == []


def test_a_failure_skips_the_rest_then_runs_errors_and_finally(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: one, script: echo one}
          - {id: boom, script: [echo before, exit 3, echo never]}
          - {id: three, script: echo three}
        errors:
          - {id: alert, script: 'echo "$RUNNER_PIPELINE_STATUS $RUNNER_FAILED_STEPS"'}
        finally:
          - {id: broken-cleanup, script: exit 1}
          - {id: last, script: echo last}
    """)
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 1
    assert statuses(run.result) == {
        "one": S.SUCCESS,
        "boom": S.FAILED,
        "three": S.SKIPPED,
        "alert": S.SUCCESS,
        "broken-cleanup": S.FAILED,
        "last": S.SUCCESS,
    }
    assert run.reporter.output("boom") == ["before"]
    assert run.get("boom").exit_code == 3
    assert run.reporter.order == ["one", "boom", "alert", "broken-cleanup", "last"]
    assert run.reporter.output("alert") == ["failed boom"]
    assert backend.leftovers() == []


def test_a_failing_finally_step_fails_a_passing_run(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        steps: [{id: ok, script: "true"}]
        finally: [{id: bad, script: "false"}, {id: after, script: echo after}]
    """)
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 1
    assert statuses(run.result) == {"ok": S.SUCCESS, "bad": S.FAILED, "after": S.SUCCESS}


def test_allowed_failure_does_not_stop_the_pipeline(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: flaky, script: exit 2, allow_failure: true}
          - {id: next, script: echo next}
    """)
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 0
    assert statuses(run.result) == {"flaky": S.FAILED, "next": S.SUCCESS}
    assert run.result.results[0].allowed_failure
    assert run.result.results[0].exit_code == 2


def test_a_step_timeout_stops_the_step_and_finally_still_runs(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: slow, script: sleep 30, timeout: 0.3s}
          - {id: never, script: echo never}
        finally:
          - {id: last, script: echo last}
    """)
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 1
    assert statuses(run.result) == {"slow": S.TIMED_OUT, "never": S.SKIPPED, "last": S.SUCCESS}
    assert run.get("slow").exit_code == KILLED
    assert run.get("slow").duration < 2
    assert backend.leftovers() == []


def test_a_pipeline_timeout_stops_the_running_step_and_finally_runs(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        timeout: 0.5s
        steps:
          - {id: a, script: echo a}
          - {id: slow, script: sleep 30}
          - {id: never, script: echo never}
        finally:
          - {id: last, script: sleep 0.2}
    """)
    run = execute(path, backend, ledger)
    # `finally` is not bound by the pipeline's timeout: `last` outlives it
    assert statuses(run.result) == {
        "a": S.SUCCESS,
        "slow": S.TIMED_OUT,
        "never": S.SKIPPED,
        "last": S.SUCCESS,
    }
    assert run.result.exit_code == 1
    assert backend.leftovers() == []


def test_a_service_is_reached_by_hostname_and_stopped_by_reference(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: cache, image: redis, detach: true, ports: ["6379"], ready: connect localhost 6379}
          - {id: use, script: [connect cache 6379, echo reached]}
        finally:
          - {id: stop, stop: cache}
          - {id: gone, script: connect cache 6379, allow_failure: true}
    """)
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 0, run.result.results
    assert run.get("cache").message.startswith("published on 127.0.0.1:")
    assert run.get("cache").message.endswith("->6379")
    assert run.reporter.output("use") == ["reached"]
    assert run.get("stop").message.startswith("stopped and removed runner-")
    assert run.get("gone").status is S.FAILED and run.get("gone").allowed_failure
    assert run.reporter.output("gone") == ["connect: cache:6379: connection refused"]
    assert left_running(run) == []
    assert backend.leftovers() == []


def test_a_detached_container_nobody_stops_is_still_removed(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: idle, detach: true, script: sleep 600}
          - {id: use, script: echo using}
    """)
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 0
    assert run.result.resources is not None
    assert left_running(run) == ["idle"]
    assert run.result.resources.removed == run.result.resources.created
    assert backend.leftovers() == []


def test_a_service_that_exits_fails_with_its_output(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: svc, detach: true, script: [echo cannot start, exit 4], ports: ["80"]}
          - {id: use, script: echo never}
        finally: [{id: last, script: echo last}]
    """)
    run = execute(path, backend, ledger)
    assert statuses(run.result) == {"svc": S.FAILED, "use": S.SKIPPED, "last": S.SUCCESS}
    assert "cannot start" in run.get("svc").message, run.get("svc").message
    assert run.get("svc").exit_code == 4
    assert backend.leftovers() == []


class EndsWhileProbed(MemoryBackend):
    """Ends a container just before its ports are read: what a service that exits by itself meets when it
    ends between the engine's look at its state and the probe of its ports."""

    def listening_ports(self, container_id: str) -> frozenset[int] | None:
        self.kill(container_id)
        self.wait(container_id)
        return super().listening_ports(container_id)


def test_a_service_that_exits_while_its_ports_are_read_fails_with_its_exit_and_output(
    write: Write, ledger: Ledger
) -> None:
    backend = EndsWhileProbed()
    path = write("""
        image: busybox
        steps:
          - {id: svc, detach: true, script: [echo cannot start, sleep 30], ports: ["80"]}
    """)
    run = execute(path, backend, ledger)
    assert run.get("svc").status is S.FAILED
    assert (
        run.get("svc").message == f"exited with code {KILLED} before it was ready; last output:\ncannot start"
    )
    assert run.get("svc").exit_code == KILLED
    assert backend.leftovers() == [] and backend.faults == []


def test_a_missing_image_fails_the_step_and_names_the_map_option(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        steps: [{id: a, image: "no-such-image-anywhere:1", script: echo}]
        finally: [{id: last, image: busybox, script: echo last}]
    """)
    run = execute(path, backend, ledger)
    assert statuses(run.result) == {"a": S.FAILED, "last": S.SUCCESS}
    assert "--image no-such-image-anywhere=LOCAL_IMAGE" in run.get("a").message
    assert backend.leftovers() == []


def test_keep_leaves_everything_and_removing_the_run_removes_it(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        steps: [{id: idle, detach: true, script: sleep 600}]
    """)
    run = execute(path, backend, ledger, keep=True)
    assert run.result.resources is not None and run.result.resources.kept
    assert sorted(item.split(" ")[0] for item in backend.leftovers()) == ["container", "network", "volume"]
    leaks = find_leaks(backend, LeakFilter(run_id=run.result.run_id))
    report = remove_runs(backend, leaks, run.ledger)
    assert not report.failed
    assert backend.leftovers() == []


def test_services_start_before_the_steps_and_are_removed_after(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        services:
          cache:
            image: redis
            ports: [6379]
        steps:
          - {id: use, script: [connect cache 6379, echo reached]}
    """)
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 0, run.result.results
    assert run.reporter.order == ["cache", "use"]
    assert run.reporter.output("use") == ["reached"]
    assert run.result.results[0].message.startswith("published on 127.0.0.1:")
    assert backend.leftovers() == []


def test_run_options_env_reaches_every_step_and_wins(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write("""
        image: busybox
        env: {A: from-file, B: kept}
        steps: [{id: show, script: 'echo "$A $B"'}]
    """)
    run = execute(path, backend, ledger, env={"A": "from-cli"})
    assert run.result.exit_code == 0
    assert run.reporter.output("show") == ["from-cli kept"]


# what the real suite cannot cover cheaply


def test_a_pipeline_timeout_in_the_middle_of_a_parallel_group(
    backend: MemoryBackend, ledger: Ledger, tmp_path: Path
) -> None:
    steps = (
        sh("a", "echo a"),
        parallel("group", sh("quick", "echo quick"), sh("slow", "sleep 30"), sh("slower", "sleep 60")),
        sh("after", "echo never"),
    )
    finally_ = (sh("last", 'echo "$RUNNER_PIPELINE_STATUS $RUNNER_FAILED_STEPS"'),)
    run = execute(pipeline(tmp_path, steps, finally_=finally_, timeout=0.8), backend, ledger)
    assert statuses(run.result) == {
        "a": S.SUCCESS,
        "quick": S.SUCCESS,
        "slow": S.TIMED_OUT,
        "slower": S.TIMED_OUT,
        "after": S.SKIPPED,
        "last": S.SUCCESS,
    }
    assert all(run.get(step).exit_code == KILLED for step in ("slow", "slower"))
    failed = sorted(run.reporter.output("last")[0].removeprefix("failed ").split(","))
    assert failed == ["slow", "slower"]
    assert run.result.exit_code == 1
    assert backend.leftovers() == []


def test_a_first_interrupt_stops_the_step_skips_the_rest_and_errors_then_runs_finally(
    backend: MemoryBackend, ledger: Ledger, tmp_path: Path
) -> None:
    interrupts = PressedInterrupts()
    reporter = Watching(when_printed={("work", "started"): interrupts.press})
    steps = (sh("one", "echo one"), sh("work", "echo started", "sleep 30"), sh("never", "echo never"))
    source = pipeline(
        tmp_path,
        steps,
        errors=(sh("alert", "echo alert"),),
        finally_=(sh("last", 'echo "$RUNNER_PIPELINE_STATUS"'),),
    )
    run = execute(source, backend, ledger, reporter, interrupts)
    assert statuses(run.result) == {
        "one": S.SUCCESS,
        "work": S.STOPPED,
        "never": S.SKIPPED,
        "last": S.SUCCESS,
    }
    assert run.reporter.order == ["one", "work", "last"]
    assert run.reporter.output("last") == ["stopped"]
    assert run.result.interrupted and run.result.exit_code == 130
    assert backend.leftovers() == []


def test_a_second_interrupt_abandons_the_rest_of_finally_and_the_sweep_still_empties_the_engine(
    backend: MemoryBackend, ledger: Ledger, tmp_path: Path
) -> None:
    interrupts = PressedInterrupts()
    reporter = Watching(
        when_printed={("work", "started"): interrupts.press, ("first", "cleaning"): interrupts.press}
    )
    steps = (sh("svc", "listen 80", "sleep infinity", detach=True), sh("work", "echo started", "sleep 30"))
    finally_ = (sh("first", "echo cleaning", "sleep 30"), sh("second", "echo never"))
    run = execute(pipeline(tmp_path, steps, finally_=finally_), backend, ledger, reporter, interrupts)
    assert interrupts.count == 2
    assert statuses(run.result) == {
        "svc": S.SUCCESS,
        "work": S.STOPPED,
        "first": S.STOPPED,
        "second": S.SKIPPED,
    }
    assert run.result.exit_code == 130
    assert left_running(run) == ["svc"]
    assert backend.leftovers() == []


def test_an_interrupt_stops_every_running_step_of_a_parallel_group(
    backend: MemoryBackend, ledger: Ledger, tmp_path: Path
) -> None:
    interrupts = PressedInterrupts()
    printed: set[str] = set()
    lock = threading.Lock()

    def started(step_id: str) -> Callable[[], None]:
        def seen() -> None:
            with lock:
                printed.add(step_id)
                both = printed == {"p1", "p2"}
            if both:
                interrupts.press()

        return seen

    reporter = Watching(when_printed={("p1", "started"): started("p1"), ("p2", "started"): started("p2")})
    group = parallel("group", sh("p1", "echo started", "sleep 30"), sh("p2", "echo started", "sleep 30"))
    source = pipeline(tmp_path, (group, sh("after", "echo never")), finally_=(sh("last", "echo last"),))
    run = execute(source, backend, ledger, reporter, interrupts)
    assert statuses(run.result) == {"p1": S.STOPPED, "p2": S.STOPPED, "after": S.SKIPPED, "last": S.SUCCESS}
    assert run.result.exit_code == 130
    assert backend.leftovers() == []


def test_an_interrupt_while_a_service_is_not_ready_stops_it(
    backend: MemoryBackend, ledger: Ledger, tmp_path: Path
) -> None:
    interrupts = PressedInterrupts()
    reporter = Watching(when_started={"svc": interrupts.press})
    ready = ReadyCheck(command="connect localhost 80", timeout=30)
    steps = (sh("svc", "sleep infinity", detach=True, ready=ready), sh("use", "echo never"))
    run = execute(
        pipeline(tmp_path, steps, finally_=(sh("last", "echo last"),)),
        backend,
        ledger,
        reporter,
        interrupts,
    )
    assert statuses(run.result) == {"svc": S.STOPPED, "use": S.SKIPPED, "last": S.SUCCESS}
    assert run.result.exit_code == 130
    assert backend.leftovers() == []


def test_fail_fast_stops_the_running_siblings_and_skips_what_did_not_start(
    backend: MemoryBackend, ledger: Ledger, tmp_path: Path
) -> None:
    group = parallel(
        "group",
        sh("long", "listen 80", "sleep 30"),
        sh("bad", "wait-for long 80", "exit 5"),  # fails once `long` surely runs
        sh("queued", "sleep 30"),
        sh("later", "echo later"),
        fail_fast=True,
        concurrency=2,
    )
    source = pipeline(tmp_path, (group, sh("after", "echo never")), finally_=(sh("last", "echo last"),))
    run = execute(source, backend, ledger)
    found = statuses(run.result)
    # The worker that ran `bad` takes the next node before the group has seen the failure, so `queued`
    # either starts and is stopped, or is skipped: the engine gives no order between the two.
    assert found.pop("queued") in (S.STOPPED, S.SKIPPED)
    assert found == {
        "long": S.STOPPED,
        "bad": S.FAILED,
        "later": S.SKIPPED,
        "after": S.SKIPPED,
        "last": S.SUCCESS,
    }
    assert run.get("bad").exit_code == 5
    assert "later" not in run.reporter.order
    assert run.result.exit_code == 1
    assert backend.leftovers() == []


def test_a_failing_finally_step_does_not_stop_the_other_finally_steps(
    backend: MemoryBackend, ledger: Ledger, tmp_path: Path
) -> None:
    finally_ = (
        sh("f1", "exit 2"),
        sh("f2", "echo waiting", "sleep 30", timeout=0.3),
        sh("f3", 'echo "$RUNNER_PIPELINE_STATUS"'),
    )
    run = execute(pipeline(tmp_path, (sh("ok", "true"),), finally_=finally_), backend, ledger)
    assert statuses(run.result) == {"ok": S.SUCCESS, "f1": S.FAILED, "f2": S.TIMED_OUT, "f3": S.SUCCESS}
    assert run.reporter.order == ["ok", "f1", "f2", "f3"]
    assert run.get("f1").exit_code == 2
    assert run.reporter.output("f3") == ["failed"]  # a failed `finally` step already fails the run
    assert run.result.exit_code == 1
    assert backend.leftovers() == []


def test_a_retried_step_runs_a_container_per_attempt_until_one_passes(
    backend: MemoryBackend, ledger: Ledger, tmp_path: Path
) -> None:
    retry = Retry(max_attempts=3, interval=0)
    steps = (
        sh(
            "flaky",
            # Kestra's attemptsCount: the attempts before this one (0 on the first), RunVariables.java
            "echo attempt {{ taskrun.attemptsCount }}",
            "exit {{ 2 - taskrun.attemptsCount }}",
            retry=retry,
        ),
        sh("broken", "exit 5", retry=Retry(max_attempts=2, interval=0)),
    )
    run = execute(pipeline(tmp_path, steps, templating=Templating()), backend, ledger)
    assert statuses(run.result) == {"flaky": S.SUCCESS, "broken": S.FAILED}
    assert run.reporter.output("flaky") == ["attempt 0", "attempt 1", "attempt 2"]
    assert len(backend.created_for("flaky")) == 3
    assert len(backend.created_for("broken")) == 2
    assert run.get("broken").exit_code == 5
    assert len([n for n in run.reporter.notices if "retrying" in n]) == 3
    assert backend.leftovers() == []


def test_a_line_the_memory_shell_does_not_know_fails_the_test_not_the_step(
    backend: MemoryBackend, ledger: Ledger, tmp_path: Path
) -> None:
    with pytest.raises(ScriptError, match="redis-cli"):
        execute(pipeline(tmp_path, (sh("a", "redis-cli ping"),)), backend, ledger)
    assert backend.leftovers() == []


# the fake keeps the Backend contract


def test_the_fake_lists_by_label_key_or_key_and_value(backend: MemoryBackend) -> None:
    backend.create_network("n1", {"team": "a"})
    backend.create_volume("v1", {"team": "b"})
    backend.create_container(ContainerSpec(name="c1", image="busybox", labels={"team": "a", "x": ""}))
    assert [r.name for r in backend.list_resources("network", "team")] == ["n1"]
    assert [r.name for r in backend.list_resources("network", "team=b")] == []
    assert [r.name for r in backend.list_resources("volume", "team=b")] == ["v1"]
    container = backend.list_resources("container", "team=a")[0]
    assert (container.name, container.status, container.running) == ("c1", "Created", False)
    assert [r.name for r in backend.list_resources("container", "x=")] == ["c1"]


def test_the_fake_removes_once_and_refuses_a_network_or_volume_in_use() -> None:
    backend = MemoryBackend(busy_timeout=0.05)
    network = backend.create_network("net", {})
    backend.create_volume("vol", {})
    spec = ContainerSpec(
        name="c",
        image="busybox",
        labels={},
        command=("sleep", "30"),
        network="net",
        mounts=(Mount(source="vol", target="/data"),),
    )
    container = backend.create_container(spec)
    backend.start(container)
    with pytest.raises(RunnerError, match="in use"):
        backend.remove("network", network)
    with pytest.raises(RunnerError, match="in use"):
        backend.remove("volume", "vol")
    assert backend.remove("container", container) is True
    assert backend.remove("container", container) is False
    assert backend.remove("network", "net") is True
    assert backend.remove("network", "net") is False
    assert backend.remove("volume", "vol") is True
    assert backend.remove("volume", "vol") is False
    # a network whose container goes meanwhile is removed, as the Docker backend retries it
    patient = MemoryBackend(busy_timeout=5)
    patient_network = patient.create_network("net", {})
    patient_container = patient.create_container(replace(spec, mounts=()))
    patient.start(patient_container)
    threading.Timer(0.1, patient.kill, (patient_container,)).start()
    assert patient.remove("network", patient_network) is True
    assert backend.faults == [] and patient.faults == []


def test_the_fake_volumes_are_created_once_and_ensured_as_they_are(backend: MemoryBackend) -> None:
    assert backend.create_volume("v", {"a": "1"}) == "v"
    with pytest.raises(RunnerError, match="already exists"):
        backend.create_volume("v", {})
    assert backend.ensure_volume("v", {"a": "2"}) == "v"
    assert backend.ensure_volume("w", {"b": "1"}) == "w"
    assert {r.name: dict(r.labels) for r in backend.list_resources("volume", "a")} == {"v": {"a": "1"}}


def test_the_fake_runs_scripts_streams_their_output_and_ends_them_by_signal(backend: MemoryBackend) -> None:
    def started(*command: str, name: str) -> str:
        container = backend.create_container(
            ContainerSpec(name=name, image="busybox", labels={}, command=command)
        )
        backend.start(container)
        return container

    talker = started("/bin/sh", "-c", "echo one\nsleep 0.05\necho two\nexit 3", name="talker")
    assert b"".join(backend.stream_logs(talker)) == b"one\ntwo\n"
    assert backend.wait(talker) == 3
    assert backend.state(talker).exit_code == 3 and backend.last_lines(talker, 1) == ["two"]
    stubborn = started("/bin/sh", "-c", "ignore-term\necho deaf\nsleep 30", name="stubborn")
    assert next(iter(backend.stream_logs(stubborn))) == b"deaf\n"
    polite = started("sleep", "30", name="polite")
    victim = started("sleep", "infinity", name="victim")
    backend.stop(polite, 10)
    backend.stop(stubborn, 0)  # SIGTERM is ignored: the grace runs out, then SIGKILL
    backend.kill(victim)
    assert (backend.wait(polite), backend.wait(stubborn), backend.wait(victim)) == (
        TERMINATED,
        KILLED,
        KILLED,
    )
    backend.kill(victim)  # already stopped: nothing to do
    backend.kill("no-such-container")
    with pytest.raises(ResourceGone):
        backend.state("no-such-container")


def test_the_fake_publishes_listens_execs_and_holds(backend: MemoryBackend) -> None:
    spec = ContainerSpec(
        name="svc",
        image="redis",
        labels={},
        ports=(PortBinding(container_port=6379), PortBinding(container_port=80, host_port=8080)),
    )
    container = backend.create_container(spec)
    with pytest.raises(RunnerError, match="not running"):
        backend.exec(container, ("true",))
    backend.start(container)
    published = backend.published_ports(container)
    assert published[80] == ("127.0.0.1", 8080) and published[6379][0] == "127.0.0.1"
    assert (
        backend.exec(container, ("/bin/sh", "-c", "wait-for localhost 6379\nconnect svc 6379")).exit_code == 1
    )
    assert backend.listening_ports(container) == frozenset({6379})
    assert backend.image_ports("redis") == (6379,)
    lease = backend.hold(container, ("/bin/sh", "-c", "echo ACK\nread\necho bye"), b"ACK", 1.0)
    with pytest.raises(RunnerError, match="did not answer"):
        backend.hold(container, ("/bin/sh", "-c", "echo no"), b"ACK", 0.2)
    lease.close()
    result = backend.exec(container, ("/bin/sh", "-c", "echo $MISSING-x\nfalse\necho after"))
    assert result == ExecResult(exit_code=0, output=b"-x\nafter\n")
    backend.remove("container", container)
    assert backend.faults == []


def test_the_fake_images_archives_and_builds(backend: MemoryBackend) -> None:
    assert backend.has_image("busybox") and backend.has_image("busybox:latest")
    assert not backend.has_image("other")
    with pytest.raises(ImageUnavailable):
        backend.pull_image("other")
    with pytest.raises(ResourceGone):
        backend.image_ports("other")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        data = b"FROM scratch\nLABEL dev.runner.source-hash=abc other=x\n"
        entry = tarfile.TarInfo("Dockerfile")
        entry.size = len(data)
        archive.addfile(entry, io.BytesIO(data))
    backend.build_image(context.getvalue(), "made:1", {"BASE": "b"})
    assert backend.has_image("made:1") and backend.image_labels("made:1")["dev.runner.source-hash"] == "abc"
    assert backend.image_labels("other") == {}
    container = backend.create_container(ContainerSpec(name="c", image="made:1", labels={}))
    backend.put_archive(container, "/workspace", b"tar bytes")
    assert b"".join(backend.get_archive(container, "/workspace")) == b"tar bytes"
    with pytest.raises(ResourceGone):
        list(backend.get_archive(container, "/elsewhere"))
    assert backend.info().product == "Memory"


# manual steps in a parallel group, and a resume of the run they paused


def test_a_manual_step_in_a_parallel_group_pauses_the_run_after_the_group(
    tmp_path: Path, backend: MemoryBackend, ledger: Ledger
) -> None:
    steps = (
        parallel("group", sh("auto", "echo auto"), sh("gate", "echo gate", manual=True)),
        sh("after", "echo after"),
    )
    pipe = pipeline(tmp_path, steps, finally_=(sh("last", "echo last"),))
    first = execute(pipe, backend, ledger)
    assert statuses(first.result) == {
        "auto": S.SUCCESS,
        "gate": S.PAUSED,
        "after": S.SKIPPED,
        "last": S.SUCCESS,
    }
    assert first.result.status == "paused" and first.result.exit_code == 0

    parent = ledger.run(first.result.run_id)
    assert parent is not None and reuse.resumable(parent) == "resume"
    continuation = reuse.resume(ledger, pipe, parent)
    assert set(continuation.carried) == {"auto"} and continuation.triggered == ("gate",)
    second = execute(
        triggered(pipe, continuation.triggered),
        backend,
        ledger,
        carried=continuation.carried,
        parent=parent.run_id,
    )
    assert second.reporter.order == ["gate", "after", "last"]
    assert statuses(second.result) == {
        "auto": S.SUCCESS,
        "gate": S.SUCCESS,
        "after": S.SUCCESS,
        "last": S.SUCCESS,
    }
    assert second.get("auto").carried_from == first.result.run_id
    assert [r.run_id for r in ledger.continued_by(parent.run_id)] == [second.result.run_id]
    assert backend.leftovers() == []


def test_a_rerun_runs_only_what_did_not_pass_and_a_passed_run_has_nothing_to_rerun(
    tmp_path: Path, backend: MemoryBackend, ledger: Ledger
) -> None:
    pipe = pipeline(tmp_path, (sh("one", "echo one"), sh("two", "exit 1"), sh("three", "echo three")))
    first = execute(pipe, backend, ledger)
    parent = ledger.run(first.result.run_id)
    assert parent is not None and reuse.resumable(parent) == "rerun-failed"
    continuation = reuse.rerun_failed(ledger, pipe, parent)
    assert set(continuation.carried) == {"one"}
    fixed = pipeline(tmp_path, (sh("one", "echo one"), sh("two", "echo two"), sh("three", "echo three")))
    second = execute(fixed, backend, ledger, carried=continuation.carried)
    assert second.reporter.order == ["two", "three"] and second.result.exit_code == 0
    done = ledger.run(second.result.run_id)
    assert done is not None and reuse.resumable(done) is None
    with pytest.raises(InputError, match="nothing to run again"):
        reuse.rerun_failed(ledger, fixed, done)
