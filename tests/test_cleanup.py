"""`runner cleanup` on other tools' leaks: it removes exactly what a filter names, and nothing else."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import BUSYBOX

pytestmark = pytest.mark.docker


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


def cleanup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", "cleanup", *args], capture_output=True, text=True)


def exists(kind: str, ident: str) -> bool:
    return subprocess.run(["docker", kind, "inspect", ident], capture_output=True).returncode == 0


@pytest.fixture
def leaks() -> Iterator[dict[str, str]]:
    """A tool's leak: two containers (one stopped), a network and a volume, plus bystanders."""
    tag = uuid.uuid4().hex[:8]
    made = {
        "running": docker("run", "-d", "--init", "--label", f"test.tool={tag}", BUSYBOX, "sleep", "600"),
        "stopped": docker(
            "create",
            "--label",
            f"test.tool={tag}",
            BUSYBOX,
            "sh",
            "-c",
            "dd if=/dev/zero of=/f bs=1k count=64",
        ),
        "network": docker("network", "create", "--label", f"test.tool={tag}", f"leak-{tag}"),
        "volume": docker("volume", "create", "--label", f"test.tool={tag}", f"leak-{tag}"),
        "compose": docker(
            "run", "-d", "--init", "--label", f"com.docker.compose.project=proj{tag}", BUSYBOX, "sleep", "600"
        ),
        "bystander": docker("run", "-d", "--init", BUSYBOX, "sleep", "600"),
        "other_value": docker(
            "run", "-d", "--init", "--label", "test.tool=someone-else", BUSYBOX, "sleep", "600"
        ),
        "tag": tag,
    }
    docker("start", "-a", made["stopped"])
    try:
        yield made
    finally:
        for key in ("running", "stopped", "compose", "bystander", "other_value"):
            subprocess.run(["docker", "rm", "-f", made[key]], capture_output=True)
        subprocess.run(["docker", "network", "rm", f"leak-{tag}"], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", f"leak-{tag}"], capture_output=True)


def test_dry_run_shows_exactly_what_a_real_run_removes(leaks: dict[str, str]) -> None:
    tag = leaks["tag"]
    dry = cleanup("--label", f"test.tool={tag}", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "4 resources would be removed (dry run)" in dry.stdout
    assert all(exists(kind, leaks[key]) for kind, key in (("container", "running"), ("container", "stopped")))
    real = cleanup("--label", f"test.tool={tag}")
    assert real.returncode == 0, real.stderr
    assert "removed 4 resources" in real.stdout and "reclaimed" in real.stdout
    dry_names = sorted(
        line.split()[1]
        for line in dry.stdout.splitlines()
        if line.split()[:1] in (["container"], ["network"], ["volume"])
    )
    real_names = sorted(
        line.split()[1]
        for line in real.stdout.splitlines()
        if line.split()[:1] in (["container"], ["network"], ["volume"])
    )
    assert dry_names == real_names
    assert not exists("container", leaks["running"]) and not exists("container", leaks["stopped"])
    assert not exists("network", f"leak-{tag}") and not exists("volume", f"leak-{tag}")
    for key in ("compose", "bystander", "other_value"):
        assert exists("container", leaks[key]), key


def test_exited_removes_only_stopped_containers(leaks: dict[str, str]) -> None:
    completed = cleanup("--label", f"test.tool={leaks['tag']}", "--exited")
    assert completed.returncode == 0, completed.stderr
    assert "removed 1 resources" in completed.stdout
    assert not exists("container", leaks["stopped"])
    assert exists("container", leaks["running"]) and exists("network", f"leak-{leaks['tag']}")


def test_compose_removes_a_compose_project(leaks: dict[str, str]) -> None:
    completed = cleanup("--compose", f"proj{leaks['tag']}")
    assert completed.returncode == 0, completed.stderr
    assert not exists("container", leaks["compose"])
    assert exists("container", leaks["running"]) and exists("container", leaks["bystander"])


def test_without_a_filter_foreign_resources_are_never_touched(leaks: dict[str, str]) -> None:
    completed = cleanup("--all")
    assert completed.returncode == 0, completed.stderr
    for key in ("running", "stopped", "compose", "bystander", "other_value"):
        assert exists("container", leaks[key]), key
    assert exists("network", f"leak-{leaks['tag']}") and exists("volume", f"leak-{leaks['tag']}")


def test_what_an_orchestrator_manages_is_never_removed() -> None:
    """A Swarm task container would be started again by its manager: sweeps and filters pass over it,
    even when it carries the runner's own labels."""
    tag = uuid.uuid4().hex[:8]
    managed = docker(
        "run",
        "-d",
        "--init",
        "--label",
        f"dev.runner.run-id=orchestrated-{tag}",
        "--label",
        f"test.tool={tag}",
        "--label",
        "com.docker.swarm.service.id=abc",
        BUSYBOX,
        "sleep",
        "600",
    )
    try:
        for args in (("--run", f"orchestrated-{tag}"), ("--label", f"test.tool={tag}")):
            completed = cleanup(*args)
            assert completed.returncode == 0, completed.stderr
            assert exists("container", managed), f"cleanup {' '.join(args)} removed a managed container"
    finally:
        docker("rm", "-f", managed)
