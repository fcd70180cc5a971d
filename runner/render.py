"""Showing a run to a person: live step lines, prefixed logs, and the summary table."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from rich.console import Console, RenderableType
from rich.console import Group as RichGroup
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from runner.durations import format_duration
from runner.engine.status import Block, RunResult, StepResult, StepStatus
from runner.errors import InputError, RunnerError
from runner.model import ContainerRun, Group, LoadWarning, Pipeline, Step
from runner.progress import Activity
from runner.teardown.manager import ResourceChange

STYLES = {
    StepStatus.SUCCESS: ("✓", "green"),
    StepStatus.FAILED: ("✗", "red"),
    StepStatus.TIMED_OUT: ("⏱", "red"),
    StepStatus.STOPPED: ("■", "yellow"),
    StepStatus.SKIPPED: ("-", "dim"),
    StepStatus.PAUSED: ("‖", "yellow"),
    StepStatus.WARNING: ("!", "yellow"),
}
PREFIX_STYLES = ("cyan", "magenta", "blue", "yellow", "green")


class _Running:
    """The live lines at the bottom of a terminal: which steps run and for how long, and each long wait
    (a pull, a build, a copy, a service starting) with how far it is."""

    def __init__(self) -> None:
        self.steps: dict[str, tuple[str, float]] = {}
        self.activities: dict[int, tuple[Activity, Spinner]] = {}
        self.spinner = Spinner("dots")

    def __rich__(self) -> RenderableType:
        now = time.monotonic()
        text = ", ".join(f"{name} {format_duration(now - since)}" for name, since in self.steps.values())
        self.spinner.update(text=Text(f"running {text}" if text else "", style="bold"))
        if not self.activities:
            return self.spinner
        grid = Table.grid(padding=(0, 1))
        for current, spinner in list(self.activities.values()):
            grid.add_row(spinner, *_activity_columns(current, now))
        return RichGroup(self.spinner, grid) if text else grid


def _activity_columns(current: Activity, now: float) -> list[RenderableType]:
    elapsed = Text(format_duration(now - current.started), style="dim")
    if current.total:
        bar = ProgressBar(total=current.total, completed=min(current.done, current.total), width=24)
        return [Text(current.text), bar, Text(_amount(current), style="dim"), elapsed]
    if current.done and current.unit == "bytes":
        return [Text(current.text), Text(_amount(current), style="dim"), elapsed]
    return [Text(current.text), elapsed]


def _amount(current: Activity) -> str:
    if current.unit == "bytes":
        done = f"{current.done / 1e6:.1f}"
        return f"{done}/{current.total / 1e6:.1f} MB" if current.total else f"{done} MB"
    return f"{current.done}/{current.total}" if current.total else str(current.done)


class ConsoleReporter:
    def __init__(
        self, console: Console, *, quiet: bool = False, verbose: bool = False, local_hints: bool = True
    ) -> None:
        self.console = console
        self.quiet = quiet
        self.verbose = verbose
        self.local_hints = local_hints  # hints naming this machine's ledger (--resume, --rerun-failed)
        self.lock = threading.Lock()
        self.running = _Running()
        self.live: Live | None = None
        self.width = 8
        self.colors: dict[str, str] = {}

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the live line while a question is asked."""
        live = self.live
        if live is not None:
            live.stop()
        try:
            yield
        finally:
            if live is not None:
                live.start()

    def run_started(self, pipeline: Pipeline, run_id: str) -> None:
        names = [step.name for step in pipeline.all_steps()]
        self.width = min(max((len(n) for n in names), default=8), 24)
        for index, step in enumerate(pipeline.all_steps()):
            self.colors[step.id] = PREFIX_STYLES[index % len(PREFIX_STYLES)]
        if not self.quiet:
            self.console.print(f"[bold]{escape(pipeline.name)}[/bold]  [dim]run {run_id}[/dim]")
        if self.console.is_terminal and not self.quiet and self.live is None:
            self.live = Live(self.running, console=self.console, refresh_per_second=4, transient=True)
            self.live.start()

    def activity_changed(self, activity: Activity) -> None:
        with self.lock:
            if activity.key not in self.running.activities:
                self.running.activities[activity.key] = (activity, Spinner("dots", style="cyan"))
            if self.live is None and self.console.is_terminal and not self.quiet:
                self.live = Live(self.running, console=self.console, refresh_per_second=4, transient=True)
                self.live.start()

    def activity_ended(self, activity: Activity) -> None:
        with self.lock:
            self.running.activities.pop(activity.key, None)

    def step_started(self, step: Step, block: Block) -> None:
        with self.lock:
            self.running.steps[step.id] = (step.name, time.monotonic())
        if not self.quiet:
            where = "" if block is Block.STEPS else f" [dim]({block.value})[/dim]"
            self.console.print(f"[bold]▶ {escape(step.name)}[/bold]{where}")

    def log(self, step: Step, line: str) -> None:
        service = isinstance(step.action, ContainerRun) and step.action.detach
        if self.quiet or (service and not self.verbose):
            return
        prefix = Text(f"{step.name[: self.width]:<{self.width}} │ ", style=self.colors.get(step.id, "cyan"))
        self.console.print(prefix + Text(line), soft_wrap=True)

    def step_finished(self, step: Step | Group, result: StepResult) -> None:
        with self.lock:
            self.running.steps.pop(step.id, None)
        if self.quiet and not result.fails_run:
            return
        mark, style = STYLES[result.status]
        status = result.status.value + (" (allowed)" if result.allowed_failure else "")
        quiet_duration = result.status is StepStatus.SKIPPED or result.carried_from or result.group
        duration = "" if quiet_duration else f" {format_duration(result.duration)}"
        line = f"[{style}]{mark} {escape(step.name)} {status}[/{style}][dim]{duration}[/dim]"
        if result.message:
            line += f"  {escape(result.message)}"
        self.console.print(line)

    def notice(self, text: str, *, warning: bool = False) -> None:
        if self.quiet and not warning:
            return
        style = "yellow" if warning else "dim"
        self.console.print(f"[{style}]{escape(text)}[/{style}]")

    def resource(self, change: ResourceChange) -> None:
        pass  # the summary counts them; a person is not shown each one

    def close(self) -> None:
        """The live lines go, however the run ended."""
        with self.lock:
            live, self.live = self.live, None
        if live is not None:
            live.stop()

    def run_finished(self, result: RunResult) -> None:
        self.close()
        if not self.quiet:
            self.console.print(summary_table(result))
        for ignored in result.ignored_failures:
            step = f"{ignored.block.value} step '{escape(ignored.name)}' {ignored.status.value}"
            self.console.print(
                f"[bold red]! {step}[/bold red]: only the steps decide the state, so it stays as it is"
            )
        self.console.print(resource_line(result))
        if result.guard:
            self.console.print(f"[dim]guarded by: {escape(result.guard)}[/dim]")
        if self.verbose and result.log_dir:
            self.console.print(f"[dim]step logs: {escape(result.log_dir)}[/dim]")
        if result.resources and result.resources.kept:
            self.console.print(f"remove them with: runner cleanup --run {result.run_id}")
        for output_id, value in result.outputs.items():
            self.console.print(f"output {escape(output_id)} = {escape(str(value))}")
        outcome = {
            "killed": "[red]was killed by the flow[/red]",
            "cancelled": "[red]was cancelled by the flow[/red]",
            "success": "[green]succeeded[/green]",
            "failed": "[red]failed[/red]",
            "interrupted": "[yellow]was interrupted[/yellow]",
            "warning": "[yellow]succeeded with warnings[/yellow]",
            "paused": "[yellow]stopped at a manual step[/yellow]"
            + (f" (continue it with `runner run --resume {result.run_id}`)" if self.local_hints else ""),
        }[result.status]
        if (
            self.local_hints
            and result.status in ("failed", "interrupted")
            and not (result.resources and result.resources.kept)
        ):
            outcome += f" (run what did not pass again with `runner run --rerun-failed {result.run_id}`)"
        self.console.print(f"run {result.run_id} {outcome} (exit code {result.exit_code})")


def summary_table(result: RunResult) -> Table:
    table = Table(title=None, box=None, header_style="bold", pad_edge=False)
    for column in ("step", "block", "status", "exit code", "duration"):
        table.add_column(column, justify="right" if column in ("exit code", "duration") else "left")
    for step in result.results:
        _, style = STYLES[step.status]
        status = step.status.value + (" (allowed)" if step.allowed_failure else "")
        if step.carried_from:
            status += f" (run {step.carried_from})"
        table.add_row(
            "  " * step.depth + escape(step.name),
            step.block.value,
            f"[{style}]{escape(status)}[/{style}]",
            "" if step.exit_code is None else str(step.exit_code),
            "" if step.status is StepStatus.SKIPPED or step.carried_from else format_duration(step.duration),
        )
    return table


def resource_line(result: RunResult) -> str:
    resources = result.resources
    if resources is None:
        return "resources: unknown (the run ended before its teardown)"
    if resources.kept:
        return f"{resources.created} resources created; all kept (--keep)"
    parts = [f"{resources.created} resources created"]
    if resources.failed:
        parts.append(
            f"[red]{len(resources.failed)} could not be removed: {escape('; '.join(resources.failed))}[/red]"
        )
    else:
        parts.append(
            "all removed" if resources.removed >= resources.created else f"{resources.removed} removed"
        )
    line = ", ".join(parts)
    if resources.left_running:
        names = escape(", ".join(resources.left_running))
        line += f" [dim](left running by the pipeline, removed at the end: {names})[/dim]"
    return line


def load_warning(warning: LoadWarning) -> str:
    """A loader's warning as a line of markup: problems in the file yellow, notes about this machine dim."""
    style = "yellow" if warning.about == "file" else "dim"
    return f"[{style}]{escape(str(warning))}[/{style}]"


def error_console() -> Console:
    """Standard error, never wrapped: a problem is one `file:line:col: message` line and its hint."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def show_problem(console: Console, error: RunnerError) -> None:
    where = f"{error.position}: " if isinstance(error, InputError) and error.position else "error: "
    console.print(escape(where + error.message))
    if error.hint:
        console.print(f"  hint: {escape(error.hint)}")
