"""What the engine tells whoever shows a run to a person; the engine renders nothing itself."""

from __future__ import annotations

from typing import Protocol

from runner.engine.status import Block, RunResult, StepResult
from runner.model import Group, Pipeline, Step


class Reporter(Protocol):
    def run_started(self, pipeline: Pipeline, run_id: str) -> None: ...

    def step_started(self, step: Step, block: Block) -> None: ...

    def log(self, step: Step, line: str) -> None:
        """A line of a step's output; detached steps (services) report theirs too."""
        ...

    def step_finished(self, step: Step | Group, result: StepResult) -> None: ...

    def notice(self, text: str, *, warning: bool = False) -> None: ...

    def run_finished(self, result: RunResult) -> None: ...


class SilentReporter:
    """A reporter that shows nothing: for callers that only want the `RunResult`."""

    def run_started(self, pipeline: Pipeline, run_id: str) -> None:
        pass

    def step_started(self, step: Step, block: Block) -> None:
        pass

    def log(self, step: Step, line: str) -> None:
        pass

    def step_finished(self, step: Step | Group, result: StepResult) -> None:
        pass

    def notice(self, text: str, *, warning: bool = False) -> None:
        pass

    def run_finished(self, result: RunResult) -> None:
        pass
