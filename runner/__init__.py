"""Run container pipelines with a guaranteed finally, and leave nothing behind."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "services"]


def __getattr__(name: str) -> Any:
    # `from runner import services` loads the engine; `import runner` alone (the CLI, the reaper) does not
    if name == "services":
        from runner.api import services

        return services
    raise AttributeError(f"module 'runner' has no attribute {name!r}")
