"""The Python API and the pytest plugin, against the real engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from runner import services
from runner.api import ServicesError
from tests.conftest import IMAGE_MAP, REDIS
from tests.test_cli import labelled_of, wait_until_gone

pytestmark = pytest.mark.docker
pytest_plugins = ["pytester"]


def test_services_start_answer_and_are_removed(tmp_path: Path) -> None:
    with services({"cache": {"image": "redis"}}, images=IMAGE_MAP) as env:
        cache = env["cache"]
        assert cache.host == "127.0.0.1" and cache.url == f"redis://127.0.0.1:{cache.port(6379)}"
        client = redis.Redis(host=cache.host, port=cache.port())
        assert client.set("k", "v") and client.get("k") == b"v"
        run_id = env.run_id
        assert labelled_of(run_id)
    assert labelled_of(run_id) == []


def test_an_exception_in_the_block_still_removes_everything() -> None:
    run_id = ""
    with (
        pytest.raises(RuntimeError),
        services("services:\n  cache:\n    image: redis\n", images=IMAGE_MAP) as env,
    ):
        run_id = env.run_id
        raise RuntimeError("the test failed")
    assert run_id and labelled_of(run_id) == []


def test_a_service_that_never_gets_ready_is_an_error_and_leaves_nothing() -> None:
    spec = {"broken": {"image": "busybox", "command": ["sh", "-c", "echo no; exit 3"], "ports": ["80"]}}
    with pytest.raises(ServicesError) as caught:
        services(spec, images=IMAGE_MAP).start()
    assert "broken: exited with code 3 before it was ready" in caught.value.message
    assert "no" in caught.value.message


def test_kill_9_of_a_process_using_services_leaves_nothing(tmp_path: Path) -> None:
    script = tmp_path / "user.py"
    script.write_text(
        textwrap.dedent(f"""
        import time
        from runner import services
        with services({{"cache": {{"image": "{REDIS}"}}}}) as env:
            print(env.run_id, flush=True)
            time.sleep(600)
    """),
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None
    run_id = process.stdout.readline().strip()
    assert labelled_of(run_id)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    started = time.monotonic()
    assert wait_until_gone(run_id, within=15) == []
    assert time.monotonic() - started < 15


PLUGIN_TESTS = """
    import redis

    IMAGES = {"redis": "%s"}
    SPEC = {"cache": {"image": "redis"}}
    seen = []

    def test_function_scope(runner_services):
        env = runner_services(SPEC, images=IMAGES)
        assert redis.Redis(host=env["cache"].host, port=env["cache"].port(6379)).ping()

    def test_module_scope_first(runner_services_module):
        seen.append(runner_services_module(SPEC, images=IMAGES)["cache"].container_id)

    def test_module_scope_second(runner_services_module):
        seen.append(runner_services_module(SPEC, images=IMAGES)["cache"].container_id)
        assert seen[0] == seen[1]

    def test_session_scope(runner_services_session):
        env = runner_services_session("services.yml", images=IMAGES)
        print("RUN", env.run_id)
"""


def test_the_pytest_plugin_gives_scoped_services(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_services=textwrap.dedent(PLUGIN_TESTS % REDIS))
    pytester.makefile(".yml", services="services:\n  cache:\n    image: redis\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    run_id = next(line.split("RUN ")[1].split()[0] for line in result.outlines if "RUN " in line)
    assert labelled_of(run_id) == []


def test_runner_keep_keeps_the_services_and_says_how_to_remove_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_keep=textwrap.dedent(f"""
        def test_keep(runner_services):
            env = runner_services({{"cache": {{"image": "{REDIS}"}}}})
            print("RUN", env.run_id)
    """)
    )
    result = pytester.runpytest_subprocess("-s", "--runner-keep", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    run_id = next(line.split("RUN ")[1].split()[0] for line in result.outlines if "RUN " in line)
    try:
        assert labelled_of(run_id)
        assert any(f"runner cleanup --run {run_id}" in line for line in result.outlines)
    finally:
        subprocess.run(
            [sys.executable, "-m", "runner", "cleanup", "--run", run_id], capture_output=True, check=False
        )
    assert labelled_of(run_id) == []


def test_the_copyable_example_runs_against_real_redis_and_postgres() -> None:
    root = Path(__file__).parents[1]
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/test_with_services.py"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 passed" in completed.stdout
