"""Container engines, registered by name; the engine and teardown layers see only `Backend`."""

from __future__ import annotations

from collections.abc import Callable

from runner.backend.base import Backend, EngineSettings
from runner.errors import InputError


def _docker(settings: EngineSettings | None) -> Backend:
    from runner.backend.docker import DockerBackend

    return DockerBackend(settings)


BACKENDS: dict[str, Callable[[EngineSettings | None], Backend]] = {"docker": _docker}


def connect(settings: EngineSettings | None = None, name: str = "docker") -> Backend:
    """The engine the user chose: `settings` from the command line and runner.toml, else what the
    environment and the Docker CLI's configuration say (see `runner.config.engine_settings`)."""
    factory = BACKENDS.get(name)
    if factory is None:
        raise InputError(f"unknown backend '{name}'", f"choose one of: {', '.join(BACKENDS)}")
    if settings is None:
        from runner.config import engine_settings

        settings = engine_settings(None)
    return factory(settings)
