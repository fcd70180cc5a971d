"""The Ryuk-compatible reaper: its parsing, its protocol against the real image, and testcontainers."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runner.teardown.ryuk import filter_key, parse_duration, parse_filters

IMAGE = "runner/reaper:latest"
BUSYBOX = "runner/busybox:latest"
RECONNECTION = 2.0  # RYUK_RECONNECTION_TIMEOUT of the reapers started here
MARGIN = 5.0
SOCKET_MOUNT = "/var/run/docker.sock:/var/run/docker.sock"


# --- parsing ---------------------------------------------------------------------------------------


def test_a_line_is_one_filter_set() -> None:
    assert parse_filters("label=a=b&label=c=d") == {"label": ["a=b", "c=d"]}
    assert parse_filters("label=org.testcontainers.session-id=42\r\n") == {
        "label": ["org.testcontainers.session-id=42"]
    }
    assert parse_filters("label=a%3Db&name=x") == {"label": ["a=b"], "name": ["x"]}


def test_the_same_set_in_any_order_is_one_lease() -> None:
    key = filter_key(parse_filters("label=a=b&label=c=d&name=n"))
    assert key == filter_key(parse_filters("name=n&label=c=d&label=a=b&label=a=b"))
    assert key != filter_key(parse_filters("label=a=b"))


@pytest.mark.parametrize("line", ["", "label=", "label", "&&"])
def test_a_line_without_a_filter_matches_nothing_rather_than_everything(line: str) -> None:
    assert filter_key(parse_filters(line)) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("1m", 60), ("500ms", 0.5), ("1m30s", 90), ("1.5h", 5400), ("250us", 0.00025), ("3", 3)],
)
def test_durations_are_read_as_go_writes_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "10x", "-1s", "1s2", "1 s", "inf"])
def test_a_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


# --- the image, over its protocol -----------------------------------------------------------------


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


def exists(kind: str, ident: str) -> bool:
    return subprocess.run(["docker", kind, "inspect", ident], capture_output=True).returncode == 0


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"still not true after {timeout:g}s")
        time.sleep(0.1)
    return time.monotonic() - started


@dataclass
class Made:
    """Everything a test created, removed at its end whatever the reaper did."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def container(self, *labels: str) -> str:
        options = [arg for label in labels for arg in ("--label", label)]
        ident = docker("run", "-d", "--init", *options, BUSYBOX, "sleep", "600")
        self.items.append(("container", ident))
        return ident

    def network(self, label: str) -> str:
        ident = docker("network", "create", "--label", label, f"ryuk-test-{uuid.uuid4().hex[:12]}")
        self.items.append(("network", ident))
        return ident

    def volume(self, label: str) -> str:
        ident = docker("volume", "create", "--label", label)
        self.items.append(("volume", ident))
        return ident

    def remove_all(self) -> None:
        removal = {
            "container": ["rm", "-f", "-v"],
            "network": ["network", "rm"],
            "volume": ["volume", "rm", "-f"],
        }
        for kind in ("container", "network", "volume"):
            for _, ident in (item for item in self.items if item[0] == kind):
                subprocess.run(["docker", *removal[kind], ident], capture_output=True, check=False)


@pytest.fixture
def made() -> Iterator[Made]:
    resources = Made()
    try:
        yield resources
    finally:
        resources.remove_all()


@dataclass
class Reaper:
    ident: str
    port: int

    def logs(self) -> str:
        return subprocess.run(["docker", "logs", self.ident], capture_output=True, text=True).stdout

    def lease(self, line: str) -> socket.socket:
        """A connection that has registered `line` and read its ACK."""
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        conn.sendall(line.encode() + b"\r\n")
        assert conn.makefile("rb").readline() == b"ACK\n"
        return conn


@pytest.fixture
def start_reaper() -> Iterator[Callable[[], Reaper]]:
    started: list[str] = []

    def start() -> Reaper:
        timeouts = [f"RYUK_RECONNECTION_TIMEOUT={RECONNECTION:g}s", "RYUK_CONNECTION_TIMEOUT=30s"]
        options = ["--rm", "-v", SOCKET_MOUNT, "-p", "127.0.0.1::8080", *(f"-e{env}" for env in timeouts)]
        ident = docker("run", "-d", *options, IMAGE)
        started.append(ident)
        reaper = Reaper(ident, int(docker("port", ident, "8080/tcp").splitlines()[0].rsplit(":", 1)[1]))
        wait_until(lambda: "Started!" in reaper.logs(), 10)
        return reaper

    try:
        yield start
    finally:
        for ident in started:
            subprocess.run(["docker", "rm", "-f", ident], capture_output=True, check=False)


@pytest.mark.docker
def test_a_closed_connection_prunes_its_filter_after_the_reconnection_timeout(
    start_reaper: Callable[[], Reaper], made: Made
) -> None:
    reaper = start_reaper()
    run = uuid.uuid4().hex
    conn = reaper.lease(f"label=test.ryuk={run}")
    labelled = [
        ("container", made.container(f"test.ryuk={run}")),
        ("container", made.container(f"test.ryuk={run}")),
        ("network", made.network(f"test.ryuk={run}")),
        ("volume", made.volume(f"test.ryuk={run}")),
    ]
    unlabelled = made.container()
    other = made.container(f"test.ryuk={run}-other")

    conn.close()
    took = wait_until(lambda: not any(exists(kind, ident) for kind, ident in labelled), RECONNECTION + MARGIN)

    assert took >= RECONNECTION - 0.5
    assert exists("container", unlabelled) and exists("container", other)
    assert f"test.ryuk={run}" in reaper.logs() and "2 containers, 1 networks, 1 volumes" in reaper.logs()


@pytest.mark.docker
def test_a_connection_still_open_does_not_delay_another_ones_prune(
    start_reaper: Callable[[], Reaper], made: Made
) -> None:
    reaper = start_reaper()
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    first_conn = reaper.lease(f"label=test.ryuk={first}")
    second_conn = reaper.lease(f"label=test.ryuk={second}")
    first_container = made.container(f"test.ryuk={first}")
    second_container = made.container(f"test.ryuk={second}")

    first_conn.close()
    wait_until(lambda: not exists("container", first_container), RECONNECTION + MARGIN)
    assert exists("container", second_container)

    second_conn.close()
    wait_until(lambda: not exists("container", second_container), RECONNECTION + MARGIN)


@pytest.mark.docker
def test_a_reconnection_with_the_same_filter_keeps_the_resources(
    start_reaper: Callable[[], Reaper], made: Made
) -> None:
    reaper = start_reaper()
    run = uuid.uuid4().hex
    conn = reaper.lease(f"label=test.ryuk={run}&label=test.ryuk.part=a")
    container = made.container(f"test.ryuk={run}", "test.ryuk.part=a")

    conn.close()
    time.sleep(RECONNECTION / 4)
    conn = reaper.lease(f"label=test.ryuk.part=a&label=test.ryuk={run}")  # the same set, reordered
    time.sleep(RECONNECTION + 1.5)
    assert exists("container", container)

    conn.close()
    wait_until(lambda: not exists("container", container), RECONNECTION + MARGIN)


@pytest.mark.docker
def test_sigterm_prunes_every_filter_still_leased_and_exits(
    start_reaper: Callable[[], Reaper], made: Made
) -> None:
    reaper = start_reaper()
    run = uuid.uuid4().hex
    conn = reaper.lease(f"label=test.ryuk={run}")
    container = made.container(f"test.ryuk={run}")

    docker("stop", "-t", "10", reaper.ident)  # --rm: the reaper is gone once stop returns

    conn.close()
    assert not exists("container", container)
    assert not exists("container", reaper.ident)


@pytest.mark.docker
def test_a_reaper_no_client_connects_to_exits_after_the_connection_timeout() -> None:
    ident = docker("run", "-d", "-v", SOCKET_MOUNT, "-e", "RYUK_CONNECTION_TIMEOUT=1s", IMAGE)
    try:
        started = time.monotonic()
        assert docker("wait", ident) == "0"
        assert time.monotonic() - started < 1 + MARGIN
        assert "no client connected for 1s, exiting" in docker("logs", ident)
    finally:
        subprocess.run(["docker", "rm", "-f", ident], capture_output=True, check=False)


# --- testcontainers as the client -----------------------------------------------------------------

CLIENT = """
    import sys
    import time

    from testcontainers.core.container import DockerContainer, Reaper
    from testcontainers.core.labels import SESSION_ID

    DockerContainer("runner/busybox:latest").with_name(sys.argv[1]).with_command("sleep 600").start()
    assert Reaper._container is not None
    print(SESSION_ID, Reaper._container.get_wrapped_container().id, flush=True)
    time.sleep(600)
"""


def read_line(process: subprocess.Popen[str], timeout: float, errors: Path) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line:
        output = errors.read_text(errors="replace")[-2000:]
        pytest.fail(f"the client printed nothing in {timeout:g}s:\n{output}")
    return line


@pytest.mark.docker
@pytest.mark.parametrize(
    "mode",
    [
        {"TESTCONTAINERS_CONNECTION_MODE": "bridge_ip"},
        {"TESTCONTAINERS_CONNECTION_MODE": "docker_host", "TC_HOST": "127.0.0.1"},
    ],
    ids=["bridge-address", "published-port"],
)
def test_a_testcontainers_client_killed_with_sigkill_has_its_container_pruned(
    tmp_path: Path, mode: dict[str, str]
) -> None:
    """testcontainers-python sends its filter right after `docker start`, without waiting for `Started!`
    and without reading the ACK. Through Docker's port proxy a connection to a port nobody listens on yet
    is accepted and dropped, and the filter lost (testcontainers-python #1114); the image's launcher
    listens within a millisecond of the start, so the connection waits in the backlog instead."""
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(CLIENT), encoding="utf-8")
    env = {
        "RYUK_CONTAINER_IMAGE": IMAGE,
        "TESTCONTAINERS_RYUK_DISABLED": "false",
        "RYUK_RECONNECTION_TIMEOUT": "3s",
        **mode,
    }
    container = f"ryuk-test-{uuid.uuid4().hex[:12]}"
    errors = tmp_path / "client.err"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(script), container],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **env},
        )
    session, reaper = "", ""
    try:
        session, reaper = read_line(process, 30, errors).split()
        assert exists("container", container)
        process.kill()
        process.wait()
        took = wait_until(lambda: not exists("container", container), 3 + MARGIN)
        print(f"container gone {took:.1f}s after the client's SIGKILL")
        assert took >= 2.5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        left = [container, reaper]
        if session:
            left += docker("ps", "-aq", "--filter", f"label=org.testcontainers.session-id={session}").split()
        for ident in filter(None, left):
            subprocess.run(["docker", "rm", "-f", "-v", ident], capture_output=True, check=False)


@pytest.mark.docker
def test_a_prune_takes_an_ended_swarm_job_container_and_images_but_never_a_running_one(
    start_reaper: Callable[[], Reaper], made: Made
) -> None:
    """Swarm keeps a job's container after it ended, even once its service is gone: a prune of the run's
    filter removes it, and the run's image, while a running container an orchestrator manages stays."""
    reaper = start_reaper()
    run = uuid.uuid4().hex
    swarm = "com.docker.swarm.service.id=test"
    running = made.container(f"test.ryuk={run}", swarm)
    ended = made.container(f"test.ryuk={run}", swarm)
    docker("stop", "-t", "0", ended)
    image = f"ryuk-test:{run[:12]}"
    built = subprocess.run(
        ["docker", "build", "-q", "--label", f"test.ryuk={run}", "-t", image, "-"],
        input=f"FROM {BUSYBOX}\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    try:
        reaper.lease(f"label=test.ryuk={run}").close()
        wait_until(
            lambda: not exists("container", ended) and not exists("image", image), RECONNECTION + MARGIN
        )
        assert exists("container", running)
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=False)
