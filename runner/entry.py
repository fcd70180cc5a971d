"""The process entry point: Ctrl-C, SIGTERM and SIGHUP are turned into an interrupt before anything heavy is
imported, so a signal that arrives while the runner starts ends it like Ctrl-C (exit 130), not by the
signal's default action. The engine installs its own handlers when a run begins, and puts these back after."""

from __future__ import annotations

import signal
import sys
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StartupInterrupt(BaseException):
    """A signal that arrived while the engine was not counting them.

    Deliberately not a KeyboardInterrupt. CPython remembers a KeyboardInterrupt that leaves an `exec` of a
    string (dataclasses and namedtuple build their methods that way, so any import can do it) and, once
    the interpreter is finalised, kills itself with SIGINT whatever `sys.exit` asked for: the parent sees
    "killed by SIGINT", not 130. The command-line library also turns a KeyboardInterrupt raised while it
    parses arguments into an exit of its own; it lets any other BaseException through to `main`."""


def _interrupt(number: int, frame: FrameType | None) -> None:
    raise StartupInterrupt


def main() -> None:
    try:
        # inside the `try`: a signal between two of these calls must end up in the `except` as well
        for number in HANDLED:
            signal.signal(number, _interrupt)
        from runner.cli import main as cli_main

        cli_main()
    except StartupInterrupt:
        sys.exit(130)
