"""One real run of a Bitbucket pipeline that has a bit of everything (a service, parallel steps, a
failure, a skipped step, a final step, a secret in its output), made once per module with --json and
--junit: the event stream, the JUnit report, `runner logs` and the report page are each checked on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import image_args

SECRET = "hunter2-s3cr3t"
PIPELINE = """
    image: busybox
    definitions:
      services:
        redis:
          image: redis
    pipelines:
      default:
        - step:
            name: build
            services: [redis]
            script:
              - echo "building with $TOKEN"
              - echo '<b>&amp; "quoted"</b>'
              - echo "TOKEN_SEEN=$TOKEN" >> $BITBUCKET_PIPELINES_VARIABLES_PATH
            output-variables: [TOKEN_SEEN]
        - parallel:
            - step: {name: lint, script: [echo lint ok, sleep 1]}
            - step: {name: unit, script: [echo unit ok, sleep 1]}
        - step:
            name: broken
            script:
              - echo "line one"
              - echo "about to fail with $TOKEN"
              - exit 3
        - step: {name: never, script: [echo never]}
        - final:
            name: cleanup
            script: [echo cleaning up]
"""


@dataclass(frozen=True)
class FinishedRun:
    project: Path
    state: Path  # the run's own state directory (RUNNER_STATE_DIR)
    code: int
    out: str
    err: str
    junit: Path
    run_id: str

    @property
    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.splitlines()]

    def env(self) -> dict[str, str]:
        return {**os.environ, "RUNNER_STATE_DIR": str(self.state)}

    def runner(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runner", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=self.project,
            check=False,
        )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FinishedRun]:
    project = tmp_path_factory.mktemp("project")
    state = tmp_path_factory.mktemp("state")
    (project / "bitbucket-pipelines.yml").write_text(textwrap.dedent(PIPELINE).lstrip(), encoding="utf-8")
    junit = project / "reports" / "junit.xml"
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "run",
            "--json",
            "--junit",
            str(junit),
            "--secret",
            f"TOKEN={SECRET}",
            *image_args(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RUNNER_STATE_DIR": str(state)},
        cwd=project,
        check=False,
    )
    first = json.loads(process.stdout.splitlines()[0]) if process.stdout else {}
    yield FinishedRun(
        project, state, process.returncode, process.stdout, process.stderr, junit, str(first.get("run", ""))
    )
