"""Runs on a three-node Docker Swarm (scripts/swarm.sh: dockerd in three Podman containers, and a
registry), submitted by `runner run --cluster` as a real user would: the three formats passing and
failing, a Bitbucket service on localhost with artifacts, `finally` after the client is killed, cancel,
and a run whose node-side process is killed. After each, nothing of the run is left on any node, in the
manager's services, or in the registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Completed
from tests.test_cli import read_until

pytestmark = pytest.mark.docker
TOP = Path(__file__).resolve().parents[2]
NODES = ("10.215.0.11", "10.215.0.12", "10.215.0.13")
RUN_LABELS = ("dev.runner.run-id", "dev.runner.cluster-run")


@dataclass(frozen=True)
class Swarm:
    manager: str  # DOCKER_HOST of the manager
    registry: str  # as the nodes reach it

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.manager, "RUNNER_REGISTRY": self.registry}

    def image(self, name: str) -> str:
        return f"{self.registry}/{name}"


@pytest.fixture(scope="module")
def swarm() -> Iterator[Swarm]:
    done = subprocess.run(
        ["bash", str(TOP / "scripts/swarm.sh"), "start"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        cwd=TOP,
    )
    if done.returncode != 0:
        message = f"swarm.sh start failed:\n{done.stderr[-3000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    values = dict(line.split("=", 1) for line in done.stdout.strip().splitlines() if "=" in line)
    yield Swarm(values["DOCKER_HOST"], values["RUNNER_REGISTRY"])
    subprocess.run(
        ["bash", str(TOP / "scripts/swarm.sh"), "stop"], capture_output=True, timeout=300, check=False
    )


def runner(swarm: Swarm, *args: str, timeout: float = 600) -> Completed:
    process = subprocess.run(
        [sys.executable, "-m", "runner", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=swarm.env(),
    )
    return Completed(process.returncode, process.stdout, process.stderr)


def start(swarm: Swarm, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=swarm.env(),
        start_new_session=True,
    )


def docker(host: str, *args: str) -> str:
    done = subprocess.run(
        ["docker", "-H", host, *args], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout


def left_of(swarm: Swarm, run_id: str) -> list[str]:
    """Everything of the run anywhere: on each node's engine, in the manager's services, in the registry."""
    found: list[str] = []
    for node in NODES:
        host = f"tcp://{node}:2375"
        for label in RUN_LABELS:
            selector = f"label={label}={run_id}"
            for kind, listing in (
                ("container", ["ps", "-a", "-q", "--filter", selector]),
                ("volume", ["volume", "ls", "-q", "--filter", selector]),
                ("network", ["network", "ls", "-q", "--filter", selector]),
                ("image", ["images", "-q", "--filter", selector]),
            ):
                found += [f"{node} {kind} {name}" for name in docker(host, *listing).split()]
    services = docker(
        swarm.manager, "service", "ls", "-q", "--filter", f"label=dev.runner.cluster-run={run_id}"
    )
    found += [f"service {name}" for name in services.split()]
    cancelling = docker(
        swarm.manager, "service", "ls", "-q", "--filter", f"label=dev.runner.cluster-cancel={run_id}"
    )
    found += [f"cancelling service {name}" for name in cancelling.split()]
    return found


def wait_until_nothing_left(swarm: Swarm, run_id: str, within: float = 60) -> list[str]:
    deadline = time.monotonic() + within
    left = left_of(swarm, run_id)
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = left_of(swarm, run_id)
    return left


def run_id_of(output: str) -> str:
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "run" and words[2] in ("submitted", "on"):
            return words[1]
    raise AssertionError(f"no run id in:\n{output}")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def test_a_native_pipeline_passes_and_fails_on_the_cluster_as_it_would_here(
    swarm: Swarm, tmp_path: Path
) -> None:
    """The same step lines, summary and exit code as a local run; finally runs; nothing is left."""
    (tmp_path / "data.txt").write_text("shipped with the run\n", encoding="utf-8")
    path = write(
        tmp_path,
        "runner.yml",
        """
        image: busybox
        steps:
          - {id: read, script: cat data.txt}
          - {id: maybe, script: 'test "$OUTCOME" = pass'}
        finally:
          - {id: tidy, script: echo finally-ran}
        """,
    )
    image = f"busybox={swarm.image('runner/busybox:latest')}"
    passed = runner(swarm, "run", "--cluster", "--image", image, "--env", "OUTCOME=pass", str(path))
    assert passed.code == 0, passed.out + passed.err
    assert "shipped with the run" in passed.out and "finally-ran" in passed.out
    assert "succeeded (exit code 0)" in passed.out
    failed = runner(swarm, "run", "--cluster", "--image", image, "--env", "OUTCOME=fail", str(path))
    assert failed.code == 1, failed.out + failed.err
    assert "finally-ran" in failed.out and "failed (exit code 1)" in failed.out
    assert "--rerun-failed" not in failed.out  # the run's ledger stayed in its container
    for completed in (passed, failed):
        assert wait_until_nothing_left(swarm, run_id_of(completed.out)) == []


def test_kestra_and_bitbucket_files_run_on_the_cluster_with_services_and_artifacts(
    swarm: Swarm, tmp_path: Path
) -> None:
    """A Bitbucket step with a Redis service on its localhost, an artifact read by the next step, and
    `final:`; a Kestra flow with a failing task, its errors branch and finally."""
    bitbucket = write(
        tmp_path,
        "bitbucket-pipelines.yml",
        """
        image: busybox
        definitions:
          services:
            redis: {image: redis}
        pipelines:
          default:
            - step:
                name: make
                services: [redis]
                image: redis
                script:
                  - for i in $(seq 50); do redis-cli -h localhost ping && break; sleep 0.2; done
                  - redis-cli -h localhost set answer 42
                  - redis-cli -h localhost get answer > out.txt
                artifacts: [out.txt]
            - step:
                name: use
                script: [cat out.txt, 'test -z "$BREAK"']
            - final:
                name: closing
                script: [echo final-ran]
        """,
    )
    images = [
        "--image", f"busybox={swarm.image('runner/busybox:latest')}",
        "--image", f"redis={swarm.image('runner/redis:bookworm')}",
    ]  # fmt: skip
    done = runner(swarm, "run", "--cluster", *images, str(bitbucket))
    assert done.code == 0, done.out + done.err
    assert "42" in done.out and "final-ran" in done.out
    (tmp_path / "kestra").mkdir()
    flow = write(
        tmp_path / "kestra",
        "flow.yml",
        """
        id: cluster
        namespace: company.team
        tasks:
          - {id: hello, type: io.kestra.plugin.core.log.Log, message: "hello from {{ flow.id }}"}
          - {id: boom, type: io.kestra.plugin.core.execution.Fail, errorMessage: on purpose}
        errors:
          - {id: caught, type: io.kestra.plugin.core.log.Log, message: errors-ran}
        finally:
          - {id: last, type: io.kestra.plugin.core.log.Log, message: finally-ran}
        """,
    )
    failed = runner(swarm, "run", "--cluster", str(flow))
    assert failed.code == 1, failed.out + failed.err
    for said in ("hello from cluster", "errors-ran", "finally-ran", "on purpose"):
        assert said in failed.out
    # the other way round: the flow passes when nothing fails, and the Bitbucket file fails when a step does
    flow.write_text(
        flow.read_text(encoding="utf-8").replace(
            "{id: boom, type: io.kestra.plugin.core.execution.Fail, errorMessage: on purpose}",
            "{id: fine, type: io.kestra.plugin.core.log.Log, message: all good}",
        ),
        encoding="utf-8",
    )
    passed = runner(swarm, "run", "--cluster", str(flow))
    broken = runner(swarm, "run", "--cluster", *images, "--env", "BREAK=1", str(bitbucket))
    assert passed.code == 0 and "finally-ran" in passed.out, passed.out + passed.err
    assert broken.code == 1 and "final-ran" in broken.out, broken.out + broken.err
    for completed in (done, failed, passed, broken):
        assert wait_until_nothing_left(swarm, run_id_of(completed.out)) == []


LONG = """
image: busybox
steps:
  - {id: long, script: "echo long-running; sleep 60"}
finally:
  - {id: tidy, script: "echo finally-started; sleep 2; echo finally-ran"}
"""


def test_finally_runs_in_the_cluster_after_the_client_is_killed(swarm: Swarm, tmp_path: Path) -> None:
    path = write(tmp_path, "runner.yml", LONG.replace("sleep 60", "sleep 8"))
    image = f"busybox={swarm.image('runner/busybox:latest')}"
    client = start(swarm, "run", "--cluster", "--image", image, str(path))
    seen = read_until(client, "long-running", timeout=300)[0]
    run_id = run_id_of(seen)
    os.killpg(client.pid, signal.SIGKILL)
    client.wait(timeout=10)
    # another client, later, follows the run to its end: the cluster went on without the first one
    follower = runner(swarm, "logs", run_id, "--follow", timeout=180)
    assert "finally-ran" in follower.out, follower.out + follower.err
    listed = runner(swarm, "ps", "--cluster")
    row = next(line for line in listed.out.splitlines() if line.startswith(run_id))
    assert "complete" in row and row.split()[-1] == "0", listed.out  # asked later, the client says so
    assert runner(swarm, "cleanup", "--cluster", "--run", run_id).code == 0
    assert wait_until_nothing_left(swarm, run_id) == []


def test_cancel_stops_the_step_runs_finally_and_leaves_nothing(swarm: Swarm, tmp_path: Path) -> None:
    path = write(tmp_path, "runner.yml", LONG)
    image = f"busybox={swarm.image('runner/busybox:latest')}"
    detached = runner(swarm, "run", "--cluster", "--detach", "--image", image, str(path))
    assert detached.code == 0, detached.out + detached.err
    run_id = detached.out.strip().splitlines()[-1]
    follower = start(swarm, "logs", run_id, "--follow")
    read_until(follower, "long-running", timeout=300)
    node = _node_of(swarm, run_id)
    since = str(int(time.time()))
    started = time.monotonic()
    assert runner(swarm, "cancel", run_id).code == 0
    assert wait_until_nothing_left(swarm, run_id, within=90) == []
    took = time.monotonic() - started
    follower.kill()
    follower.wait(timeout=10)
    # the finally step's container was made on the run's node after the cancel: finally ran
    events = docker(
        f"tcp://{node}:2375", "events", "--since", since, "--until", str(int(time.time())),
        "--filter", f"label=dev.runner.run-id={run_id}", "--filter", "event=create",
        "--format", "{{json .Actor.Attributes}}",
    )  # fmt: skip
    names = [json.loads(line).get("name", "") for line in events.splitlines() if line.strip()]
    assert any("tidy" in name for name in names), names
    assert took < 60


def test_a_run_whose_node_side_process_is_killed_leaves_nothing(swarm: Swarm, tmp_path: Path) -> None:
    path = write(tmp_path, "runner.yml", LONG)
    image = f"busybox={swarm.image('runner/busybox:latest')}"
    client = start(swarm, "run", "--cluster", "--image", image, str(path))
    run_id = run_id_of(read_until(client, "long-running", timeout=300)[0])
    node = _node_of(swarm, run_id)
    job = docker(
        f"tcp://{node}:2375", "ps", "-q", "--filter", f"label=dev.runner.cluster-run={run_id}"
    ).split()
    assert job, "the run's own container is on its node"
    docker(f"tcp://{node}:2375", "kill", job[0])
    output, _ = client.communicate(timeout=120)
    assert client.returncode != 0, output
    assert wait_until_nothing_left(swarm, run_id) == []


def _node_of(swarm: Swarm, run_id: str) -> str:
    for node in NODES:
        if docker(f"tcp://{node}:2375", "ps", "-q", "--filter", f"label=dev.runner.cluster-run={run_id}"):
            return node
    raise AssertionError(f"run {run_id} runs on no node")


def test_sweeps_on_a_node_never_touch_a_live_services_containers(swarm: Swarm) -> None:
    """A running container of a live Swarm service, even one that carries a run's label, survives
    `runner cleanup --all` of that run on its node: Swarm would only start it again."""
    run_id = "livesvc0001"
    service = docker(
        swarm.manager, "service", "create", "-d", "-q", "--name", f"runner-test-{run_id}",
        "--container-label", f"dev.runner.run-id={run_id}", "--constraint", "node.role==manager",
        swarm.image("runner/busybox:latest"), "sleep", "600",
    ).strip()  # fmt: skip
    try:
        manager = swarm.manager
        deadline = time.monotonic() + 120
        running: list[str] = []
        while not running and time.monotonic() < deadline:
            time.sleep(0.5)
            running = docker(manager, "ps", "-q", "--filter", f"label=dev.runner.run-id={run_id}").split()
        assert running, "the service's container runs"
        env = {**os.environ, "DOCKER_HOST": manager}
        swept = subprocess.run(
            [sys.executable, "-m", "runner", "cleanup", "--all", "--run", run_id],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
        assert swept.returncode == 0, swept.stdout + swept.stderr
        assert docker(manager, "ps", "-q", "--filter", f"label=dev.runner.run-id={run_id}").split() == running
    finally:
        docker(swarm.manager, "service", "rm", service)
        for node in NODES:  # Swarm leaves the stopped container: ours to remove, as a test's
            host = f"tcp://{node}:2375"
            for container in docker(
                host, "ps", "-aq", "--filter", f"label=dev.runner.run-id={run_id}"
            ).split():
                docker(host, "rm", "-f", container)
