"""`runner run --dry-run`: what a run would do, from its file and the engine's images, starting nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from runner.backend import connect
from runner.backend.base import Backend
from runner.commands.run import RunRequest, prepare_run
from runner.config import config_images, engine_settings, parse_pairs
from runner.durations import format_duration
from runner.engine.images import mapped_image
from runner.engine.reuse import CarriedStep
from runner.engine.selection import numbered
from runner.errors import ExitCode, RunnerError
from runner.model import ContainerRun, Group, Node, Pipeline, Step
from runner.teardown.ledger import Ledger

PLAN_VERSION = 1
EXPRESSION_MARKS = ("{{", "${{", "{%")  # an image named by an expression is known only at its turn


@dataclass
class ImageCheck:
    """Whether each image is on the engine, asked once per image; `problem` when no engine answered."""

    backend: Backend | None
    image_map: dict[str, str]
    problem: str = ""
    look: bool = True  # False: images are named, not looked up (`runner list --json`)

    def describe(self, image: str, pull: str = "missing") -> dict[str, str]:
        if any(mark in image for mark in EXPRESSION_MARKS):
            return {"image": image, "state": "decided when the step runs"}
        target = mapped_image(self.image_map, image)
        found: dict[str, str] = {"image": image}
        if target != image:
            found["mapped_to"] = target
        if not self.look:
            return found
        if self.backend is None:
            found["state"] = "unknown (no engine answered)"
        elif pull == "always":
            found["state"] = "pulled first (pull: always)"
        elif self._present(target):
            found["state"] = "present"
        elif pull == "never":
            found["state"] = "missing, and pull is never: the step would fail"
        else:
            found["state"] = "would be pulled"
        return found

    def _present(self, image: str) -> bool:
        assert self.backend is not None
        try:
            return self.backend.has_image(image)
        except RunnerError:
            return False


def show_plan(console: Console, request: RunRequest) -> int:
    # a --json plan keeps standard output for itself: what loading says goes to standard error
    notes = console
    if request.json_events:
        notes = Console(stderr=True, no_color=console.no_color, highlight=False)
    # --step reads what earlier runs left, as the run would
    path, pipeline, _, plan, request = prepare_run(notes, request, Ledger())
    image_map = {**config_images(path), **parse_pairs(request.images, "--image")}
    images = ImageCheck(None, image_map)
    engine = ""
    try:
        backend = connect(engine_settings(path))
        backend.ping()
        engine = backend.info().address
        images.backend = backend
    except RunnerError as exc:
        images.problem = exc.message
    described = describe(pipeline, path, images, plan.carried, request.manual)
    described["engine"] = engine
    if request.json_events:
        print(json.dumps(described, indent=2, ensure_ascii=False))
    else:
        _print(console, described)
    return int(ExitCode.ENGINE_UNAVAILABLE) if images.problem else 0


def describe(
    pipeline: Pipeline, path: Path, images: ImageCheck, carried: dict[str, CarriedStep], manual: bool
) -> dict[str, object]:
    numbers = {step.id: number for number, step in numbered(pipeline)}
    blocks = []
    for block, nodes in (
        ("services", pipeline.services),
        ("steps", pipeline.steps),
        ("errors", pipeline.errors),
        ("finally", pipeline.finally_),
        ("after", pipeline.after),
    ):
        if nodes:
            described = [_node(node, images, numbers, carried, manual) for node in nodes]
            blocks.append({"block": block, "nodes": described})
    return {
        "v": PLAN_VERSION,
        "pipeline": pipeline.name,
        "source": str(path),
        "engine": "",
        "engine_problem": images.problem,
        "blocks": blocks,
        "warnings": [str(warning) for warning in pipeline.warnings],
    }


def _node(
    node: Node, images: ImageCheck, numbers: dict[str, int], carried: dict[str, CarriedStep], manual: bool
) -> dict[str, object]:
    if isinstance(node, Group):
        described: dict[str, object] = {
            "group": node.id,
            "name": node.name,
            "parallel": node.parallel,
            "steps": [_node(child, images, numbers, carried, manual) for child in node.children()],
        }
        if node.errors:
            described["errors"] = [_node(c, images, numbers, carried, manual) for c in node.errors]
        if node.finally_:
            described["finally"] = [_node(c, images, numbers, carried, manual) for c in node.finally_]
        return described
    return _step(node, images, numbers, carried, manual)


def _step(
    step: Step, images: ImageCheck, numbers: dict[str, int], carried: dict[str, CarriedStep], manual: bool
) -> dict[str, object]:
    action = step.action
    described: dict[str, object] = {"step": step.id, "name": step.name, "kind": action.kind}
    if step.id in numbers:
        described["number"] = numbers[step.id]
    if isinstance(action, ContainerRun):
        described["image"] = images.describe(action.image, action.pull)
        if action.sidecars:
            described["services"] = [
                {"name": sidecar.name, **images.describe(sidecar.image)} for sidecar in action.sidecars
            ]
        if action.caches:
            described["caches"] = [{"name": cache.name, "path": cache.path} for cache in action.caches]
        uploads = action.artifacts
        if uploads is not None and (uploads.paths or uploads.named):
            described["artifacts"] = [*uploads.paths, *(a.name for a in uploads.named)]
        if action.detach:
            described["detached"] = True
    if step.manual:
        described["manual"] = "runs without asking (--manual)" if manual else "asks before it runs"
    if step.skip_reason:
        described["skipped"] = step.skip_reason
    condition = step.run_if or step.condition_state
    if condition:
        described["condition"] = condition
    if step.timeout:
        described["timeout"] = step.timeout
    if step.allow_failure:
        described["allow_failure"] = True
    if step.id in carried:
        described["carried_from"] = carried[step.id].from_run
    return described


def _print(console: Console, plan: dict[str, object]) -> None:
    source, engine = str(plan["source"]), str(plan["engine"])
    tree = Tree(f"[bold]{escape(str(plan['pipeline']))}[/bold]  [dim]{escape(source)}[/dim]")
    for block in _items(plan["blocks"]):
        name = str(block["block"])
        label = {"steps": "steps", "finally": "finally (always runs last)"}.get(name, name)
        branch = tree.add(f"[bold]{escape(label)}[/bold]")
        for node in _items(block["nodes"]):
            _print_node(branch, node)
    console.print(tree)
    if plan["engine_problem"]:
        console.print(
            f"[yellow]no engine answered ({escape(str(plan['engine_problem']))}): whether each image is "
            "present is unknown, and a run could not start now[/yellow]"
        )
    else:
        console.print(f"[dim]engine: {escape(engine)}; nothing was started[/dim]")
    warnings = _texts(plan["warnings"])
    if warnings:
        console.print(f"[yellow]{len(warnings)} warning(s) above[/yellow]")


def _print_node(parent: Tree, node: dict[str, object]) -> None:
    if "group" in node:
        kind, name = ("parallel" if node.get("parallel") else "group"), str(node["name"])
        title = name if name.startswith(kind) else f"{kind} {name}"
        branch = parent.add(f"[bold]{escape(title)}[/bold]")
        for child in _items(node["steps"]):
            _print_node(branch, child)
        for key in ("errors", "finally"):
            if key in node:
                inner = branch.add(f"[bold]{key}[/bold]")
                for child in _items(node[key]):
                    _print_node(inner, child)
        return
    number = f"{node['number']}. " if "number" in node else ""
    line = f"{number}[bold]{escape(str(node['name']))}[/bold]"
    if "image" in node and isinstance(node["image"], dict):
        line += f"  {_image(node['image'])}"
    elif node.get("kind") != "container":
        line += f"  [dim]({escape(str(node['kind']))})[/dim]"
    branch = parent.add(line)
    for detail in _details(node):
        branch.add(f"[dim]{detail}[/dim]")


def _details(node: dict[str, object]) -> Iterator[str]:
    for service in _items(node.get("services", [])):
        yield f"service {escape(str(service['name']))}: {_image(service)}"
    caches = _items(node.get("caches", []))
    if caches:
        yield "caches: " + ", ".join(escape(f"{c['name']} ({c['path']})") for c in caches)
    artifacts = _texts(node.get("artifacts", []))
    if artifacts:
        yield "artifacts: " + escape(", ".join(artifacts))
    for key, label in (
        ("manual", "manual"),
        ("condition", "when"),
        ("skipped", "skipped"),
        ("timeout", "timeout"),
        ("carried_from", "not run: the result of run"),
    ):
        if key in node:
            value = node[key]
            shown = format_duration(value) if isinstance(value, float | int) else str(value)
            yield f"{label}: {escape(shown)}"
    if node.get("allow_failure"):
        yield "allowed to fail"
    if node.get("detached"):
        yield "runs beside the steps that follow (a service)"


def _image(image: object) -> str:
    assert isinstance(image, dict)
    mapped = f" → {escape(str(image['mapped_to']))}" if "mapped_to" in image else ""
    state = str(image["state"])
    style = "green" if state == "present" else "red" if "fail" in state else "yellow"
    return f"{escape(str(image['image']))}{mapped} [{style}]{escape(state)}[/{style}]"


def _items(value: object) -> list[dict[str, object]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _texts(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []
