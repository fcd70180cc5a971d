"""Keys of Bitbucket's current reference that real files start to use: condition.state, sparse checkout,
size 32x, environment and concurrency-group. Each is accepted, and does locally what it means there."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.engine.status import StepStatus
from runner.expressions import state
from tests.bitbucket.test_format import action, error_of, load
from tests.bitbucket.test_run import final_saw, project, run, statuses

S = StepStatus


@pytest.mark.parametrize(
    ("expression", "variables", "holds"),
    [
        ("DEPLOY == true", {"DEPLOY": "true"}, True),
        ("DEPLOY == true", {"DEPLOY": "false"}, False),
        ("DEPLOY == true", {}, False),
        ('NAME == ""', {}, True),
        ('NAME != "prod"', {"NAME": "staging"}, True),
        ("COUNT > 0", {"COUNT": "3"}, True),
        ("COUNT >= 3 && COUNT < 3.5", {"COUNT": "3"}, True),
        ("COUNT == 3", {"COUNT": "3.0"}, True),
        ('glob(BITBUCKET_BRANCH, "release/*")', {"BITBUCKET_BRANCH": "release/1.2"}, True),
        ('glob(BITBUCKET_BRANCH, "{main,develop}")', {"BITBUCKET_BRANCH": "feature/x"}, False),
        ("(A == true || B == true) && ENABLED == false", {"B": "true", "ENABLED": "false"}, True),
        ("!(A == true) && B", {"B": "true"}, True),
        ("A == true || B == true && C == true", {"A": "true"}, True),  # && binds tighter
        ('MSG == "say \\"hi\\""', {"MSG": 'say "hi"'}, True),
    ],
)
def test_state_expressions_evaluate_as_documented(
    expression: str, variables: dict[str, str], holds: bool
) -> None:
    assert state.evaluate(expression, variables) is holds


@pytest.mark.parametrize(
    ("expression", "message", "column"),
    [
        ("A ==", "expected a value, found the end", 4),
        ("A == 1 B", "unexpected 'B'", 7),
        ('glob(A "x")', "expected ',', found '\"x\"'", 7),
        ("A = 1", "unexpected '='", 2),
        ("(A == 1", "expected ')', found the end", 7),
    ],
)
def test_a_broken_expression_says_what_and_where(expression: str, message: str, column: int) -> None:
    with pytest.raises(state.StateError) as raised:
        state.parse(expression)
    assert (raised.value.message, raised.value.column) == (message, column)


def test_a_result_that_is_not_a_boolean_is_an_error() -> None:
    with pytest.raises(state.StateError, match="not true or false"):
        state.evaluate("NAME", {"NAME": "hello"})
    with pytest.raises(state.StateError, match="'x' is not a number"):
        state.evaluate("NAME > 1", {"NAME": "x"})


def test_a_broken_condition_is_refused_at_its_place_before_anything_runs(tmp_path: Path) -> None:
    text = (
        "pipelines:\n  default:\n    - step:\n        script: [echo]\n        condition: {state: 'A == '}\n"
    )
    error = error_of(tmp_path, text)
    assert "condition.state: expected a value, found the end at character 6 of 'A == '" in error.message
    assert str(error.position).endswith(":5:28")


def test_newer_keys_are_accepted_with_notes_and_32x_has_its_memory(tmp_path: Path) -> None:
    text = """
clone:
  tags: true
  sparse-checkout: {enabled: true, cone-mode: true, patterns: [src/, docs/*.md]}
pipelines:
  default:
    - stage:
        name: ship
        environment: staging
        concurrency-group: deploys
        steps:
          - step:
              size: 32x
              script: [echo]
              environment: staging
              concurrency-group: deploys
"""
    pipeline = load(tmp_path, text.lstrip(), strict=True)
    step = action(pipeline.steps[0])
    assert step.memory == 128 * 1024**3
    assert step.clone_paths == ("src", "docs/*.md")
    notes = [w.message for w in pipeline.warnings]
    assert any(n.startswith("concurrency-group has no effect locally") for n in notes)
    assert any(n.startswith("environment: its variables come from --env") for n in notes)
    assert all(w.about == "machine" for w in pipeline.warnings)


@pytest.mark.docker
def test_condition_state_reads_the_variables_shared_before_it(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step:
            name: decide
            script:
              - echo "DEPLOY=true" >> $BITBUCKET_PIPELINES_VARIABLES_PATH
              - echo "COUNT=0" >> $BITBUCKET_PIPELINES_VARIABLES_PATH
            output-variables: [DEPLOY, COUNT]
        - step:
            name: deploy
            condition: {state: 'DEPLOY == true && glob(BITBUCKET_BRANCH, "release/*")'}
            script: ['echo deploying']
        - step:
            name: migrate
            condition: {state: COUNT > 0}
            script: ['echo migrating']
        - step:
            name: broken
            condition: {state: DEPLOY > 1}
            script: ['echo never']
        - final:
            name: tidy
            script: ['echo tidy ran']
    """
    result, reporter = run(project(tmp_path, text), branch="release/1.0")
    assert result.exit_code == 0, result.results
    assert statuses(result) == {
        "decide": S.SUCCESS,
        "deploy": S.SUCCESS,
        "migrate": S.SKIPPED,
        "broken": S.SKIPPED,
        "tidy": S.SUCCESS,
    }
    assert final_saw(reporter, "deploy") == ["deploying"]
    skipped = {r.name: r.message for r in result.results}
    assert skipped["migrate"] == "condition.state is false: COUNT > 0"
    assert skipped["broken"] == "condition.state could not be evaluated: 'true' is not a number"


@pytest.mark.docker
def test_sparse_checkout_copies_only_its_paths(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step:
            name: sparse
            clone:
              sparse-checkout: {patterns: [src]}
            script: ['find . -type f | sort']
        - step:
            name: whole
            script: ['test -f other/b.txt && echo whole tree']
    """
    files = {"src/a.txt": "a", "other/b.txt": "b"}
    result, reporter = run(project(tmp_path, text, files))
    assert result.exit_code == 0, result.results
    assert final_saw(reporter, "sparse") == ["./src/a.txt"]
    assert final_saw(reporter, "whole") == ["whole tree"]


def test_the_three_shapes_of_artifacts_compile_to_named_and_unnamed_ones(tmp_path: Path) -> None:
    text = """
pipelines:
  default:
    - step:
        script: [echo]
        artifacts:
          - plain/**
          - {name: Test Results, type: scoped, paths: [test-results/**]}
    - step:
        script: [echo]
        artifacts:
          download: [dist]
          upload:
            - {name: dist, paths: [dist/**], ignore-paths: [dist/*.map], depth: 2}
"""
    first, second = (action(step) for step in load(tmp_path, text.lstrip()).steps)
    assert first.artifacts is not None and first.artifacts.paths == ("plain/**",)
    [scoped] = first.artifacts.named
    assert (scoped.name, scoped.shared, scoped.paths) == ("Test Results", False, ("test-results/**",))
    assert first.download_names is None and first.download_artifacts
    assert second.artifacts is not None and second.artifacts.paths == ()
    [dist] = second.artifacts.named
    assert (dist.ignore, dist.depth, dist.shared) == (("dist/*.map",), 2, True)
    assert second.download_names == ("dist",)


def test_an_artifact_path_that_leaves_the_clone_is_refused_where_it_is(tmp_path: Path) -> None:
    text = (
        "pipelines:\n  default:\n    - step:\n        script: [echo]\n        artifacts:\n"
        "          upload:\n            - {name: x, paths: [ok/**, ../secret]}\n"
    )
    error = error_of(tmp_path, text)
    assert "artifact path '../secret' leaves the clone directory" in error.message
    assert str(error.position).endswith(":7:40")


@pytest.mark.docker
def test_named_artifacts_reach_later_steps_when_shared_and_asked_for(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step:
            name: build
            script:
              - mkdir -p dist/deep/er reports plain
              - echo app > dist/app.js
              - echo map > dist/app.js.map
              - echo deep > dist/deep/er/x.js
              - echo report > reports/r.xml
              - echo plain > plain/p.txt
            artifacts:
              - plain/**
              - {name: dist, paths: [dist/**], ignore-paths: ["dist/*.map"], depth: 2}
              - {name: reports, type: scoped, paths: [reports/**]}
        - step:
            name: only-dist
            artifacts: {download: [dist]}
            script: ['find dist plain reports -type f 2>/dev/null | sort']
        - step:
            name: everything
            script: ['find dist plain reports -type f 2>/dev/null | sort']
    """
    result, reporter = run(project(tmp_path, text))
    assert result.exit_code == 0, result.results
    assert final_saw(reporter, "only-dist") == ["dist/app.js"]
    assert final_saw(reporter, "everything") == ["dist/app.js", "plain/p.txt"]
    kept = Path(result.log_dir).parent.parent / "artifacts" / result.run_id / "build"
    assert sorted(p.name for p in kept.rglob("*.xml")) == [
        "r.xml"
    ]  # scoped: kept with the run, not passed on
