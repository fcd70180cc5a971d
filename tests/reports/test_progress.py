"""Long waits on a terminal: a spinner with what is happening and for how long, drawn only when the
output is a terminal (a pseudo-terminal here, as a person's would be)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runner.backend.docker import _PulledLayers
from tests.conftest import image_args

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
