"""Bitbucket pipelines run on the real engine: one pipeline per feature, asserting statuses, exit codes
and what the final step saw."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.backend import connect
from runner.engine.status import RunResult, StepStatus
from runner.formats.options import LoadOptions
from tests.bitbucket import seeds
from tests.conftest import BUSYBOX, image_args
from tests.engine.helpers import RecordingReporter, run_file
from tests.test_cli import labelled_of, read_until, start_runner

pytestmark = pytest.mark.docker
S = StepStatus
PIPE_IMAGE = "bitbucketpipelines/runner-test-pipe:1.0"


def project(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> Path:
    for name, content in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        if name.endswith(".sh"):
            path.chmod(0o755)
    pipeline = tmp_path / "bitbucket-pipelines.yml"
    pipeline.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return pipeline


def run(path: Path, **options: object) -> tuple[RunResult, RecordingReporter]:
    load = LoadOptions(
        **{k: options.pop(k) for k in list(options) if k in ("pipeline", "branch", "variables")}
    )
    return run_file(path, load, **options)


def statuses(result: RunResult) -> dict[str, StepStatus]:
    return {r.name: r.status for r in result.results}


def final_saw(reporter: RecordingReporter, step_id: str) -> list[str]:
    return [line for line in reporter.output(step_id) if not line.startswith("+ ")]


def test_announcement_example_succeeds_and_runs_its_final_step(tmp_path: Path) -> None:
    result, reporter = run(project(tmp_path, seeds.BUILD_DEPLOY_CLEANUP))
    assert result.exit_code == 0
    assert statuses(result) == {"Build & Test": S.SUCCESS, "Deploy": S.SUCCESS, "Cleanup": S.SUCCESS}
    assert reporter.order == ["build-test", "deploy", "cleanup"]
    assert final_saw(reporter, "cleanup") == ["This is the final step"]


def test_announcement_failing_example_exits_1_and_cleanup_still_runs(tmp_path: Path) -> None:
    result, reporter = run(project(tmp_path, seeds.FAILING_BUILD))
    assert result.exit_code == 1
    assert statuses(result) == {"Build & Test": S.FAILED, "Deploy": S.SKIPPED, "Cleanup": S.SUCCESS}
    assert final_saw(reporter, "build-test") == ["This is the build step"]
    assert final_saw(reporter, "cleanup") == ["This is the final step"]


def test_announcement_custom_release_runs_its_scripts_and_final(tmp_path: Path) -> None:
    scripts = {
        f"scripts/{name}.sh": f"#!/bin/sh\necho {name} ran\n"
        for name in ("build-and-test", "package", "publish-metrics", "notify-release-channel")
    }
    result, reporter = run(project(tmp_path, seeds.CUSTOM_RELEASE, scripts), pipeline="custom:release")
    assert result.exit_code == 0, result.results
    assert statuses(result) == {
        "Build & Test": S.SUCCESS,
        "Package": S.SUCCESS,
        "Post-release tasks": S.SUCCESS,
    }
    assert final_saw(reporter, "post-release-tasks") == ["publish-metrics ran", "notify-release-channel ran"]


def test_the_final_step_sees_the_outcome(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step: {name: ok, script: [echo ok]}
        - step: {name: broken, script: [exit 4]}
        - final:
            name: report
            script: ['echo "status=$RUNNER_PIPELINE_STATUS failed=$RUNNER_FAILED_STEPS"']
    """
    result, reporter = run(project(tmp_path, text))
    assert result.exit_code == 1
    assert final_saw(reporter, "report") == ["status=failed failed=broken"]


def test_a_failing_final_step_fails_a_passing_pipeline(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step: {name: ok, script: [echo ok]}
        - final: {name: last, script: [exit 2]}
    """
    result, _ = run(project(tmp_path, text))
    assert result.exit_code == 1
    assert statuses(result) == {"ok": S.SUCCESS, "last": S.FAILED}


def test_only_declared_artifacts_reach_later_steps_from_a_fresh_tree(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step:
            name: build
            script:
              - mkdir -p dist/sub && echo app > dist/sub/app.txt && echo report > report.xml
              - echo undeclared > notes.txt && echo changed > input.txt
            artifacts: [dist/**, "*.xml"]
        - step:
            name: use
            script:
              - cat dist/sub/app.txt report.xml input.txt
              - test ! -e notes.txt && echo no-undeclared-file
              - pwd
        - step:
            name: no download
            artifacts: {download: false}
            script: ['test ! -e dist && echo no-artifacts']
    """
    path = project(tmp_path, text, {"input.txt": "original\n"})
    result, reporter = run(path)
    assert result.exit_code == 0, result.results
    assert final_saw(reporter, "use") == [
        "app",
        "report",
        "original",
        "no-undeclared-file",
        "/opt/atlassian/pipelines/agent/build",
    ]
    assert final_saw(reporter, "no-download") == ["no-artifacts"]


def test_after_script_sees_the_exit_code_and_never_changes_the_result(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step:
            name: passes
            script: [echo fine]
            after-script: ['echo "after $BITBUCKET_EXIT_CODE"', exit 9]
        - step:
            name: fails
            script: [cd /tmp, nosuchcommand]
            after-script: ['echo "after $BITBUCKET_EXIT_CODE in $PWD"']
        - final: {name: end, script: [echo end]}
    """
    result, reporter = run(project(tmp_path, text))
    assert statuses(result) == {"passes": S.SUCCESS, "fails": S.FAILED, "end": S.SUCCESS}
    assert "after 0" in final_saw(reporter, "passes")
    assert "after-script failed with exit code 9" in final_saw(reporter, "passes")
    assert "after 127 in /opt/atlassian/pipelines/agent/build" in final_saw(reporter, "fails")
    assert result.results[1].exit_code == 127


def test_services_answer_on_localhost(tmp_path: Path) -> None:
    text = """
    definitions:
      services:
        redis: {image: redis}
    pipelines:
      default:
        - step:
            name: use redis
            image: redis
            services: [redis]
            script: [redis-cli -h localhost set k v, redis-cli get k]
    """
    result, reporter = run(project(tmp_path, text))
    assert result.exit_code == 0, result.results
    assert final_saw(reporter, "use-redis") == ["OK", "v"]
    assert labelled_of(result.run_id) == []


@pytest.mark.parametrize("fail_fast", [False, True])
def test_parallel_steps_and_fail_fast(tmp_path: Path, fail_fast: bool) -> None:
    text = f"""
    pipelines:
      default:
        - parallel:
            fail-fast: {str(fail_fast).lower()}
            steps:
              - step: {{name: slow, script: ["sleep 3", "echo slow-done"]}}
              - step: {{name: broken, script: ["exit 5"]}}
        - step: {{name: after, script: [echo after]}}
        - final: {{name: end, script: [echo end]}}
    """
    result, reporter = run(project(tmp_path, text))
    assert result.exit_code == 1
    expected_slow = S.STOPPED if fail_fast else S.SUCCESS
    assert statuses(result) == {
        "slow": expected_slow,
        "broken": S.FAILED,
        "after": S.SKIPPED,
        "end": S.SUCCESS,
    }
    assert ("slow-done" in final_saw(reporter, "slow")) is not fail_fast


def test_parallel_steps_run_at_the_same_time(tmp_path: Path) -> None:
    steps = "\n".join(f"          - step: {{name: p{i}, script: [sleep 2]}}" for i in range(4))
    result, _ = run(project(tmp_path, f"pipelines:\n  default:\n    - parallel:\n        steps:\n{steps}\n"))
    assert result.exit_code == 0
    assert sum(r.duration for r in result.results) > 8
    assert max(r.duration for r in result.results) < 6


def test_a_stage_runs_its_steps_in_order_with_its_deployment(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - stage:
            name: ship
            deployment: staging
            steps:
              - step: {name: one, script: ['echo "one $BITBUCKET_DEPLOYMENT_ENVIRONMENT"']}
              - step: {name: two, script: ['echo "two $BITBUCKET_DEPLOYMENT_ENVIRONMENT"']}
    """
    result, reporter = run(project(tmp_path, text))
    assert result.exit_code == 0
    assert reporter.order == ["one", "two"]
    assert [r.name for r in result.results] == ["one [staging]", "two [staging]"]
    assert final_saw(reporter, "two") == ["two staging"]


def test_a_manual_step_pauses_the_run_and_final_still_runs(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step: {name: build, script: [echo build]}
        - step: {name: deploy, trigger: manual, script: [echo deploy]}
        - step: {name: verify, script: [echo verify]}
        - final: {name: end, script: ['echo "end $RUNNER_PIPELINE_STATUS"']}
    """
    path = project(tmp_path, text)
    result, reporter = run(path)
    assert result.exit_code == 0 and result.status == "paused"
    assert statuses(result) == {"build": S.SUCCESS, "deploy": S.PAUSED, "verify": S.SKIPPED, "end": S.SUCCESS}
    assert final_saw(reporter, "end") == ["end paused"]
    confirmed, _ = run(path, confirm_manual=lambda step: True)
    assert statuses(confirmed)["deploy"] is S.SUCCESS and statuses(confirmed)["verify"] is S.SUCCESS


def test_on_fail_ignore_lets_the_pipeline_go_on(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step: {name: lint, on-fail: {strategy: ignore}, script: [exit 1]}
        - step: {name: build, script: [echo build]}
    """
    result, _ = run(project(tmp_path, text))
    assert result.exit_code == 0
    assert statuses(result) == {"lint": S.FAILED, "build": S.SUCCESS}


def test_bitbucket_variables_are_set(tmp_path: Path) -> None:
    text = """
    pipelines:
      branches:
        'release/*':
          - step:
              name: show
              script:
                - 'echo "$CI $BITBUCKET_BRANCH $BITBUCKET_BUILD_NUMBER $BITBUCKET_CLONE_DIR"'
                - 'echo "${#BITBUCKET_COMMIT} ${BITBUCKET_STEP_UUID:0:1} ${BITBUCKET_PIPELINE_UUID:0:1}"'
                - 'echo "$BITBUCKET_REPO_SLUG"'
    """
    path = project(tmp_path, text)
    result, reporter = run(path, branch="release/1.0")
    assert result.exit_code == 0, result.results
    assert final_saw(reporter, "show") == [
        "true release/1.0 1 /opt/atlassian/pipelines/agent/build",
        "40 { {",
        tmp_path.name.lower(),
    ]


def test_secrets_are_masked_in_every_line(tmp_path: Path) -> None:
    text = "pipelines:\n  default:\n    - step: {name: leak, script: ['echo \"token is $TOKEN\"']}\n"
    path = project(tmp_path, text)
    result, reporter = run(path, env={"TOKEN": "s3cr3t-value"}, secrets={"TOKEN": "s3cr3t-value"})
    assert result.exit_code == 0
    assert final_saw(reporter, "leak") == ["token is $SECRET"]
    log = Path(result.log_dir) / "leak.log"
    assert "s3cr3t-value" not in log.read_text(encoding="utf-8")


def test_caches_outlive_the_run_and_cleanup(tmp_path: Path) -> None:
    text = """
    definitions:
      caches:
        counter: .counter
    pipelines:
      default:
        - step:
            name: count
            caches: [counter]
            script: ['echo x >> .counter/runs', 'wc -l < .counter/runs']
    """
    path = project(tmp_path, text)
    backend = connect()
    try:
        first, reporter_one = run(path)
        second, reporter_two = run(path)
        assert (first.exit_code, second.exit_code) == (0, 0)
        assert final_saw(reporter_one, "count")[-1] == "1"
        assert final_saw(reporter_two, "count")[-1] == "2"
        subprocess.run([sys.executable, "-m", "runner", "cleanup", "--all"], capture_output=True, check=True)
        assert [v.name for v in backend.list_resources("volume", "dev.runner.cache=counter")]
        dry = subprocess.run(
            [sys.executable, "-m", "runner", "cleanup", "--caches", "--dry-run"],
            capture_output=True,
            text=True,
        )
        assert "runner-cache-counter-" in dry.stdout
        assert [v.name for v in backend.list_resources("volume", "dev.runner.cache=counter")]
        subprocess.run(
            [sys.executable, "-m", "runner", "cleanup", "--caches"], capture_output=True, check=True
        )
        assert backend.list_resources("volume", "dev.runner.cache=counter") == []
    finally:
        for volume in backend.list_resources("volume", "dev.runner.cache=counter"):
            backend.remove("volume", volume.id)


@pytest.fixture(scope="module")
def pipe_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    context = tmp_path_factory.mktemp("pipe")
    (context / "pipe.sh").write_text(
        '#!/bin/sh\necho "pipe says $GREETING in $(pwd)"\n'
        'echo "pipe sees exit code ${BITBUCKET_EXIT_CODE:-none}"\n'
        '[ -z "$ITEMS_COUNT" ] || echo "pipe list $ITEMS_COUNT [$ITEMS_0] [$ITEMS_1] $ITEMS"\n'
        "ls\necho from-pipe > pipe-output.txt\n"
        '[ "$FAIL" != yes ] || exit 3\n',
        encoding="utf-8",
    )
    (context / "Dockerfile").write_text(
        f"FROM {BUSYBOX}\nCOPY pipe.sh /pipe.sh\nLABEL dev.runner.image=1\n"
        'ENTRYPOINT ["/bin/sh", "/pipe.sh"]\n',
        encoding="utf-8",
    )
    subprocess.run(
        ["docker", "build", "-q", "-t", PIPE_IMAGE, str(context)],
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    yield PIPE_IMAGE
    subprocess.run(["docker", "rmi", "-f", PIPE_IMAGE], capture_output=True, check=False)


def test_a_pipe_runs_over_the_step_files(tmp_path: Path, pipe_image: str) -> None:
    text = """
    pipelines:
      default:
        - step:
            name: with pipe
            script:
              - echo before > before.txt
              - pipe: atlassian/runner-test-pipe:1.0
                variables: {GREETING: hello}
              - cat pipe-output.txt
            artifacts: [pipe-output.txt]
        - step:
            name: failing pipe
            script:
              - pipe: atlassian/runner-test-pipe:1.0
                variables: {FAIL: "yes"}
              - echo never
            after-script: ['echo "after $BITBUCKET_EXIT_CODE"']
        - final: {name: end, script: [cat pipe-output.txt]}
    """
    result, reporter = run(project(tmp_path, text, {"source.txt": "src"}))
    assert statuses(result) == {"with pipe": S.SUCCESS, "failing pipe": S.FAILED, "end": S.SUCCESS}
    saw = final_saw(reporter, "with-pipe")
    assert saw[0] == "pipe says hello in /opt/atlassian/pipelines/agent/build"
    assert {"before.txt", "source.txt", "bitbucket-pipelines.yml"} <= set(saw[1:])
    assert saw[-1] == "from-pipe"
    assert "never" not in final_saw(reporter, "failing-pipe")
    assert "after 3" in final_saw(reporter, "failing-pipe")
    assert final_saw(reporter, "end") == ["from-pipe"]
    assert labelled_of(result.run_id) == []


def test_pipe_variables_name_the_step_variables_and_lists_arrive_as_arrays(
    tmp_path: Path, pipe_image: str
) -> None:
    """`VAR: $OTHER` in a pipe's variables is the step's variable, as in Atlassian's examples; a list
    arrives as NAME_COUNT and NAME_0.. (and whole, as JSON)."""
    text = """
    pipelines:
      default:
        - step:
            name: version
            script: ['echo "VERSION=2.0" >> $BITBUCKET_PIPELINES_VARIABLES_PATH']
            output-variables: [VERSION]
        - step:
            name: report
            script:
              - pipe: atlassian/runner-test-pipe:1.0
                variables:
                  GREETING: "$WHO v${VERSION}$UNSET on $BITBUCKET_BUILD_NUMBER"
                  ITEMS: ["--a", "b c"]
    """
    result, reporter = run(project(tmp_path, text), env={"WHO": "team"})
    assert result.exit_code == 0, result.results
    saw = reporter.output("report")
    assert saw[0] == "pipe says team v2.0 on 1 in /opt/atlassian/pipelines/agent/build"
    assert 'pipe list 2 [--a] [b c] ["--a", "b c"]' in saw


def test_a_pipe_in_after_script_runs_as_in_script(tmp_path: Path, pipe_image: str) -> None:
    """The shape of Atlassian's build templates: a report pipe in after-script, after a failing script."""
    text = """
    pipelines:
      default:
        - step:
            name: build
            script:
              - echo built > built.txt
              - exit 5
            after-script:
              - echo "after $BITBUCKET_EXIT_CODE"
              - pipe: atlassian/runner-test-pipe:1.0
                variables: {GREETING: report}
              - echo "still after"
    """
    result, reporter = run(project(tmp_path, text, {"source.txt": "src"}))
    assert statuses(result) == {"build": S.FAILED}
    assert result.results[0].exit_code == 5
    saw = reporter.output("build")
    assert "after 5" in saw and "still after" in saw
    assert "pipe says report in /opt/atlassian/pipelines/agent/build" in saw
    assert "pipe sees exit code 5" in saw and "built.txt" in saw
    assert labelled_of(result.run_id) == []


def test_a_missing_pipe_image_names_the_pipe_and_the_map_option(tmp_path: Path) -> None:
    text = "pipelines:\n  default:\n    - step: {name: p, script: [{pipe: 'atlassian/not-here:9.9'}]}\n"
    result, _ = run(project(tmp_path, text))
    assert result.exit_code == 1
    message = result.results[0].message
    assert message.startswith("pipe 'atlassian/not-here:9.9': image 'bitbucketpipelines/not-here:9.9'")
    assert "--image bitbucketpipelines/not-here=LOCAL_IMAGE" in message


def test_a_missing_default_image_names_the_map_option(tmp_path: Path) -> None:
    path = project(tmp_path, seeds.BUILD_DEPLOY_CLEANUP)
    result, _ = run_file(path, None, image_map={})
    assert result.exit_code == 1
    assert "--image atlassian/default-image=LOCAL_IMAGE" in result.results[0].message
    assert statuses(result)["Cleanup"] is S.FAILED  # it needs the same image


def test_ctrl_c_stops_the_step_and_final_sees_it(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step: {name: long, script: ["echo long-running", "sleep 60"]}
        - step: {name: next, script: [echo next]}
        - final: {name: end, script: ['echo "end saw $RUNNER_PIPELINE_STATUS"']}
    """
    path = project(tmp_path, text)
    process = start_runner(path)
    _, run_id = read_until(process, "long-running")
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "end saw stopped" in rest
    assert labelled_of(run_id) == []


def test_cli_list_and_run_pick_up_the_file_in_the_folder(tmp_path: Path) -> None:
    project(tmp_path, seeds.FAILING_BUILD)
    listed = subprocess.run(
        [sys.executable, "-m", "runner", "list"], cwd=tmp_path, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert "runner run would choose default" in listed.stdout and "final: Cleanup" in listed.stdout
    completed = subprocess.run(
        [sys.executable, "-m", "runner", "run", "--no-color", *image_args()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 1
    assert "Cleanup      │ This is the final step" in completed.stdout


def test_clone_disabled_starts_from_an_empty_directory_and_docker_reaches_the_engine(tmp_path: Path) -> None:
    text = """
    clone: {enabled: false}
    pipelines:
      default:
        - step:
            name: bare
            services: [docker]
            script: ['ls -A | wc -l', 'test -S /var/run/docker.sock && echo engine-socket']
    """
    result, reporter = run(project(tmp_path, text, {"file.txt": "x"}))
    assert result.exit_code == 0, result.results
    assert final_saw(reporter, "bare") == ["0", "engine-socket"]


def test_cli_custom_pipeline_with_var_and_validate_everything(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step: {name: d, script: [echo d]}
      custom:
        greet:
          - variables:
              - name: WHO
          - step: {name: hello, script: ['echo "hello $WHO"']}
          - final: {name: bye, script: [echo bye]}
    """
    path = project(tmp_path, text)
    cli = [sys.executable, "-m", "runner"]
    checked = subprocess.run([*cli, "validate", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert [line.split(" — ")[1] for line in checked.stdout.splitlines()] == [
        f"{tmp_path.name.lower()} default: 1 steps",
        f"{tmp_path.name.lower()} custom:greet: 1 steps, 1 finally",
    ]
    missing = subprocess.run(
        [*cli, "run", str(path), "--pipeline", "custom:greet"], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "give it with --var WHO=VALUE" in missing.stderr
    completed = subprocess.run(
        [*cli, "run", str(path), "-p", "custom:greet", "--var", "WHO=world", *image_args()],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert "hello │ hello world" in completed.stdout


@pytest.mark.parametrize(
    "text",
    [
        seeds.BUILD_DEPLOY_CLEANUP,
        seeds.FAILING_BUILD,
        seeds.CUSTOM_RELEASE,
        (Path(__file__).parents[2] / "bench/peer/project/bitbucket-pipelines.yml").read_text(),
    ],
)
def test_list_and_validate_work_on_every_example(tmp_path: Path, text: str) -> None:
    path = project(tmp_path, text)
    for command in ("list", "validate"):
        completed = subprocess.run(
            [sys.executable, "-m", "runner", command, str(path)], capture_output=True, text=True
        )
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.strip()


def test_an_artifact_link_out_of_the_clone_directory_is_refused(tmp_path: Path) -> None:
    text = """
    pipelines:
      default:
        - step:
            name: make
            script: [mkdir -p out, ln -s /etc/passwd out/passwd, echo fine > out/ok.txt]
            artifacts: ["out/**"]
        - step:
            name: use
            script: [ls out, 'test ! -e out/passwd && echo no-link']
    """
    result, reporter = run(project(tmp_path, text))
    assert result.exit_code == 0, result.results
    assert final_saw(reporter, "use") == ["ok.txt", "no-link"]
    assert any("artifact 'out/passwd' is not kept" in notice for notice in reporter.notices)
