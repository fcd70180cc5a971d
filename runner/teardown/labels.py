"""The labels every resource carries: the source of truth for what a run owns."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

PREFIX = "dev.runner."
RUN_ID = PREFIX + "run-id"
PIPELINE = PREFIX + "pipeline"
STEP = PREFIX + "step"
OWNER = PREFIX + "owner"
CREATED = PREFIX + "created"


def process_start(pid: int) -> str:
    """The kernel's start time of `pid`, so that a reused pid is not taken for the same process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return "0"


def this_host() -> str:
    """This machine's name, with the PID namespace this process lives in: runners in two containers that
    share a host name (the host's network) cannot see each other's processes, and must not take each
    other for dead."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:[").rstrip("]")
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}@{namespace}"


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(this_host(), pid, process_start(pid))

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        host, _, rest = text.rpartition("/")
        host, _, pid = host.rpartition("/")
        if not host or not pid.isdigit():
            return None
        return cls(host, int(pid), rest)

    def __str__(self) -> str:
        return f"{self.host}/{self.pid}/{self.start}"

    def is_local(self) -> bool:
        if "@" not in self.host:  # written before owners named their PID namespace
            return self.host == socket.gethostname()
        return self.host == this_host()

    def is_alive(self) -> bool:
        """True when the owner still runs; an owner on another host is assumed alive."""
        if not self.is_local():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return process_start(self.pid) == self.start


def run_labels(run_id: str, pipeline: str, owner: Owner, step: str = "") -> dict[str, str]:
    return {
        RUN_ID: run_id,
        PIPELINE: pipeline,
        STEP: step,
        OWNER: str(owner),
        CREATED: str(int(time.time())),
    }
