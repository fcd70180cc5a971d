"""Container engines, registered by name; the engine and teardown layers see only `Backend`."""

from __future__ import annotations

from collections.abc import Callable

from runner.backend.base import Backend
from runner.errors import InputError


def _docker() -> Backend:
    from runner.backend.docker import DockerBackend

    return DockerBackend()


BACKENDS: dict[str, Callable[[], Backend]] = {"docker": _docker}


def connect(name: str = "docker") -> Backend:
    factory = BACKENDS.get(name)
    if factory is None:
        raise InputError(f"unknown backend '{name}'", f"choose one of: {', '.join(BACKENDS)}")
    return factory()
