"""A Kestra flow -> the model. Everything Kestra-specific ends here."""

from __future__ import annotations

import base64
import difflib
import re
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runner.durations import iso_duration
from runner.errors import InputError
from runner.expressions import ExpressionError, render
from runner.expressions.check import problems as expression_problems
from runner.formats.kestra import tasks as t
from runner.formats.kestra.families import unsupported_reason
from runner.formats.kestra.inputs import resolve_inputs
from runner.formats.options import LoadOptions
from runner.formats.ports import parse_port
from runner.formats.schema import Spec, validate
from runner.formats.source import Document, Loc, load_text
from runner.globs import matches
from runner.model import (
    AssertAction,
    Branch,
    ContainerRun,
    CopyAction,
    ExitAction,
    FailAction,
    GitCloneAction,
    Group,
    HttpAction,
    KeyValueAction,
    LabelsAction,
    LoadWarning,
    LogAction,
    Mount,
    Node,
    NotifyAction,
    Pipeline,
    PortBinding,
    PurgeAction,
    ReadyCheck,
    RedisAction,
    RegistryAuth,
    Retry,
    ReturnAction,
    SerdesAction,
    SleepAction,
    SqlAction,
    Step,
    StopAction,
    SubflowAction,
    TemplatedAction,
    Templating,
    ValuesAction,
    WriteAction,
)

FLOW_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
TASK_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
CONTAINER_ID_OUTPUT = {"taskRunner.containerId": "containerId"}
WORKING_DIR = "/kestra/working-dir"
# what a template may name at its root, besides the names it binds itself
TEMPLATE_ROOTS = frozenset(
    {"flow", "inputs", "outputs", "vars", "execution", "taskrun", "task", "tasks", "parent", "parents",
     "labels", "envs", "trigger", "workingDir", "globals", "kestra", "outputDir", "outputFiles"}
)  # fmt: skip
SECRETS_NAME = "secret()"  # keys a template cannot write: only the functions read them
NAMESPACE_FILES_NAME = "read()"  # where the tasks of a WorkingDirectory find their shared files
IGNORED_FLOW_KEYS = (
    "triggers",
    "concurrency",
    "sla",
    "checks",
    "listeners",
)


class FlowOutputSpec(Spec):
    id: str
    type: str = "STRING"
    value: Any
    description: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")
    required: bool | None = None


class ConditionSpec(Spec):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    type: str
    in_: list[str] | None = Field(default=None, alias="in")
    not_in: list[str] | None = Field(default=None, alias="notIn")


class ListenerSpec(Spec):
    """Kestra's deprecated listeners: tasks run once the execution has ended, when their conditions hold."""

    description: str | None = None
    conditions: list[ConditionSpec] = Field(default_factory=list)
    tasks: list[dict[str, Any]] = Field(min_length=1)


class PluginDefaultSpec(Spec):
    """Property values for every task of a type (or of every type under a package): the task's own win,
    unless `forced`."""

    type: str
    forced: bool = False
    values: dict[str, Any] = Field(default_factory=dict)


class FlowSpec(Spec):
    id: str
    namespace: str
    description: str | None = None
    revision: int | None = None
    labels: list[dict[str, Any]] | dict[str, Any] | None = None
    inputs: list[Any] | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    tasks: list[dict[str, Any]] = Field(min_length=1)
    errors: list[dict[str, Any]] = Field(default_factory=list)
    finally_: list[dict[str, Any]] = Field(default_factory=list, alias="finally")
    after_execution: list[dict[str, Any]] = Field(default_factory=list, alias="afterExecution")
    disabled: bool = False
    deleted: bool = False
    tenant_id: str | None = Field(default=None, alias="tenantId")
    triggers: Any = None
    plugin_defaults: list[PluginDefaultSpec] | None = Field(default=None, alias="pluginDefaults")
    extend: Any = None  # the blueprints' metadata (title, tags, …): nothing to run
    concurrency: Any = None
    outputs: list[FlowOutputSpec] | None = None
    retry: t.RetrySpec | None = None
    sla: Any = None
    checks: Any = None
    listeners: list[ListenerSpec] | None = None
    worker_group: Any = Field(default=None, alias="workerGroup")

    @field_validator("id", "namespace", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value


class Compiler:
    def __init__(self, document: Document, path: Path, options: LoadOptions) -> None:
        self.document = document
        self.path = path
        self.options = options
        self.warnings: list[LoadWarning] = []
        self.ids: dict[str, Loc] = {}
        self.plugin_defaults: list[PluginDefaultSpec] = []
        self.unsupported: list[tuple[str, Loc]] = []  # (type, where): every task this tool cannot run
        self.names: dict[str, Any] = {}  # what an expression rendered while loading can name

    def note(self, loc: Loc, message: str) -> None:
        """What runs differently here than on a Kestra server: never an error, even under --strict."""
        where = str(self.document.position(loc))
        self.warnings.append(LoadWarning(where=where, message=message, about="machine"))

    def warn(self, loc: Loc, message: str, *, key: bool = False) -> None:
        if self.options.strict:
            raise self.document.error(loc, message, "remove it, or run without --strict", key=key)
        self.warnings.append(LoadWarning(where=str(self.document.position(loc, key=key)), message=message))

    def compile(self) -> Pipeline:
        data = self.document.data
        flow = validate(self.document, FlowSpec, self._known_flow_keys(data))
        self.plugin_defaults = flow.plugin_defaults or []
        self._check_ids(flow)
        if flow.disabled:
            raise self.document.error(
                ("disabled",), "Cannot execute a flow which is disabled", "set `disabled: false`"
            )
        for key in IGNORED_FLOW_KEYS:
            if getattr(flow, _field(key)) is not None:
                self.warn((key,), f"`{key}` has no effect when the flow runs locally", key=True)
        flow_names = {
            "id": flow.id,
            "namespace": flow.namespace,
            "revision": flow.revision or 1,
            "tenantId": None,
        }
        inputs, secrets = resolve_inputs(
            self.document,
            flow.inputs,
            dict(self.options.variables),
            required=not self.options.check_only,
            # what a default can name before the run: the flow, the trigger, and the execution that is
            # about to start (its startDate is now)
            context={
                "flow": flow_names,
                "trigger": dict(self.options.trigger),
                "execution": {"startDate": datetime.now(UTC)},
            },
            check_only=self.options.check_only,
        )
        stored_secrets = server_secrets(self.options.env)
        names = {
            "flow": flow_names,
            "vars": flow.variables,
            "inputs": inputs,
            "labels": self._labels(flow.labels),
            # Kestra's open-source edition: ENV_* variables as `envs`, SECRET_* (base64) through secret()
            "envs": {
                key[4:].lower(): value for key, value in self.options.env.items() if key.startswith("ENV_")
            },
            "trigger": dict(self.options.trigger),
            SECRETS_NAME: {**self.options.env, **stored_secrets},
            NAMESPACE_FILES_NAME: str(self.options.namespace_files or self.path.parent),
        }
        secrets = [*secrets, *stored_secrets.values()]
        self.names = names
        # a flow-level retry applies to every runnable task without a retry of its own or of a parent
        retry = self._retry(flow.retry, ("retry",))
        steps = self._tasks(flow.tasks, ("tasks",), retry)
        errors = self._tasks(flow.errors, ("errors",), retry)
        finally_ = self._tasks(flow.finally_, ("finally",), retry)
        after = (
            *self._listeners(flow.listeners),
            *self._tasks(flow.after_execution, ("afterExecution",), retry),
        )
        self._refuse_unsupported()
        self._check_expressions(data)
        return Pipeline(
            name=f"{flow.namespace}.{flow.id}",
            source=self.path,
            context=self.path.parent,
            steps=steps,
            errors=errors,
            finally_=finally_,
            after=after,
            outputs={output.id: _output_text(output.value) for output in flow.outputs or []},
            workspace=False,
            cleanup_failures_fail_run=False,
            templating=Templating(names=names),
            secrets=tuple(secrets),
            warnings=tuple(self.warnings),
        )

    def _check_expressions(self, data: Any) -> None:
        """Every template of the flow parsed now: a syntax error, or a function, filter, test or root name
        that does not exist, is a warning at its place (an error with --strict) rather than a failure
        halfway through a run."""
        if not isinstance(data, dict):
            return

        def walk(value: Any, loc: Loc) -> None:
            if isinstance(value, str):
                for problem in expression_problems(value, TEMPLATE_ROOTS):
                    self.warn(loc, f"expression: {problem}")
            elif isinstance(value, dict):
                for key, item in value.items():
                    walk(item, (*loc, key))
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    walk(item, (*loc, index))

        for key in ("tasks", "errors", "finally", "afterExecution", "outputs", "listeners", "variables"):
            walk(data.get(key), (key,))

    def _known_flow_keys(self, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = {field.alias or name for name, field in FlowSpec.model_fields.items()}
        for key in [key for key in data if key not in known]:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.warn((key,), f"unknown flow property '{key}' is ignored{hint}", key=True)
        return {key: value for key, value in data.items() if key in known}

    def _check_ids(self, flow: FlowSpec) -> None:
        if not FLOW_ID.match(flow.id) or len(flow.id) > 100:
            raise self.document.error(
                ("id",),
                f"'{flow.id}' is not a valid flow id",
                "use letters, digits, '.', '_' and '-', starting with a letter or digit",
            )
        if not NAMESPACE.match(flow.namespace) or len(flow.namespace) > 150:
            raise self.document.error(
                ("namespace",),
                f"'{flow.namespace}' is not a valid namespace",
                "use lower-case letters, digits, '.', '_' and '-'",
            )

    def _labels(self, labels: list[dict[str, Any]] | dict[str, Any] | None) -> dict[str, Any]:
        if labels is None:
            return {}
        pairs = (
            labels.items()
            if isinstance(labels, dict)
            else ((item.get("key"), item.get("value")) for item in labels)
        )
        result = {str(key): value for key, value in pairs}
        for key in result:
            # the one system label a flow may carry: it marks the flow read-only in Kestra's editor
            if key.startswith("system.") and key != "system.readOnly":
                raise self.document.error(
                    ("labels",), "System labels can only be set by Kestra itself", f"rename the label '{key}'"
                )
        return result

    # tasks

    def _listeners(self, listeners: list[ListenerSpec] | None) -> tuple[Node, ...]:
        """Listener tasks run after the execution ends, before afterExecution, as Kestra ran them; an
        execution-status condition becomes the task's runIf."""
        nodes: list[Node] = []
        for index, listener in enumerate(listeners or []):
            loc: Loc = ("listeners", index)
            run_if = self._listener_condition(listener.conditions, loc)
            for node in self._tasks(listener.tasks, (*loc, "tasks")):
                nodes.append(
                    node.model_copy(update={"run_if": run_if}) if isinstance(node, Step) and run_if else node
                )
        return tuple(nodes)

    def _listener_condition(self, conditions: list[ConditionSpec], loc: Loc) -> str | None:
        tests: list[str] = []
        for index, condition in enumerate(conditions):
            if condition.type.endswith("ExecutionStatusCondition") or condition.type.endswith(
                "ExecutionStatus"
            ):
                if condition.in_:
                    tests.append(f"({_pebble_list(condition.in_)} contains execution.state)")
                if condition.not_in:
                    tests.append(f"not ({_pebble_list(condition.not_in)} contains execution.state)")
            else:
                self.warn(
                    (*loc, "conditions", index),
                    f"the listener condition {condition.type} is not evaluated here",
                )
        return "{{ " + " and ".join(tests) + " }}" if tests else None

    def _tasks(self, raw: list[dict[str, Any]], loc: Loc, retry: Retry | None = None) -> tuple[Node, ...]:
        """`retry` is the nearest one above: a parent flowable's, else the flow's."""
        nodes = [self._task(item, (*loc, index), retry) for index, item in enumerate(raw)]
        return tuple(node for node in nodes if node is not None)

    def _task(self, raw: Any, loc: Loc, inherited: Retry | None = None) -> Node | None:
        if not isinstance(raw, dict):
            raise self.document.error(loc, "a task is a mapping with `id` and `type`", None)
        raw = self._with_defaults(raw)
        kind = self._type(raw, loc)
        if kind is None:
            return self._skipped(raw, loc)
        spec_class = t.spec_for(kind)
        assert spec_class is not None  # _type returned it
        spec = validate(self.document, spec_class, self._known_keys(raw, spec_class, loc), loc)
        self._register(spec.id, loc)
        if spec.disabled:
            return None
        retry = self._retry(spec.retry, (*loc, "retry")) or inherited
        if isinstance(spec, t.FlowableSpec):
            return self._flowable(spec, loc, retry, kind)
        pause = isinstance(spec, t.PauseSpec) and not (spec.delay or spec.pause_duration)
        return Step(
            id=spec.id,
            name=spec.id,
            action=self._action(spec, loc),
            type_name=kind,
            timeout=self._duration(spec.timeout, (*loc, "timeout")),
            allow_failure=spec.allow_failure,
            allowed_failure_state="WARNING",
            allow_warning=spec.allow_warning,
            run_if=spec.run_if,
            retry=retry,
            output_aliases=CONTAINER_ID_OUTPUT
            if kind == t.DOCKER_RUN or t.script_language(kind) or t.cli_plugin(kind)
            else {},
            # a Pause with no duration waits to be resumed: asked on a terminal, else the run pauses
            # there and `runner run --resume` goes on after it
            manual=pause,
        )

    def _type(self, raw: dict[str, Any], loc: Loc) -> str | None:
        """The task's type, or None when this tool cannot run it: such tasks are all reported at the end,
        each with its place and why (or, with --skip-unsupported, skipped)."""
        kind = raw.get("type")
        if not isinstance(kind, str):
            raise self.document.error(loc, "a task needs a `type`", f"e.g. type: {t.LOG}")
        kind = t.ALIASES.get(kind, kind)
        if t.spec_for(kind) is not None:
            return kind
        close = _close_spelling(kind)
        if close:
            raise self.document.error((*loc, "type"), f"Invalid type: {kind}", f"did you mean '{close}'?")
        self.unsupported.append((kind, (*loc, "type")))
        return None

    def _with_defaults(self, raw: dict[str, Any]) -> dict[str, Any]:
        """pluginDefaults applied as Kestra applies them: the most general first, maps merged deeply."""
        kind = str(raw.get("type", ""))
        matching = [
            default
            for default in self.plugin_defaults
            if kind == default.type or kind.startswith(default.type.rstrip(".") + ".")
        ]
        for default in sorted(matching, key=lambda d: len(d.type)):
            raw = _merge(raw, default.values) if default.forced else _merge(default.values, raw)
        return raw

    def _skipped(self, raw: dict[str, Any], loc: Loc) -> Node:
        """A task this tool cannot run, kept in its place as a step that is skipped (--skip-unsupported)."""
        task_id = str(raw.get("id", "task"))
        self._register(task_id, loc)
        reason = f"skipped: {raw['type']} cannot run here ({unsupported_reason(str(raw['type']))})"
        return Step(
            id=task_id,
            name=task_id,
            action=LogAction(messages=()),
            type_name=str(raw["type"]),
            skip_reason=reason,
        )

    def _refuse_unsupported(self) -> None:
        if not self.unsupported or self.options.skip_unsupported:
            for kind, loc in self.unsupported:
                self.note(loc, f"{kind} is skipped: {unsupported_reason(kind)}")
            return
        problems = [
            self.document.error(
                loc,
                f"{kind} cannot run locally: {unsupported_reason(kind)}",
                "run the rest with --skip-unsupported (these tasks are then SKIPPED)",
            )
            for kind, loc in self.unsupported
        ]
        raise InputError.collect(problems)

    def _known_keys(self, raw: dict[str, Any], spec: type[BaseModel], loc: Loc) -> dict[str, Any]:
        """Unknown properties are reported and left out: Kestra refuses such a flow; here it runs. A type
        that takes any property (a notification: what it sends is made of them) keeps them all."""
        if spec.model_config.get("extra") == "allow":
            return raw
        known = {field.alias or name for name, field in spec.model_fields.items()}
        for key in [key for key in raw if key not in known]:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.warn((*loc, key), f"unknown property '{key}' of {raw['type']} is ignored{hint}", key=True)
        return {key: value for key, value in raw.items() if key in known}

    def _register(self, task_id: str, loc: Loc) -> None:
        if not TASK_ID.match(task_id) or len(task_id) > 256:
            raise self.document.error(
                (*loc, "id"),
                f"'{task_id}' is not a valid task id",
                "use letters, digits, '_' and '-' (no dots)",
            )
        if task_id in self.ids:
            first = self.document.position(self.ids[task_id])
            raise self.document.error(
                (*loc, "id"),
                f"Duplicate task id with name [{task_id}]",
                f"task ids are unique across the whole flow; the first is at line {first.line}",
            )
        self.ids[task_id] = loc

    def _flowable(self, spec: t.FlowableSpec, loc: Loc, retry: Retry | None, kind: str) -> Group:
        """A flowable has a state of its own, from its children's; a retry on it retries the runnable
        task inside that fails, as Kestra's executor does."""
        parallel = isinstance(spec, t.ParallelSpec | t.EachParallelSpec)
        fail_fast = isinstance(spec, t.ParallelSpec) and (spec.fail_fast or spec.on_child_failure == "FAIL")
        shape: dict[str, Any] = {}
        match spec:
            case t.IfSpec():
                shape = {
                    "choose": spec.condition,
                    "truthy": True,
                    "branches": (
                        Branch(when="true", steps=self._tasks(spec.then, (*loc, "then"), retry)),
                        Branch(when=None, steps=self._tasks(spec.else_, (*loc, "else"), retry)),
                    ),
                }
            case t.SwitchSpec():
                cases = tuple(
                    Branch(when=key, steps=self._tasks(tasks, (*loc, "cases", key), retry))
                    for key, tasks in spec.cases.items()
                )
                default = Branch(when=None, steps=self._tasks(spec.defaults, (*loc, "defaults"), retry))
                shape = {"choose": spec.value, "branches": (*cases, default)}
            case t.ForEachSpec():
                shape = {"each": _values(spec.values), "concurrency": spec.concurrency_limit}
            case t.EachParallelSpec():
                shape = {"each": _values(spec.value), "concurrency": spec.concurrent}
            case t.EachSequentialSpec():
                shape = {"each": _values(spec.value), "concurrency": 1}
            case t.ParallelSpec():
                shape = {"concurrency": spec.concurrent}
            case t.WorkingDirectorySpec():
                for key in ("cache", "namespace_files", "input_files", "output_files"):
                    if getattr(spec, key) is not None:
                        alias = t.WorkingDirectorySpec.model_fields[key].alias or key
                        self.warn(
                            (*loc, alias), f"`{alias}` of WorkingDirectory is not supported locally", key=True
                        )
                shape = {"working_dir": WORKING_DIR, "parallel": False}
            case t.DagSpec():
                return self._dag(spec, loc, retry, kind)
        return Group(
            id=spec.id,
            name=spec.id,
            steps=self._tasks(spec.tasks, (*loc, "tasks"), retry),
            fail_fast=fail_fast,
            start_after_failure=False,
            errors=self._tasks(spec.errors, (*loc, "errors"), retry),
            finally_=self._tasks(spec.finally_, (*loc, "finally"), retry),
            allow_failure=spec.allow_failure or isinstance(spec, t.AllowFailureSpec),
            allow_warning=spec.allow_warning,
            reported=True,
            type_name=kind,
            **{"parallel": parallel, **shape},
        )

    def _dag(self, spec: t.DagSpec, loc: Loc, retry: Retry | None, kind: str) -> Group:
        """Dag.java: every dependency names a task of the Dag, and there is no cycle; both are refused
        here before anything runs, with the place of the task."""
        nodes: list[Node] = []
        depends: dict[str, tuple[str, ...]] = {}
        for index, item in enumerate(spec.tasks):
            task_loc: Loc = (*loc, "tasks", index)
            node = self._task(item.task, (*task_loc, "task"), retry)
            if node is not None:
                nodes.append(node)
                depends[node.id] = tuple(item.depends_on)
        known = set(depends)
        for index, item in enumerate(spec.tasks):
            missing = [dep for dep in item.depends_on if dep not in known]
            if missing:
                raise self.document.error(
                    (*loc, "tasks", index, "dependsOn"),
                    f"Some task doesn't exist on task '{spec.id}': {', '.join(missing)}",
                    "name tasks of the same Dag in dependsOn",
                )
        cycle = _cycle(depends)
        if cycle:
            raise self.document.error(
                (*loc, "tasks"),
                f"Infinite loop detected on task '{spec.id}': {', '.join(cycle)}",
                "remove one of the dependencies that lead back to a task",
            )
        return Group(
            id=spec.id,
            name=spec.id,
            steps=tuple(nodes),
            parallel=True,
            concurrency=spec.concurrent,
            fail_fast=spec.on_child_failure == "FAIL",
            depends={node_id: deps for node_id, deps in depends.items()},
            errors=self._tasks(spec.errors, (*loc, "errors"), retry),
            finally_=self._tasks(spec.finally_, (*loc, "finally"), retry),
            allow_failure=spec.allow_failure,
            allow_warning=spec.allow_warning,
            reported=True,
            type_name=kind,
        )

    def _action(self, spec: t.TaskSpec, loc: Loc) -> Any:
        match spec:
            case t.LogSpec():
                if spec.message is None:
                    self.warn(loc, "Log has no `message`: it logs nothing")
                messages = (
                    []
                    if spec.message is None
                    else [spec.message]
                    if isinstance(spec.message, str)
                    else spec.message
                )
                return LogAction(messages=tuple(messages), level=spec.level)
            case t.FailSpec():
                return FailAction(message=spec.error_message, condition=spec.condition)
            case t.SleepSpec():
                return SleepAction(duration=spec.duration)
            case t.AssertSpec():
                return AssertAction(conditions=tuple(spec.conditions), message=spec.error_message)
            case t.ReturnSpec():
                return ReturnAction(format=spec.format)
            case t.OutputValuesSpec():
                return ValuesAction(values=spec.values)
            case t.ExitSpec():
                return ExitAction(state=spec.state)
            case t.SubflowSpec():
                return self._subflow(spec, loc)
            case t.LabelsSpec():
                pairs = (
                    spec.labels.items()
                    if isinstance(spec.labels, dict)
                    else ((item.get("key"), item.get("value")) for item in spec.labels)
                )
                return LabelsAction(labels={str(key): _text(value) for key, value in pairs})
            case t.HttpSpec():
                options = spec.options or t.HttpOptionsSpec()
                timeout = self._duration(options.read_timeout, (*loc, "options", "readTimeout")) or 60.0
                return HttpAction(
                    uri=spec.uri,
                    method=spec.method,
                    headers={key: _text(value) for key, value in spec.headers.items()},
                    body=None if spec.body is None else _output_text(spec.body),
                    form={key: _text(value) for key, value in spec.form_data.items()},
                    content_type=spec.content_type,
                    download=t.ALIASES.get(spec.type, spec.type) == t.HTTP_DOWNLOAD,
                    allow_failed=spec.allow_failed or options.allow_failed,
                    timeout=timeout,
                )
            case t.KeyValueSpec():
                operation = {t.KV_SET: "set", t.KV_GET: "get", t.KV_DELETE: "delete", t.KV_GET_KEYS: "keys"}[
                    spec.type
                ]
                return KeyValueAction(
                    operation=operation,  # type: ignore[arg-type]
                    namespace=spec.namespace,
                    key=spec.key,
                    value=spec.value,
                    overwrite=spec.overwrite,
                    error_on_missing=spec.error_on_missing,
                    prefix=spec.prefix,
                )
            case t.PurgeFilesSpec():
                return PurgeAction()
            case t.SqlSpec():
                return self._sql(spec, loc)
            case t.CopySpec():
                return self._copy(spec, loc)
            case t.SerdesSpec():
                return self._serdes(spec, loc)
            case t.GitCloneSpec():
                if spec.private_key:
                    self.warn(
                        (*loc, "privateKey"),
                        "privateKey is not used here: this machine's git and its keys clone",
                    )
                return GitCloneAction(
                    url=spec.url,
                    branch=spec.branch or spec.tag or "",
                    depth=spec.depth,
                    directory=spec.directory or "",
                    username=spec.username or "",
                    password=spec.password or "",
                )
            case t.TemplatedSpec():
                # rendered and compiled when it runs, by compile_task below
                return TemplatedAction(spec=spec.spec, format="kestra", origin=str(self.path))
            case t.WriteSpec():
                return WriteAction(content=_output_text(spec.content), extension=spec.extension)
            case t.NotificationSpec():
                return self._notification(spec)
            case t.PauseSpec():
                duration = spec.pause_duration or spec.delay
                if duration is not None:
                    return SleepAction(duration=duration)
                if spec.on_resume:
                    self.warn(
                        (*loc, "onResume"), "onResume inputs are not asked for here: the flow just goes on"
                    )
                return LogAction(messages=("resumed",))
            case t.DockerRunSpec():
                return self._docker_run(spec, loc)
            case t.DockerStopSpec():
                return StopAction(
                    target=spec.container_id, by="container", kill=spec.kill, remove=spec.delete
                )
            case t.ScriptTaskSpec():
                return self._script_task(spec, loc)
            case t.RedisSetSpec():
                value = spec.value if isinstance(spec.value, str) else _json(spec.value)
                return RedisAction(
                    operation="set",
                    url=spec.url,
                    key=spec.key,
                    value=value,
                    as_json=spec.serde_type == "JSON",
                    return_old=spec.get,
                )
            case t.RedisGetSpec():
                return RedisAction(
                    operation="get",
                    url=spec.url,
                    key=spec.key,
                    as_json=spec.serde_type == "JSON",
                    failed_on_missing=spec.failed_on_missing,
                )
            case t.RedisDeleteSpec():
                return RedisAction(
                    operation="delete",
                    url=spec.url,
                    keys=tuple(spec.keys),
                    failed_on_missing=spec.failed_on_missing,
                )
        raise InputError(f"the task type of {spec.id} cannot run here")  # every SPECS entry is matched above

    def _sql(self, spec: t.SqlSpec, loc: Loc) -> SqlAction:
        engine = t.SQL_TYPES[spec.type]
        fetch = spec.fetch_type or (
            "STORE" if spec.store else "FETCH_ONE" if spec.fetch_one else "FETCH" if spec.fetch else "NONE"
        )
        database = spec.url or ""  # the JDBC URL, often an expression: its scheme is dropped when it runs
        if spec.database_file or spec.sqlite_file:
            database = spec.database_file or spec.sqlite_file or database
        files = {} if spec.input_files is None else {k: _output_text(v) for k, v in spec.input_files.items()}
        return SqlAction(
            engine=engine,
            sql=spec.sql,
            several=spec.type.endswith(".Queries"),
            database=database,
            username=spec.username or "",
            password=spec.password or "",
            fetch=fetch,
            input_files=files,
            output_files=tuple(spec.output_files or ()),
        )

    def _copy(self, spec: t.CopySpec, loc: Loc) -> CopyAction:
        direction = t.COPY_TYPES[spec.type]
        if "{{" not in spec.url and not spec.url.startswith("jdbc:postgresql:"):
            raise self.document.error(
                (*loc, "url"),
                "a PostgreSQL COPY needs a jdbc:postgresql: URL",
                "write jdbc:postgresql://host:port/db",
            )
        if direction == "in" and (spec.from_ is None or not spec.table):
            raise self.document.error(
                loc, "CopyIn needs `from` and `table`", "add the file's URI and the table"
            )
        if direction == "out" and not (spec.table or spec.sql):
            raise self.document.error(loc, "CopyOut needs `table` or `sql`", "add what is copied out")
        if spec.ssl or spec.ssl_mode:
            self.note((*loc, "ssl"), "the connection does not use TLS here: ssl settings are not used")
        options: dict[str, str | bool | tuple[str, ...]] = {"FORMAT": spec.format}
        for name, value in (
            ("HEADER", spec.header),
            ("DELIMITER", spec.delimiter),
            ("QUOTE", spec.quote),
            ("ESCAPE", spec.escape),
            ("NULL", spec.null_string),
            ("ENCODING", spec.encoding),
            ("FREEZE", spec.freeze),
        ):
            if value is not None:
                options[name] = value
        for name, columns in (
            ("FORCE_NOT_NULL", spec.force_not_null),
            ("FORCE_NULL", spec.force_null),
            ("FORCE_QUOTE", spec.force_quote),
        ):
            if columns:
                options[name] = tuple(columns)
        return CopyAction(
            direction=direction,
            database=spec.url,
            username=spec.username or "",
            password=spec.password or "",
            table=spec.table or "",
            query=spec.sql or "",
            source=spec.from_ or "",
            columns=tuple(spec.columns),
            options=options,
        )

    def _serdes(self, spec: t.SerdesSpec, loc: Loc) -> SerdesAction:
        read, write = t.SERDES_TYPES[spec.type]
        # newLine (the default): JSON lines, one value per line, as Kestra reads and writes them
        if write == "json" and spec.new_line:
            write = "jsonl"
        if read == "json" and spec.new_line:
            read = "jsonl"
        if isinstance(spec.from_, dict) and write != "xlsx":
            raise self.document.error(
                (*loc, "from"), "`from` is a map of sheets only for IonToExcel", "give one file's URI"
            )
        if write in ("avro", "parquet") and not spec.schema_.strip():
            raise self.document.error(
                (*loc, "schema"),
                f"Ion to {write} needs `schema`",
                'add `schema:` with the records\' Avro schema, as JSON: {"type": "record", "fields": [...]}',
                key=True,
            )
        titles = spec.sheets_title
        return SerdesAction(
            source=spec.from_,
            read=read,
            write=write,
            header=spec.header,
            separator=spec.field_separator,
            quote=spec.text_delimiter or '"',
            charset=spec.charset,
            skip_rows=spec.skip_rows,
            skip_empty_rows=spec.skip_empty_rows,
            schema_text=spec.schema_,
            compression=spec.compression_codec,
            sheet_title=titles if isinstance(titles, str) else "Sheet",
            sheets=tuple(titles) if isinstance(titles, list) else (),
            value_render=spec.value_render,
            root_name=spec.root_name,
            query=spec.query,
            force_list=tuple(spec.parser_configuration.force_list) if spec.parser_configuration else (),
        )

    def _notification(self, spec: t.NotificationSpec) -> NotifyAction:
        """What a notification plugin would send: its payload, else the texts it is made of."""
        extra = spec.model_extra or {}
        service = spec.type.rpartition(".")[2]
        url = spec.url or str(extra.get("webhookUrl") or "")
        if spec.payload is not None:
            payload = _output_text(spec.payload)
        else:
            texts = [
                f"{key}: {_output_text(extra[key])}"
                for key in (
                    "to",
                    "subject",
                    "channel",
                    "messageText",
                    "customMessage",
                    "plainTextContent",
                    "htmlTextContent",
                    "text",
                    "content",
                )
                if key in extra
            ]
            payload = "\n".join(texts)
        return NotifyAction(service=service, url=url, payload=payload)

    def _subflow(self, spec: t.SubflowSpec, loc: Loc) -> SubflowAction:
        """The child flow's file, found now among the flows of this file's folder and of --flows: a run
        that would fail on a missing flow is refused before it starts."""
        label = f"{spec.namespace}.{spec.flow_id}"
        for key, on in (
            ("wait", not spec.wait),
            ("scheduleDate", spec.schedule_date),
            ("outputs", spec.outputs),
        ):
            if on:
                self.warn(
                    (*loc, key),
                    f"`{key}` of Subflow has no effect here: the subflow runs now, and the step waits for it",
                    key=True,
                )
        dirs = (*self.options.flow_dirs, self.path.parent)
        inputs = {
            key: value if isinstance(value, str) else _output_text(value)
            for key, value in spec.inputs.items()
        }
        if "{{" in spec.namespace or "{{" in spec.flow_id or "{%" in spec.namespace + spec.flow_id:
            # named by an expression (an input, a loop value): found when the step runs
            return SubflowAction(
                path="",
                label=label,
                namespace=spec.namespace,
                flow_id=spec.flow_id,
                search=tuple(str(directory) for directory in dirs),
                inputs=inputs,
                transmit_failed=spec.transmit_failed,
            )
        found = find_flow(dirs, spec.namespace, spec.flow_id)
        if found is None:
            raise self.document.error(
                (*loc, "flowId"),
                f"no flow {label} in {', '.join(str(d) for d in dict.fromkeys(dirs))}",
                "put the flow's file in this folder, or name the folder that has it with --flows DIR",
            )
        if found.resolve() == self.path.resolve():
            raise self.document.error((*loc, "flowId"), f"the flow {label} starts itself", None)
        return SubflowAction(
            path=str(found),
            label=label,
            namespace=spec.namespace,
            flow_id=spec.flow_id,
            inputs=inputs,
            transmit_failed=spec.transmit_failed,
        )

    def _docker_run(self, spec: t.DockerRunSpec, loc: Loc) -> ContainerRun:
        for key, on in (
            ("privileged", spec.privileged),
            ("host", spec.host),
            ("inputFiles", spec.input_files),
            ("outputFiles", spec.output_files),
            ("namespaceFiles", spec.namespace_files),
        ):
            if on:
                self.warn((*loc, key), f"`{key}` is not supported locally and is ignored", key=True)
        return ContainerRun(
            image=spec.container_image,
            registry_auth=_auth(spec.credentials),
            command=tuple(spec.commands) or None,
            entrypoint=tuple(spec.entry_point) or None,
            env={key: _text(value) for key, value in spec.env.items()},
            workdir=None,
            source="none",
            detach=not spec.wait,
            ready=ReadyCheck(timeout=0) if not spec.wait else None,
            ports=tuple(
                self._port(text, (*loc, "portBindings", index))
                for index, text in enumerate(spec.port_bindings)
            ),
            mounts=tuple(
                self._volume(text, (*loc, "volumes", index)) for index, text in enumerate(spec.volumes)
            ),
            network_mode=spec.network_mode,
            pull=_pull(spec.pull_policy),
            user=spec.user,
            memory=self._size(spec.memory.memory, (*loc, "memory", "memory")) if spec.memory else None,
            cpus=spec.cpu.cpus if spec.cpu else None,
            output_markers=True,
            warn_on_stderr=bool(spec.warning_on_std_err),
        )

    def _script_task(self, spec: t.ScriptTaskSpec, loc: Loc) -> ContainerRun:
        """A script plugin's task: its commands (or its script, as a file in the working directory) in a
        container of its language's image, with its input files put in and its output files kept."""
        kind = t.ALIASES.get(spec.type, spec.type)
        language = t.script_language(kind) or "shell"
        default_image, run_file, extension = t.LANGUAGES[language]
        plugin = t.cli_plugin(kind)
        if plugin is not None:
            default_image = t.CLI_IMAGES[plugin]
        runner = spec.task_runner or spec.docker or t.TaskRunnerSpec()
        on_host = False
        cloud = not runner.type.endswith((".docker.Docker", ".Process")) and spec.task_runner is not None
        if cloud:
            unused = f"; {', '.join(runner.elsewhere)} are not used" if runner.elsewhere else ""
            self.note(
                (*loc, "taskRunner"),
                f"the task runner {runner.type.rpartition('.')[2]} is not on this machine: the commands run "
                f"in a container of the task's image, as with the Docker task runner{unused}",
            )
        elif not runner.type.endswith(".docker.Docker") or (spec.runner or "").upper() == "PROCESS":
            on_host = self.options.allow_host_process
            self.note(
                (*loc, "taskRunner") if spec.task_runner else loc,
                "the Process task runner runs the commands on this machine (--allow-host-process)"
                if on_host
                else "the Process task runner runs the commands in a container of the task's image here; "
                "--allow-host-process runs them on this machine",
            )
        if not spec.fail_fast:
            self.warn(
                (*loc, "failFast"),
                "failFast: false is not supported locally: the commands stop at the first failure",
            )
        if kind.endswith(".Script") and spec.script is None:
            raise self.document.error(loc, f"{kind} needs a `script`", "add `script: |` with the code to run")
        if kind.endswith(".Commands") and not spec.commands:
            raise self.document.error(loc, f"{kind} needs `commands`", "add `commands:` with at least one")
        files = self._input_files(spec, loc)
        env = {key: _text(value) for key, value in spec.env.items()}
        if spec.profiles is not None:  # dbt reads profiles.yml from the folder DBT_PROFILES_DIR names
            files["profiles.yml"] = spec.profiles
            env.setdefault("DBT_PROFILES_DIR", WORKING_DIR)
        commands = list(spec.commands)
        if spec.project_dir:
            commands = [f"cd {shlex.quote(spec.project_dir)}", *commands]
        if spec.script is not None:
            name = f"main.{extension}" if language == "go" else f"script.{extension}"
            files[name] = spec.script
            commands = [f"{run_file} {name}"]
        install = _dependencies(language, spec.dependencies)
        shell: Literal["sh", "bash"] = (
            "bash" if any("bash" in part for part in spec.interpreter[:1]) else "sh"
        )
        return ContainerRun(
            image=spec.container_image or runner.image or default_image,
            registry_auth=_auth(runner.credentials),
            script=(*spec.before_commands, *install, *commands),
            shell=shell,
            env=env,
            workdir=WORKING_DIR,
            source="none",
            input_files=files,
            output_files=tuple(spec.output_files or ()),
            mounts=tuple(
                self._volume(text, (*loc, "taskRunner", "volumes", i))
                for i, text in enumerate(runner.volumes)
            ),
            network_mode=runner.network_mode,
            pull=_pull(runner.pull_policy),
            user=runner.user,
            memory=self._size(runner.memory.memory, (*loc, "taskRunner", "memory"))
            if runner.memory
            else None,
            cpus=runner.cpu.cpus if runner.cpu else None,
            output_markers=True,
            warn_on_stderr=bool(spec.warning_on_std_err),
            on_host=on_host,
        )

    def _input_files(self, spec: t.ScriptTaskSpec, loc: Loc) -> dict[str, str]:
        """The task's inputFiles (content, or the URI of a file an earlier task output) and its namespace
        files, read from the namespace-files folder now."""
        files: dict[str, str] = {}
        if isinstance(spec.input_files, str):
            self.warn((*loc, "inputFiles"), "inputFiles as one expression is not supported here: write a map")
        elif spec.input_files:
            files.update({name: _output_text(value) for name, value in spec.input_files.items()})
        namespace = spec.namespace_files
        if namespace is not None and namespace.enabled:
            base = self.options.namespace_files or self.path.parent
            for path in sorted(base.rglob("*")):
                relative = path.relative_to(base).as_posix()
                if not path.is_file() or relative.startswith(".") or "/." in relative:
                    continue
                if namespace.include and not matches(relative, tuple(namespace.include)):
                    continue
                if namespace.exclude and matches(relative, tuple(namespace.exclude)):
                    continue
                files.setdefault(relative, path.read_text(encoding="utf-8", errors="replace"))
        return files

    def _port(self, text: str, loc: Loc) -> PortBinding:
        text = str(text)
        if "{{" in text:  # ports are published when the container is made: inputs and vars are known
            try:
                text = render(text, self.names)
            except ExpressionError as exc:
                raise self.document.error(
                    loc,
                    f"'{text}' cannot be known before the run: {exc}",
                    "a port binding may name inputs, vars and the flow, not outputs of tasks",
                ) from None
        try:
            return parse_port(text)
        except ValueError as exc:
            raise self.document.error(loc, str(exc), "write HOST:CONTAINER, e.g. 6379:6379") from None

    def _volume(self, text: str, loc: Loc) -> Mount:
        source, sep, rest = str(text).partition(":")
        target, _, mode = rest.partition(":")
        if not sep or not target.startswith("/"):
            raise self.document.error(loc, f"'{text}' is not a volume", "write HOST_PATH:CONTAINER_PATH[:ro]")
        host = Path(source).expanduser()
        if not host.is_absolute():
            host = self.path.parent / host
        return Mount(source=str(host), target=target, bind=True, read_only=mode == "ro")

    def _size(self, value: str | int | None, loc: Loc) -> int | None:
        if value is None:
            return None
        match = SIZE.match(str(value))
        if not match:
            raise self.document.error(loc, f"'{value}' is not a size", "write it like 512MB or 1GB")
        unit = (match.group(2) or "").lower().replace("i", "").rstrip("b")
        return int(float(match.group(1)) * SIZE_UNITS[unit])

    def _duration(self, text: str | None, loc: Loc) -> float | None:
        if text is None:
            return None
        try:
            return iso_duration(text)
        except ValueError as exc:
            raise self.document.error(
                loc, str(exc), "write an ISO-8601 duration such as PT30S or PT5M"
            ) from None

    def _retry(self, spec: t.RetrySpec | None, loc: Loc) -> Retry | None:
        if spec is None:
            return None
        attempts = spec.max_attempts or spec.max_attempt
        if attempts is None and spec.max_duration is None:
            raise self.document.error(
                loc, "a retry needs `maxAttempt` or `maxDuration`", "e.g. maxAttempt: 3, or maxDuration: PT5M"
            )
        interval = self._duration(spec.interval or spec.min_interval, (*loc, "interval")) or 1.0
        return Retry(
            max_attempts=attempts,
            interval=interval,
            factor=(spec.delay_factor or 2.0) if spec.type == "exponential" else 1.0,
            max_interval=self._duration(spec.max_interval, (*loc, "maxInterval")),
            max_duration=self._duration(spec.max_duration, (*loc, "maxDuration")),
            warning_on_retry=spec.warning_on_retry,
        )


def _dependencies(language: str, packages: list[str]) -> list[str]:
    """The command that installs a script's `dependencies` before it runs, as Kestra's plugins do."""
    if not packages:
        return []
    quoted = " ".join(shlex.quote(package) for package in packages)
    installers = {
        "python": f"pip install --quiet {quoted}",
        "node": f"npm install --silent {quoted}",
        "ruby": f"gem install {quoted}",
        "r": "Rscript -e " + shlex.quote("install.packages(c(" + ", ".join(repr(p) for p in packages) + "))"),
    }
    return [installers.get(language, f"echo 'dependencies of {language} scripts are not installed here'")]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`; maps inside are merged too."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def server_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """Secrets as Kestra's open-source edition reads them: `SECRET_NAME` variables, base64-encoded."""
    found: dict[str, str] = {}
    for key, value in env.items():
        if key.startswith("SECRET_") and len(key) > 7:
            try:
                found[key[7:]] = base64.b64decode(value, validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                continue
    return found


def compile_task(text: str, origin: str) -> Step:
    """A TemplatedTask's rendered spec as the step it describes, checked as any task of a flow is: one
    runnable task, whose problems name the rendered text's lines."""
    document = load_text(text, f"{origin} (TemplatedTask spec, rendered)")
    # strict: nobody would see a warning here, and Kestra refuses a property it does not know
    compiler = Compiler(document, Path(origin), LoadOptions(strict=True))
    node = compiler._task(document.data, ())
    compiler._refuse_unsupported()
    if not isinstance(node, Step):
        raise document.error(
            (),
            "a TemplatedTask renders one runnable task",
            "a flowable task (If, ForEach…) cannot be templated",
        )
    return node


def find_flow(dirs: tuple[Path, ...], namespace: str, flow_id: str) -> Path | None:
    """The file of the flow with this namespace and id: in the folders given (and below), then in the last
    one, the flow's own folder."""
    import yaml

    *given, own = dirs
    # the folders given are searched below too; the file's own folder only at its level (a repository's
    # root can hold many YAML files that are not flows)
    candidates = [
        path for directory in given for pattern in ("*.yml", "*.yaml") for path in directory.rglob(pattern)
    ]
    candidates += [path for pattern in ("*.yml", "*.yaml") for path in own.glob(pattern)]
    for path in dict.fromkeys(candidates):
        try:
            with open(path, encoding="utf-8") as file:
                data = yaml.safe_load(file)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if (
            isinstance(data, dict)
            and str(data.get("id")) == flow_id
            and str(data.get("namespace")) == namespace
        ):
            return path
    return None


def _close_spelling(kind: str) -> str | None:
    """A known type this one looks like a misspelling of: the same package, a name one or two letters
    off (`Comands`); never an unrelated type that shares a long prefix."""
    package, _, name = kind.rpartition(".")
    known = sorted({*t.SPECS, *t.ALIASES})
    same_package = [other for other in known if other.rpartition(".")[0].lower() == package.lower()]
    names = {other.rpartition(".")[2]: other for other in same_package}
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    if close and names[close[0]] != kind:
        return names[close[0]]
    return None


def _cycle(depends: dict[str, tuple[str, ...]]) -> list[str]:
    """The tasks on a dependency cycle, or [] when there is none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return path[path.index(node) :]
        if node in done:
            return []
        for dep in depends.get(node, ()):
            found = visit(dep, [*path, node])
            if found:
                return found
        done.add(node)
        return []

    for node in depends:
        found = visit(node, [])
        if found:
            return found
    return []


def _output_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value)


def _pebble_list(states: list[str]) -> str:
    return "[" + ", ".join(f"'{state}'" for state in states) + "]"


def _values(values: str | list[Any]) -> str:
    """A loop's values as the text the engine renders: an expression as written, a YAML list as JSON."""
    if isinstance(values, str):
        return values
    import json

    return json.dumps(values)


def _field(key: str) -> str:
    return {"pluginDefaults": "plugin_defaults"}.get(key, key)


def _auth(credentials: t.CredentialsSpec | None) -> RegistryAuth | None:
    if credentials is None or credentials.username is None or credentials.password is None:
        return None
    return RegistryAuth(username=credentials.username, password=credentials.password)


def _pull(policy: str) -> Any:
    return {"IF_NOT_PRESENT": "missing", "ALWAYS": "always", "NEVER": "never"}[policy]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json(value: object) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
