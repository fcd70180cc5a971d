"""The process entry point: SIGTERM and SIGHUP are turned into an interrupt before anything heavy is
imported, so a signal that arrives while the runner starts ends it like Ctrl-C (exit 130), not by the
signal's default action. The engine installs its own handlers when a run begins."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _interrupt(number: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    try:
        from runner.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.exit(130)
