"""The guarantees on every engine: this machine's Docker, Podman's Docker API, and a remote Docker over
tcp:// whose container addresses this machine cannot route. Every test runs once per engine."""

from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from runner.api import Services
from runner.engine.events import SilentReporter
from runner.engine.executor import Executor, RunOptions
from runner.engine.status import StepStatus
from runner.formats import load_pipeline
from runner.teardown import provision
from runner.teardown.ledger import Ledger
from tests.conftest import IMAGE_MAP, RUN_LABEL, image_args
from tests.engines.conftest import TOP, Engine
from tests.kestra import seeds
from tests.test_cli import read_until

pytestmark = pytest.mark.docker
Write = Callable[..., Path]
KILL_FIGURES: dict[str, float] = {}
DEMO = ("run", "examples/redis.yml", "--no-color", "--image", "redis=runner/redis:bookworm")

LONG_STEP = """
    image: busybox
    steps:
      - {id: svc, detach: true, script: sleep 600}
      - {id: long, script: "echo long-running; sleep 120"}
    finally:
      - {id: cleanup, script: echo cleanup-ran}
"""

# Listens only after three seconds: a probe that trusts a port proxy, or that connects to an address
# this machine cannot route, reports it ready too early or never.
SLOW_SERVICE = """
    image: redis
    steps:
      - id: slow
        detach: true
        script: ["sleep 3", "exec redis-server --port 7000 --bind 0.0.0.0 --protected-mode no"]
        ports: ["7000"]
        ready: {port: 7000, timeout: 60s}
      - {id: use, script: "redis-cli -h slow -p 7000 ping | grep PONG"}
    finally:
      - {stop: slow}
"""


def runner(engine: Engine, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        capture_output=True,
        text=True,
        env=engine.env,
        timeout=timeout,
        check=False,
        cwd=TOP,
    )


def test_the_demo_passes(engine: Engine) -> None:
    done = runner(engine, *DEMO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all removed" in done.stdout
    assert "guarded by: reaper container, lease over the engine connection" in done.stdout
    again = runner(engine, *DEMO)
    assert again.returncode == 0, again.stdout + again.stderr
    current = f"dev.runner.reaper.source={provision.source_hash()}"
    reapers = [r for r in engine.backend().list_resources("container", current) if r.running]
    assert len(reapers) == 1, "the second run did not share the first run's reaper"


def test_a_slow_service_is_not_ready_before_it_listens(engine: Engine, write: Write) -> None:
    pipeline = load_pipeline(write(SLOW_SERVICE))
    result = Executor(
        pipeline, engine.backend(), Ledger(), SilentReporter(), RunOptions(image_map=IMAGE_MAP)
    ).run()
    by_id = {r.step_id: r for r in result.results}
    assert by_id["slow"].status is StepStatus.SUCCESS, by_id["slow"].message
    assert by_id["slow"].duration >= 3.0, "reported ready before the service listened"
    assert by_id["use"].status is StepStatus.SUCCESS, by_id["use"].message
    assert result.exit_code == 0


def _image_without_cat(engine: Engine) -> str:
    """busybox without its `cat` link: the engine cannot read the port tables by an exec in it."""
    tag = f"runner/no-cat-test:{secrets.token_hex(4)}"
    dockerfile = f"FROM {IMAGE_MAP['busybox']}\nRUN rm /bin/cat\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        entry = tarfile.TarInfo("Dockerfile")
        entry.size = len(dockerfile)
        archive.addfile(entry, io.BytesIO(dockerfile))
    engine.backend().build_image(buffer.getvalue(), tag, {})
    return tag


def test_a_port_is_read_by_a_probe_where_the_image_has_no_cat(engine: Engine, write: Write) -> None:
    image = _image_without_cat(engine)
    path = write(f"""
        image: {image}
        steps:
          - id: slow
            detach: true
            script: ["sleep 2", "exec nc -ll -p 7000 -e /bin/echo hello"]
            ready: {{port: 7000, timeout: 60s}}
          - {{id: use, image: busybox, script: "nc slow 7000 </dev/null | grep hello"}}
        finally:
          - {{stop: slow}}
    """)
    try:
        result = Executor(
            load_pipeline(path), engine.backend(), Ledger(), SilentReporter(), RunOptions(image_map=IMAGE_MAP)
        ).run()
        by_id = {r.step_id: r for r in result.results}
        assert by_id["slow"].status is StepStatus.SUCCESS, by_id["slow"].message
        assert by_id["slow"].duration >= 2.0, "reported ready before the service listened"
        assert by_id["use"].status is StepStatus.SUCCESS, by_id["use"].message
        assert engine.labelled(f"{RUN_LABEL}={result.run_id}") == []
    finally:
        subprocess.run(["docker", "rmi", "-f", image], env=engine.env, capture_output=True, check=False)


def test_services_give_a_host_and_port_a_test_can_connect_to(engine: Engine) -> None:
    source = {"cache": {"image": "redis", "ports": ["6379"], "ready": "redis-cli ping"}}
    with Services(source, images=IMAGE_MAP, backend=engine.backend()) as env:
        cache = env["cache"]
        expected = engine.backend().info().published_host
        assert cache.host == expected
        client = redis.Redis(host=cache.host, port=cache.port(6379), socket_timeout=5)
        assert client.ping()
        client.close()
        run_id = env.run_id
    assert engine.wait_until_gone(f"{RUN_LABEL}={run_id}", within=10) == []


def _start_run(engine: Engine, path: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(path), "--no-color", *image_args()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=engine.env,
        start_new_session=True,
    )
    try:
        _, run_id = read_until(process, "long-running", timeout=120)
    except AssertionError:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return process, run_id


def test_kill_9_of_the_runner_and_its_watchdog_leaves_nothing(engine: Engine, write: Write) -> None:
    """Only the reaper beside the engine is left to act: as when the client's machine dies."""
    process, run_id = _start_run(engine, write(LONG_STEP))
    label = f"{RUN_LABEL}={run_id}"
    assert len(engine.labelled(label)) >= 3
    watchdog = subprocess.run(
        ["pgrep", "-f", f"runner.teardown.reaper {run_id}"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert watchdog, "the run had no watchdog"
    os.killpg(process.pid, signal.SIGKILL)
    for pid in watchdog:
        os.kill(int(pid), signal.SIGKILL)
    killed = time.monotonic()
    process.wait(timeout=10)
    assert engine.wait_until_gone(label, within=30) == []
    KILL_FIGURES[engine.name] = time.monotonic() - killed
    print(f"\n{engine.name}: nothing left {KILL_FIGURES[engine.name]:.1f}s after kill -9")


def test_the_kestra_redis_seed_flow_runs_as_written(engine: Engine, tmp_path: Path) -> None:
    """Its Redis tasks run in the runner and reach `host.docker.internal`: the engine's host, wherever."""
    path = tmp_path / "flow.yml"
    path.write_text(seeds.DOCKER_REDIS, encoding="utf-8")
    result = Executor(
        load_pipeline(path), engine.backend(), Ledger(), SilentReporter(), RunOptions(image_map=IMAGE_MAP)
    ).run()
    assert result.exit_code == 0, [(r.step_id, r.status, r.message) for r in result.results]
    got = next(r for r in result.results if r.step_id == "get")
    assert got.outputs["data"] == "dockerRedis"
    assert engine.labelled(f"{RUN_LABEL}={result.run_id}") == []


def test_doctor_tells_the_truth(engine: Engine) -> None:
    done = runner(engine, "doctor", "--no-color")
    assert done.returncode == 0, done.stdout + done.stderr
    info = engine.backend().info()
    assert info.address in done.stdout and info.product in done.stdout
    assert f"reached at {info.published_host}" in done.stdout
    assert "lease over the engine connection" in done.stdout
    assert ("another machine" in done.stdout) is (engine.name == "remote")
    assert info.product == ("Podman" if engine.name == "podman" else "Docker Engine")


def test_cleanup_removes_what_a_kept_run_left(engine: Engine, write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: svc, detach: true, script: sleep 600}
    """)
    kept = runner(engine, "run", str(path), "--no-color", "--keep", *image_args())
    assert kept.returncode == 0, kept.stdout + kept.stderr
    run_id = kept.stdout.strip().splitlines()[-1].split()[1]
    assert engine.labelled(f"{RUN_LABEL}={run_id}")
    removed = runner(engine, "cleanup", "--run", run_id, "--no-color")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert engine.backend().info().address in removed.stdout
    assert engine.labelled(f"{RUN_LABEL}={run_id}") == []


def test_bind_mounts_are_refused_on_a_remote_engine(engine: Engine, write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: one, script: ls /workspace}
    """)
    done = runner(engine, "run", str(path), "--no-color", "--bind", *image_args())
    if engine.name != "remote":
        assert done.returncode == 0, done.stdout + done.stderr
        return
    assert done.returncode == 2, done.stdout + done.stderr
    assert "another machine" in done.stderr and "drop --bind" in done.stderr
    assert "Traceback" not in done.stderr
    flow = write(
        """
        id: mounts
        namespace: company.team
        tasks:
          - id: read
            type: io.kestra.plugin.docker.Run
            containerImage: busybox
            commands: [ls, /data]
            volumes: ["/tmp:/data"]
        """,
        "flow.yml",
    )
    refused = runner(engine, "run", str(flow), "--no-color", *image_args())
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "step 'read' bind-mounts /tmp at /data" in refused.stderr and "another machine" in refused.stderr


def test_the_runner_builds_its_own_image_where_it_is_missing(engine: Engine, write: Write) -> None:
    if engine.name != "podman":
        pytest.skip("building takes a while: once, on Podman, is enough to show it")
    tag = f"runner/reaper-test:{secrets.token_hex(4)}"
    env = {**engine.env, "RUNNER_TOOL_IMAGE": tag}
    path = write("""
        image: busybox
        steps:
          - {id: one, script: echo one}
    """)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "runner", "run", str(path), "--no-color", *image_args()],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"building the runner's image {tag}" in done.stdout
        assert f"built {tag} in" in done.stdout
        assert "guarded by: reaper container" in done.stdout
    finally:
        backend = engine.backend()
        for reaper in backend.list_resources("container", "dev.runner.reaper.shared"):
            if reaper.image == tag:
                backend.remove("container", reaper.id)
        subprocess.run(["podman", "rmi", "-f", tag], capture_output=True, check=False, timeout=120)
