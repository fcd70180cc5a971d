from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm, Prompt

from runner import progress
from runner.backend import connect
from runner.config import (
    config_exclusions,
    config_images,
    config_log_retention,
    engine_settings,
    parse_pairs,
    read_env_file,
)
from runner.engine import reuse
from runner.engine.events import Reporters
from runner.engine.executor import ConfirmManual, Executor, RunOptions
from runner.engine.interrupts import Interrupts
from runner.engine.reuse import CarriedStep
from runner.engine.selection import only, select_steps, triggered, without_final
from runner.engine.status import RunResult
from runner.engine.workspace import DEFAULT_EXCLUDES, Exclusions, SourceTree
from runner.errors import InputError
from runner.formats import find_default, load_pipeline
from runner.formats.options import LoadOptions
from runner.formats.options import Prompt as VariablePrompt
from runner.model import Pipeline, Step, SubflowAction
from runner.render import ConsoleReporter, load_warning
from runner.reports.events import EventWriter
from runner.reports.junit import JunitReport
from runner.teardown.lease import CLUSTER_IMAGE_VARIABLE, CLUSTER_RUN_VARIABLE
from runner.teardown.ledger import Ledger, RunRecord

RUN_ID_VARIABLE = "RUNNER_RUN_ID"  # a cluster run's id, chosen by the client that submitted it


@dataclass(frozen=True)
class RunRequest:
    file: Path | None
    images: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    env_files: list[Path] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    secret_files: list[Path] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    format_name: str | None = None
    pipeline: str | None = None
    branch: str | None = None
    tag: str | None = None
    manual: bool = False
    max_parallel: int = 4
    strict: bool = False
    keep: bool = False
    bind: bool = False
    quiet: bool = False
    verbose: bool = False
    steps: list[str] = field(default_factory=list)  # run only these (numbers, names, globs)
    no_final: bool = False
    flow_dirs: list[Path] = field(default_factory=list)  # where Kestra subflows are looked for
    skip_unsupported: bool = False  # Kestra tasks that cannot run here are skipped, not refused
    trigger: list[str] = field(default_factory=list)  # KEY=VALUE: what a Kestra trigger would set
    namespace_files: Path | None = None
    send_notifications: bool = False
    ahead: bool = True  # steps made ahead, and lanes of steps sharing a network namespace
    allow_host_process: bool = False  # Kestra's Process task runner runs on this machine, not in a container
    resume: str | None = None  # "" : the newest paused run of the file
    rerun_failed: str | None = None  # "" : the newest failed run of the file
    json_events: bool = False  # every event as a JSON line on standard output
    junit: Path | None = None  # a JUnit XML report written here when the run ends


@dataclass(frozen=True)
class Plan:
    """What the run is, besides its pipeline: the earlier run it continues and the steps it takes from
    earlier runs."""

    carried: dict[str, CarriedStep] = field(default_factory=dict)
    parent: str = ""
    build_number: int = 0


def load(
    console: Console, request: RunRequest, ledger: Ledger | None = None
) -> tuple[Path, Pipeline, dict[str, str]]:
    """The pipeline to run, and the environment given on the command line."""
    path, pipeline, env, _ = _load(console, request, ledger, None)
    return path, pipeline, env


def _selection(request: RunRequest) -> dict[str, object]:
    """How the pipeline was chosen from its file: kept in the ledger, so a resume chooses it again."""
    return {
        "format": request.format_name,
        "pipeline": request.pipeline,
        "branch": request.branch,
        "tag": request.tag,
        "variables": request.variables,
    }


def _load(
    console: Console, request: RunRequest, ledger: Ledger | None, build_number: int | None
) -> tuple[Path, Pipeline, dict[str, str], int]:
    path = request.file or find_default(Path.cwd())
    env = _env(request.env_files, request.env, "--env")
    interactive = sys.stdin.isatty()
    number = build_number or _build_number(ledger, path)
    options = LoadOptions(
        pipeline=request.pipeline,
        branch=request.branch,
        tag=request.tag,
        variables=parse_pairs(request.variables, "--var"),
        env={**os.environ, **env, **_env(request.secret_files, request.secrets, "--secret")},
        prompt=_prompt(console) if interactive else None,
        build_number=number,
        strict=request.strict,
        flow_dirs=tuple(request.flow_dirs),
        skip_unsupported=request.skip_unsupported,
        trigger=parse_pairs(request.trigger, "--trigger"),
        namespace_files=request.namespace_files,
        allow_host_process=request.allow_host_process,
    )
    pipeline = load_pipeline(path, request.format_name, options)
    for warning in pipeline.warnings:
        console.print(load_warning(warning))
    return path, pipeline, env, number


def _continued(request: RunRequest, ledger: Ledger) -> tuple[RunRequest, RunRecord] | None:
    """With --resume or --rerun-failed: the request as the earlier run made it, and that run."""
    mode = (
        "resume"
        if request.resume is not None
        else "rerun-failed"
        if request.rerun_failed is not None
        else None
    )
    if mode is None:
        return None
    if request.resume is not None and request.rerun_failed is not None:
        raise InputError("--resume and --rerun-failed continue a run in two different ways", "choose one")
    if request.steps:
        raise InputError(f"--step cannot be combined with --{mode}", f"--{mode} decides which steps run")
    wanted = request.resume if request.resume is not None else request.rerun_failed
    file = request.file
    if wanted and file is None and Path(wanted).is_file():
        # `--resume FILE`: the option's value is optional, so a file right after it lands there
        wanted, file = "", Path(wanted)
    source = str((file or find_default(Path.cwd())).resolve()) if file or not wanted else ""
    parent = reuse.find_run(ledger, source, wanted or None, mode)
    if source and parent.source != source:
        raise InputError(
            f"--{mode}: run {parent.run_id} ran {parent.source}, not {source}",
            "name the run's own file, or leave the file out",
        )
    recorded = parent.selection
    given = _selection(request)
    for key in ("pipeline", "branch", "tag", "format"):
        if given[key] is not None and recorded.get(key) != given[key]:
            raise InputError(
                f"--{mode}: run {parent.run_id} was started with --{key} {recorded.get(key)!r}",
                f"leave --{key} out: the run continues with the pipeline it started with",
            )
    stored = recorded.get("variables")
    variables = [str(v) for v in stored] if isinstance(stored, list) else []
    continued = replace(
        request,
        file=Path(parent.source),
        format_name=_text(recorded.get("format")),
        pipeline=_text(recorded.get("pipeline")),
        branch=_text(recorded.get("branch")),
        tag=_text(recorded.get("tag")),
        variables=[*variables, *request.variables],
    )
    return continued, parent


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def prepare_run(
    console: Console, request: RunRequest, ledger: Ledger
) -> tuple[Path, Pipeline, dict[str, str], Plan, RunRequest]:
    continued = _continued(request, ledger)
    if continued is not None:
        request, parent = continued
        path, pipeline, env, number = _load(console, request, ledger, parent.build_number or None)
        if request.resume is not None:
            continuation = reuse.resume(ledger, pipeline, parent)
            pipeline = triggered(pipeline, continuation.triggered)
        else:
            continuation = reuse.rerun_failed(ledger, pipeline, parent)
        if request.no_final:
            pipeline = without_final(pipeline)
        kept = len(continuation.carried)
        console.print(f"[dim]continuing run {parent.run_id}: {kept} step(s) keep their result[/dim]")
        return path, pipeline, env, Plan(continuation.carried, parent.run_id, number), request
    path, pipeline, env, number = _load(console, request, ledger, None)
    carried: dict[str, CarriedStep] = {}
    if request.steps:
        part = only(pipeline, select_steps(pipeline, request.steps), final=not request.no_final)
        pipeline = part.pipeline
        carried, warnings = reuse.from_last_runs(ledger, pipeline, part.earlier)
        for warning in warnings:
            console.print(f"[yellow]warning: {escape(warning)}[/yellow]")
    elif request.no_final:
        pipeline = without_final(pipeline)
    return path, pipeline, env, Plan(carried, "", number), request


def run(console: Console, request: RunRequest) -> int:
    pushed = os.environ.get(CLUSTER_IMAGE_VARIABLE)
    if pushed:  # a cluster run's own image: its node has it now, the registry need not keep it
        from runner.backend.registry import delete_image  # only a cluster run's container needs it

        problem = delete_image(pushed)
        if problem:
            console.print(
                f"[yellow]warning: {escape(pushed)} stays in the registry: {escape(problem)}[/yellow]"
            )
    ledger = Ledger()
    path, pipeline, env, plan, request = prepare_run(console, request, ledger)
    secrets = _env(request.secret_files, request.secrets, "--secret")
    image_map = {**config_images(path), **parse_pairs(request.images, "--image")}
    backend = connect(engine_settings(path))
    backend.ping()
    # in a cluster run's container, this machine's ledger goes with the container: no hint names it
    console_reporter = ConsoleReporter(
        console,
        quiet=request.quiet or request.json_events,
        verbose=request.verbose,
        local_hints=not os.environ.get(CLUSTER_RUN_VARIABLE),
    )
    junit = JunitReport() if request.junit is not None else None
    events = EventWriter(
        ledger.directory / "logs",
        sys.stdout if request.json_events else None,
        backend.info().address,
        on_error=lambda text: console.print(f"[yellow]warning: {escape(text)}[/yellow]"),
        listeners=[junit.add] if junit is not None else [],
    )
    reporter = Reporters([console_reporter, events])

    def run_subflow(action: SubflowAction, interrupts: Interrupts) -> RunResult:
        """A subflow: its file loaded with the rendered inputs, run as a run of its own on the same engine
        (its own guard and sweep), with the same options, subflows included. A flow named by an
        expression is looked for now, where the loader would have looked."""
        from runner.formats.kestra.compile import find_flow  # a Kestra flow's: its format is loaded

        child_path = action.path
        if not child_path:
            found = find_flow(tuple(Path(d) for d in action.search), action.namespace, action.flow_id)
            if found is None:
                raise LookupError(f"no flow with this namespace and id in {', '.join(action.search)}")
            child_path = str(found)
        load_options = LoadOptions(
            variables=dict(action.inputs),
            env={**os.environ, **env, **secrets},
            build_number=plan.build_number,
            flow_dirs=tuple(request.flow_dirs),
            skip_unsupported=request.skip_unsupported,
            allow_host_process=request.allow_host_process,
        )
        child = load_pipeline(Path(child_path), "kestra", load_options)
        child_options = replace(
            options, carried={}, parent="", selection={}, build_number=plan.build_number, run_id=""
        )
        return Executor(child, backend, ledger, reporter, child_options, interrupts).run()

    options = RunOptions(
        image_map=image_map,
        env={**env, **secrets},
        secrets=secrets,
        keep=request.keep,
        bind=request.bind,
        max_parallel=request.max_parallel,
        confirm_manual=_confirm_manual(console, console_reporter, request.manual),
        carried=plan.carried,
        parent=plan.parent,
        selection=_selection(request),
        build_number=plan.build_number,
        subflows=run_subflow,
        send_notifications=request.send_notifications,
        ahead=request.ahead,
        run_id=os.environ.get(RUN_ID_VARIABLE, ""),
        exclude=config_exclusions(path, DEFAULT_EXCLUDES),
    )
    if request.verbose:
        _show_exclusions(console, pipeline, options.exclude)
    # long waits (pulls, builds, copies, services starting) are shown on a terminal, and only there
    shown = console.is_terminal and not (request.quiet or request.json_events)
    previous_sink = progress.set_sink(console_reporter if shown else None)
    try:
        return Executor(pipeline, backend, ledger, reporter, options).run().exit_code
    finally:
        progress.set_sink(previous_sink)
        console_reporter.close()
        if junit is not None and request.junit is not None:
            _write_junit(request.junit, junit)
        _prune_logs(ledger, path)


def _prune_logs(ledger: Ledger, path: Path) -> None:
    """The state directory keeps what runner.toml's [logs] allows: checked after each run."""
    from runner.commands.logs import running
    from runner.reports.journals import Retention, prune

    keep, max_bytes = config_log_retention(path)
    prune(ledger.directory / "logs", Retention(keep, max_bytes), lambda run_id: running(ledger, run_id))


def _write_junit(path: Path, report: JunitReport) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.xml(), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--junit {path}: cannot write the report: {exc.strerror or exc}") from None


def _show_exclusions(console: Console, pipeline: Pipeline, patterns: tuple[str, ...]) -> None:
    """What the copy of the source tree leaves out, and why, for `runner run -v`."""
    left_out = SourceTree(pipeline.context, pipeline.source_files, Exclusions(patterns)).excluded()
    why = "what .gitignore hides, and " if pipeline.source_files is not None else ""
    console.print(
        f"[dim]the copy of {escape(str(pipeline.context))} leaves out {why}what matches "
        f"{escape(', '.join(patterns)) or 'nothing'} (\\[workspace] exclude and default_excludes in "
        f"runner.toml): {escape(', '.join(left_out)) if left_out else 'nothing here'}[/dim]"
    )


def _env(files: list[Path], pairs: list[str], option: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for env_file in files:
        env.update(read_env_file(env_file))
    env.update(parse_pairs(pairs, option))
    return env


def _build_number(ledger: Ledger | None, path: Path) -> int:
    if ledger is None:
        return 1
    return ledger.count_runs(str(path.resolve())) + 1


def _prompt(console: Console) -> VariablePrompt:
    def ask(name: str, default: str | None, allowed: tuple[str, ...]) -> str:
        choices = list(allowed) or None
        return Prompt.ask(f"value for {name}", console=console, default=default or "", choices=choices)

    return ask


def _confirm_manual(console: Console, reporter: ConsoleReporter, always: bool) -> ConfirmManual | None:
    if always:
        return lambda step: True
    if not sys.stdin.isatty():
        return None

    def ask(step: Step) -> bool:
        with reporter.paused():
            return Confirm.ask(f"run the manual step '{step.name}'?", console=console, default=False)

    return ask
