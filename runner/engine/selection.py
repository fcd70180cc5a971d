"""Running part of a pipeline: which steps `--step` names, and the pipeline with the others left out."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from runner.errors import InputError
from runner.model import Group, Node, Pipeline, Step, map_steps

NOT_SELECTED = "not selected"
NO_FINAL = "--no-final"


def numbered(pipeline: Pipeline) -> list[tuple[int, Step]]:
    """The pipeline's steps (not `final`/`finally`), numbered from 1 in the order of the file."""
    return list(enumerate((leaf for node in pipeline.steps for leaf in _leaves(node)), start=1))


def _leaves(node: Node) -> tuple[Step, ...]:
    return (
        tuple(leaf for child in node.children() for leaf in _leaves(child))
        if isinstance(node, Group)
        else (node,)
    )


def _groups(nodes: tuple[Node, ...]) -> list[Group]:
    found: list[Group] = []
    for node in nodes:
        if isinstance(node, Group):
            found.append(node)
            found.extend(_groups(node.children()))
    return found


def select_steps(pipeline: Pipeline, patterns: list[str]) -> list[str]:
    """The ids of the steps the patterns name, in the file's order: a number from `runner list`, a step's
    id or name, a group's (every step in it), or a glob of these. A pattern that names nothing is an
    error that lists what there is."""
    steps = numbered(pipeline)
    chosen: set[str] = set()
    for pattern in patterns:
        matched = _match(pattern.strip(), steps, _groups(pipeline.steps))
        if not matched:
            names = ", ".join(f"{number} {step.name}" for number, step in steps)
            raise InputError(
                f"--step {pattern!r} names no step of {pipeline.name}",
                f"use a number, a name or a glob of these: {names}",
            )
        chosen.update(matched)
    return [step.id for _, step in steps if step.id in chosen]


def _match(pattern: str, steps: list[tuple[int, Step]], groups: list[Group]) -> set[str]:
    if pattern.isdigit():
        return {step.id for number, step in steps if number == int(pattern)}
    folded = pattern.casefold()
    matched = {step.id for _, step in steps if _names(folded, step.id, step.name)}
    for group in groups:
        if _names(folded, group.id, group.name):
            matched.update(leaf.id for leaf in _leaves(group))
    return matched


def _names(pattern: str, *names: str) -> bool:
    return any(fnmatch.fnmatchcase(name.casefold(), pattern) for name in names)


@dataclass(frozen=True)
class Part:
    """A pipeline cut down to some steps: the pipeline to run, and the steps left out before the last
    chosen one, whose artifacts and variables the chosen ones may need."""

    pipeline: Pipeline
    earlier: tuple[Step, ...]


def only(pipeline: Pipeline, chosen: list[str], *, final: bool = True) -> Part:
    """The pipeline with only `chosen` steps run: the others are skipped, and nothing waits for a manual
    trigger (naming a step is starting it). `final`/`finally` still runs, unless `final` is False."""
    order = [step.id for _, step in numbered(pipeline)]
    last = max((order.index(step_id) for step_id in chosen), default=-1)
    earlier = tuple(
        step for index, (_, step) in enumerate(numbered(pipeline)) if index < last and step.id not in chosen
    )
    steps = tuple(_keep(node, set(chosen), NOT_SELECTED) for node in pipeline.steps)
    part = pipeline.model_copy(update={"steps": steps})
    return Part(part if final else without_final(part), earlier)


def without_final(pipeline: Pipeline) -> Pipeline:
    finally_ = tuple(_keep(node, set(), NO_FINAL) for node in pipeline.finally_)
    return pipeline.model_copy(update={"finally_": finally_})


def triggered(pipeline: Pipeline, step_ids: tuple[str, ...]) -> Pipeline:
    """The pipeline with these manual steps started: a resume is the click that starts them."""
    return pipeline.model_copy(
        update={"steps": tuple(_start(node, set(step_ids)) for node in pipeline.steps)}
    )


def _start(node: Node, step_ids: set[str]) -> Node:
    return map_steps(
        node, lambda step: step.model_copy(update={"manual": False}) if step.id in step_ids else step
    )


def _keep(node: Node, chosen: set[str], reason: str) -> Node:
    def keep(step: Step) -> Step:
        if step.id in chosen:  # named on the command line: it runs, whatever its trigger or changeset says
            return step.model_copy(update={"manual": False, "skip_reason": None})
        return step.model_copy(update={"manual": False, "skip_reason": reason})

    return map_steps(node, keep)
