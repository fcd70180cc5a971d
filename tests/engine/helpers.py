from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runner.backend import connect
from runner.engine.executor import Executor, RunOptions
from runner.engine.status import Block, RunResult, StepResult, StepStatus
from runner.formats import load_pipeline
from runner.formats.options import LoadOptions
from runner.model import Group, Pipeline, Step
from runner.teardown.ledger import Ledger
from runner.teardown.manager import ResourceChange
from tests.conftest import IMAGE_MAP


@dataclass
class RecordingReporter:
    lines: list[tuple[str, str]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    resources: list[ResourceChange] = field(default_factory=list)

    def run_started(self, pipeline: Pipeline, run_id: str) -> None:
        pass

    def step_started(self, step: Step, block: Block) -> None:
        self.order.append(step.id)

    def log(self, step: Step, line: str) -> None:
        self.lines.append((step.id, line))

    def step_finished(self, step: Step | Group, result: StepResult) -> None:
        pass

    def notice(self, text: str, *, warning: bool = False) -> None:
        self.notices.append(text)

    def resource(self, change: ResourceChange) -> None:
        self.resources.append(change)

    def run_finished(self, result: RunResult) -> None:
        pass

    def output(self, step_id: str) -> list[str]:
        return [line for step, line in self.lines if step == step_id]


def run_file(
    path: Path, load: LoadOptions | None = None, **options: object
) -> tuple[RunResult, RecordingReporter]:
    reporter = RecordingReporter()
    run_options = RunOptions(**{"image_map": IMAGE_MAP, **options})  # type: ignore[arg-type]
    result = Executor(load_pipeline(path, options=load), connect(), Ledger(), reporter, run_options).run()
    return result, reporter


def statuses(result: RunResult) -> dict[str, StepStatus]:
    return {r.step_id: r.status for r in result.results}
