"""Kestra's states, retries and flowable groups as Kestra's own code decides them, on the in-memory backend
(these flows start no container). Each test names the Kestra source its expectation comes from; the
sources are Kestra's core at github.com/kestra-io/kestra (Worker.java, ExecutorService.java,
RunVariables.java, TaskRun.java, AbstractRetry.java, Label.java, ErrorLogsFunction.java)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from runner.engine import reuse
from runner.engine.selection import triggered
from runner.engine.status import StepStatus
from runner.errors import InputError
from runner.formats import load_pipeline
from runner.render import summary_table
from runner.teardown.ledger import Ledger
from tests.engine.helpers import statuses
from tests.engine.memory_backend import MemoryBackend
from tests.engine.test_semantics_memory import Run, Write, execute

S = StepStatus
HEAD = "id: f\nnamespace: n\n"
LOG = "io.kestra.plugin.core.log.Log"
RETURN = "io.kestra.plugin.core.debug.Return"
FAIL = "io.kestra.plugin.core.execution.Fail"
STATUS = "io.kestra.plugin.core.condition.ExecutionStatusCondition"


def fail_until(task_id: str, attempts: int, retry: str) -> str:
    return (
        f"  - id: {task_id}\n    type: io.kestra.plugin.core.execution.Fail\n"
        f'    condition: "{{{{ taskrun.attemptsCount < {attempts} }}}}"\n    retry: {retry}\n'
    )


def test_attempts_count_from_zero_and_warning_on_retry_ends_warning(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """RunVariables: attemptsCount is the size of the earlier attempts list; Worker: a SUCCESS after more
    than one attempt with warningOnRetry is WARNING, and the execution ends WARNING (exit 0), which
    afterExecution sees."""
    path = write(
        HEAD
        + "tasks:\n"
        + fail_until("flaky", 2, "{type: constant, maxAttempt: 3, interval: PT0S, warningOnRetry: true}")
        + "  - {id: show, type: io.kestra.plugin.core.log.Log, message: 'after {{ tasks.flaky.state }}'}\n"
        + "afterExecution:\n"
        + "  - {id: after, type: io.kestra.plugin.core.log.Log, message: 'ended {{ execution.state }}'}\n",
        "flow.yml",
    )
    run = execute(path, backend, ledger)
    assert statuses(run.result) == {"flaky": S.WARNING, "show": S.SUCCESS, "after": S.SUCCESS}
    assert run.result.status == "warning" and run.result.exit_code == 0
    assert run.reporter.output("show") == ["after WARNING"]
    assert run.reporter.output("after") == ["ended WARNING"]


def test_a_retry_with_only_a_max_duration_retries_until_it_passes(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """AbstractRetry: maxAttempt and maxDuration are each optional; with maxDuration alone, attempts go on
    until it is spent."""
    path = write(
        HEAD + "tasks:\n" + fail_until("flaky", 4, "{type: constant, maxDuration: PT30S, interval: PT0S}"),
        "flow.yml",
    )
    run = execute(path, backend, ledger)
    assert statuses(run.result) == {"flaky": S.SUCCESS}
    assert len([n for n in run.reporter.notices if n.startswith("flaky: attempt")]) == 4


def test_a_retry_on_a_sequential_or_the_flow_retries_the_task_that_fails(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """ExecutorService: a failed runnable task without a retry of its own takes the nearest parent's
    retry, else the flow's, and is tried again (RETRY_FAILED_TASK)."""
    path = write(
        HEAD
        + "retry: {type: constant, maxAttempt: 2, interval: PT0S}\n"
        + "tasks:\n"
        + "  - id: seq\n    type: io.kestra.plugin.core.flow.Sequential\n"
        + "    retry: {type: constant, maxAttempt: 3, interval: PT0S}\n    tasks:\n"
        + "      - id: inner\n        type: io.kestra.plugin.core.execution.Fail\n"
        + '        condition: "{{ taskrun.attemptsCount < 2 }}"\n'
        + "  - id: top\n    type: io.kestra.plugin.core.execution.Fail\n"
        + '    condition: "{{ taskrun.attemptsCount < 1 }}"\n',
        "flow.yml",
    )
    run = execute(path, backend, ledger)
    assert statuses(run.result) == {"seq": S.SUCCESS, "inner": S.SUCCESS, "top": S.SUCCESS}
    notices = run.reporter.notices
    assert len([n for n in notices if n.startswith("inner: attempt")]) == 2  # the Sequential's retry
    assert len([n for n in notices if n.startswith("top: attempt")]) == 1  # the flow's retry


@pytest.mark.parametrize(
    ("allow", "group", "flow_status"),
    [
        ("    allowFailure: true\n", S.WARNING, "warning"),
        ("    allowFailure: true\n    allowWarning: true\n", S.SUCCESS, "success"),
    ],
)
def test_allow_failure_on_a_sequential_ends_it_warning_and_the_flow_goes_on(
    write: Write, backend: MemoryBackend, ledger: Ledger, allow: str, group: StepStatus, flow_status: str
) -> None:
    """Worker/ExecutorService: a flowable whose child fails is FAILED, unless it allows failure: then
    WARNING (SUCCESS with allowWarning); the execution's state comes from the top-level task runs only,
    so the child's FAILED does not fail it."""
    path = write(
        HEAD
        + "tasks:\n"
        + "  - id: seq\n    type: io.kestra.plugin.core.flow.Sequential\n"
        + allow
        + "    tasks:\n"
        + "      - {id: ko, type: io.kestra.plugin.core.execution.Fail}\n"
        + "      - {id: never, type: io.kestra.plugin.core.log.Log, message: never}\n"
        + "  - {id: next, type: io.kestra.plugin.core.log.Log, message: next}\n",
        "flow.yml",
    )
    run = execute(path, backend, ledger)
    assert statuses(run.result) == {"seq": group, "ko": S.FAILED, "never": S.SKIPPED, "next": S.SUCCESS}
    assert run.result.status == flow_status and run.result.exit_code == 0


def test_fail_fast_on_a_parallel_stops_the_running_siblings(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """Parallel with failFast (Kestra 2's onChildFailure: FAIL): a failing child interrupts the siblings
    still running, and the Parallel fails."""
    path = write(
        HEAD
        + "tasks:\n"
        + "  - id: par\n    type: io.kestra.plugin.core.flow.Parallel\n    failFast: true\n    tasks:\n"
        + "      - {id: slow, type: io.kestra.plugin.core.flow.Sleep, duration: PT30S}\n"
        + "      - {id: ko, type: io.kestra.plugin.core.execution.Fail}\n",
        "flow.yml",
    )
    run = execute(path, backend, ledger)
    result = statuses(run.result)
    assert result["par"] is S.FAILED and result["ko"] is S.FAILED
    assert result["slow"] in (S.STOPPED, S.FAILED)
    assert run.get("slow").duration < 10
    assert run.result.exit_code == 1


def test_group_states_are_shown_above_their_tasks(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    path = write(
        HEAD
        + "tasks:\n  - id: outer\n    type: io.kestra.plugin.core.flow.Sequential\n    tasks:\n"
        + "      - id: inner\n        type: io.kestra.plugin.core.flow.Parallel\n        tasks:\n"
        + "          - {id: leaf, type: io.kestra.plugin.core.log.Log, message: hi}\n",
        "flow.yml",
    )
    run = execute(path, backend, ledger)
    assert [(r.step_id, r.depth, r.group) for r in run.result.results] == [
        ("outer", 0, True),
        ("inner", 1, True),
        ("leaf", 2, False),
    ]
    console = Console(width=120, record=True)
    console.print(summary_table(run.result))
    lines = console.export_text().splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["outer", "inner", "leaf"]
    assert lines[2].startswith("  inner") and lines[3].startswith("    leaf")


def test_error_logs_lists_the_failures_in_an_errors_block(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """ErrorLogsFunction: the execution's ERROR log entries, oldest first, as maps with taskId and
    message."""
    path = write(
        HEAD
        + "tasks:\n"
        + "  - {id: warn, type: io.kestra.plugin.core.log.Log, level: ERROR, message: disk is full}\n"
        + "  - {id: ko, type: io.kestra.plugin.core.execution.Fail, errorMessage: it broke}\n"
        + "errors:\n"
        + "  - id: report\n    type: io.kestra.plugin.core.log.Log\n"
        + '    message: "{% for log in errorLogs() %}{{ log.taskId }}: {{ log.message }}; {% endfor %}"\n',
        "flow.yml",
    )
    run = execute(path, backend, ledger)
    assert run.reporter.output("report") == ["warn: disk is full; ko: it broke; "]


def test_the_read_only_system_label_is_the_only_one_a_flow_may_carry(tmp_path: Path) -> None:
    """Label.java: `system.readOnly` is the one system label flows set themselves."""
    path = tmp_path / "flow.yml"
    body = "tasks:\n  - {id: t, type: io.kestra.plugin.core.log.Log, message: hi}\n"
    path.write_text(HEAD + "labels:\n  system.readOnly: true\n" + body, encoding="utf-8")
    assert load_pipeline(path).templating is not None
    path.write_text(HEAD + "labels:\n  system.correlationId: x\n" + body, encoding="utf-8")
    with pytest.raises(InputError, match="System labels can only be set by Kestra itself"):
        load_pipeline(path)


# the flowable tasks


def run_flow(write: Write, backend: MemoryBackend, ledger: Ledger, tasks: str, inputs: str = "") -> Run:
    return execute(write(HEAD + inputs + "tasks:\n" + tasks, "flow.yml"), backend, ledger)


def test_if_runs_then_or_else_by_truthiness_and_outputs_the_result(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """If.java: the condition is rendered once and judged with TruthUtils.isTruthy; the branch not taken
    gets no task runs; the If's output is evaluationResult."""
    tasks = (
        '  - id: check\n    type: io.kestra.plugin.core.flow.If\n    condition: "{{ 1 + 1 == 3 }}"\n'
        "    then:\n      - {id: taken, type: io.kestra.plugin.core.log.Log, message: then}\n"
        "    else:\n      - {id: other, type: io.kestra.plugin.core.log.Log, message: else}\n"
        "  - {id: show, type: " + LOG + ", message: '{{ outputs.check.evaluationResult }}'}\n"
    )
    run = run_flow(write, backend, ledger, tasks)
    assert statuses(run.result) == {"check": S.SUCCESS, "other": S.SUCCESS, "show": S.SUCCESS}
    assert run.reporter.output("show") == ["false"]


def test_switch_picks_the_case_of_the_rendered_value_or_the_defaults(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """Switch.java: the value is rendered and compared as text with each case key; no match runs
    `defaults`; outputs value and defaults."""
    tasks = (
        '  - id: pick\n    type: io.kestra.plugin.core.flow.Switch\n    value: "{{ 40 + 2 }}"\n    cases:\n'
        "      41: [{id: wrong, type: io.kestra.plugin.core.log.Log, message: wrong}]\n"
        "      42: [{id: right, type: io.kestra.plugin.core.log.Log, message: right}]\n"
        "    defaults: [{id: fallback, type: io.kestra.plugin.core.log.Log, message: fallback}]\n"
        "  - id: none\n    type: io.kestra.plugin.core.flow.Switch\n    value: other\n    cases:\n"
        "      a: [{id: a, type: io.kestra.plugin.core.log.Log, message: a}]\n"
        "    defaults: [{id: default, type: io.kestra.plugin.core.log.Log, message: default}]\n"
        "  - {id: show, type: " + LOG + ", message: '{{ outputs.pick.value }} {{ outputs.none.defaults }}'}\n"
    )
    run = run_flow(write, backend, ledger, tasks)
    assert statuses(run.result) == {
        "pick": S.SUCCESS,
        "right": S.SUCCESS,
        "none": S.SUCCESS,
        "default": S.SUCCESS,
        "show": S.SUCCESS,
    }
    assert run.reporter.output("show") == ["42 true"]


def test_for_each_runs_its_tasks_per_value_with_the_value_and_keyed_outputs(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """ForEach.java: the tasks run once per value, in order (concurrencyLimit 1); `taskrun.value` is the
    value (objects as JSON); a task's outputs are kept under the value, and the parent loop's value is
    `parent.taskrun.value`."""
    tasks = (
        "  - id: outer\n    type: io.kestra.plugin.core.flow.ForEach\n    values: [x, y]\n    tasks:\n"
        "      - id: inner\n        type: io.kestra.plugin.core.flow.ForEach\n"
        "        values: '[1, {\"k\": 2}]'\n        tasks:\n"
        "          - {id: item, type: "
        + RETURN
        + ", format: '{{ parent.taskrun.value }}/{{ taskrun.value }}'}\n"
        "  - {id: show, type: " + LOG + ", message: \"{{ outputs.item['y']['1'].value }}\"}\n"
    )
    run = run_flow(write, backend, ledger, tasks)
    assert [r.step_id for r in run.result.results if r.step_id.startswith("item")] == [
        "item[x][1]",
        'item[x][{"k":2}]',
        "item[y][1]",
        'item[y][{"k":2}]',
    ]
    assert run.get('item[x][{"k":2}]').outputs == {"value": 'x/{"k":2}'}
    assert run.reporter.output("show") == ["y/1"]
    assert run.result.exit_code == 0


def test_a_failed_iteration_stops_the_next_ones_and_fails_the_loop(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    tasks = (
        "  - id: loop\n    type: io.kestra.plugin.core.flow.EachSequential\n"
        "    value: [a, b, c]\n    tasks:\n"
        "      - {id: check, type: " + FAIL + ", condition: \"{{ taskrun.value == 'b' }}\"}\n"
    )
    run = run_flow(write, backend, ledger, tasks)
    assert statuses(run.result) == {
        "loop": S.FAILED,
        "check[a]": S.SUCCESS,
        "check[b]": S.FAILED,
        "check[c]": S.SKIPPED,
    }
    assert run.result.exit_code == 1


def test_each_parallel_runs_the_values_at_once(write: Write, backend: MemoryBackend, ledger: Ledger) -> None:
    tasks = (
        "  - id: loop\n    type: io.kestra.plugin.core.flow.EachParallel\n    value: [a, b, c]\n    tasks:\n"
        "      - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT1S}\n"
    )
    run = run_flow(write, backend, ledger, tasks)
    assert run.result.exit_code == 0
    assert run.get("loop").duration < 2.5


def test_allow_failure_wraps_tasks_whose_failure_ends_it_warning(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """AllowFailure.java: a failing task skips the rest of the block; the block ends WARNING and the
    flow goes on (the flow ends WARNING)."""
    tasks = (
        "  - id: try\n    type: io.kestra.plugin.core.flow.AllowFailure\n    tasks:\n"
        "      - {id: ko, type: io.kestra.plugin.core.execution.Fail}\n"
        "      - {id: never, type: io.kestra.plugin.core.log.Log, message: never}\n"
        "  - {id: next, type: io.kestra.plugin.core.log.Log, message: next}\n"
    )
    run = run_flow(write, backend, ledger, tasks)
    assert statuses(run.result) == {"try": S.WARNING, "ko": S.FAILED, "never": S.SKIPPED, "next": S.SUCCESS}
    assert run.result.status == "warning" and run.result.exit_code == 0


def test_output_values_exit_listeners_and_flow_outputs(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """OutputValues.java: `outputs.ID.values.NAME`, strings rendered. Exit (Kestra's docs): what has not
    started does not start, and the execution ends in the given state; `finally` still runs here.
    Flow outputs are rendered when the execution ends. Listeners (deprecated) run once it has ended,
    when their ExecutionStatusCondition holds."""
    path = write(
        HEAD
        + "tasks:\n"
        + "  - id: vals\n    type: io.kestra.plugin.core.output.OutputValues\n"
        + "    values: {greeting: 'hi {{ flow.id }}', count: 3}\n"
        + "  - id: seq\n    type: io.kestra.plugin.core.flow.Sequential\n    tasks:\n"
        + "      - {id: stop, type: io.kestra.plugin.core.execution.Exit, state: WARNING}\n"
        + "      - {id: never, type: "
        + LOG
        + ", message: never}\n"
        + "  - {id: never2, type: "
        + LOG
        + ", message: never}\n"
        + "errors:\n  - {id: not_an_error, type: "
        + LOG
        + ", message: never}\n"
        + "finally:\n  - {id: fin, type: "
        + LOG
        + ", message: '{{ outputs.vals.values.greeting }}'}\n"
        + "outputs:\n  - {id: summary, type: STRING, value: '{{ outputs.vals.values.count }} greetings'}\n"
        + "listeners:\n"
        + "  - conditions: [{type: "
        + STATUS
        + ", in: [WARNING]}]\n"
        + "    tasks: [{id: heard, type: "
        + LOG
        + ", message: 'heard {{ execution.state }}'}]\n"
        + "  - conditions: [{type: "
        + STATUS
        + ", in: [FAILED]}]\n"
        + "    tasks: [{id: unheard, type: "
        + LOG
        + ", message: never}]\n",
        "flow.yml",
    )
    run = execute(path, backend, ledger)
    assert run.get("vals").outputs == {"values": {"greeting": "hi f", "count": 3}}
    assert statuses(run.result) == {
        "vals": S.SUCCESS,
        "seq": S.SUCCESS,
        "stop": S.SUCCESS,
        "never": S.SKIPPED,
        "never2": S.SKIPPED,
        "fin": S.SUCCESS,
        "heard": S.SUCCESS,
        "unheard": S.SKIPPED,
    }
    assert run.result.status == "warning" and run.result.exit_code == 0
    assert run.result.outputs == {"summary": "3 greetings"}
    assert run.reporter.output("heard") == ["heard WARNING"]


def test_exit_failed_fails_the_run_without_its_errors_block(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    tasks = (
        "  - {id: stop, type: io.kestra.plugin.core.execution.Exit, state: FAILED}\n"
        "  - {id: never, type: " + LOG + ", message: never}\n"
    )
    run = run_flow(write, backend, ledger, tasks)
    assert statuses(run.result) == {"stop": S.SUCCESS, "never": S.SKIPPED}
    assert run.result.status == "failed" and run.result.exit_code == 1


def test_a_flow_output_that_cannot_be_rendered_fails_the_run(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """Kestra's executor: outputs that fail to render at the end make the execution FAILED."""
    path = write(
        HEAD
        + "tasks:\n  - {id: t, type: "
        + LOG
        + ", message: hi}\n"
        + "outputs:\n  - {id: broken, type: STRING, value: '{{ outputs.missing.value }}'}\n",
        "flow.yml",
    )
    run = execute(path, backend, ledger)
    assert run.result.exit_code == 1
    assert "output 'broken' could not be rendered" in run.get("outputs").message


def test_a_pause_without_a_duration_pauses_the_run_and_a_resume_goes_on_after_it(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """Pause.java: with no delay, the execution waits to be resumed. Here, with no terminal to ask, the
    run pauses before it; a resume runs it and what follows; a Pause with a duration only waits."""
    path = write(
        HEAD
        + "tasks:\n"
        + "  - {id: nap, type: io.kestra.plugin.core.flow.Pause, pauseDuration: PT0.1S}\n"
        + "  - id: seq\n    type: io.kestra.plugin.core.flow.Sequential\n    tasks:\n"
        + "      - {id: approve, type: io.kestra.plugin.core.flow.Pause}\n"
        + "      - {id: after, type: "
        + LOG
        + ", message: approved}\n"
        + "  - {id: last, type: "
        + LOG
        + ", message: last}\n",
        "flow.yml",
    )
    first = execute(path, backend, ledger)
    assert statuses(first.result) == {
        "nap": S.SUCCESS,
        "seq": S.PAUSED,
        "approve": S.PAUSED,
        "after": S.SKIPPED,
        "last": S.SKIPPED,
    }
    assert first.result.status == "paused" and first.result.exit_code == 0
    pipe = load_pipeline(path)
    parent = ledger.run(first.result.run_id)
    assert parent is not None
    continuation = reuse.resume(ledger, pipe, parent)
    second = execute(triggered(pipe, continuation.triggered), backend, ledger, carried=continuation.carried)
    assert second.reporter.order == ["approve", "after", "last"]
    assert second.result.exit_code == 0


def test_a_dag_runs_each_task_once_what_it_depends_on_has_passed(
    write: Write, backend: MemoryBackend, ledger: Ledger
) -> None:
    """Dag.java: tasks start when their dependsOn have ended; one whose dependency failed never starts,
    the others go on (onChildFailure CONTINUE, Kestra 1's behaviour)."""
    tasks = (
        "  - id: dag\n    type: io.kestra.plugin.core.flow.Dag\n    tasks:\n"
        "      - task: {id: b, type: " + FAIL + "}\n        dependsOn: [a]\n"
        "      - task: {id: a, type: " + LOG + ", message: a}\n"
        "      - task: {id: c, type: " + LOG + ", message: c}\n        dependsOn: [a]\n"
        "      - task: {id: d, type: " + LOG + ", message: d}\n        dependsOn: [b, c]\n"
    )
    run = run_flow(write, backend, ledger, tasks)
    assert statuses(run.result) == {
        "dag": S.FAILED,
        "a": S.SUCCESS,
        "b": S.FAILED,
        "c": S.SUCCESS,
        "d": S.SKIPPED,
    }
    assert run.reporter.order.index("a") < run.reporter.order.index("b")
    assert run.reporter.order.index("a") < run.reporter.order.index("c")


@pytest.mark.parametrize(
    ("dependencies", "message"),
    [
        (
            "[a]\n      - task: {id: a, type: LOG, message: a}\n        dependsOn: [b]",
            "Infinite loop detected on task 'dag': ",
        ),
        ("[nope]", "Some task doesn't exist on task 'dag': nope"),
    ],
)
def test_a_dag_with_a_cycle_or_an_unknown_dependency_is_refused(
    tmp_path: Path, dependencies: str, message: str
) -> None:
    path = tmp_path / "flow.yml"
    path.write_text(
        HEAD
        + "tasks:\n  - id: dag\n    type: io.kestra.plugin.core.flow.Dag\n    tasks:\n"
        + ("      - task: {id: b, type: LOG, message: b}\n        dependsOn: " + dependencies + "\n").replace(
            "LOG", LOG
        ),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=message):
        load_pipeline(path)
