"""Ctrl-C, SIGTERM and SIGHUP, counted: the first stops the running step, the second abandons `finally`.

The handler only counts. It takes no lock, because it runs between two bytecodes of the main thread,
which may hold any lock at that moment; the engine polls the count while it waits.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
HARD_EXIT_AFTER = 3


class Interrupts:
    def __init__(self) -> None:
        self.count = 0
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number in HANDLED:
            self._previous[number] = signal.signal(number, self._handle)

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.count += 1
        self.signal_name = signal.Signals(number).name
        if self.count >= HARD_EXIT_AFTER:
            # the lease reaper sweeps whatever is left once this process is gone
            os._exit(130)

    @property
    def interrupted(self) -> bool:
        return self.count >= 1

    @property
    def abandon_finally(self) -> bool:
        return self.count >= 2


class ChildInterrupts(Interrupts):
    """A run started by another run (a subflow): it counts the parent's signals, and leaves the signal
    handlers to the parent, which restores them."""

    def __init__(self, parent: Interrupts) -> None:
        super().__init__()
        self.parent = parent

    def install(self) -> None:
        pass

    def restore(self) -> None:
        pass

    @property
    def interrupted(self) -> bool:
        return self.parent.interrupted

    @property
    def abandon_finally(self) -> bool:
        return self.parent.abandon_finally
