from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from runner.config import parse_pairs
from runner.errors import ExitCode, InputError
from runner.formats import LOADERS, bitbucket, find_default, load_document
from runner.formats.options import LoadOptions
from runner.model import Pipeline
from runner.render import error_console, load_warning, show_problem


def placeholder_prompt(name: str, default: str | None, allowed: tuple[str, ...]) -> str:
    """Checking a file asks nobody: a declared variable takes its default, or any allowed value."""
    return default or (allowed[0] if allowed else "value")


def checking_options(
    pipeline: str | None,
    branch: str | None,
    tag: str | None,
    variables: list[str],
    strict: bool = False,
    skip_unsupported: bool = False,
    flow_dirs: tuple[Path, ...] = (),
) -> LoadOptions:
    """Options for reading a file without running it: nobody is asked, and missing values are allowed."""
    return LoadOptions(
        pipeline=pipeline,
        branch=branch,
        tag=tag,
        variables=parse_pairs(variables, "--var/--input"),
        prompt=placeholder_prompt,
        strict=strict,
        check_only=True,
        skip_unsupported=skip_unsupported,
        flow_dirs=flow_dirs,
    )


def validate(
    console: Console,
    file: Path | None,
    format_name: str | None,
    pipeline: str | None,
    branch: str | None,
    tag: str | None,
    variables: list[str],
    strict: bool,
    skip_unsupported: bool = False,
    flow_dirs: tuple[Path, ...] = (),
) -> int:
    path = file or find_default(Path.cwd())
    document, chosen = load_document(path, format_name)
    base = checking_options(pipeline, branch, tag, variables, strict, skip_unsupported, flow_dirs)
    names = (
        [pipeline]
        if pipeline or chosen != "bitbucket"
        else [choice.label for choice in bitbucket.pipelines(document, path, base)[0]]
    )
    checked: list[tuple[str, Pipeline | None]] = []
    problems: list[InputError] = []
    shown: set[tuple[str, str]] = set()  # a step shared by anchors is warned about once
    for name in names or [None]:
        options = LoadOptions(**{**base.__dict__, "pipeline": name})
        try:
            compiled = LOADERS[chosen](document, path.resolve(), options)
        except InputError as error:
            problems.extend(
                p for p in (error, *error.others) if (p.position, p.message) not in _seen(problems)
            )
            checked.append((name or "", None))
            continue
        for warning in compiled.warnings:
            if (warning.where, warning.message) not in shown:
                shown.add((warning.where, warning.message))
                console.print(load_warning(warning))
        checked.append((name or compiled.name, compiled))
    if not problems:
        for _, loaded in checked:
            assert loaded is not None
            console.print(f"{escape(str(path))}: valid — {escape(loaded.name)}: {summary(loaded)}")
        return 0
    return _invalid(console, path, checked, problems, several=chosen == "bitbucket")


def _seen(problems: list[InputError]) -> set[tuple[object, str]]:
    return {(p.position, p.message) for p in problems}


def _invalid(
    console: Console,
    path: Path,
    checked: list[tuple[str, Pipeline | None]],
    problems: list[InputError],
    several: bool,
) -> int:
    """What holds and what does not, pipeline by pipeline, the problems, and a last line that says the
    file as a whole is refused: Bitbucket starts no pipeline of a file that breaks a rule anywhere."""
    if several:
        for name, pipeline in checked:
            state = f"no problem — {summary(pipeline)}" if pipeline is not None else "has problems (below)"
            console.print(f"{escape(str(path))}: {escape(name)}: {state}")
    errors = error_console()
    for problem in problems:
        show_problem(errors, problem)
    if several:
        broken = sum(1 for _, pipeline in checked if pipeline is None)
        console.print(
            f"{escape(str(path))}: INVALID — {broken} of {len(checked)} pipeline(s) with problems; "
            "no pipeline of this file would run"
        )
    else:
        console.print(f"{escape(str(path))}: INVALID — {len(problems)} problem(s); it would not run")
    return int(ExitCode.INVALID_INPUT)


def summary(pipeline: Pipeline) -> str:
    counts = {
        "services": len(pipeline.services),
        "steps": len([s for s in pipeline.all_steps()])
        - len(pipeline.services)
        - _count(pipeline.finally_)
        - _count(pipeline.errors),
        "errors": _count(pipeline.errors),
        "finally": _count(pipeline.finally_),
    }
    return ", ".join(f"{count} {name}" for name, count in counts.items() if count)


def _count(nodes: tuple[object, ...]) -> int:
    return sum(len(getattr(node, "steps", (node,))) for node in nodes)
