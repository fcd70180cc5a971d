"""One immutable description of a pipeline: what every input format compiles to.

The engine runs this and nothing else; it knows no YAML and no format's vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WORKSPACE = "/workspace"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PortBinding(Frozen):
    container_port: int
    protocol: Literal["tcp", "udp"] = "tcp"
    # "" : the backend's default, loopback when the engine runs on this machine (never every interface),
    # the engine host's interfaces when it is remote, where its loopback would be out of everyone's reach
    host_ip: str = ""
    host_port: int | None = None  # None: the engine picks a free port

    def __str__(self) -> str:
        host = f"{self.host_ip}:{self.host_port or ''}" if self.host_ip else f"{self.host_port or ''}"
        return f"{host}->{self.container_port}/{self.protocol}"


class ReadyCheck(Frozen):
    """How to tell that a detached container is ready: a command inside it, or a TCP port.
    A timeout of 0 does not wait at all: the step succeeds once the container has started."""

    command: str | None = None
    port: int | None = None
    timeout: float = 60.0
    interval: float = 0.1


class Mount(Frozen):
    source: str  # a volume name, or a host path when `bind` is set
    target: str
    bind: bool = False
    read_only: bool = False


class NamedArtifact(Frozen):
    """Files kept under a name; later steps get them only when `shared`, and may ask for them by name."""

    name: str
    paths: tuple[str, ...]
    ignore: tuple[str, ...] = ()
    depth: int | None = None  # only files at most this many directories deep
    shared: bool = True


class Artifacts(Frozen):
    """Files a step leaves for later steps, as globs relative to its working directory."""

    paths: tuple[str, ...] = ()
    named: tuple[NamedArtifact, ...] = ()


class Cache(Frozen):
    """A directory kept between runs in a named volume; `key` separates versions of it."""

    name: str
    path: str
    key: str = ""


class Sidecar(Frozen):
    """A service that runs beside one step and shares its network namespace (it answers on localhost)."""

    name: str
    image: str
    env: dict[str, str] = Field(default_factory=dict)
    command: tuple[str, ...] | None = None
    memory: int | None = None
    expand_variables: bool = False  # `$NAME` and `${NAME}` in `env` values name the step's variables


class RegistryAuth(Frozen):
    username: str
    password: str


class PipeCall(Frozen):
    """A script item that runs a prepackaged image over the step's files (Bitbucket's `pipe:`)."""

    name: str
    image: str
    env: dict[str, str] = Field(default_factory=dict)
    expand_variables: bool = False  # `$NAME` and `${NAME}` in `env` values name the step's variables


class SharedOutputs(Frozen):
    """Variables a step hands to the steps after it: it appends `KEY=VALUE` lines to the file whose path is
    in its `path_variable`, and the names in `names` are set in every later step (Bitbucket's
    output-variables)."""

    path_variable: str
    names: tuple[str, ...] = ()


class ContainerRun(Frozen):
    kind: Literal["container"] = "container"
    image: str
    registry_auth: RegistryAuth | None = None  # for pulling `image`
    script: tuple[str, ...] = ()  # shell lines, run as one script with `set -e`
    pipes: tuple[tuple[int, PipeCall], ...] = ()  # (position in `script`, pipe): run between its lines
    after_script: tuple[str, ...] = ()  # runs after `script` whatever its result, never changing it
    after_pipes: tuple[tuple[int, PipeCall], ...] = ()  # (position in `after_script`, pipe)
    shell: Literal["sh", "bash"] = "sh"  # bash falls back to sh in images without it
    exit_code_variable: str = "RUNNER_EXIT_CODE"  # what `after_script` reads the script's exit code from
    command: tuple[str, ...] | None = None  # argv for the image's entrypoint, when there is no script
    entrypoint: tuple[str, ...] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = WORKSPACE
    source: Literal["workspace", "copy", "none"] = "workspace"
    """workspace: mount the run's shared volume at /workspace; copy: a fresh copy of the source tree in
    `workdir` (unless `clone` is off), plus the artifacts of earlier steps when `download_artifacts`."""
    clone: bool = True
    clone_paths: tuple[str, ...] = ()  # globs: only these paths of the tree are copied (all when empty)
    download_artifacts: bool = True
    download_names: tuple[str, ...] | None = None  # only these named artifacts (None: every shared one)
    artifacts: Artifacts | None = None
    caches: tuple[Cache, ...] = ()
    sidecars: tuple[Sidecar, ...] = ()
    docker_socket: bool = False  # the step drives the engine itself (a `docker` service)
    mounts: tuple[Mount, ...] = ()
    ports: tuple[PortBinding, ...] = ()
    detach: bool = False
    ready: ReadyCheck | None = None
    user: str | None = None
    memory: int | None = None  # bytes
    cpus: float | None = None
    network_mode: str | None = None  # host, none, bridge: instead of the run's network
    pull: Literal["missing", "always", "never"] = "missing"
    output_markers: bool = False  # lines `::{"outputs":{...}}::` set the step's `vars` output
    warn_on_stderr: bool = False  # a run that wrote to its standard error ends WARNING, not SUCCESS
    on_host: bool = False  # the script runs as a process of this machine, as the user allowed
    shared_outputs: SharedOutputs | None = None
    input_files: dict[str, str] = Field(default_factory=dict)  # name -> content, or a stored file's URI
    output_files: tuple[str, ...] = ()  # globs under `workdir`: stored after the run, named by URI


class StopAction(Frozen):
    """Stop and remove a container: by reference to the step that started it, or by container id (an
    expression when the pipeline has templating)."""

    kind: Literal["stop"] = "stop"
    target: str
    by: Literal["step", "container"] = "step"
    kill: bool = False
    remove: bool = True


class LogAction(Frozen):
    kind: Literal["log"] = "log"
    messages: tuple[str, ...]
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"


class FailAction(Frozen):
    """Fails the step; with a condition, only when the condition renders truthy."""

    kind: Literal["fail"] = "fail"
    message: str = "Task failure"
    condition: str | None = None


class SleepAction(Frozen):
    kind: Literal["sleep"] = "sleep"
    duration: str  # ISO-8601 (PT1S) or seconds; may be an expression


class AssertAction(Frozen):
    kind: Literal["assert"] = "assert"
    conditions: tuple[str, ...]
    message: str | None = None


class ReturnAction(Frozen):
    kind: Literal["return"] = "return"
    format: str = ""


class ValuesAction(Frozen):
    """Outputs named values, rendered (Kestra's OutputValues): `outputs.ID.values.NAME`."""

    kind: Literal["values"] = "values"
    values: dict[str, Any] = Field(default_factory=dict)


class ExitAction(Frozen):
    """Ends the run in this state: what has not started does not start (`finally` still runs)."""

    kind: Literal["exit"] = "exit"
    state: Literal["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELED"] = "SUCCESS"


class HttpAction(Frozen):
    """An HTTP request made by the runner itself (Kestra's http.Request, http.Download)."""

    kind: Literal["http"] = "http"
    uri: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    form: dict[str, str] = Field(default_factory=dict)
    content_type: str | None = None
    download: bool = False  # keep the body as a stored file (output `uri`), not as text
    allow_failed: bool = False  # a 4xx/5xx answer does not fail the step
    timeout: float = 60.0


class KeyValueAction(Frozen):
    """A key of the local key-value store (Kestra's kv tasks)."""

    kind: Literal["kv"] = "kv"
    operation: Literal["set", "get", "delete", "keys"]
    namespace: str  # an expression: the flow's namespace by default
    key: str = ""
    value: Any = None
    overwrite: bool = True
    error_on_missing: bool = False
    prefix: str = ""


class LabelsAction(Frozen):
    kind: Literal["labels"] = "labels"
    labels: dict[str, str] = Field(default_factory=dict)


class PurgeAction(Frozen):
    """Removes the files the run has stored so far (Kestra's PurgeCurrentExecutionFiles)."""

    kind: Literal["purge"] = "purge"


class WriteAction(Frozen):
    """Keeps a text as a file of the run's storage (Kestra's storage.Write): output `uri`."""

    kind: Literal["write"] = "write"
    content: str
    extension: str = ".ion"


class GitCloneAction(Frozen):
    """A git repository cloned by the runner (any URL or path this machine reaches) into the working
    directory the step's group shares (Kestra's git.Clone)."""

    kind: Literal["git-clone"] = "git-clone"
    url: str
    branch: str = ""
    depth: int = 1
    directory: str = ""  # below the working directory
    username: str = ""
    password: str = ""


class SqlAction(Frozen):
    """SQL run by the runner against a database file or server (Kestra's jdbc plugins): DuckDB and
    SQLite in a working directory of their own, with input and output files."""

    kind: Literal["sql"] = "sql"
    engine: Literal["duckdb", "sqlite", "postgres", "mysql"]
    sql: str
    database: str = ""  # a file, a path in the working directory, or host:port/name for a server
    username: str = ""
    password: str = ""
    fetch: Literal["NONE", "FETCH", "FETCH_ONE", "STORE"] = "NONE"
    several: bool = False  # Queries: each statement that returns rows is an output of its own
    input_files: dict[str, str] = Field(default_factory=dict)
    output_files: tuple[str, ...] = ()


class CopyAction(Frozen):
    """Rows copied by PostgreSQL's COPY between a table (or a query) and a stored file (Kestra's
    jdbc.postgresql CopyIn and CopyOut)."""

    kind: Literal["copy"] = "copy"
    direction: Literal["in", "out"]
    database: str  # host:port/name
    username: str = ""
    password: str = ""
    table: str = ""
    query: str = ""  # out: what is copied instead of a table
    source: str = ""  # in: the stored file's URI, an expression
    columns: tuple[str, ...] = ()
    options: dict[str, str | bool | tuple[str, ...]] = Field(default_factory=dict)  # COPY's, by its names


DataFormat = Literal["csv", "json", "jsonl", "ion", "xml", "avro", "parquet", "xlsx"]


class SerdesAction(Frozen):
    """A stored file converted from one format to another (Kestra's serdes plugins): CSV, JSON, JSON lines,
    Ion, XML, Avro, Parquet or an Excel workbook."""

    kind: Literal["serdes"] = "serdes"
    source: str | dict[str, str]  # the stored file's URI, an expression; a workbook's sheets by title
    read: DataFormat
    write: DataFormat
    header: bool = True
    separator: str = ","
    quote: str = '"'
    charset: str = "utf-8"
    skip_rows: int = 0
    skip_empty_rows: bool = False
    schema_text: str = ""  # Avro's schema, as JSON (Avro and Parquet)
    compression: str = "GZIP"  # Parquet's codec
    sheet_title: str = "Sheet"  # the sheet a single file is written to
    sheets: tuple[str, ...] = ()  # the sheets read; all when empty
    value_render: str = "UNFORMATTED_VALUE"
    root_name: str = "items"  # XML's root element
    query: str = ""  # a JSON pointer into an XML document
    force_list: tuple[str, ...] = ()  # XML elements always read as lists


class NotifyAction(Frozen):
    """A message to a chat or mail service: shown, and sent only when the run allows it."""

    kind: Literal["notify"] = "notify"
    service: str  # how the file names it, e.g. "Slack"
    url: str = ""  # where it would be posted ("" for mail)
    payload: str = ""  # what would be sent, rendered


class SubflowAction(Frozen):
    """Runs another pipeline file as a run of its own (Kestra's Subflow), with these inputs rendered; its
    state and outputs become this step's."""

    kind: Literal["subflow"] = "subflow"
    path: str  # the file, found when the pipeline was loaded; "" when its name is known only at run time
    label: str  # how the file names it, e.g. "company.team/child"
    namespace: str = ""  # the name, expressions rendered at run time, when `path` is ""
    flow_id: str = ""
    search: tuple[str, ...] = ()  # the folders where a flow named at run time is looked for
    inputs: dict[str, str] = Field(default_factory=dict)
    transmit_failed: bool = True  # a failed child fails the step


class TemplatedAction(Frozen):
    """A task whose definition is itself a template (Kestra's TemplatedTask): rendered when the step runs,
    then compiled by its format's registered compiler and run as that task."""

    kind: Literal["templated"] = "templated"
    spec: str  # the task's text, an expression
    format: str  # the name its compiler is registered under in TASK_COMPILERS
    origin: str  # the file it was written in, for messages and relative paths


class RedisAction(Frozen):
    """A Redis string command run by the runner itself, not in a container."""

    kind: Literal["redis"] = "redis"
    operation: Literal["set", "get", "delete"]
    url: str
    key: str = ""
    value: str = ""
    keys: tuple[str, ...] = ()
    as_json: bool = False  # serde JSON: values are JSON documents, not plain strings
    failed_on_missing: bool = False
    return_old: bool = False  # Set with `get: true`


Action = Annotated[
    ContainerRun
    | StopAction
    | LogAction
    | FailAction
    | SleepAction
    | AssertAction
    | ReturnAction
    | ValuesAction
    | ExitAction
    | SubflowAction
    | TemplatedAction
    | HttpAction
    | KeyValueAction
    | LabelsAction
    | PurgeAction
    | WriteAction
    | GitCloneAction
    | SqlAction
    | SerdesAction
    | CopyAction
    | NotifyAction
    | RedisAction,
    Field(discriminator="kind"),
]


class Retry(Frozen):
    max_attempts: int | None = None  # all attempts, the first included; None: until max_duration
    interval: float = 1.0
    factor: float = 1.0  # the interval grows by this factor after each attempt
    max_interval: float | None = None
    max_duration: float | None = None
    warning_on_retry: bool = False  # a success after a failed attempt ends WARNING


class Step(Frozen):
    kind: Literal["step"] = "step"
    id: str
    name: str
    action: Action
    type_name: str = ""  # how the pipeline file names this kind of step, for expressions (`task.type`)
    timeout: float | None = None
    allow_failure: bool = False
    # what an allowed failure ends as: FAILED (shown, the run goes on), or WARNING as Kestra has it
    allowed_failure_state: Literal["FAILED", "WARNING"] = "FAILED"
    allow_warning: bool = False  # a WARNING counts as a SUCCESS
    run_if: str | None = None  # an expression; a falsy result skips the step
    # a boolean in Bitbucket's expression language (runner.expressions.state) over the step's variables,
    # shared ones included, evaluated just before it runs; false skips the step
    condition_state: str | None = None
    retry: Retry | None = None
    output_aliases: dict[str, str] = Field(default_factory=dict)  # "taskRunner.containerId": "containerId"
    manual: bool = False  # the run pauses before it and asks
    skip_reason: str | None = None  # set when a condition decided, before the run, not to run it
    fail_fast: bool = False  # in a group: its failure stops the group's other steps


class Branch(Frozen):
    """Nodes a group runs when its `choose` expression renders to `when` (None: when no branch matches)."""

    when: str | None
    steps: tuple[Node, ...]


class Group(Frozen):
    """Nodes that run together: at the same time when `parallel` (the next node waits for all of them),
    else in order. A group may have its own `errors` and `finally`, run after its nodes.

    With `branches`, the group first renders `choose` and runs the one branch it picks (Kestra's If and
    Switch); with `each`, it runs `steps` once per value of the list `each` renders to (ForEach), at most
    `concurrency` values at once."""

    kind: Literal["group"] = "group"
    id: str
    name: str
    steps: tuple[Node, ...]
    parallel: bool = True
    concurrency: int = 0  # at most this many at once; 0: the run's --max-parallel
    fail_fast: bool = False  # any failure stops the others
    start_after_failure: bool = True  # False: after a failure, nodes not yet started never start
    errors: tuple[Node, ...] = ()
    finally_: tuple[Node, ...] = ()
    allow_failure: bool = False  # the group's failure ends it WARNING, and the run goes on
    reported: bool = False  # the group has a state of its own, shown above its steps (Kestra's flowables)
    allow_warning: bool = False  # a WARNING of the group counts as a SUCCESS
    type_name: str = ""  # how the pipeline file names this kind of group, for expressions (`task.type`)
    choose: str | None = None  # an expression whose text picks a branch
    truthy: bool = False  # with `choose`: pick by truthiness, the branch "true" or the default one
    branches: tuple[Branch, ...] = ()
    each: str | None = None  # an expression (or a JSON list): `steps` run once per value
    # node id -> the ids it waits for: the group's nodes start as soon as what they wait for has passed
    depends: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    working_dir: str | None = None  # the containers of the group share a volume here, their workdir

    def children(self) -> tuple[Node, ...]:
        """Every node the group may run, whichever branch it takes."""
        return (*self.steps, *(node for branch in self.branches for node in branch.steps))

    def leaves(self) -> tuple[Step, ...]:
        nodes = (*self.children(), *self.errors, *self.finally_)
        return tuple(leaf for node in nodes for leaf in _leaves(node))


Node = Annotated[Step | Group, Field(discriminator="kind")]


def _leaves(node: Step | Group) -> tuple[Step, ...]:
    return node.leaves() if isinstance(node, Group) else (node,)


def map_steps(node: Node, change: Callable[[Step], Step]) -> Node:
    """The node with `change` applied to each step the group may run (its branches too; not its `errors`
    and `finally`)."""
    if not isinstance(node, Group):
        return change(node)
    branches = tuple(
        branch.model_copy(update={"steps": tuple(map_steps(child, change) for child in branch.steps)})
        for branch in node.branches
    )
    steps = tuple(map_steps(child, change) for child in node.steps)
    return node.model_copy(update={"steps": steps, "branches": branches})


class Templating(Frozen):
    """Expressions in step fields, rendered just before each step runs, with these names available
    besides the run's own (`outputs`, `tasks`, `execution`, `taskrun`, `task`)."""

    language: Literal["pebble"] = "pebble"
    names: dict[str, Any] = Field(default_factory=dict)


class LoadWarning(Frozen):
    where: str  # file:line:col
    message: str
    # "file": a problem in the file, an error under --strict; "machine": what this machine does differently
    # from the hosted service (a cache it does not need, no git history), which --strict leaves alone
    about: Literal["file", "machine"] = "file"

    def __str__(self) -> str:
        return f"{self.where}: {'warning' if self.about == 'file' else 'note'}: {self.message}"


class Pipeline(Frozen):
    name: str
    source: Path
    context: Path  # the directory whose files fill the workspace
    source_files: tuple[str, ...] | None = None  # the files of `context` to copy; None: all of them
    services: tuple[Step, ...] = ()
    steps: tuple[Node, ...] = ()
    errors: tuple[Node, ...] = ()
    finally_: tuple[Node, ...] = ()
    after: tuple[Node, ...] = ()  # after the run has its state (Kestra's afterExecution); never changes it
    timeout: float | None = None
    workspace: bool = True  # create the shared /workspace volume
    cleanup_failures_fail_run: bool = True  # False: only services and steps decide the run's state
    templating: Templating | None = None
    secrets: tuple[str, ...] = ()  # values to mask in every log line, besides the run's own
    outputs: dict[str, str] = Field(default_factory=dict)  # id -> expression, rendered when the run ends
    warnings: tuple[LoadWarning, ...] = ()

    def all_steps(self) -> tuple[Step, ...]:
        nodes = (*self.services, *self.steps, *self.errors, *self.finally_, *self.after)
        return tuple(leaf for node in nodes for leaf in _leaves(node))


Branch.model_rebuild()
Group.model_rebuild()


# A task compiled from its text when its step runs (TemplatedAction): (text, origin file) -> the step.
# Every format that has such tasks registers its compiler by name when it is imported; a malformed text
# raises runner.errors.InputError.
TaskCompiler = Callable[[str, str], Step]
TASK_COMPILERS: dict[str, TaskCompiler] = {}
