"""Kestra flows on the real engine: the documentation's flows as written, one flow per task type and per
ordering rule, asserting statuses, outputs and exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.engine.status import RunResult, StepStatus
from runner.formats.options import LoadOptions
from tests.engine.helpers import RecordingReporter, run_file
from tests.kestra import seeds
from tests.test_cli import labelled_of, read_until, start_runner

pytestmark = pytest.mark.docker
S = StepStatus


def flow(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def run(
    path: Path, inputs: dict[str, str] | None = None, **options: object
) -> tuple[RunResult, RecordingReporter]:
    return run_file(path, LoadOptions(variables=inputs or {}), **options)


def statuses(result: RunResult) -> dict[str, StepStatus]:
    return {r.step_id: r.status for r in result.results}


def outputs(result: RunResult, step_id: str) -> dict[str, object]:
    return next(r.outputs for r in result.results if r.step_id == step_id)


def test_fail_then_errors_then_finally(tmp_path: Path) -> None:
    result, reporter = run(flow(tmp_path, seeds.FAIL_ERRORS_FINALLY))
    assert result.exit_code == 1
    assert statuses(result) == {"fail": S.FAILED, "send_alert": S.SUCCESS, "cleanup_task": S.SUCCESS}
    assert result.results[0].message == "Test downstream tasks"
    assert reporter.output("send_alert") == ["alert on failure"]
    assert reporter.output("cleanup_task") == ["cleaning up resources"]


def test_the_successful_variant_runs_finally_but_not_errors(tmp_path: Path) -> None:
    result, reporter = run(flow(tmp_path, seeds.SUCCESSFUL_VARIANT))
    assert result.exit_code == 0
    assert statuses(result) == {"log": S.SUCCESS, "cleanup_task": S.SUCCESS}
    assert reporter.output("cleanup_task") == ["cleaning up resources"]


def test_the_docker_redis_flow_runs_as_written(tmp_path: Path) -> None:
    result, _ = run(flow(tmp_path, seeds.DOCKER_REDIS))
    assert result.exit_code == 0, [(r.step_id, r.status, r.message) for r in result.results]
    assert list(statuses(result).values()) == [S.SUCCESS] * 9
    assert outputs(result, "get")["data"] == "dockerRedis"
    assert "data" not in outputs(result, "getAfterDelete")
    assert outputs(result, "delete") == {"count": 1}
    start = outputs(result, "start")
    assert start["taskRunner"] == {"containerId": start["containerId"]} and start["exitCode"] == 0
    assert result.resources is not None and result.resources.left_running == []
    assert labelled_of(result.run_id) == []


def test_ctrl_c_during_the_redis_flow_sleep_runs_finally_and_leaves_nothing(tmp_path: Path) -> None:
    text = seeds.DOCKER_REDIS.replace("duration: PT1S", "duration: PT60S").replace(
        "description: Wait for the Redis container to start", "description: long enough to be interrupted"
    )
    path = flow(tmp_path, text)
    process = start_runner(path)
    _, run_id = read_until(process, "Waiting for PT60S")
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 130, rest
    lines = [line.split()[:3] for line in rest.splitlines()]
    assert ["sleep", "steps", "STOPPED"] in lines
    assert ["stop", "finally", "SUCCESS"] in lines
    assert labelled_of(run_id) == []


def test_outputs_expressions_and_task_types(tmp_path: Path) -> None:
    text = """
    id: types
    namespace: team.tests
    inputs:
      - {id: who, type: STRING, defaults: world}
    variables:
      greeting: "hello {{ inputs.who }}"
    tasks:
      - id: ret
        type: io.kestra.plugin.core.debug.Return
        format: "{{ render(vars.greeting) | upper }}"
      - id: logs
        type: io.kestra.plugin.core.log.Log
        message:
          - "got {{ outputs.ret.value }}"
          - "{{ flow.namespace ~ '.' ~ flow.id }} {{ 7 / 2 }} {{ [1, 2] }} {{ true and not false }}"
      - id: skipped
        type: io.kestra.plugin.core.log.Log
        runIf: "{{ inputs.who == 'nobody' }}"
        message: never
      - id: check
        type: io.kestra.plugin.core.execution.Assert
        conditions:
          - "{{ outputs.ret.value == 'HELLO WORLD' }}"
          - "{{ outputs contains 'ret' }}"
          - "{{ tasks.skipped.state == 'SKIPPED' }}"
      - id: sleep
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT0.2S
      - id: maybe
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ 1 == 2 }}"
        errorMessage: not this time
    """
    result, reporter = run(flow(tmp_path, text))
    assert result.exit_code == 0, result.results
    assert statuses(result) == {
        "ret": S.SUCCESS,
        "logs": S.SUCCESS,
        "skipped": S.SKIPPED,
        "check": S.SUCCESS,
        "sleep": S.SUCCESS,
        "maybe": S.SUCCESS,
    }
    assert outputs(result, "ret") == {"value": "HELLO WORLD"}
    assert reporter.output("logs") == ["got HELLO WORLD", "team.tests.types 3 [1,2] true"]


def test_a_failed_assert_reports_each_condition_and_its_message(tmp_path: Path) -> None:
    text = """
    id: a
    namespace: n
    tasks:
      - id: check
        type: io.kestra.plugin.core.execution.Assert
        conditions: ["{{ 1 == 1 }}", "{{ 1 == 2 }}", "{{ undefined_thing }}"]
        errorMessage: "checked {{ flow.id }}"
      - id: never
        type: io.kestra.plugin.core.log.Log
        message: never
    """
    result, reporter = run(flow(tmp_path, text))
    assert result.exit_code == 1
    assert statuses(result) == {"check": S.FAILED, "never": S.SKIPPED}
    assert result.results[0].message == "2 assertion(s) failed!\nchecked a"
    assert reporter.output("check") == [
        "ERROR Assertion `{{ 1 == 2 }}` failed!",
        "ERROR Assertion `{{ undefined_thing }}` failed!",
    ]


def test_a_failing_finally_task_does_not_change_the_state_and_after_execution_sees_it(tmp_path: Path) -> None:
    text = """
    id: a
    namespace: n
    tasks:
      - {id: ok, type: io.kestra.plugin.core.log.Log, message: ok}
    finally:
      - {id: broken, type: io.kestra.plugin.core.execution.Fail, errorMessage: cleanup broke}
      - {id: still, type: io.kestra.plugin.core.log.Log, message: "still runs in {{ execution.state }}"}
    afterExecution:
      - {id: after, type: io.kestra.plugin.core.log.Log, message: "ended {{ execution.state }}"}
    """
    result, reporter = run(flow(tmp_path, text))
    assert result.exit_code == 0
    assert statuses(result) == {"ok": S.SUCCESS, "broken": S.FAILED, "still": S.SUCCESS, "after": S.SUCCESS}
    assert [r.step_id for r in result.ignored_failures] == ["broken"]
    assert reporter.output("still") == ["still runs in RUNNING"]
    assert reporter.output("after") == ["ended SUCCESS"]


def test_sequential_with_local_errors_and_finally_still_fails_the_flow(tmp_path: Path) -> None:
    text = """
    id: a
    namespace: n
    tasks:
      - id: seq
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - {id: one, type: io.kestra.plugin.core.log.Log, message: one}
          - {id: ko, type: io.kestra.plugin.core.execution.Fail}
          - {id: skipped, type: io.kestra.plugin.core.log.Log, message: never}
        errors:
          - {id: e1, type: io.kestra.plugin.core.log.Log, message: local error}
        finally:
          - {id: a1, type: io.kestra.plugin.core.log.Log, message: local finally}
      - {id: after_seq, type: io.kestra.plugin.core.log.Log, message: never}
    errors:
      - {id: flow_error, type: io.kestra.plugin.core.log.Log, message: flow error}
    """
    result, _ = run(flow(tmp_path, text))
    assert result.exit_code == 1
    assert statuses(result) == {
        "seq": S.FAILED,  # the flowable's own state: its errors ran, it still failed (FinallyTest)
        "one": S.SUCCESS,
        "ko": S.FAILED,
        "skipped": S.SKIPPED,
        "e1": S.SUCCESS,
        "a1": S.SUCCESS,
        "after_seq": S.SKIPPED,
        "flow_error": S.SUCCESS,
    }


def test_parallel_tasks_run_together(tmp_path: Path) -> None:
    sleeps = "\n".join(
        f"          - {{id: s{i}, type: io.kestra.plugin.core.flow.Sleep, duration: PT1S}}" for i in range(4)
    )
    text = (
        f"id: a\nnamespace: n\ntasks:\n  - id: par\n    type: io.kestra.plugin.core.flow.Parallel\n"
        f"    concurrent: 4\n    tasks:\n{sleeps[4:]}\n"
    )
    result, _ = run(flow(tmp_path, text.replace("\n          - ", "\n      - ")))
    assert result.exit_code == 0
    tasks = [r for r in result.results if not r.group]
    assert len(tasks) == 4 and max(r.duration for r in tasks) < 2.5
    assert sum(r.duration for r in tasks) > 3.5
    assert [(r.step_id, r.status) for r in result.results if r.group] == [("par", S.SUCCESS)]


def test_retry_and_allow_failure(tmp_path: Path) -> None:
    """Kestra: attemptsCount is the number of earlier attempts (0 first, RunVariables.java); maxAttempt
    counts every attempt; an allowFailure task that fails ends WARNING and so does the execution, exit 0
    (Worker.java: `allowFailure && failed -> WARNING`)."""
    text = """
    id: a
    namespace: n
    tasks:
      - id: flaky
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ taskrun.attemptsCount < 2 }}"
        retry: {type: constant, maxAttempts: 3, interval: PT0.1S}
      - id: tolerated
        type: io.kestra.plugin.core.execution.Fail
        allowFailure: true
      - {id: last, type: io.kestra.plugin.core.log.Log, message: reached}
    """
    result, reporter = run(flow(tmp_path, text))
    assert result.exit_code == 0 and result.status == "warning"
    assert statuses(result) == {"flaky": S.SUCCESS, "tolerated": S.WARNING, "last": S.SUCCESS}
    assert len([n for n in reporter.notices if n.startswith("flaky: attempt")]) == 2


def test_docker_run_outputs_and_exit_codes(tmp_path: Path) -> None:
    text = """
    id: a
    namespace: n
    tasks:
      - id: work
        type: io.kestra.plugin.docker.Run
        containerImage: busybox
        env: {WHO: "{{ flow.id }}"}
        commands: [sh, -c, 'echo "hi $WHO"; echo "::{\\"outputs\\":{\\"answer\\":42}}::"']
      - id: use
        type: io.kestra.plugin.core.log.Log
        message: "answer={{ outputs.work.vars.answer }} exit={{ outputs.work.exitCode }}"
      - id: shell
        type: io.kestra.plugin.scripts.shell.Commands
        taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker}
        commands: [cd /tmp, pwd, exit 3]
    """
    result, reporter = run(flow(tmp_path, text))
    assert result.exit_code == 1
    assert statuses(result) == {"work": S.SUCCESS, "use": S.SUCCESS, "shell": S.FAILED}
    assert reporter.output("work") == ["hi a"]
    assert outputs(result, "work")["vars"] == {"answer": 42}
    assert reporter.output("use") == ["answer=42 exit=0"]
    assert reporter.output("shell") == ["/tmp"] and result.results[2].exit_code == 3


def test_a_detached_container_nobody_stops_is_removed_and_reported(tmp_path: Path) -> None:
    text = """
    id: a
    namespace: n
    tasks:
      - {id: forgotten, type: io.kestra.plugin.docker.Run, containerImage: busybox, wait: false,
         commands: [sleep, "600"]}
      - {id: started, type: io.kestra.plugin.docker.Run, containerImage: busybox, wait: false,
         commands: [sleep, "600"]}
    finally:
      - id: stop
        type: io.kestra.plugin.docker.Stop
        containerId: "{{ outputs.started.taskRunner.containerId }}"
        kill: true
      - id: stop_again
        type: io.kestra.plugin.docker.Stop
        containerId: "{{ outputs.started.taskRunner.containerId }}"
    """
    result, _ = run(flow(tmp_path, text))
    assert result.exit_code == 0, result.results
    assert statuses(result) == {
        "forgotten": S.SUCCESS,
        "started": S.SUCCESS,
        "stop": S.SUCCESS,
        "stop_again": S.FAILED,
    }
    assert result.resources is not None
    assert [entry.split(" ")[0] for entry in result.resources.left_running] == ["forgotten"]
    assert labelled_of(result.run_id) == []


def test_redis_tasks_with_json_and_missing_keys(tmp_path: Path) -> None:
    text = """
    id: a
    namespace: n
    tasks:
      - id: server
        type: io.kestra.plugin.docker.Run
        containerImage: redis
        wait: false
        portBindings: ["127.0.0.1:16379:6379"]
      - {id: wait, type: io.kestra.plugin.core.flow.Sleep, duration: PT1S}
      - id: set
        type: io.kestra.plugin.redis.string.Set
        url: redis://:not-configured@localhost:16379/0?protocol=2
        key: doc
        value: {a: 1, b: [x]}
        serdeType: JSON
      - id: get
        type: io.kestra.plugin.redis.string.Get
        url: redis://localhost:16379/0
        key: doc
        serdeType: JSON
      - id: check
        type: io.kestra.plugin.core.execution.Assert
        conditions: ["{{ outputs.get.data.b[0] == 'x' }}"]
      - id: missing
        type: io.kestra.plugin.redis.string.Get
        url: redis://localhost:16379/0
        key: nope
        failedOnMissing: true
    finally:
      - id: stop
        type: io.kestra.plugin.docker.Stop
        containerId: "{{ outputs.server.taskRunner.containerId }}"
    """
    result, reporter = run(flow(tmp_path, text))
    # a RESP2 client sends the one-word AUTH, which a server without a password refuses: connect without it
    assert any(n.startswith("set: the Redis server at localhost has no password") for n in reporter.notices)
    assert statuses(result) == {
        "server": S.SUCCESS,
        "wait": S.SUCCESS,
        "set": S.SUCCESS,
        "get": S.SUCCESS,
        "check": S.SUCCESS,
        "missing": S.FAILED,
        "stop": S.SUCCESS,
    }
    assert outputs(result, "get") == {"data": {"a": 1, "b": ["x"]}, "key": "doc"}
    assert result.results[5].message == "Missing keys 'nope'"
    assert result.exit_code == 1


def test_inputs_on_the_command_line_and_list_and_validate(tmp_path: Path) -> None:
    path = flow(
        tmp_path,
        """
    id: a
    namespace: n
    inputs:
      - {id: count, type: INT}
    tasks:
      - {id: show, type: io.kestra.plugin.core.log.Log, message: "count+1={{ inputs.count + 1 }}"}
    """,
    )
    cli = [sys.executable, "-m", "runner"]
    bad = subprocess.run([*cli, "run", str(path), "--input", "count=many"], capture_output=True, text=True)
    assert bad.returncode == 2 and "input 'count' (INT): 'many' is not a whole number" in bad.stderr
    good = subprocess.run([*cli, "run", str(path), "--input", "count=41"], capture_output=True, text=True)
    assert good.returncode == 0 and "count+1=42" in good.stdout
    for command in ("validate", "list"):
        completed = subprocess.run(
            [*cli, command, str(path), "--input", "count=1"], capture_output=True, text=True
        )
        assert completed.returncode == 0, completed.stderr
    for seed in (seeds.FAIL_ERRORS_FINALLY, seeds.SUCCESSFUL_VARIANT, seeds.DOCKER_REDIS):
        seed_path = flow(tmp_path, seed)
        for command in ("validate", "list"):
            completed = subprocess.run([*cli, command, str(seed_path)], capture_output=True, text=True)
            assert completed.returncode == 0, completed.stderr


def test_the_tasks_of_a_working_directory_share_their_files(tmp_path: Path) -> None:
    """WorkingDirectory.java: its tasks run in one working directory, named by `{{ workingDir }}`; the
    volume that holds it goes with the run."""
    text = """
    id: a
    namespace: n
    tasks:
      - id: wd
        type: io.kestra.plugin.core.flow.WorkingDirectory
        tasks:
          - id: write
            type: io.kestra.plugin.scripts.shell.Commands
            containerImage: busybox
            taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker}
            commands: ["echo shared > note.txt", "pwd"]
          - id: read
            type: io.kestra.plugin.scripts.shell.Commands
            containerImage: busybox
            taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker}
            commands: ["cat {{ workingDir }}/note.txt"]
      - id: outside
        type: io.kestra.plugin.scripts.shell.Commands
        containerImage: busybox
        taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker}
        commands: ["test ! -e note.txt && echo not here"]
    """
    result, reporter = run(flow(tmp_path, text))
    assert result.exit_code == 0, result.results
    assert reporter.output("write") == ["/kestra/working-dir"]
    assert reporter.output("read") == ["shared"]
    assert reporter.output("outside") == ["not here"]
    assert labelled_of(result.run_id) == []
