"""Shared fixtures. Tests that need the engine carry the `docker` marker: skipped locally when no engine
answers, failed in CI. The session fails if anything carrying the run label is left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# the in-memory backend and ledger fixtures, for the ordering and state rules of the engine and the formats
pytest_plugins = ["tests.engine.memory_fixtures"]

BUSYBOX = "runner/busybox:latest"
REDIS = "runner/redis:bookworm"
BASE = "runner/base:bookworm"
IMAGE_MAP = {"busybox": BUSYBOX, "redis": REDIS, "atlassian/default-image": BASE, "ubuntu": BASE}
RUN_LABEL = "dev.runner.run-id"


def engine_answers() -> bool:
    try:
        from runner.backend import connect

        connect().ping()
    except Exception:
        return False
    return True


def pytest_configure(config: pytest.Config) -> None:
    state = Path(os.environ.get("RUNNER_TEST_STATE") or (Path(config.rootpath) / ".pytest_cache" / "state"))
    state.mkdir(parents=True, exist_ok=True)
    os.environ["RUNNER_STATE_DIR"] = str(state)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CI") or engine_answers():
        return
    skip = pytest.mark.skip(reason="no Docker engine answers (run `make engine`)")
    for item in items:
        if "docker" in item.keywords:
            item.add_marker(skip)


def labelled() -> set[tuple[str, str]]:
    from runner.backend import connect
    from runner.backend.base import REMOVAL_ORDER

    backend = connect()
    return {
        (kind, r.name)
        for kind in REMOVAL_ORDER
        for r in backend.list_resources(kind, RUN_LABEL)
    }


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the suite when a test leaves a labelled container, network, volume or image."""
    if not engine_answers():
        yield
        return
    before = labelled()
    yield
    deadline = time.monotonic() + 20  # the reaper of a killed runner may still be sweeping
    left = labelled() - before
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = labelled() - before
    if left:
        subprocess.run([sys.executable, "-m", "runner", "cleanup", "--all"], capture_output=True, check=False)
        pytest.fail(f"resources left behind by the suite: {sorted(left)}")


@dataclass
class Completed:
    code: int
    out: str
    err: str


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def write_file(text: str, name: str = "runner.yml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write_file


def image_args() -> list[str]:
    return [arg for name, local in IMAGE_MAP.items() for arg in ("--image", f"{name}={local}")]


@pytest.fixture
def cli() -> Callable[..., Completed]:
    def invoke(*args: str, timeout: float = 120) -> Completed:
        process = subprocess.run(
            [sys.executable, "-m", "runner", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Completed(process.returncode, process.stdout, process.stderr)

    return invoke
