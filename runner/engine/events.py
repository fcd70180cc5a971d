"""What the engine tells whoever shows a run to a person; the engine renders nothing itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

from runner.engine.status import Block, RunResult, StepResult
from runner.model import Group, Pipeline, Step
from runner.teardown.manager import ResourceChange


class Reporter(Protocol):
    def run_started(self, pipeline: Pipeline, run_id: str) -> None: ...

    def step_started(self, step: Step, block: Block) -> None: ...

    def log(self, step: Step, line: str) -> None:
        """A line of a step's output; detached steps (services) report theirs too."""
        ...

    def step_finished(self, step: Step | Group, result: StepResult) -> None: ...

    def notice(self, text: str, *, warning: bool = False) -> None: ...

    def resource(self, change: ResourceChange) -> None:
        """A container, network, volume or image of the run was created or removed."""
        ...

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

    def resource(self, change: ResourceChange) -> None:
        pass

    def run_finished(self, result: RunResult) -> None:
        pass


class Reporters:
    """Every event to each of several reporters, in order."""

    def __init__(self, reporters: Sequence[Reporter]) -> None:
        self.reporters = tuple(reporters)

    def run_started(self, pipeline: Pipeline, run_id: str) -> None:
        for reporter in self.reporters:
            reporter.run_started(pipeline, run_id)

    def step_started(self, step: Step, block: Block) -> None:
        for reporter in self.reporters:
            reporter.step_started(step, block)

    def log(self, step: Step, line: str) -> None:
        for reporter in self.reporters:
            reporter.log(step, line)

    def step_finished(self, step: Step | Group, result: StepResult) -> None:
        for reporter in self.reporters:
            reporter.step_finished(step, result)

    def notice(self, text: str, *, warning: bool = False) -> None:
        for reporter in self.reporters:
            reporter.notice(text, warning=warning)

    def resource(self, change: ResourceChange) -> None:
        for reporter in self.reporters:
            reporter.resource(change)

    def run_finished(self, result: RunResult) -> None:
        for reporter in self.reporters:
            reporter.run_finished(result)


def mask_values(value: object, mask: Callable[[str], str]) -> object:
    """`value` with `mask` applied to every string in it, keys included."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {mask_values(k, mask): mask_values(v, mask) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_values(item, mask) for item in value]
    return value


class MaskedReporter:
    """What reaches a reporter with the run's secrets masked: notices, and each result's
    message and outputs (copies: the engine keeps the values its later steps read)."""

    def __init__(self, reporter: Reporter, mask: Callable[[str], str]) -> None:
        self.reporter = reporter
        self.mask = mask

    def _result(self, result: StepResult) -> StepResult:
        outputs = mask_values(result.outputs, self.mask)
        assert isinstance(outputs, dict)
        return dataclasses.replace(result, message=self.mask(result.message), outputs=outputs)

    def run_started(self, pipeline: Pipeline, run_id: str) -> None:
        self.reporter.run_started(pipeline, run_id)

    def step_started(self, step: Step, block: Block) -> None:
        self.reporter.step_started(step, block)

    def log(self, step: Step, line: str) -> None:
        self.reporter.log(step, line)  # masked where it is read, before its log file gets it too

    def step_finished(self, step: Step | Group, result: StepResult) -> None:
        self.reporter.step_finished(step, self._result(result))

    def notice(self, text: str, *, warning: bool = False) -> None:
        self.reporter.notice(self.mask(text), warning=warning)

    def resource(self, change: ResourceChange) -> None:
        self.reporter.resource(change)

    def run_finished(self, result: RunResult) -> None:
        results = [self._result(r) for r in result.results]
        outputs = mask_values(result.outputs, self.mask)
        assert isinstance(outputs, dict)
        self.reporter.run_finished(dataclasses.replace(result, results=results, outputs=outputs))
