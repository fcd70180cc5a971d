"""Variable sharing: a step appends KEY=VALUE lines to $BITBUCKET_PIPELINES_VARIABLES_PATH, and the names it
declares in output-variables are set in the steps after it, on the real engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.engine.status import StepStatus
from runner.engine.variables import SharedVariables, expand, parse
from tests.bitbucket.test_format import action, error_of, load
from tests.bitbucket.test_run import final_saw, project, run, statuses

S = StepStatus


def test_declared_names_are_kept_with_their_last_value_and_the_rest_is_sorted_out() -> None:
    shared = parse(
        "A=1\nB=two words\n\nA=3\nC=x=y\nnot a line\nUNDECLARED=1\nexport D=4\n", ("A", "B", "C", "D")
    )
    assert shared.values == {"A": "3", "B": "two words", "C": "x=y", "D": "4"}
    assert shared.undeclared == ("UNDECLARED",)
    assert shared.malformed == ("not a line",)


def test_a_parallel_group_shares_when_it_has_ended_and_secrets_stay_masked() -> None:
    shared = SharedVariables({"TOKEN": "hunter2"})
    shared.add("before", {"V": "1"})
    with shared.group(frozenset({"left", "right"})):
        shared.add("left", {"L": "from-left", "KEY": "x-hunter2-y"})
        assert shared.current() == {"V": "1"}  # the sibling still running sees nothing new
    assert shared.current() == {"V": "1", "L": "from-left", "KEY": "x-hunter2-y"}
    assert shared.masked_values() == ("x-hunter2-y",)
    assert shared.produced("left") == ({"L": "from-left", "KEY": "x-hunter2-y"}, ("KEY",))


def test_references_expand_as_a_shell_expands_them() -> None:
    env = {"A": "1", "B_2": "two"}
    assert expand("$A-${B_2}-$MISSING-$$-$1-${A}x", env) == "1-two--$$-$1-1x"


def test_service_variables_name_the_step_variables(tmp_path: Path) -> None:
    pipeline = load(
        tmp_path,
        "definitions:\n  services:\n    db:\n      image: postgres\n"
        "      variables: {POSTGRES_USER: $DB_USER, PLAIN: text}\n"
        "pipelines:\n  default:\n    - step: {script: [echo], services: [db]}\n",
    )
    [sidecar] = action(pipeline.steps[0]).sidecars
    assert sidecar.expand_variables and sidecar.env == {"POSTGRES_USER": "$DB_USER", "PLAIN": "text"}


def test_an_output_variable_that_is_not_a_name_is_refused_where_it_is(tmp_path: Path) -> None:
    text = (
        "pipelines:\n  default:\n    - step:\n        script: [echo]\n        output-variables: [OK, 9BAD]\n"
    )
    error = error_of(tmp_path, text)
    assert "'9BAD' is not a variable name" in error.message
    assert str(error.position).endswith(":5:32")


def test_every_step_has_the_file_to_write_to(tmp_path: Path) -> None:
    pipeline = load(tmp_path, "pipelines:\n  default:\n    - step: {script: [echo]}\n")
    assert "output-variables" not in " ".join(w.message for w in pipeline.warnings)


@pytest.mark.docker
def test_variables_reach_later_steps_and_final(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step:
            name: version
            script:
              - echo "VERSION=1.2.$BITBUCKET_BUILD_NUMBER" >> $BITBUCKET_PIPELINES_VARIABLES_PATH
              - echo "VERSION=1.3.$BITBUCKET_BUILD_NUMBER" >> $BITBUCKET_PIPELINES_VARIABLES_PATH
              - echo "FORGOTTEN=yes" >> $BITBUCKET_PIPELINES_VARIABLES_PATH
              - echo "not a variable line" >> $BITBUCKET_PIPELINES_VARIABLES_PATH
            output-variables: [VERSION, NEVER_WRITTEN]
        - step:
            name: use
            script:
              - echo "use sees ${VERSION:-nothing} ${FORGOTTEN:-nothing} ${NEVER_WRITTEN-unset}"
              - echo "GREETING=hello from use" >> $BITBUCKET_PIPELINES_VARIABLES_PATH
              - exit 3
            output-variables: [GREETING]
        - final:
            name: tidy
            script:
              - echo "final sees $VERSION and $GREETING"
    """
    result, reporter = run(project(tmp_path, text))
    assert statuses(result) == {"version": S.SUCCESS, "use": S.FAILED, "tidy": S.SUCCESS}
    assert final_saw(reporter, "use") == ["use sees 1.3.1 nothing unset"]
    assert final_saw(reporter, "tidy") == ["final sees 1.3.1 and hello from use"]
    assert "version: shares VERSION=1.3.1" in reporter.notices
    assert any(
        "FORGOTTEN written to $BITBUCKET_PIPELINES_VARIABLES_PATH but not shared" in n
        for n in reporter.notices
    )
    assert any("not KEY=VALUE: 'not a variable line'" in n for n in reporter.notices)


@pytest.mark.docker
def test_variables_across_a_parallel_group_and_into_final(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step:
            name: first
            script: ['echo "BASE=base" >> $BITBUCKET_PIPELINES_VARIABLES_PATH']
            output-variables: [BASE]
        - parallel:
            - step:
                name: left
                script:
                  - sleep 1
                  - echo "left sees $BASE ${RIGHT:-no-right}"
                  - echo "LEFT=l" >> $BITBUCKET_PIPELINES_VARIABLES_PATH
                output-variables: [LEFT]
            - step:
                name: right
                script:
                  - echo "right sees $BASE ${LEFT:-no-left}"
                  - echo "RIGHT=r" >> $BITBUCKET_PIPELINES_VARIABLES_PATH
                output-variables: [RIGHT]
        - step:
            name: after
            script: ['echo "after sees $BASE $LEFT $RIGHT"']
        - final:
            name: tidy
            script: ['echo "final sees $BASE $LEFT $RIGHT"']
    """
    result, reporter = run(project(tmp_path, text), max_parallel=1)
    assert result.exit_code == 0, result.results
    # with one step at a time, `left` starts after `right` has ended, and still does not see RIGHT
    assert final_saw(reporter, "left") == ["left sees base no-right"]
    assert final_saw(reporter, "right") == ["right sees base no-left"]
    assert final_saw(reporter, "after") == ["after sees base l r"]
    assert final_saw(reporter, "tidy") == ["final sees base l r"]


@pytest.mark.docker
def test_a_shared_value_that_carries_a_secret_is_masked_in_later_steps(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step:
            name: derive
            script: ['echo "HEADER=Bearer $TOKEN" >> $BITBUCKET_PIPELINES_VARIABLES_PATH']
            output-variables: [HEADER]
        - step:
            name: show
            script: ['echo "header is [$HEADER]"']
    """
    secret = {"TOKEN": "tok-9f8e7d"}
    result, reporter = run(project(tmp_path, text), env=secret, secrets=secret)
    assert result.exit_code == 0, result.results
    assert final_saw(reporter, "show") == ["header is [$SECRET]"]
    assert "derive: shares HEADER=$SECRET" in reporter.notices
    assert "tok-9f8e7d" not in (Path(result.log_dir) / "show.log").read_text(encoding="utf-8")
