"""Subflow: another flow run as a run of its own, found in the flow's folder or under --flows, through
the command line on the real engine. Subflow.java: inputs are rendered in the parent; the task's outputs
are the child's executionId, state and flow outputs; with transmitFailed (the default) a failed child
fails the task."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import Cli

PARENT = """id: parent
namespace: company.team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: child
    inputs: {who: "{{ flow.id }}"}
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "got {{ outputs.call.outputs.greeting }} {{ outputs.call.state }}"
  - id: failing
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: child
    inputs: {who: fail}
"""

CHILD = """id: child
namespace: company.team
inputs:
  - {id: who, type: STRING}
tasks:
  - {id: greet, type: io.kestra.plugin.core.log.Log, message: "hello {{ inputs.who }}"}
  - {id: maybe, type: io.kestra.plugin.core.execution.Fail, condition: "{{ inputs.who == 'fail' }}"}
finally:
  - {id: child_done, type: io.kestra.plugin.core.log.Log, message: "child finally ran"}
outputs:
  - {id: greeting, type: STRING, value: "hello {{ inputs.who }}"}
"""


@pytest.mark.docker
def test_a_subflow_runs_with_its_inputs_and_hands_back_its_outputs_and_failure(
    tmp_path: Path, cli: Cli
) -> None:
    (tmp_path / "parent.yml").write_text(PARENT, encoding="utf-8")
    (tmp_path / "child.yml").write_text(CHILD, encoding="utf-8")
    completed = cli("run", str(tmp_path / "parent.yml"))
    assert completed.code == 1, completed.err
    assert "got hello parent SUCCESS" in completed.out
    assert completed.out.count("child finally ran") == 2
    assert "✗ failing FAILED" in completed.out and "subflow company.team.child ended FAILED" in completed.out


@pytest.mark.docker
def test_a_subflow_is_found_under_flows(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "parent.yml").write_text(PARENT.split("  - id: failing")[0], encoding="utf-8")
    library = tmp_path / "library" / "team"
    library.mkdir(parents=True)
    (library / "child.yaml").write_text(CHILD, encoding="utf-8")
    completed = cli("run", "--flows", str(tmp_path / "library"), str(tmp_path / "parent.yml"))
    assert completed.code == 0, completed.out + completed.err
    assert "got hello parent SUCCESS" in completed.out


def test_a_subflow_nobody_can_find_is_refused_before_anything_runs(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "parent.yml").write_text(PARENT, encoding="utf-8")
    completed = cli("validate", str(tmp_path / "parent.yml"))
    assert completed.code == 2
    assert f"{tmp_path / 'parent.yml'}:7:13:" in completed.err
    assert "no flow company.team.child in" in completed.err and "--flows DIR" in completed.err


@pytest.mark.docker
def test_a_subflow_named_by_an_expression_is_found_when_it_runs(tmp_path: Path, cli: Cli) -> None:
    """A flowId written as an expression (a ForEach value, an input) names the child only at run time:
    the file is looked for then, where a named one would have been, and a name nothing answers to fails
    that step alone."""
    parent = """id: dispatch
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["child", "ghost"]
    tasks:
      - id: call
        type: io.kestra.plugin.core.flow.Subflow
        namespace: "{{ flow.namespace }}"
        flowId: "{{ taskrun.value }}"
        inputs: {who: "{{ taskrun.value }}"}
        allowFailure: true
"""
    (tmp_path / "dispatch.yml").write_text(parent, encoding="utf-8")
    (tmp_path / "child.yml").write_text(CHILD, encoding="utf-8")
    validated = cli("validate", str(tmp_path / "dispatch.yml"))
    assert validated.code == 0, validated.err
    completed = cli("run", str(tmp_path / "dispatch.yml"))
    assert completed.code == 0, completed.out  # allowFailure: the failed call is a warning
    assert "hello child" in completed.out
    assert completed.out.count("child finally ran") == 1
    assert "subflow company.team.ghost: no flow with this namespace and id in" in completed.out
