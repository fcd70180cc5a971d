"""Long waits on a terminal: a spinner with what is happening and for how long, drawn only when the
output is a terminal (a pseudo-terminal here, as a person's would be)."""

from __future__ import annotations

import contextlib
import io
import os
import pty
import re
import select
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from runner.backend.docker import _PulledLayers
from tests.conftest import BUSYBOX, image_args

SLOW_SERVICE = """
    image: busybox
    services:
      db:
        image: busybox
        command: [sh, -c, "sleep 3; touch /tmp/ready; sleep 600"]
        ready: {command: test -f /tmp/ready, timeout: 60s}
    steps:
      - {id: use, script: echo used}
"""
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def run_on_terminal(tmp_path: Path, text: str) -> tuple[int, str]:
    (tmp_path / "runner.yml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", *image_args()],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "RUNNER_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "160", "TERM": "xterm"},
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other side closed: the runner is done
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=30), ANSI.sub("", seen.decode("utf-8", errors="replace"))


@pytest.mark.docker
def test_waiting_for_a_service_shows_what_and_for_how_long_on_a_terminal(tmp_path: Path) -> None:
    code, screen = run_on_terminal(tmp_path, SLOW_SERVICE)
    assert code == 0, screen
    assert "waiting for db to be ready" in screen
    shown_for = [float(s) for s in re.findall(r"waiting for db to be ready\s+([0-9.]+)s", screen)]
    assert shown_for and max(shown_for) >= 2  # and how long it has been waiting


@pytest.mark.docker
def test_nothing_of_it_is_written_when_the_output_is_not_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "runner.yml").write_text(textwrap.dedent(SLOW_SERVICE).lstrip(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "runner", "run", *image_args()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "RUNNER_STATE_DIR": str(tmp_path / "state")},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "waiting for" not in done.stdout + done.stderr and "\x1b" not in done.stdout


def test_a_pulls_progress_is_the_sum_over_its_layers() -> None:
    told: list[tuple[int, int | None]] = []
    layers = _PulledLayers()
    stream = [
        {"status": "Pulling from library/redis", "id": "7"},
        {"status": "Pulling fs layer", "id": "a", "progressDetail": {}},
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 100, "total": 1000}},
        {"status": "Downloading", "id": "b", "progressDetail": {"current": 50, "total": 500}},
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 600, "total": 1000}},
        {"status": "Download complete", "id": "b", "progressDetail": {}},
        {"status": "Extracting", "id": "b", "progressDetail": {"current": 10, "total": 500}},
        {"status": "Pull complete", "id": "a", "progressDetail": {}},
    ]
    for entry in stream:
        layers.note(entry, lambda done, total: told.append((done, total)))
    assert told == [(100, 1000), (150, 1500), (650, 1500), (1100, 1500), (1500, 1500)]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry on 127.0.0.1 (Debian's docker-registry), with storage of its own: HOST:PORT."""
    installed = subprocess.run(
        ["bash", str(SCRIPTS / "registry.sh"), "install"], capture_output=True, text=True, check=False
    )
    if installed.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"no registry: {installed.stderr}")
        pytest.skip(f"no registry can be installed here: {installed.stderr.strip()}")
    binary = installed.stdout.strip().splitlines()[-1]
    folder = tmp_path_factory.mktemp("registry")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = folder / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n",
        encoding="utf-8",
    )
    server = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("the registry did not answer") from None
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.docker
def test_pulling_an_image_shows_how_many_bytes_have_come(tmp_path: Path, registry: str) -> None:
    client = docker.from_env()
    image = f"{registry}/runner-tests/progress:{tmp_path.name[-8:].lower()}"
    # a layer of its own, big enough that the pull takes a while even over loopback
    dockerfile = f"FROM {BUSYBOX}\nRUN head -c 150000000 /dev/urandom > /blob\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=image, rm=True, forcerm=True)
    try:
        for entry in client.api.push(image, stream=True, decode=True):
            assert "error" not in entry, entry
        client.images.remove(image, force=True)  # only the registry has it now
        code, screen = run_on_terminal(
            tmp_path, f"steps:\n  - {{id: pulled, image: '{image}', script: echo pulled}}\n"
        )
        assert code == 0, screen
        assert f"pulling {image}" in screen
        amounts = [float(done) for done in re.findall(r"([0-9.]+)/[0-9.]+ MB", screen)]
        assert amounts and max(amounts) > 0  # how far the pull was, as it went
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(image, force=True)
