from __future__ import annotations

from pathlib import Path

from rich.console import Console

from runner.backend import connect
from runner.config import config_images, parse_pairs, read_env_file
from runner.engine.executor import Executor, RunOptions
from runner.formats import load_pipeline
from runner.render import ConsoleReporter
from runner.teardown.ledger import Ledger


def run(
    console: Console,
    file: Path,
    *,
    images: list[str],
    env: list[str],
    env_files: list[Path],
    format_name: str | None,
    keep: bool,
    bind: bool,
    quiet: bool,
    verbose: bool,
) -> int:
    pipeline = load_pipeline(file, format_name)
    image_map = {**config_images(file), **parse_pairs(images, "--image")}
    extra_env: dict[str, str] = {}
    for env_file in env_files:
        extra_env.update(read_env_file(env_file))
    extra_env.update(parse_pairs(env, "--env"))
    backend = connect()
    backend.ping()
    ledger = Ledger()
    reporter = ConsoleReporter(console, quiet=quiet, verbose=verbose)
    options = RunOptions(image_map=image_map, env=extra_env, keep=keep, bind=bind)
    return Executor(pipeline, backend, ledger, reporter, options).run().exit_code
