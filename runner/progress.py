"""Long waits made visible: pulling an image, building one, copying a tree, waiting for a service.

Whatever does the waiting opens an activity (`with activity("pulling redis:7", "bytes") as update:`) and
reports how far it is, when it knows; whoever shows the run to a person (on a terminal only) registers
itself as the sink. With no sink, an activity costs a function call."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

Update = Callable[[int, int | None], None]  # (done, total or None when unknown), in the activity's unit


@dataclass
class Activity:
    key: int
    text: str
    unit: str  # "bytes", "steps" or "" (no measure: only how long it has taken)
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    total: int | None = None


class Sink(Protocol):
    def activity_changed(self, activity: Activity) -> None: ...

    def activity_ended(self, activity: Activity) -> None: ...


_sink: Sink | None = None
_lock = threading.Lock()
_keys = itertools.count(1)


def set_sink(sink: Sink | None) -> Sink | None:
    """Show activities through `sink` (None: nowhere); returns the one it replaces."""
    global _sink
    with _lock:
        previous, _sink = _sink, sink
    return previous


def watched() -> bool:
    """Whether anything shows activities: work done only for them (a total) can be skipped otherwise."""
    return _sink is not None


@contextlib.contextmanager
def activity(text: str, unit: str = "") -> Iterator[Update]:
    sink = _sink
    if sink is None:
        yield _ignore
        return
    current = Activity(next(_keys), text, unit)
    sink.activity_changed(current)

    def update(done: int, total: int | None) -> None:
        current.done, current.total = done, total
        sink.activity_changed(current)

    try:
        yield update
    finally:
        sink.activity_ended(current)


def _ignore(done: int, total: int | None) -> None:
    pass


def counted(chunks: Iterable[bytes], update: Update, total: int | None) -> Iterator[bytes]:
    """`chunks` as they are, telling `update` how many bytes have gone by."""
    done = 0
    for chunk in chunks:
        done += len(chunk)
        update(done, total)
        yield chunk
