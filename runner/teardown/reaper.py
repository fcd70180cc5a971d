"""The out-of-process lease: a watchdog that sweeps a run when its runner dies without saying "done".

The runner starts it in a session of its own (so that killing the runner's process group spares it)
and keeps the write end of a pipe on its stdin. A clean end of the run writes "done"; any other end of
the pipe — `kill -9`, a crash, an OOM kill — is EOF without "done", and the reaper removes every
resource labelled with the run id.

Only the standard library is imported until a sweep is needed, so the lease is ready in milliseconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import IO

DONE = b"done\n"
READY = b"ready\n"
SECOND_PASS_DELAY = 1.0  # a create call in flight when the runner died may land after the first pass


class Lease:
    """The runner's side of the lease."""

    def __init__(self, run_id: str, engine: str | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runner.teardown.reaper", run_id, *([engine] if engine else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        self.ready = False

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the reaper holds the lease; nothing may be created before that."""
        if self.ready:
            return
        assert self.process.stdout is not None
        line = _read_line(self.process.stdout, timeout)
        if line != READY:
            raise RuntimeError("the reaper did not start")
        self.ready = True

    def release(self) -> None:
        """End the lease cleanly: the run removed (or deliberately kept) its own resources."""
        self._close(DONE)

    def abandon(self) -> None:
        """End the lease as a crash would: the reaper sweeps the run now."""
        self._close(b"")

    def _close(self, last_words: bytes) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.closed:
            return
        try:
            stdin.write(last_words)
            stdin.close()
        except OSError:
            pass
        if not last_words:
            return  # the sweep may take a while; the reaper finishes it on its own
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return b""
    return stream.readline()


def main(run_id: str, engine: str | None = None) -> int:
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    received = b""
    while True:
        chunk = os.read(0, 64)
        if not chunk:
            break
        received += chunk
    if received.endswith(DONE):
        return 0
    return sweep(run_id, engine)


def sweep(run_id: str, engine: str | None = None) -> int:
    from runner.backend import connect
    from runner.config import engine_settings
    from runner.errors import RunnerError
    from runner.teardown.leaks import LeakFilter, find_leaks, remove_runs
    from runner.teardown.ledger import Ledger

    try:
        backend = connect(engine_settings(None, explicit=engine))
        ledger = Ledger()
        for attempt in range(2):
            if attempt:
                time.sleep(SECOND_PASS_DELAY)
            runs = find_leaks(backend, LeakFilter(run_id=run_id))
            remove_runs(backend, runs, ledger)
        record = ledger.run(run_id)
        if record is not None and record.status in ("running", "leaked"):
            ledger.end_run(run_id, "killed", None)
    except RunnerError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
