from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.prompt import Confirm, Prompt

from runner.backend import connect
from runner.config import config_images, engine_settings, parse_pairs, read_env_file
from runner.engine.executor import ConfirmManual, Executor, RunOptions
from runner.formats import find_default, load_pipeline
from runner.formats.options import LoadOptions
from runner.formats.options import Prompt as VariablePrompt
from runner.model import Pipeline, Step
from runner.render import ConsoleReporter, load_warning
from runner.teardown.ledger import Ledger


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


def load(
    console: Console, request: RunRequest, ledger: Ledger | None = None
) -> tuple[Path, Pipeline, dict[str, str]]:
    """The pipeline to run, and the environment given on the command line."""
    path = request.file or find_default(Path.cwd())
    env = _env(request.env_files, request.env, "--env")
    interactive = sys.stdin.isatty()
    options = LoadOptions(
        pipeline=request.pipeline,
        branch=request.branch,
        tag=request.tag,
        variables=parse_pairs(request.variables, "--var"),
        env={**os.environ, **env, **_env(request.secret_files, request.secrets, "--secret")},
        prompt=_prompt(console) if interactive else None,
        build_number=_build_number(ledger, path),
        strict=request.strict,
    )
    pipeline = load_pipeline(path, request.format_name, options)
    for warning in pipeline.warnings:
        console.print(load_warning(warning))
    return path, pipeline, env


def run(console: Console, request: RunRequest) -> int:
    ledger = Ledger()
    path, pipeline, env = load(console, request, ledger)
    secrets = _env(request.secret_files, request.secrets, "--secret")
    image_map = {**config_images(path), **parse_pairs(request.images, "--image")}
    backend = connect(engine_settings(path))
    backend.ping()
    reporter = ConsoleReporter(console, quiet=request.quiet, verbose=request.verbose)
    options = RunOptions(
        image_map=image_map,
        env={**env, **secrets},
        secrets=secrets,
        keep=request.keep,
        bind=request.bind,
        max_parallel=request.max_parallel,
        confirm_manual=_confirm_manual(console, reporter, request.manual),
    )
    return Executor(pipeline, backend, ledger, reporter, options).run().exit_code


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
