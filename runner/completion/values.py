"""What an option's value or an argument completes to: files, pipelines, steps, names.

The `complete_*` functions are what the command line's parameters call; the library keeps those of
their values that start with what is typed. Each imports what it needs when it is called, so completing
a command name loads no pipeline format. A file that does not load completes to nothing, silently: what
completion printed would land in the middle of the line being typed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from runner.completion import SHELLS

PIPELINE_SUFFIXES = (".yml", ".yaml")

Value = TypeVar("Value")


def _quietly(values: Callable[[], list[Value]]) -> list[Value]:
    try:
        return values()
    except Exception:
        return []


def _typed_path(ctx: typer.Context, name: str) -> Path | None:
    value = ctx.params.get(name)
    return Path(value) if value else None


def paths(incomplete: str, accept: Callable[[Path], bool]) -> list[str]:
    """Folders (with a trailing slash, to be completed further) and the files `accept` takes, in the
    folder `incomplete` names so far. Hidden entries only once their dot is typed."""
    folder_text = incomplete[: incomplete.rfind("/") + 1]
    start = incomplete[len(folder_text) :]
    folder = Path(os.path.expanduser(folder_text) or ".")
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.name.startswith(start) or (entry.name.startswith(".") and not start.startswith(".")):
            continue
        try:
            if entry.is_dir():
                found.append(f"{folder_text}{entry.name}/")
            elif accept(Path(entry.path)):
                found.append(folder_text + entry.name)
        except OSError:
            continue
    return found


def pipeline_names(file: Path | None, format_name: str | None) -> list[str]:
    """The names `--pipeline` takes, as `runner list` shows them: every pipeline of a Bitbucket file; the
    one pipeline of any other file."""
    from runner.commands.validate import checking_options
    from runner.formats import LOADERS, bitbucket, find_default, load_document

    path = file or find_default(Path.cwd())
    document, chosen = load_document(path, format_name)
    options = checking_options(None, None, None, [])
    if chosen == "bitbucket":
        return [choice.label for choice in bitbucket.pipelines(document, path, options)[0]]
    return [LOADERS[chosen](document, path.resolve(), options).name]


def step_names(
    file: Path | None, format_name: str | None, pipeline: str | None, branch: str | None, tag: str | None
) -> list[tuple[int, str]]:
    """The numbered steps of the pipeline `run` would choose with these options, as `runner list` shows
    them and `--step` takes them."""
    from runner.commands.validate import checking_options
    from runner.engine.selection import numbered
    from runner.formats import LOADERS, find_default, load_document

    path = file or find_default(Path.cwd())
    document, chosen = load_document(path, format_name)
    compiled = LOADERS[chosen](document, path.resolve(), checking_options(pipeline, branch, tag, []))
    return [(number, step.name) for number, step in numbered(compiled)]


def complete_pipeline_file(incomplete: str) -> list[str]:
    return _quietly(lambda: paths(incomplete, lambda path: path.suffix in PIPELINE_SUFFIXES))


def complete_any_file(incomplete: str) -> list[str]:
    return _quietly(lambda: paths(incomplete, lambda path: True))


def complete_folder(incomplete: str) -> list[str]:
    return _quietly(lambda: paths(incomplete, lambda path: False))


def complete_format() -> list[str]:
    def names() -> list[str]:
        from runner.formats import FORMAT_MODULES

        return list(FORMAT_MODULES)

    return _quietly(names)


def complete_shell() -> list[str]:
    return list(SHELLS)


def complete_pipeline(ctx: typer.Context) -> list[str]:
    """The pipelines of the FILE typed before, else of the pipeline file here."""
    return _quietly(lambda: pipeline_names(_typed_path(ctx, "file"), ctx.params.get("format_name")))


def complete_step(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Step names, or their numbers once a digit is typed, of the pipeline the options typed before
    choose; each with what the other stands for."""
    steps = _quietly(
        lambda: step_names(
            _typed_path(ctx, "file"),
            ctx.params.get("format_name"),
            ctx.params.get("pipeline"),
            ctx.params.get("branch"),
            ctx.params.get("tag"),
        )
    )
    if incomplete.isdigit():
        return [(str(number), name) for number, name in steps]
    first_numbers: dict[str, int] = {}  # a name two steps share is offered once
    for number, name in steps:
        first_numbers.setdefault(name, number)
    return [(name, f"step {number}") for name, number in first_numbers.items()]


def complete_run(incomplete: str) -> list[tuple[str, str]]:
    """The ids of this machine's newest runs (with their pipeline and how they ended), and pipeline
    files: what `runner logs` and `runner report` take first."""

    def runs() -> list[tuple[str, str]]:
        from runner.teardown.ledger import Ledger

        return [(run.run_id, f"{run.pipeline}: {run.status}") for run in Ledger().runs(limit=20)]

    files = [(path, "") for path in complete_pipeline_file(incomplete)]
    return [*_quietly(runs), *files]
