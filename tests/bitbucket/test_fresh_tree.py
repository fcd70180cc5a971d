"""Every step that clones the tree starts from a fresh copy of it, however many steps share one image: the
run's image that holds the tree is made once, each step's container is a copy of it, no step sees another
step's changes, and the image goes with the run, even when the runner is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runner.backend import connect
from runner.backend.base import ContainerSpec
from runner.engine.status import StepStatus as S
from runner.teardown.labels import PIPELINE, RUN_ID
from tests.bitbucket.test_run import final_saw, project, run, statuses
from tests.test_cli import labelled_of, read_until, start_runner, wait_until_gone

pytestmark = pytest.mark.docker

# Each step checks that it starts from the pristine tree, then changes it as a careless build would.
CHECK = 'test "$(cat src/app.txt)" = original && test ! -e added && test -e removable && test -x tool.sh'
CHANGE = "echo changed > src/app.txt && touch added && rm removable && chmod -x tool.sh"

ISOLATION = f"""
pipelines:
  default:
    - step:
        name: first
        script: ['{CHECK}', '{CHANGE}', 'readlink link-to-app']
    - parallel:
        steps:
          - step: {{name: left, script: ['{CHECK}', '{CHANGE}']}}
          - step: {{name: right, script: ['{CHECK}', '{CHANGE}']}}
    - step:
        name: last
        script: ['{CHECK}', 'cat src/app.txt']
"""

FILES = {"src/app.txt": "original\n", "removable": "x\n", "tool.sh": "#!/bin/sh\necho tool\n"}


def tree_images(run_id: str = "") -> list[str]:
    """The images of a run, or of every run (the tests run one at a time)."""
    return [
        image.name for image in connect().list_resources("image", f"{RUN_ID}={run_id}" if run_id else RUN_ID)
    ]


def test_steps_on_one_image_share_the_tree_yet_never_see_each_others_changes(tmp_path: Path) -> None:
    path = project(tmp_path, ISOLATION, FILES)
    (tmp_path / "link-to-app").symlink_to("src/app.txt")
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and not seen:
            seen.extend(tree_images())
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result, reporter = run(path)
    finally:
        done.set()
        watcher.join()
    assert result.exit_code == 0, result.results
    assert statuses(result) == {"first": S.SUCCESS, "left": S.SUCCESS, "right": S.SUCCESS, "last": S.SUCCESS}
    assert final_saw(reporter, "first") == ["src/app.txt"]
    assert final_saw(reporter, "last") == ["original"]
    assert len(seen) == 1 and seen[0].endswith(":tree"), seen  # one image for the four steps
    assert tree_images() == []


def test_a_killed_runner_leaves_no_tree_image(tmp_path: Path) -> None:
    steps = "".join(f"    - step: {{name: s{n}, script: ['sleep 600']}}\n" for n in range(3))
    path = project(tmp_path, f"pipelines:\n  default:\n{steps}", FILES)
    process = start_runner(path)
    _, run_id = read_until(process, "s0")
    deadline = time.monotonic() + 30
    while not tree_images(run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tree_images(run_id), "the run made no image holding the tree"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert wait_until_gone(run_id, 60) == []  # the reaper removes containers, then the image


def test_cleanup_removes_a_dead_runs_image(tmp_path: Path) -> None:
    backend = connect()
    run_id = "deadbeef01"
    labels = {RUN_ID: run_id, PIPELINE: "leaky", "dev.runner.owner": "nohost/1/0"}
    container = backend.create_container(
        ContainerSpec(name=f"runner-{run_id}-tree-1", image="runner/busybox:latest", labels=labels)
    )
    try:
        backend.commit(container, f"runner-{run_id}-tree-1:tree")
    finally:
        backend.remove("container", container)
    assert labelled_of(run_id) == [f"runner-{run_id}-tree-1:tree"]
    completed = subprocess.run(
        [sys.executable, "-m", "runner", "cleanup", "--run", run_id],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert labelled_of(run_id) == []
