"""Loading Kestra flows: validation, warnings, inputs and what each task compiles to."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import InputError
from runner.model import (
    ContainerRun,
    FailAction,
    Group,
    LogAction,
    Pipeline,
    RedisAction,
    SleepAction,
    Step,
    StopAction,
)
from tests import loading
from tests.kestra import seeds

NAME = "flow.yml"


def write(tmp_path: Path, text: str) -> Path:
    return loading.write(tmp_path, NAME, text)


def load(tmp_path: Path, text: str, **options: object) -> Pipeline:
    return loading.load(tmp_path, NAME, text, **options)


def error_of(tmp_path: Path, text: str, **options: object) -> InputError:
    return loading.error_of(tmp_path, NAME, text, **options)


def step(node: object) -> Step:
    assert isinstance(node, Step)
    return node


def test_the_seed_flows_load(tmp_path: Path) -> None:
    first = load(tmp_path, seeds.FAIL_ERRORS_FINALLY)
    assert first.name == "company.team.finally_example"
    assert isinstance(step(first.steps[0]).action, FailAction)
    assert [s.id for s in first.all_steps()] == ["fail", "send_alert", "cleanup_task"]
    assert not first.cleanup_failures_fail_run
    redis = load(tmp_path, seeds.DOCKER_REDIS)
    start = step(redis.steps[0]).action
    assert isinstance(start, ContainerRun) and start.detach and start.image == "redis"
    assert [(p.host_ip, p.host_port, p.container_port) for p in start.ports] == [("", 6379, 6379)]
    stop = step(redis.finally_[0]).action
    assert stop == StopAction(target="{{outputs.start.taskRunner.containerId}}", by="container")
    assert redis.templating is not None and redis.templating.names["vars"] == {"host": "host.docker.internal"}


def test_the_successful_variant_warns_where_kestra_would_refuse(tmp_path: Path) -> None:
    pipeline = load(tmp_path, seeds.SUCCESSFUL_VARIANT)
    assert [(w.where.rsplit(":", 2)[1:], w.message) for w in pipeline.warnings] == [
        (
            ["7", "5"],
            "unknown property 'errorMessage' of io.kestra.plugin.core.log.Log is ignored; "
            "did you mean 'message'?",
        ),
        (["5", "5"], "Log has no `message`: it logs nothing"),
    ]
    error = error_of(tmp_path, seeds.SUCCESSFUL_VARIANT, strict=True)
    assert error.message.startswith("unknown property 'errorMessage'")
    assert error.position is not None and (error.position.line, error.position.column) == (7, 5)


@pytest.mark.parametrize(
    ("text", "where", "message", "hint"),
    [
        pytest.param(
            "id: f\nnamespace: n\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Logg\n",
            (5, 11),
            "Invalid type: io.kestra.plugin.core.log.Logg",
            "did you mean 'io.kestra.plugin.core.log.Log'?",
            id="unknown-type",
        ),
        pytest.param(
            "id: f\nnamespace: n\ntasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: x}\n"
            "finally:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: y}\n",
            (6, 10),
            "Duplicate task id with name [a]",
            None,
            id="duplicate-id-across-blocks",
        ),
        pytest.param(
            "id: f\nnamespace: Team\ntasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: x}\n",
            (2, 12),
            "'Team' is not a valid namespace",
            "use lower-case letters, digits, '.', '_' and '-'",
            id="namespace-lower-case",
        ),
        pytest.param(
            "id: f\nnamespace: n\ntasks:\n  - {id: a.b, type: io.kestra.plugin.core.log.Log, message: x}\n",
            (4, 10),
            "'a.b' is not a valid task id",
            None,
            id="no-dots-in-task-ids",
        ),
        pytest.param(
            "id: f\nnamespace: n\ntasks: []\n", (3, 8), "tasks: must not be empty", None, id="no-tasks"
        ),
        pytest.param(
            "id: f\nnamespace: n\ntasks:\n  - {id: s, type: io.kestra.plugin.core.flow.Sleep}\n",
            (4, 5),
            "missing required key 'duration' in 'tasks.0'",
            None,
            id="missing-property",
        ),
        pytest.param(
            "id: f\nnamespace: n\ndisabled: true\ntasks:\n  - {id: s, type: io.kestra.plugin.core.flow.Sleep,"
            " duration: PT1S}\n",
            (3, 11),
            "Cannot execute a flow which is disabled",
            None,
            id="disabled",
        ),
        pytest.param(
            "id: f\nnamespace: n\ntasks:\n  - {id: s, type: io.kestra.plugin.core.flow.Sleep, duration: PT1S,"
            " timeout: soon}\n",
            (4, 78),
            "'soon' is not a duration; write it like 30s, 5m, 1h30m",
            None,
            id="bad-timeout",
        ),
    ],
)
def test_bad_flows_are_refused_where_they_are_wrong(
    tmp_path: Path, text: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    error = error_of(tmp_path, text)
    assert error.position is not None
    assert (error.position.line, error.position.column) == where
    assert error.message == message
    if hint:
        assert error.hint == hint


def test_old_type_names_and_common_properties(tmp_path: Path) -> None:
    pipeline = load(
        tmp_path,
        """
        id: f
        namespace: n
        tasks:
          - id: log
            type: io.kestra.core.tasks.log.Log
            message: [one, two]
            level: WARN
            timeout: PT1M30S
            runIf: "{{ inputs.go }}"
            retry: {type: exponential, maxAttempts: 3, interval: PT1S, maxInterval: PT4S}
            allowFailure: true
            allowWarning: true
          - id: gone
            type: io.kestra.plugin.core.log.Log
            message: never
            disabled: true
          - id: both
            type: io.kestra.core.tasks.flows.Parallel
            concurrent: 2
            tasks:
              - {id: p1, type: io.kestra.plugin.core.flow.Sleep, duration: PT1S}
            errors:
              - {id: e1, type: io.kestra.plugin.core.log.Log, message: local error}
          - id: run
            type: io.kestra.plugin.docker.Run
            containerImage: busybox
            commands: [echo, hi]
            memory: {memory: 512MB}
            cpu: {cpus: 1}
            pullPolicy: NEVER
            portBindings: ["0.0.0.0:8080:80"]
          - id: shell
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker}
            beforeCommands: [cd /tmp]
            commands: [echo hi]
          - id: del
            type: io.kestra.plugin.redis.Delete
            url: redis://localhost
            keys: [a, b]
        inputs:
          - {id: go, type: BOOLEAN, defaults: true}
    """,
    )
    log = step(pipeline.steps[0])
    assert log.action == LogAction(messages=("one", "two"), level="WARN")
    assert (log.timeout, log.run_if, log.allow_failure, log.allowed_failure_state, log.allow_warning) == (
        90.0,
        "{{ inputs.go }}",
        True,
        "WARNING",
        True,
    )
    assert log.retry is not None and (log.retry.max_attempts, log.retry.factor, log.retry.max_interval) == (
        3,
        2.0,
        4.0,
    )
    assert [n.id for n in pipeline.steps] == ["log", "both", "run", "shell", "del"]
    group = pipeline.steps[1]
    assert isinstance(group, Group) and group.parallel and group.concurrency == 2
    assert [s.id for s in group.errors] == ["e1"]
    run = step(pipeline.steps[2]).action
    assert isinstance(run, ContainerRun)
    assert (run.command, run.entrypoint, run.memory, run.cpus, run.pull) == (
        ("echo", "hi"),
        None,
        512 * 1024**2,
        1.0,
        "never",
    )
    assert run.ports[0].host_ip == "0.0.0.0"
    shell = step(pipeline.steps[3]).action
    assert isinstance(shell, ContainerRun)
    assert (shell.image, shell.script, shell.pull) == ("ubuntu", ("cd /tmp", "echo hi"), "always")
    assert step(pipeline.steps[4]).action == RedisAction(
        operation="delete", url="redis://localhost", keys=("a", "b")
    )
    assert pipeline.templating is not None and pipeline.templating.names["inputs"] == {"go": True}


INPUTS = """
id: f
namespace: n
inputs:
  - {id: name, type: STRING}
  - {id: count, type: INT, defaults: 3}
  - {id: ratio, type: FLOAT, required: false}
  - {id: when, type: DATE, required: false}
  - {id: wait, type: DURATION, defaults: PT5M}
  - {id: doc, type: JSON, defaults: '{"a": 1}'}
  - {id: mail, type: EMAIL, required: false}
  - {id: env, type: SELECT, values: [dev, prod], defaults: dev}
  - {id: tags, type: MULTISELECT, values: [a, b, c], required: false}
  - {id: ports, type: ARRAY, itemType: INT, required: false}
  - {id: token, type: SECRET, required: false}
tasks:
  - {id: t, type: io.kestra.plugin.core.log.Log, message: x}
"""


def test_inputs_are_typed_defaulted_and_checked(tmp_path: Path) -> None:
    given = {
        "name": "n1",
        "ratio": "0.5",
        "when": "2024-02-29",
        "tags": "a,c",
        "ports": "[80, 443]",
        "token": "t0k",
    }
    pipeline = load(tmp_path, INPUTS, variables=given)
    assert pipeline.templating is not None
    assert pipeline.templating.names["inputs"] == {
        "name": "n1",
        "count": 3,
        "ratio": 0.5,
        "when": "2024-02-29",
        "wait": "PT5M",
        "doc": {"a": 1},
        "mail": None,
        "env": "dev",
        "tags": ["a", "c"],
        "ports": [80, 443],
        "token": "t0k",
    }
    assert pipeline.secrets == ("t0k",)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "input 'name' is required and has no default"),
        ({"name": "x", "count": "three"}, "input 'count' (INT): 'three' is not a whole number"),
        ({"name": "x", "when": "2024-02-30"}, "input 'when' (DATE): '2024-02-30' is not a date"),
        (
            {"name": "x", "wait": "5 minutes"},
            "input 'wait' (DURATION): '5 minutes' is not an ISO-8601 duration",
        ),
        ({"name": "x", "env": "staging"}, "input 'env' (SELECT): 'staging' is not one of the values"),
        ({"name": "x", "mail": "nobody"}, "input 'mail' (EMAIL): 'nobody' is not an email address"),
        ({"name": "x", "doc": "{not json"}, "input 'doc' (JSON): it is not valid JSON"),
        ({"name": "x", "ports": '[80, "http"]'}, "input 'ports' (ARRAY): 'http' is not a whole number"),
        ({"name": "x", "nope": "1"}, "--input nope names no input of this flow"),
    ],
)
def test_bad_inputs_are_refused_before_anything_starts(
    tmp_path: Path, given: dict[str, str], message: str
) -> None:
    assert error_of(tmp_path, INPUTS, variables=given).message == message


def test_unknown_flow_properties_warn(tmp_path: Path) -> None:
    pipeline = load(
        tmp_path,
        """
        id: f
        namespace: n
        triggers: [{id: t, type: x}]
        taks: []
        tasks:
          - {id: s, type: io.kestra.plugin.core.flow.Sleep, duration: PT1S}
    """,
    )
    assert [w.message for w in pipeline.warnings] == [
        "unknown flow property 'taks' is ignored (did you mean 'tasks'?)",
        "`triggers` has no effect when the flow runs locally",
    ]
    assert isinstance(step(pipeline.steps[0]).action, SleepAction)
