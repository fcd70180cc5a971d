"""Loading `bitbucket-pipelines.yml`: validation, selection and what each option compiles to."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from runner.errors import InputError
from runner.model import ContainerRun, Group, Pipeline, Step
from tests import loading
from tests.bitbucket import seeds
from tests.conftest import Completed

FINAL_RULES = [
    pytest.param(
        """
        pipelines:
          default:
            - step: {script: [echo a]}
            - final: {script: [echo one]}
            - final: {script: [echo two]}
        """,
        (5, 7),
        "Only one final step is allowed per pipeline",
        "merge the two final steps into one",
        id="only-one-final",
    ),
    pytest.param(
        """
        pipelines:
          default:
            - final: {script: [echo last]}
            - step: {script: [echo a]}
        """,
        (3, 7),
        "The final step must be the last item in the pipeline",
        None,
        id="final-is-last",
    ),
    pytest.param(
        """
        pipelines:
          default:
            - final: {script: [echo alone]}
        """,
        (3, 7),
        "A pipeline must contain at least one step in addition to the final step",
        None,
        id="needs-a-non-final-step",
    ),
    pytest.param(
        """
        pipelines:
          default:
            - parallel:
                - step: {script: [echo a]}
                - final: {script: [echo b]}
        """,
        (5, 11),
        "A final step cannot be defined inside parallel",
        None,
        id="not-in-parallel",
    ),
    pytest.param(
        """
        pipelines:
          default:
            - stage:
                name: s
                steps:
                  - step: {script: [echo a]}
                  - final: {script: [echo b]}
        """,
        (7, 13),
        "A final step cannot be defined inside stage",
        None,
        id="not-in-stage",
    ),
    pytest.param(
        """
        pipelines:
          default:
            - step: {script: [echo a]}
            - final:
                trigger: manual
                script: [echo b]
        """,
        (5, 9),
        "The property 'trigger' is not supported for a final step",
        "remove `trigger` from the final step",
        id="no-manual-trigger",
    ),
    pytest.param(
        """
        pipelines:
          default:
            - step: {script: [echo a]}
            - final:
                script: [echo b]
                deployment: production
        """,
        (6, 9),
        "The property 'deployment' is not supported for a final step",
        None,
        id="no-deployment",
    ),
    pytest.param(
        """
        pipelines:
          default:
            - step: {script: [echo a]}
            - final:
                fail-fast: true
                script: [echo b]
        """,
        (5, 9),
        "The property 'fail-fast' is not supported for a final step",
        None,
        id="no-fail-fast",
    ),
    pytest.param(
        """
        pipelines:
          default:
            - step: {script: [echo a]}
            - final:
                type: pipeline
                custom: other
        """,
        (5, 15),
        "A final step cannot trigger a child pipeline",
        None,
        id="no-child-pipeline",
    ),
]


NAME = "bitbucket-pipelines.yml"
Cli = Callable[..., Completed]


def write(tmp_path: Path, text: str) -> Path:
    return loading.write(tmp_path, NAME, text)


def load(tmp_path: Path, text: str, **options: object) -> Pipeline:
    return loading.load(tmp_path, NAME, text, **options)


def error_of(tmp_path: Path, text: str, **options: object) -> InputError:
    return loading.error_of(tmp_path, NAME, text, **options)


def action(step: object) -> ContainerRun:
    assert isinstance(step, Step) and isinstance(step.action, ContainerRun)
    return step.action


@pytest.mark.parametrize(("text", "where", "message", "hint"), FINAL_RULES)
def test_each_final_rule_is_its_own_error(
    tmp_path: Path, text: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    error = error_of(tmp_path, text)
    assert error.position is not None
    assert (error.position.line, error.position.column) == where
    assert error.message == message
    assert error.hint
    if hint:
        assert error.hint == hint


@pytest.mark.parametrize(
    ("section", "selector"),
    [
        ("default", "default"),
        ("branches", "branches:main"),
        ("tags", "tags:v*"),
        ("pull-requests", "pull-requests:'**'"),
        ("custom", "custom:nightly"),
    ],
)
def test_final_is_allowed_in_every_kind_of_pipeline(tmp_path: Path, section: str, selector: str) -> None:
    key = selector.partition(":")[2]
    items = "\n".join(
        [
            "      - step: {script: [echo a]}",
            "      - final: {script: [echo last]}",
        ]
    )
    body = (
        f"pipelines:\n  default:\n{items[2:].replace('      ', '    ')}\n"
        if section == "default"
        else (f"pipelines:\n  {section}:\n    {key}:\n{items}\n")
    )
    pipeline = load(tmp_path, body, pipeline=selector.replace("'", ""))
    assert [s.name for s in pipeline.finally_] == ["step 2"]


@pytest.mark.parametrize("text", [seeds.BUILD_DEPLOY_CLEANUP, seeds.FAILING_BUILD])
def test_the_announcement_pipelines_compile(tmp_path: Path, text: str) -> None:
    pipeline = load(tmp_path, text)
    assert [s.name for s in pipeline.steps] == ["Build & Test", "Deploy"]  # type: ignore[union-attr]
    assert [s.name for s in pipeline.finally_] == ["Cleanup"]  # type: ignore[union-attr]
    build = action(pipeline.steps[0])
    assert build.image == "atlassian/default-image:latest"
    assert build.workdir == "/opt/atlassian/pipelines/agent/build"
    assert build.shell == "bash" and build.exit_code_variable == "BITBUCKET_EXIT_CODE"


def test_the_custom_release_pipeline_is_chosen_by_name(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load(tmp_path, seeds.CUSTOM_RELEASE)
    assert "no `default` pipeline" in caught.value.message
    pipeline = load(tmp_path, seeds.CUSTOM_RELEASE, pipeline="custom:release")
    assert [s.name for s in pipeline.all_steps()] == ["Build & Test", "Package", "Post-release tasks"]


SELECTION = """
pipelines:
  default:
    - step: {name: from-default, script: [echo]}
  branches:
    main:
      - step: {name: from-main, script: [echo]}
    'feature/*':
      - step: {name: from-feature-glob, script: [echo]}
    '**':
      - step: {name: from-any, script: [echo]}
  tags:
    'v{1,2}.*':
      - step: {name: from-tag, script: [echo]}
"""


@pytest.mark.parametrize(
    ("options", "first"),
    [
        ({"branch": "main"}, "from-main"),
        ({"branch": "feature/login"}, "from-feature-glob"),
        ({"branch": "feature/a/b"}, "from-any"),  # `*` stops at '/', `**` does not
        ({"tag": "v2.0"}, "from-tag"),
        ({"pipeline": "default", "branch": "main"}, "from-default"),
        ({"pipeline": "branches:feature/*"}, "from-feature-glob"),
    ],
)
def test_the_pipeline_is_chosen_as_bitbucket_would(
    tmp_path: Path, options: dict[str, str], first: str
) -> None:
    assert load(tmp_path, SELECTION, **options).all_steps()[0].name == first


def test_an_unmatched_branch_falls_back_to_default_and_an_unmatched_tag_is_an_error(tmp_path: Path) -> None:
    text = (
        "pipelines:\n  default:\n    - step: {name: d, script: [echo]}\n"
        "  tags:\n    v1: [{step: {script: [echo]}}]\n"
    )
    assert load(tmp_path, text, branch="other").all_steps()[0].name == "d"
    error = error_of(tmp_path, text, tag="v9")
    assert error.message == "no pipeline under `pipelines.tags` matches the tag 'v9'"
    assert "--pipeline" in (error.hint or "")
    assert "there is no pipeline custom:x" in error_of(tmp_path, text, pipeline="custom:x").message


CUSTOM = """
pipelines:
  custom:
    deploy:
      - variables:
          - name: TARGET
            default: staging
            allowed-values: [staging, production]
          - name: VERSION
      - step: {script: [echo]}
"""


def test_custom_variables_take_values_defaults_and_are_checked(tmp_path: Path) -> None:
    pipeline = load(tmp_path, CUSTOM, pipeline="custom:deploy", variables={"VERSION": "1.2"})
    env = action(pipeline.steps[0]).env
    assert (env["TARGET"], env["VERSION"]) == ("staging", "1.2")
    missing = error_of(tmp_path, CUSTOM, pipeline="custom:deploy")
    assert missing.message == "the custom pipeline's variable 'VERSION' has no value"
    assert missing.hint == "give it with --var VERSION=VALUE, or add a `default`"
    assert missing.position is not None and missing.position.line == 8
    wrong = error_of(tmp_path, CUSTOM, pipeline="custom:deploy", variables={"VERSION": "1", "TARGET": "moon"})
    assert wrong.message == "variable 'TARGET' is 'moon', which is not one of its allowed values"
    asked: list[str] = []

    def prompt(name: str, default: str | None, allowed: tuple[str, ...]) -> str:
        asked.append(name)
        return "production" if name == "TARGET" else "9"

    prompted = load(tmp_path, CUSTOM, pipeline="custom:deploy", prompt=prompt)
    assert asked == ["TARGET", "VERSION"] and action(prompted.steps[0]).env["TARGET"] == "production"


def test_image_credentials_come_from_the_environment(tmp_path: Path) -> None:
    text = """
    image:
      name: registry.example/app:1
      username: $REG_USER
      password: ${REG_PASSWORD}
      run-as-user: 1000
    pipelines:
      default:
        - step: {script: [id -u]}
    """
    pipeline = load(tmp_path, text, env={"REG_USER": "me", "REG_PASSWORD": "pw"})
    step = action(pipeline.steps[0])
    assert step.registry_auth is not None
    assert (step.registry_auth.username, step.registry_auth.password, step.user) == ("me", "pw", "1000")
    error = error_of(tmp_path, text, env={"REG_USER": "me"})
    assert error.message == "the variable $REG_PASSWORD is not set"
    assert error.position is not None and error.position.line == 4


def test_step_options_compile_to_the_model(tmp_path: Path) -> None:
    text = """
    image: base:1
    options: {max-time: 30, size: 2x}
    definitions:
      services:
        db: {image: {name: pg:15}, variables: {POSTGRES_PASSWORD: pw}, memory: 512}
      caches:
        deps:
          key: {files: [lock.txt]}
          path: vendor
      steps:
        - step: &shared
            name: shared
            script: [echo shared]
    pipelines:
      default:
        - step:
            <<: *shared
            name: overridden
            image: other:2
            max-time: 5
            size: 4x
            services: [db, docker]
            caches: [pip, deps]
            artifacts: {download: false, paths: ["dist/**"]}
            on-fail: {strategy: ignore}
            after-script: [echo after]
        - parallel:
            fail-fast: true
            steps:
              - step: {name: a, script: [echo a], deployment: test}
              - step: {name: b, script: [echo b], fail-fast: true}
        - stage:
            name: deploy
            deployment: production
            trigger: manual
            steps:
              - step: {name: one, script: [echo 1]}
              - step: {name: two, script: [echo 2]}
    """
    (tmp_path / "lock.txt").write_text("v1", encoding="utf-8")
    pipeline = load(tmp_path, text)
    first = pipeline.steps[0]
    assert isinstance(first, Step) and first.name == "overridden"
    run = action(first)
    assert (run.image, first.timeout, run.memory, first.allow_failure) == (
        "other:2",
        300.0,
        16 * 1024**3,
        True,
    )
    assert [(s.name, s.image, s.env, s.memory) for s in run.sidecars] == [
        ("db", "pg:15", {"POSTGRES_PASSWORD": "pw"}, 512 * 1024**2)
    ]
    assert run.docker_socket
    assert [(c.name, c.path) for c in run.caches] == [("pip", "/root/.cache/pip"), ("deps", "vendor")]
    assert run.caches[1].key  # from lock.txt's content
    assert run.artifacts is not None and run.artifacts.paths == ("dist/**",) and not run.download_artifacts
    assert run.after_script == ("printf '+ %s\\n' 'echo after'", "echo after")
    group = pipeline.steps[1]
    assert isinstance(group, Group) and group.fail_fast
    assert [s.fail_fast for s in group.steps] == [False, True]
    assert [action(s).env["BITBUCKET_PARALLEL_STEP"] for s in group.steps] == ["0", "1"]
    assert group.steps[0].name == "a [test]"
    assert action(group.steps[0]).env["BITBUCKET_DEPLOYMENT_ENVIRONMENT"] == "test"
    assert group.steps[1].timeout == 1800.0  # options.max-time: 30 minutes
    one, two = pipeline.steps[2], pipeline.steps[3]
    assert isinstance(one, Step) and isinstance(two, Step)
    assert (one.manual, two.manual) == (True, False)
    assert action(two).env["BITBUCKET_DEPLOYMENT_ENVIRONMENT"] == "production"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "pipelines:\n  default:\n    - step: {script: [echo], services: [redis]}\n",
            "unknown service 'redis'",
        ),
        ("pipelines:\n  default:\n    - step: {script: [echo], caches: [nope]}\n", "unknown cache 'nope'"),
        (
            "pipelines:\n  default:\n    - step: {script: [echo], artifacts: [../out]}\n",
            "artifact path '../out' leaves the clone directory",
        ),
        ("pipelines:\n  default:\n    - step: {name: x}\n", "a step needs a `script`"),
        (
            "definitions:\n  caches:\n    up: ../../etc\n"
            "pipelines:\n  default:\n    - step: {script: [a], caches: [up]}\n",
            "cache 'up' has the path '../../etc', which leaves its directory",
        ),
        (
            "pipelines:\n  default:\n    - stage:\n        steps:\n"
            "          - step: {script: [a], trigger: manual}\n",
            "A step within a stage can't have a manual trigger",
        ),
        (
            "pipelines:\n  default:\n    - step: {script: [echo], max-time: 0}\n",
            "default.0.step.max-time: is too small",
        ),
        (
            "pipelines:\n  default:\n    - step: {script: [echo], sise: 2x}\n",
            "unknown key 'sise' in 'pipelines.default.0.step'",
        ),
        (
            "pipelines:\n  default:\n    - stepp: {script: [echo]}\n",
            "each pipeline item is one of `step`, `parallel`, `stage`, `final` (or `variables` first)",
        ),
        ("image: x\n", "missing required key 'pipelines' in the top level"),
    ],
)
def test_bad_files_are_refused_with_a_position(tmp_path: Path, text: str, message: str) -> None:
    error = error_of(tmp_path, text)
    assert message in error.message
    assert error.position is not None


@pytest.mark.parametrize(("text", "where", "message", "hint"), FINAL_RULES)
def test_a_final_rule_broken_in_another_pipeline_refuses_the_run(
    tmp_path: Path, text: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    """Bitbucket starts no pipeline of a file that breaks a rule anywhere in it."""
    broken = yaml.safe_load(textwrap.dedent(text))["pipelines"]["default"]
    document = {"pipelines": {"default": [{"step": {"script": ["echo fine"]}}], "custom": {"broken": broken}}}
    text = yaml.safe_dump(document, sort_keys=False)
    error = error_of(tmp_path, text, pipeline="default")
    assert error.message == f"in pipeline custom:broken: {message}"
    assert error.position is not None and error.hint
    checked = load(tmp_path, text, pipeline="default", check_only=True)  # `list` still reads it
    assert checked.steps


def test_validate_says_which_pipeline_holds_and_ends_with_a_line_that_cannot_be_misread(
    tmp_path: Path, cli: Cli
) -> None:
    path = tmp_path / NAME
    path.write_text(
        "pipelines:\n"
        "  default:\n"
        "    - step: {script: [echo fine]}\n"
        "  custom:\n"
        "    deploy:\n"
        "      - step: {script: [echo deploy]}\n"
        "      - final: {fail-fast: true, script: [echo tidy]}\n",
        encoding="utf-8",
    )
    completed = cli("validate", str(path))
    assert completed.code == 2
    lines = completed.out.splitlines()
    assert lines[0] == f"{path}: default: no problem — 1 steps"
    assert lines[1] == f"{path}: custom:deploy: has problems (below)"
    assert lines[-1].startswith(f"{path}: INVALID — 1 of 2 pipeline(s) with problems")
    assert "valid —" not in completed.out
    assert f"{path}:7:" in completed.err and "'fail-fast' is not supported for a final step" in completed.err


def test_notes_about_this_machine_are_not_errors_under_strict(tmp_path: Path) -> None:
    """oidc, runs-on, the docker cache and changesets outside git say how this machine differs from
    Bitbucket, not what is wrong with the file: --strict loads such a file."""
    text = (
        "pipelines:\n"
        "  default:\n"
        "    - step: {script: [echo], oidc: true, runs-on: [self.hosted]}\n"
        "    - step:\n"
        "        script: [echo]\n"
        "        caches: [docker]\n"
        "        condition: {changesets: {includePaths: [src/**]}}\n"
    )
    for strict in (False, True):
        pipeline = load(tmp_path, text, strict=strict)
        assert [(w.message.split(":")[0], w.about) for w in pipeline.warnings] == [
            ("oidc is not supported locally", "machine"),
            ("runs-on is ignored locally", "machine"),
            ("the docker cache has no meaning locally", "machine"),
            ("condition.changesets cannot be evaluated outside a git checkout", "machine"),
        ]
    assert pipeline.warnings[0].where.endswith(":3:36")
    assert str(pipeline.warnings[0]).split(": ")[1] == "note"


def test_a_problem_in_the_file_is_an_error_under_strict_and_a_note_beside_it_is_not(
    tmp_path: Path, cli: Cli
) -> None:
    path = tmp_path / NAME
    path.write_text(
        "simage: alpine\npipelines:\n  default:\n    - step: {script: [echo], caches: [docker]}\n",
        encoding="utf-8",
    )
    relaxed = cli("validate", str(path))
    assert relaxed.code == 0, relaxed.err
    assert f"{path}:1:1: warning: unknown top-level key 'simage'" in relaxed.out
    assert f"{path}:4:39: note: the docker cache has no meaning locally" in relaxed.out
    strict = cli("validate", "--strict", str(path))
    assert strict.code == 2
    assert f"{path}:1:1:" in strict.err and "did you mean 'image'" in strict.err
    assert "docker cache" not in strict.err


def git(directory: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(directory), "-c", "user.email=t@e", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
    )


def test_changesets_are_evaluated_against_git(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step:
            name: docs
            condition: {changesets: {includePaths: ["docs/**"]}}
            script: [echo docs]
        - step:
            name: code
            condition: {changesets: {includePaths: ["src/*.py"], excludePaths: ["src/skip.py"]}}
            script: [echo code]
    """
    outside = load(tmp_path, text)
    assert [s.skip_reason for s in outside.all_steps()] == [None, None]
    assert outside.warnings[0].message.startswith("condition.changesets cannot be evaluated")
    git(tmp_path, "init", "-q")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("x", encoding="utf-8")
    write(tmp_path, text)
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first")
    pipeline = load(tmp_path, text)
    assert [s.skip_reason for s in pipeline.all_steps()] == [
        "condition.changesets: no changed file matches",
        None,
    ]
    env = action(pipeline.all_steps()[1]).env
    assert len(env["BITBUCKET_COMMIT"]) == 40 and env["BITBUCKET_BRANCH"] in ("main", "master")
    assert pipeline.source_files is not None and "src/app.py" in pipeline.source_files


def test_pipes_compile_to_their_images(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step:
            script:
              - echo before
              - pipe: atlassian/aws-s3-deploy:1.1.0
                variables: {BUCKET: b, FLAGS: [a, b]}
              - pipe: docker://my/own:2
              - echo after
    """
    run = action(load(tmp_path, text).steps[0])
    assert [(i, p.image, p.env) for i, p in run.pipes] == [
        (
            2,
            "bitbucketpipelines/aws-s3-deploy:1.1.0",
            # an array variable as Bitbucket passes it, and whole as JSON
            {"BUCKET": "b", "FLAGS_COUNT": "2", "FLAGS_0": "a", "FLAGS_1": "b", "FLAGS": '["a", "b"]'},
        ),
        (2, "my/own:2", {}),
    ]
    assert run.script[2:] == ("printf '+ %s\\n' 'echo after'", "echo after")


def test_top_level_keys_that_only_hold_anchors_are_accepted(tmp_path: Path) -> None:
    """The layout of Atlassian's pipe repositories: steps defined under keys of their own, used by alias."""
    text = """\
test: &test
  step:
    name: test
    script: [echo test]
push: &push
  step:
    name: push
    script: [echo push]
stepdefinitions:
  - lint: &lint
      name: lint
      script: [echo lint]
pipelines:
  default:
    - <<: *test
    - step: *lint
    - <<: *push
"""
    pipeline = load(tmp_path, text)
    assert [s.name for s in pipeline.steps if isinstance(s, Step)] == ["test", "lint", "push"]
    assert pipeline.warnings == ()
    assert load(tmp_path, text, strict=True).warnings == ()


def test_a_top_level_key_like_a_known_one_mistyped_warns_and_strict_refuses(tmp_path: Path) -> None:
    text = "simage: busybox\npipelines:\n  default:\n    - step: {script: [echo]}\n"
    pipeline = load(tmp_path, text)
    assert [w.message for w in pipeline.warnings] == [
        "unknown top-level key 'simage' is ignored: did you mean 'image'?"
    ]
    assert pipeline.warnings[0].where.endswith(":1:1")
    error = error_of(tmp_path, text, strict=True)
    assert "did you mean 'image'?" in error.message and str(error.position).endswith(":1:1")


def test_keys_written_beside_step_instead_of_under_it_say_so(tmp_path: Path) -> None:
    text = "pipelines:\n  default:\n    - step:\n      name: build\n      script:\n        - echo hi\n"
    error = error_of(tmp_path, text)
    assert error.message == "`name` is beside `step:` in this item, not inside it"
    assert error.hint is not None and "indent `name:`" in error.hint and "under `step:`" in error.hint
    assert str(error.position).endswith(":4:7")


def test_every_problem_of_every_step_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
pipelines:
  default:
    - step: {name: one, scrpit: [echo], imgae: busybox, script: [echo]}
    - step: {nme: two, script: [echo]}
    - parallel:
        - step: {script: [echo], maxtime: 5}
"""
    error = error_of(tmp_path, text)
    reported = [
        (problem.message, str(problem.position).rsplit(":", 2)[-2]) for problem in [error, *error.others]
    ]
    assert [message.split(" in ")[0] for message, _ in reported] == [
        "unknown key 'scrpit'",
        "unknown key 'imgae'",
        "unknown key 'nme'",
        "unknown key 'maxtime'",
    ]
    assert [line for _, line in reported] == ["3", "3", "4", "6"]


def test_a_step_shared_by_anchors_is_warned_about_once(tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / NAME
    path.write_text(
        "definitions:\n"
        "  steps:\n"
        "    - step: &shared {script: [echo], oidc: true}\n"
        "pipelines:\n"
        "  default:\n"
        "    - step: *shared\n"
        "  branches:\n"
        "    main:\n"
        "      - step: *shared\n",
        encoding="utf-8",
    )
    completed = cli("validate", str(path))
    assert completed.code == 0, completed.err
    warnings = [line for line in completed.out.splitlines() if "oidc is not supported locally" in line]
    assert len(warnings) == 1, completed.out
    assert completed.out.count(": valid — ") == 2
