"""Expressions in step fields, rendered just before each step runs, against what the run knows so far."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from runner.engine.frames import LOOP_VALUES, WORKING_DIR
from runner.errors import RunnerError
from runner.expressions import ExpressionError, is_truthy, render
from runner.model import Action, ContainerRun, Group, Step, StopAction, SubflowAction, Templating

# fields that hold no expressions: the kind of an action, and values already parsed into numbers
STATIC_FIELDS = frozenset({"kind", "ports", "mounts", "ready", "caches", "sidecars", "artifacts", "pipes"})


ERROR_LOGS = 25  # as many as Kestra's errorLogs() returns
ERROR_LOGS_NAME = "errorLogs()"  # not a name a template can write: only the function reads it


def _nest(target: dict[str, Any], path: tuple[str, ...], leaf: dict[str, Any]) -> None:
    for key in path[:-1]:
        inner = target.get(key)
        if not isinstance(inner, dict):
            inner = target[key] = {}
        target = inner
    target[path[-1]] = leaf


def _parents(values: tuple[str, ...]) -> dict[str, Any]:
    if len(values) < 2:
        return {}
    parents = [{"taskrun": {"value": value}} for value in reversed(values[:-1])]
    return {"parent": parents[0], "parents": parents}


class TemplateError(RunnerError):
    """An expression could not be rendered: the step fails with this message."""


class RunTemplates:
    def __init__(self, templating: Templating, run_id: str) -> None:
        self.templating = templating
        self.run_id = run_id
        self.started = datetime.now(UTC)
        self.outputs: dict[str, dict[str, Any]] = {}
        self.states: dict[str, dict[str, str]] = {}
        self.state = "RUNNING"
        self.errors: list[dict[str, Any]] = []  # what errorLogs() returns: the run's ERROR log entries
        self.labels: dict[str, Any] = {}  # set by a Labels task, on top of the flow's
        self.lock = threading.Lock()

    def record(
        self,
        step_id: str,
        status: str,
        outputs: dict[str, Any],
        message: str = "",
        values: tuple[str, ...] = (),
    ) -> None:
        """A task's outputs and state; inside loops, under its loop values as Kestra keeps them
        (`outputs.task[outer][inner]`)."""
        with self.lock:
            if values:
                _nest(self.outputs, (step_id, *values), outputs)
                _nest(self.states, (step_id, *values), {"state": status})
            else:
                self.outputs[step_id] = outputs
                self.states[step_id] = {"state": status}
        if status in ("FAILED", "TIMED_OUT") and message:
            self.error_log(step_id, message)

    def error_log(self, step_id: str, message: str) -> None:
        """An ERROR entry, as Kestra's log service keeps it (the first 25 are returned)."""
        flow = self.templating.names.get("flow", {})
        with self.lock:
            self.errors.append(
                {
                    "namespace": flow.get("namespace"),
                    "flowId": flow.get("id"),
                    "taskId": step_id,
                    "executionId": self.run_id,
                    "taskRunId": f"{self.run_id}-{step_id}",
                    "attemptNumber": 0,
                    "timestamp": datetime.now(UTC),
                    "level": "ERROR",
                    "message": message,
                }
            )

    def names(self, step: Step | Group | None, attempt: int = 1) -> dict[str, Any]:
        """What an expression can name; without a step (the pipeline's own outputs), no task names.
        Inside loops, `taskrun.value` and `parent(s)`; in a shared working directory, `workingDir`."""
        values = LOOP_VALUES.get()
        shared_dir = WORKING_DIR.get()
        with self.lock:
            outputs = dict(self.outputs)
            states = dict(self.states)
            errors = list(self.errors[:ERROR_LOGS])
        names: dict[str, Any] = {
            **self.templating.names,
            "labels": {**self.templating.names.get("labels", {}), **self.labels},
            ERROR_LOGS_NAME: errors,
            "outputs": outputs,
            "tasks": states,
            "execution": {
                "id": self.run_id,
                "originalId": self.run_id,
                "state": self.state,
                "startDate": self.started,
            },
        }
        if step is None:
            return names
        if shared_dir is not None:
            names["workingDir"] = shared_dir.target
        return {
            **names,
            "taskrun": {
                "id": f"{self.run_id}-{step.id}",
                "startDate": datetime.now(UTC),
                # the attempts before this one, as Kestra counts them (0 on the first attempt)
                "attemptsCount": attempt - 1,
                **({"value": values[-1]} if values else {}),
            },
            # the loops around the task, the nearest first, as Kestra's `parent` and `parents`
            **_parents(values),
            "task": {"id": step.id, "type": step.type_name},
        }

    def render(self, text: str, names: dict[str, Any]) -> str:
        try:
            return str(render(text, names))
        except ExpressionError as exc:
            raise TemplateError(str(exc)) from exc

    def truthy(self, text: str) -> bool:
        return bool(is_truthy(text))

    def render_fields(self, action: Action, names: dict[str, Any]) -> Action:
        """The action with every string in its fields rendered (container and stop actions; the built-in
        actions render their own fields, because some of them treat a failed rendering as a result)."""
        if not isinstance(action, ContainerRun | StopAction | SubflowAction):
            return action
        update: dict[str, Any] = {}
        for name in type(action).model_fields:
            if name in STATIC_FIELDS:
                continue
            value = getattr(action, name)
            rendered = self._value(value, names)
            if rendered is not value:
                update[name] = rendered
        return action.model_copy(update=update) if update else action

    def _value(self, value: Any, names: dict[str, Any]) -> Any:
        if isinstance(value, str):
            rendered = self.render(value, names)
            return value if rendered == value else rendered
        if isinstance(value, tuple):
            items = tuple(self._value(item, names) for item in value)
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        if isinstance(value, dict):
            return {key: self._value(item, names) for key, item in value.items()}
        return value
