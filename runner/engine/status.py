"""How a step and a run ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class StepStatus(StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"
    PAUSED = "PAUSED"  # a manual step nobody started: the run stopped before it
    WARNING = "WARNING"  # ended, with an allowed failure or after a failed attempt: the run goes on

    @property
    def is_failure(self) -> bool:
        return self in (StepStatus.FAILED, StepStatus.TIMED_OUT)


class Block(StrEnum):
    SERVICES = "services"
    STEPS = "steps"
    ERRORS = "errors"
    FINALLY = "finally"
    AFTER = "after"


@dataclass
class StepResult:
    step_id: str
    name: str
    block: Block
    status: StepStatus
    exit_code: int | None = None
    duration: float = 0.0
    message: str = ""
    allowed_failure: bool = False
    outputs: dict[str, object] = field(default_factory=dict)
    carried_from: str = ""  # not run again: the result of this earlier run
    depth: int = 0  # how many reported groups hold it: the summary indents it that much
    group: bool = False  # a group's own state: its steps decide the run, it does not

    @property
    def fails_run(self) -> bool:
        return self.status.is_failure and not self.allowed_failure and not self.group


@dataclass
class ResourceSummary:
    created: int
    removed: int
    left_running: list[str]  # detached containers the pipeline did not stop, removed by the sweep
    failed: list[str]
    kept: bool
    sweep_seconds: float


@dataclass
class RunResult:
    run_id: str
    pipeline: str
    results: list[StepResult]
    interrupted: bool
    resources: ResourceSummary | None = None
    paused: bool = False
    deciding_blocks: tuple[Block, ...] | None = None  # None: every block decides the run's state
    log_dir: str = ""
    guard: str = ""  # what would remove the run's resources had this process died
    exit_state: str | None = None  # the state an exit step ended the run in
    outputs: dict[str, object] = field(default_factory=dict)  # the pipeline's outputs, rendered at the end

    @property
    def failed(self) -> bool:
        if self.exit_state is not None:
            return self.exit_state in ("FAILED", "KILLED", "CANCELED")
        deciding = self.deciding_blocks
        return any(r.fails_run for r in self.results if deciding is None or r.block in deciding)

    @property
    def ignored_failures(self) -> list[StepResult]:
        """Failures that do not decide the run's state (in `finally`, when only the steps decide it)."""
        deciding = self.deciding_blocks
        return [r for r in self.results if r.fails_run and deciding is not None and r.block not in deciding]

    @property
    def warned(self) -> bool:
        """A step or group ended WARNING (an allowed failure, a success after a retry): exit 0."""
        if self.exit_state is not None:
            return self.exit_state == "WARNING"
        deciding = self.deciding_blocks
        return any(
            r.status is StepStatus.WARNING for r in self.results if deciding is None or r.block in deciding
        )

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed else 0

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.exit_state in ("KILLED", "CANCELED"):
            return "killed" if self.exit_state == "KILLED" else "cancelled"
        if self.failed:
            return "failed"
        if self.warned:
            return "warning"
        return "paused" if self.paused else "success"
