"""What a run does not do unless the pipeline asks: publish beyond 127.0.0.1, hand a step the engine's
socket, run privileged, or show a secret."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import image_args
from tests.engine.helpers import run_file

pytestmark = pytest.mark.docker
Write = Callable[..., Path]
ALL_CAPABILITIES = ("000001ffffffffff", "0000003fffffffff", "000003ffffffffff")


def test_steps_get_no_socket_no_privileges_and_ports_stay_on_loopback(write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - {id: svc, detach: true, script: sleep 60, ports: ["80", "8081:81"], ready: "true"}
          - id: look
            script:
              - test ! -e /var/run/docker.sock && echo no-socket
              - grep CapEff /proc/self/status
              - ip link add dummy0 type dummy 2>/dev/null && echo privileged || echo not-privileged
    """)
    result, reporter = run_file(path)
    assert result.exit_code == 0, result.results
    lines = reporter.output("look")
    assert lines[0] == "no-socket" and lines[-1] == "not-privileged"
    assert lines[1].split()[1] not in ALL_CAPABILITIES
    published = result.results[0].message.removeprefix("published on ").split(", ")
    assert published and all(entry.startswith("127.0.0.1:") for entry in published)


def test_a_secret_is_masked_in_logs_messages_and_the_summary(write: Write) -> None:
    path = write("""
        image: busybox
        steps:
          - id: leak
            script: ['echo "the token is $TOKEN"', 'echo "$TOKEN" >&2', 'exit 3']
    """)
    completed = subprocess.run(
        [sys.executable, "-m", "runner", "run", str(path), "--secret", "TOKEN=hunter2-secret", *image_args()],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 1
    assert "hunter2-secret" not in completed.stdout + completed.stderr
    assert "the token is $SECRET" in completed.stdout
    logs = subprocess.run([sys.executable, "-m", "runner", "ps"], capture_output=True, text=True)
    assert "hunter2-secret" not in logs.stdout


def test_the_engine_socket_is_mounted_only_when_asked(write: Write) -> None:
    path = write(
        """
        pipelines:
          default:
            - step: {name: asks, services: [docker], script: ['test -S /var/run/docker.sock && echo socket']}
            - step: {name: plain, script: ['test ! -e /var/run/docker.sock && echo none']}
    """,
        "bitbucket-pipelines.yml",
    )
    result, reporter = run_file(path)
    assert result.exit_code == 0, result.results
    assert reporter.output("asks")[-1] == "socket" and reporter.output("plain")[-1] == "none"
