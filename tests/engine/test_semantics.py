from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runner.backend import connect
from runner.backend.base import REMOVAL_ORDER
from runner.engine.status import StepStatus
from tests.conftest import RUN_LABEL
from tests.engine.helpers import run_file, statuses

pytestmark = pytest.mark.docker
Write = Callable[..., Path]
S = StepStatus


def no_resources_of(run_id: str) -> bool:
    backend = connect()
    return not any(
        backend.list_resources(kind, f"{RUN_LABEL}={run_id}") for kind in REMOVAL_ORDER
    )


def test_steps_run_in_order_and_finally_runs_on_success(write: Write) -> None:
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
    result, reporter = run_file(path)
    assert result.exit_code == 0
    assert reporter.order == ["one", "two", "last"]
    assert statuses(result) == {"one": S.SUCCESS, "two": S.SUCCESS, "last": S.SUCCESS}
    assert reporter.output("last") == ["last"]
    assert no_resources_of(result.run_id)


def test_a_failure_skips_the_rest_then_runs_errors_and_finally(write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: one, script: echo one}
          - {id: boom, script: [echo before, exit 3, echo never]}
          - {id: three, script: echo three}
        errors:
          - {id: alert, script: echo alert}
        finally:
          - {id: broken-cleanup, script: exit 1}
          - {id: last, script: echo last}
    """)
    result, reporter = run_file(path)
    assert result.exit_code == 1
    assert statuses(result) == {
        "one": S.SUCCESS,
        "boom": S.FAILED,
        "three": S.SKIPPED,
        "alert": S.SUCCESS,
        "broken-cleanup": S.FAILED,
        "last": S.SUCCESS,
    }
    assert reporter.output("boom") == ["before"]
    assert next(r for r in result.results if r.step_id == "boom").exit_code == 3
    assert reporter.order == ["one", "boom", "alert", "broken-cleanup", "last"]


def test_a_failing_finally_step_fails_a_passing_run(write: Write) -> None:
    path = write("""
        image: busybox
        steps: [{id: ok, script: "true"}]
        finally: [{id: bad, script: "false"}, {id: after, script: echo after}]
    """)
    result, _ = run_file(path)
    assert result.exit_code == 1
    assert statuses(result)["after"] is S.SUCCESS


def test_allowed_failure_does_not_stop_the_pipeline(write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: flaky, script: exit 2, allow_failure: true}
          - {id: next, script: echo next}
    """)
    result, _ = run_file(path)
    assert result.exit_code == 0
    assert statuses(result) == {"flaky": S.FAILED, "next": S.SUCCESS}
    assert result.results[0].allowed_failure


def test_a_step_timeout_stops_the_step_and_finally_still_runs(write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: slow, script: sleep 30, timeout: 1s}
          - {id: never, script: echo never}
        finally:
          - {id: last, script: echo last}
    """)
    result, _ = run_file(path)
    assert result.exit_code == 1
    assert statuses(result) == {"slow": S.TIMED_OUT, "never": S.SKIPPED, "last": S.SUCCESS}
    assert result.results[0].duration < 5
    assert no_resources_of(result.run_id)


def test_a_pipeline_timeout_stops_the_running_step_and_finally_runs(write: Write) -> None:
    path = write("""
        image: busybox
        timeout: 2s
        steps:
          - {id: a, script: echo a}
          - {id: slow, script: sleep 30}
        finally:
          - {id: last, script: echo last}
    """)
    result, _ = run_file(path)
    assert statuses(result) == {"a": S.SUCCESS, "slow": S.TIMED_OUT, "last": S.SUCCESS}
    assert result.exit_code == 1


def test_the_workspace_carries_files_between_steps(write: Write, tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("from the host\n", encoding="utf-8")
    path = write("""
        image: busybox
        steps:
          - {id: one, script: [cat input.txt, echo made-in-step-one > out.txt]}
          - {id: two, script: "cd /tmp && echo two && pwd"}
          - {id: three, script: [cat /workspace/out.txt, pwd]}
    """)
    result, reporter = run_file(path)
    assert result.exit_code == 0, result.results
    assert reporter.output("one") == ["from the host"]
    assert reporter.output("two") == ["two", "/tmp"]  # one script: `cd` persists to the next line
    assert reporter.output("three") == ["made-in-step-one", "/workspace"]
    assert not (tmp_path / "out.txt").exists()  # copied, not bind-mounted


def test_bind_mounts_the_directory_when_asked(write: Write, tmp_path: Path) -> None:
    path = write("""
        image: busybox
        steps: [{id: one, script: echo written > from-step.txt}]
    """)
    result, _ = run_file(path, bind=True)
    assert result.exit_code == 0
    assert (tmp_path / "from-step.txt").read_text(encoding="utf-8") == "written\n"


def test_a_service_is_reached_by_hostname_and_stopped_by_reference(write: Write) -> None:
    path = write("""
        image: redis
        steps:
          - {id: cache, detach: true, ports: ["6379"], ready: redis-cli ping}
          - {id: set, script: redis-cli -h cache set k v}
          - {id: get, script: redis-cli -h cache get k}
        finally:
          - {id: stop, stop: cache}
          - {id: gone, script: "if redis-cli -h cache ping; then exit 1; fi; echo gone"}
    """)
    result, reporter = run_file(path)
    assert result.exit_code == 0, result.results
    assert reporter.output("get") == ["v"]
    # redis-cli's complaint goes to stderr, "gone" to stdout: two pipes, read apart, so in either order
    assert "gone" in reporter.output("gone")
    assert result.resources is not None and result.resources.left_running == []
    assert no_resources_of(result.run_id)


def test_a_detached_container_nobody_stops_is_still_removed(write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: idle, detach: true, script: sleep 600}
          - {id: use, script: echo using}
    """)
    result, _ = run_file(path)
    assert result.exit_code == 0
    assert result.resources is not None
    assert [name.split(" ")[0] for name in result.resources.left_running] == ["idle"]
    assert result.resources.removed == result.resources.created
    assert no_resources_of(result.run_id)


def test_a_service_that_exits_fails_with_its_output(write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: svc, detach: true, script: [echo cannot start, exit 4], ports: ["80"]}
          - {id: use, script: echo never}
        finally: [{id: last, script: echo last}]
    """)
    result, _ = run_file(path)
    assert statuses(result) == {"svc": S.FAILED, "use": S.SKIPPED, "last": S.SUCCESS}
    assert "cannot start" in result.results[0].message, result.results[0].message
    assert result.results[0].exit_code == 4


def test_a_missing_image_fails_the_step_and_names_the_map_option(write: Write) -> None:
    path = write("""
        steps: [{id: a, image: "no-such-image-anywhere:1", script: echo}]
        finally: [{id: last, image: busybox, script: echo last}]
    """)
    result, _ = run_file(path)
    assert statuses(result) == {"a": S.FAILED, "last": S.SUCCESS}
    assert "--image no-such-image-anywhere=LOCAL_IMAGE" in result.results[0].message


def test_keep_leaves_everything_and_cleanup_by_run_removes_it(
    write: Write, cli: Callable[..., object]
) -> None:
    path = write("""
        image: busybox
        steps: [{id: idle, detach: true, script: sleep 600}]
    """)
    result, _ = run_file(path, keep=True)
    assert result.resources is not None and result.resources.kept
    assert not no_resources_of(result.run_id)
    completed = cli("cleanup", "--run", result.run_id)
    assert completed.code == 0, completed  # type: ignore[attr-defined]
    assert no_resources_of(result.run_id)


def test_services_start_before_the_steps_and_are_removed_after(write: Write) -> None:
    path = write("""
        image: busybox
        services:
          cache:
            image: redis
            ports: [6379]
        steps:
          - {id: use, image: redis, script: redis-cli -h cache ping}
    """)
    result, reporter = run_file(path)
    assert result.exit_code == 0, result.results
    assert reporter.order == ["cache", "use"]
    assert reporter.output("use") == ["PONG"]
    assert result.results[0].message.startswith("published on 127.0.0.1:")
    assert no_resources_of(result.run_id)


def test_run_options_env_reaches_every_step_and_wins(write: Write) -> None:
    path = write("""
        image: busybox
        env: {A: from-file, B: kept}
        steps: [{id: show, script: 'echo "$A $B"'}]
    """)
    result, reporter = run_file(path, env={"A": "from-cli"})
    assert result.exit_code == 0
    assert reporter.output("show") == ["from-cli kept"]


def test_a_step_made_ahead_runs_only_after_the_step_before_it_ended(write: Write) -> None:
    # `two` is started while `one` sleeps; had its script run early, it would not find what `one` wrote,
    # nor see the standard input every step has (none: it reads end of input at once)
    path = write("""
        image: busybox
        steps:
          - {id: one, script: 'sleep 1 && echo done > order'}
          - {id: two, script: ['cat order', 'cat; echo "input ended"']}
          - {id: three, script: ['cat order']}
    """)
    result, reporter = run_file(path)
    assert result.exit_code == 0, result.results
    assert reporter.output("two") == ["done", "input ended"]
    assert reporter.output("three") == ["done"]
    assert result.run_id and no_resources_of(result.run_id)
