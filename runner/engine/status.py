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

    @property
    def is_failure(self) -> bool:
        return self in (StepStatus.FAILED, StepStatus.TIMED_OUT)


class Block(StrEnum):
    SERVICES = "services"
    STEPS = "steps"
    ERRORS = "errors"
    FINALLY = "finally"


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

    @property
    def fails_run(self) -> bool:
        return self.status.is_failure and not self.allowed_failure


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
    log_dir: str = ""

    @property
    def failed(self) -> bool:
        return any(result.fails_run for result in self.results)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed else 0

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.failed:
            return "failed"
        return "paused" if self.paused else "success"
