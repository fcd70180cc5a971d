"""The errors a user can see, and the exit codes they map to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    SUCCESS = 0
    STEP_FAILED = 1
    INVALID_INPUT = 2
    ENGINE_UNAVAILABLE = 3
    INTERRUPTED = 130
    BROKEN_PIPE = 141  # as a shell reports a process its reader left: 128 + SIGPIPE


@dataclass(frozen=True)
class Position:
    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class RunnerError(Exception):
    """Base of every error the CLI turns into a message and an exit code."""

    exit_code: ExitCode = ExitCode.STEP_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(RunnerError):
    """The pipeline file or the command line is wrong; nothing was started."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, message: str, hint: str | None = None, position: Position | None = None) -> None:
        super().__init__(message, hint)
        self.position = position
        self.others: list[InputError] = []

    @classmethod
    def collect(cls, problems: list[InputError]) -> InputError:
        """One error that reports several problems, the first as its own message."""
        first = problems[0]
        first.others = problems[1:]
        return first

    def __str__(self) -> str:
        where = f"{self.position}: " if self.position else ""
        return f"{where}{self.message}"


class EngineUnavailable(RunnerError):
    exit_code = ExitCode.ENGINE_UNAVAILABLE


class ImageUnavailable(RunnerError):
    """An image is neither present locally nor pullable."""


class ResourceGone(RunnerError):
    """The engine no longer knows a container, network or volume."""


class LedgerUnavailable(RunnerError):
    """The on-disk ledger cannot be written: the run must not start unguarded."""

    exit_code = ExitCode.ENGINE_UNAVAILABLE
