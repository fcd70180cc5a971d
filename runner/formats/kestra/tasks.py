"""The Kestra task types this tool runs: their properties, and the model each compiles to."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from runner.formats.schema import Spec

LOG = "io.kestra.plugin.core.log.Log"
FAIL = "io.kestra.plugin.core.execution.Fail"
SLEEP = "io.kestra.plugin.core.flow.Sleep"
ASSERT = "io.kestra.plugin.core.execution.Assert"
RETURN = "io.kestra.plugin.core.debug.Return"
SEQUENTIAL = "io.kestra.plugin.core.flow.Sequential"
PARALLEL = "io.kestra.plugin.core.flow.Parallel"
DOCKER_RUN = "io.kestra.plugin.docker.cli.Run"
DOCKER_STOP = "io.kestra.plugin.docker.cli.Stop"
SHELL_COMMANDS = "io.kestra.plugin.scripts.shell.Commands"
IF = "io.kestra.plugin.core.flow.If"
SWITCH = "io.kestra.plugin.core.flow.Switch"
FOR_EACH = "io.kestra.plugin.core.flow.ForEach"
EACH_SEQUENTIAL = "io.kestra.plugin.core.flow.EachSequential"
EACH_PARALLEL = "io.kestra.plugin.core.flow.EachParallel"
ALLOW_FAILURE = "io.kestra.plugin.core.flow.AllowFailure"
PAUSE = "io.kestra.plugin.core.flow.Pause"
SUBFLOW = "io.kestra.plugin.core.flow.Subflow"
WORKING_DIRECTORY = "io.kestra.plugin.core.flow.WorkingDirectory"
DAG = "io.kestra.plugin.core.flow.Dag"
EXIT = "io.kestra.plugin.core.execution.Exit"
OUTPUT_VALUES = "io.kestra.plugin.core.output.OutputValues"
LABELS = "io.kestra.plugin.core.execution.Labels"
HTTP_REQUEST = "io.kestra.plugin.core.http.Request"
HTTP_DOWNLOAD = "io.kestra.plugin.core.http.Download"
KV_SET = "io.kestra.plugin.core.kv.Set"
KV_GET = "io.kestra.plugin.core.kv.Get"
KV_DELETE = "io.kestra.plugin.core.kv.Delete"
KV_GET_KEYS = "io.kestra.plugin.core.kv.GetKeys"
PURGE_FILES = "io.kestra.plugin.core.storage.PurgeCurrentExecutionFiles"
NOTIFICATIONS = (
    "io.kestra.plugin.notifications.",
    "io.kestra.plugin.email.",
    "io.kestra.plugin.slack.",
    "io.kestra.plugin.discord.",
    "io.kestra.plugin.microsoft365.teams.",
    "io.kestra.plugin.zulip.",
    "io.kestra.plugin.line.",
    "io.kestra.plugin.telegram.",
    "io.kestra.plugin.pagerduty.",
    "io.kestra.plugin.opsgenie.",
    "io.kestra.plugin.zenduty.",
    "io.kestra.plugin.squadcast.",
    "io.kestra.plugin.twilio.",
    "io.kestra.plugin.sentry.",
)
STORAGE_WRITE = "io.kestra.plugin.core.storage.Write"
TEMPLATED = "io.kestra.plugin.core.templating.TemplatedTask"
GIT_CLONE = "io.kestra.plugin.git.Clone"
SqlEngine = Literal["duckdb", "sqlite", "postgres", "mysql"]
DataFormat = Literal["csv", "json", "jsonl", "ion", "xml", "avro", "parquet", "xlsx"]
SQL_TYPES: dict[str, SqlEngine] = {
    "io.kestra.plugin.jdbc.duckdb.Query": "duckdb",
    "io.kestra.plugin.jdbc.duckdb.Queries": "duckdb",
    "io.kestra.plugin.jdbc.sqlite.Query": "sqlite",
    "io.kestra.plugin.jdbc.sqlite.Queries": "sqlite",
    "io.kestra.plugin.jdbc.postgresql.Query": "postgres",
    "io.kestra.plugin.jdbc.postgresql.Queries": "postgres",
    "io.kestra.plugin.jdbc.mysql.Query": "mysql",
    "io.kestra.plugin.jdbc.mysql.Queries": "mysql",
    "io.kestra.plugin.jdbc.mariadb.Query": "mysql",
    "io.kestra.plugin.jdbc.mariadb.Queries": "mysql",
}
COPY_TYPES: dict[str, Literal["in", "out"]] = {
    "io.kestra.plugin.jdbc.postgresql.CopyIn": "in",
    "io.kestra.plugin.jdbc.postgresql.CopyOut": "out",
}
# type -> (what it reads, what it writes)
SERDES_TYPES: dict[str, tuple[DataFormat, DataFormat]] = {
    "io.kestra.plugin.serdes.csv.CsvToIon": ("csv", "ion"),
    "io.kestra.plugin.serdes.csv.IonToCsv": ("ion", "csv"),
    "io.kestra.plugin.serdes.json.JsonToIon": ("json", "ion"),
    "io.kestra.plugin.serdes.json.IonToJson": ("ion", "json"),
    "io.kestra.plugin.serdes.xml.XmlToIon": ("xml", "ion"),
    "io.kestra.plugin.serdes.xml.IonToXml": ("ion", "xml"),
    "io.kestra.plugin.serdes.avro.AvroToIon": ("avro", "ion"),
    "io.kestra.plugin.serdes.avro.IonToAvro": ("ion", "avro"),
    "io.kestra.plugin.serdes.parquet.ParquetToIon": ("parquet", "ion"),
    "io.kestra.plugin.serdes.parquet.IonToParquet": ("ion", "parquet"),
    "io.kestra.plugin.serdes.excel.ExcelToIon": ("xlsx", "ion"),
    "io.kestra.plugin.serdes.excel.IonToExcel": ("ion", "xlsx"),
}
# the images of Kestra's CLI plugins: a container with a command, like the script tasks
CLI_IMAGES = {
    "dbt": "ghcr.io/kestra-io/dbt-duckdb:latest",
    "terraform": "hashicorp/terraform",
    "ansible": "cytopia/ansible:latest-tools",
    "trivy": "ghcr.io/aquasecurity/trivy",
    "sqlmesh": "ghcr.io/kestra-io/sqlmesh",
    "modal": "ghcr.io/kestra-io/modal",
    "docker": "docker",
}
CLI_TYPE = re.compile(r"^io\.kestra\.plugin\.(?P<plugin>[a-z0-9]+)\.cli\.[A-Za-z]+$")
REDIS_SET = "io.kestra.plugin.redis.string.Set"
REDIS_GET = "io.kestra.plugin.redis.string.Get"
REDIS_DELETE = "io.kestra.plugin.redis.string.Delete"

ALIASES = {
    "io.kestra.core.tasks.log.Log": LOG,
    "io.kestra.core.tasks.executions.Fail": FAIL,
    "io.kestra.core.tasks.flows.Sleep": SLEEP,
    "io.kestra.core.tasks.executions.Assert": ASSERT,
    "io.kestra.core.tasks.debugs.Return": RETURN,
    "io.kestra.core.tasks.flows.Sequential": SEQUENTIAL,
    "io.kestra.core.tasks.flows.Parallel": PARALLEL,
    "io.kestra.core.tasks.flows.If": IF,
    "io.kestra.core.tasks.flows.Switch": SWITCH,
    "io.kestra.core.tasks.flows.ForEach": FOR_EACH,
    "io.kestra.core.tasks.flows.EachSequential": EACH_SEQUENTIAL,
    "io.kestra.core.tasks.flows.EachParallel": EACH_PARALLEL,
    "io.kestra.core.tasks.flows.AllowFailure": ALLOW_FAILURE,
    "io.kestra.core.tasks.flows.Pause": PAUSE,
    "io.kestra.plugin.fs.http.Request": HTTP_REQUEST,
    "io.kestra.plugin.fs.http.Download": HTTP_DOWNLOAD,
    "io.kestra.core.tasks.storages.PurgeExecution": PURGE_FILES,
    "io.kestra.plugin.core.storage.PurgeExecution": PURGE_FILES,
    "io.kestra.core.tasks.flows.Subflow": SUBFLOW,
    "io.kestra.core.tasks.flows.Flow": SUBFLOW,
    "io.kestra.plugin.core.flow.Flow": SUBFLOW,
    "io.kestra.core.tasks.flows.WorkingDirectory": WORKING_DIRECTORY,
    "io.kestra.core.tasks.flows.Dag": DAG,
    "io.kestra.plugin.docker.Run": DOCKER_RUN,
    "io.kestra.plugin.docker.Stop": DOCKER_STOP,
    "io.kestra.core.tasks.scripts.Bash": SHELL_COMMANDS,
    "io.kestra.plugin.redis.Set": REDIS_SET,
    "io.kestra.plugin.redis.Get": REDIS_GET,
    "io.kestra.plugin.redis.Delete": REDIS_DELETE,
}


class RetrySpec(Spec):
    type: Literal["constant", "exponential", "random"] = "constant"
    max_attempts: int | None = Field(default=None, alias="maxAttempts", ge=1)
    max_attempt: int | None = Field(default=None, alias="maxAttempt", ge=1)
    max_duration: str | None = Field(default=None, alias="maxDuration")
    interval: str | None = None
    max_interval: str | None = Field(default=None, alias="maxInterval")
    min_interval: str | None = Field(default=None, alias="minInterval")
    delay_factor: float | None = Field(default=None, alias="delayFactor")
    warning_on_retry: bool = Field(default=False, alias="warningOnRetry")
    behavior: str | None = None


class TaskSpec(Spec):
    """The properties every task has."""

    id: str
    type: str
    description: str | None = None
    timeout: str | None = None
    retry: RetrySpec | None = None
    allow_failure: bool = Field(default=False, alias="allowFailure")
    allow_warning: bool = Field(default=False, alias="allowWarning")
    disabled: bool = False
    run_if: str | None = Field(default=None, alias="runIf")
    log_level: str | None = Field(default=None, alias="logLevel")
    log_to_file: bool | None = Field(default=None, alias="logToFile")
    worker_group: Any = Field(default=None, alias="workerGroup")
    version: str | None = None

    @field_validator("run_if", "timeout", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value).lower() if isinstance(value, bool) else value


class LogSpec(TaskSpec):
    message: str | list[str] | None = None
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"


class FailSpec(TaskSpec):
    error_message: str = Field(default="Task failure", alias="errorMessage")
    condition: str | None = None

    _condition = field_validator("condition", mode="before")(TaskSpec._text.__func__)  # type: ignore[attr-defined]


class SleepSpec(TaskSpec):
    duration: str


class AssertSpec(TaskSpec):
    conditions: list[str] = Field(min_length=1)
    error_message: str | None = Field(default=None, alias="errorMessage")

    @field_validator("conditions", mode="before")
    @classmethod
    def _conditions(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(item).lower() if isinstance(item, bool) else item for item in value]
        return value


class ReturnSpec(TaskSpec):
    format: str = ""


class FlowableSpec(TaskSpec):
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[dict[str, Any]] = Field(default_factory=list)
    finally_: list[dict[str, Any]] = Field(default_factory=list, alias="finally")


class ParallelSpec(FlowableSpec):
    tasks: list[dict[str, Any]] = Field(min_length=1)
    concurrent: int = Field(default=0, ge=0)
    fail_fast: bool = Field(default=False, alias="failFast")
    # Kestra 2: FAIL interrupts the running siblings when one fails; CONTINUE lets them end
    on_child_failure: Literal["FAIL", "CONTINUE"] | None = Field(default=None, alias="onChildFailure")


def _text_or_list(cls: Any, value: Any) -> Any:
    """A condition or values written as YAML (a boolean, a list) rather than as an expression."""
    if isinstance(value, bool):
        return str(value).lower()
    return value


class IfSpec(FlowableSpec):
    condition: str
    then: list[dict[str, Any]] = Field(min_length=1)
    else_: list[dict[str, Any]] = Field(default_factory=list, alias="else")

    _condition = field_validator("condition", mode="before")(_text_or_list)


class SwitchSpec(FlowableSpec):
    value: str
    cases: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    defaults: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("cases", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        # YAML reads `true:` or `1:` as a boolean or a number; Kestra compares the rendered text
        if isinstance(value, dict):
            return {_case_key(key): tasks for key, tasks in value.items()}
        return value

    _value = field_validator("value", mode="before")(_text_or_list)


def _case_key(key: Any) -> str:
    return str(key).lower() if isinstance(key, bool) else str(key)


class ForEachSpec(FlowableSpec):
    tasks: list[dict[str, Any]] = Field(min_length=1)
    values: str | list[Any]
    concurrency_limit: int = Field(default=1, alias="concurrencyLimit", ge=0)


class EachSequentialSpec(FlowableSpec):
    tasks: list[dict[str, Any]] = Field(min_length=1)
    value: str | list[Any]


class EachParallelSpec(EachSequentialSpec):
    concurrent: int = Field(default=0, ge=0)


class AllowFailureSpec(FlowableSpec):
    tasks: list[dict[str, Any]] = Field(min_length=1)


class WorkingDirectorySpec(FlowableSpec):
    tasks: list[dict[str, Any]] = Field(min_length=1)
    cache: Any = None
    namespace_files: Any = Field(default=None, alias="namespaceFiles")
    input_files: Any = Field(default=None, alias="inputFiles")
    output_files: list[str] | None = Field(default=None, alias="outputFiles")


class DagTaskSpec(Spec):
    task: dict[str, Any]
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")


class DagSpec(FlowableSpec):
    tasks: list[DagTaskSpec] = Field(min_length=1)  # type: ignore[assignment]
    concurrent: int = Field(default=0, ge=0)
    on_child_failure: Literal["FAIL", "CONTINUE"] | None = Field(default=None, alias="onChildFailure")


class SubflowSpec(TaskSpec):
    namespace: str
    flow_id: str = Field(alias="flowId")
    inputs: dict[str, Any] = Field(default_factory=dict)
    wait: bool = True
    transmit_failed: bool = Field(default=True, alias="transmitFailed")
    revision: int | None = None
    labels: Any = None
    inherit_labels: bool = Field(default=False, alias="inheritLabels")
    outputs: dict[str, Any] | None = None
    schedule_date: str | None = Field(default=None, alias="scheduleDate")


class LabelsSpec(TaskSpec):
    labels: dict[str, Any] | list[dict[str, Any]]


class HttpOptionsSpec(Spec):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    allow_failed: bool = Field(default=False, alias="allowFailed")
    read_timeout: str | None = Field(default=None, alias="readTimeout")
    connect_timeout: str | None = Field(default=None, alias="connectTimeout")


class HttpSpec(TaskSpec):
    uri: str
    method: str = "GET"
    body: Any = None
    headers: dict[str, Any] = Field(default_factory=dict)
    content_type: str | None = Field(default=None, alias="contentType")
    form_data: dict[str, Any] = Field(default_factory=dict, alias="formData")
    options: HttpOptionsSpec | None = None
    allow_failed: bool = Field(default=False, alias="allowFailed")
    fail_on_empty_response: bool = Field(default=True, alias="failOnEmptyResponse")
    encrypt_body: bool = Field(default=False, alias="encryptBody")


class KeyValueSpec(TaskSpec):
    key: str = ""
    value: Any = None
    namespace: str = "{{ flow.namespace }}"
    overwrite: bool = True
    kv_type: str | None = Field(default=None, alias="kvType")
    ttl: str | None = None
    error_on_missing: bool = Field(default=False, alias="errorOnMissing")
    prefix: str = ""


class PurgeFilesSpec(TaskSpec):
    pass


class NotificationSpec(TaskSpec):
    """Every notification plugin: what it would send is shown, never sent unless asked."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    url: str | None = None
    payload: Any = None


class PauseSpec(TaskSpec):
    delay: str | None = None  # the older name of pauseDuration
    pause_duration: str | None = Field(default=None, alias="pauseDuration")
    timeout: str | None = None
    behavior: Literal["RESUME", "WARN", "FAIL", "CANCEL"] = "RESUME"
    on_resume: list[Any] | None = Field(default=None, alias="onResume")


class ExitSpec(TaskSpec):
    state: Literal["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELED"] = "SUCCESS"


class OutputValuesSpec(TaskSpec):
    values: dict[str, Any] = Field(default_factory=dict)


class MemorySpec(Spec):
    memory: str | int | None = None
    memory_swap: str | int | None = Field(default=None, alias="memorySwap")
    memory_swappiness: int | None = Field(default=None, alias="memorySwappiness")
    memory_reservation: str | int | None = Field(default=None, alias="memoryReservation")
    kernel_memory: str | int | None = Field(default=None, alias="kernelMemory")
    oom_kill_disable: bool | None = Field(default=None, alias="oomKillDisable")


class CpuSpec(Spec):
    cpus: float | None = None


class CredentialsSpec(Spec):
    registry: str | None = None
    username: str | None = None
    password: str | None = None
    registry_token: str | None = Field(default=None, alias="registryToken")
    identity_token: str | None = Field(default=None, alias="identityToken")
    auth: str | None = None


def _string_list(cls: Any, value: Any) -> Any:
    """`commands: "echo hi"` means a one-item list."""
    return [value] if isinstance(value, str) else value


class DockerRunSpec(TaskSpec):
    container_image: str = Field(alias="containerImage")
    commands: list[str] = Field(default_factory=list)
    entry_point: list[str] = Field(default_factory=list, alias="entryPoint")
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    wait: bool = True
    port_bindings: list[str] = Field(default_factory=list, alias="portBindings")
    volumes: list[str] = Field(default_factory=list)
    network_mode: str | None = Field(default=None, alias="networkMode")
    pull_policy: Literal["IF_NOT_PRESENT", "ALWAYS", "NEVER"] = Field(
        default="IF_NOT_PRESENT", alias="pullPolicy"
    )
    user: str | None = None
    memory: MemorySpec | None = None
    cpu: CpuSpec | None = None
    extra_hosts: list[str] = Field(default_factory=list, alias="extraHosts")
    credentials: CredentialsSpec | None = None
    host: str | None = None
    config: Any = None
    privileged: bool = False
    shm_size: str | None = Field(default=None, alias="shmSize")
    input_files: Any = Field(default=None, alias="inputFiles")
    output_files: list[str] | None = Field(default=None, alias="outputFiles")
    namespace_files: Any = Field(default=None, alias="namespaceFiles")
    warning_on_std_err: bool | None = Field(default=None, alias="warningOnStdErr")
    delete: bool = True

    _commands = field_validator("commands", "entry_point", mode="before")(_string_list)


class DockerStopSpec(TaskSpec):
    container_id: str = Field(alias="containerId")
    kill: bool = False
    delete: bool = True
    host: str | None = None
    config: Any = None
    credentials: CredentialsSpec | None = None


class TaskRunnerSpec(Spec):
    type: str = "io.kestra.plugin.scripts.runner.docker.Docker"
    pull_policy: Literal["IF_NOT_PRESENT", "ALWAYS", "NEVER"] = Field(default="ALWAYS", alias="pullPolicy")
    entry_point: list[str] | None = Field(default=None, alias="entryPoint")
    network_mode: str | None = Field(default=None, alias="networkMode")
    user: str | None = None
    memory: MemorySpec | None = None
    cpu: CpuSpec | None = None
    credentials: CredentialsSpec | None = None
    volumes: list[str] = Field(default_factory=list)
    delete: bool = True
    wait: bool = True
    image: str | None = None  # the older `docker:` options name the image here
    extra_hosts: list[str] | None = Field(default=None, alias="extraHosts")
    shm_size: str | None = Field(default=None, alias="shmSize")
    privileged: bool | None = None
    device_requests: Any = Field(default=None, alias="deviceRequests")
    config: Any = None
    file_handling_strategy: str | None = Field(default=None, alias="fileHandlingStrategy")
    resume: bool | None = None
    # the settings of a cloud runner (Kubernetes, AWS Batch…), which runs here as the Docker one does
    elsewhere: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _cloud_settings(cls, data: Any) -> Any:
        """A cloud task runner's own settings are kept aside by name: they have no meaning here, and a key
        the Docker runner does not know is still refused for it."""
        if not isinstance(data, dict) or str(data.get("type", "")).endswith((".docker.Docker", ".Process")):
            return data
        known = {key for name, field in cls.model_fields.items() for key in (name, field.alias) if key}
        kept = {key: value for key, value in data.items() if key in known}
        return {**kept, "elsewhere": tuple(sorted(key for key in data if key not in known))}


class NamespaceFilesSpec(Spec):
    enabled: bool = True
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    folder_per_namespace: bool = Field(default=False, alias="folderPerNamespace")


class GitCloneSpec(TaskSpec):
    url: str
    branch: str | None = None
    depth: int = Field(default=1, ge=0)
    directory: str | None = None
    username: str | None = None
    password: str | None = None
    private_key: str | None = Field(default=None, alias="privateKey")
    passphrase: str | None = None
    clone_submodules: bool | None = Field(default=None, alias="cloneSubmodules")
    tag: str | None = None


class SqlSpec(TaskSpec):
    sql: str
    url: str | None = None
    username: str | None = None
    password: str | None = None
    fetch_type: Literal["NONE", "FETCH", "FETCH_ONE", "STORE"] | None = Field(default=None, alias="fetchType")
    fetch: bool = False
    fetch_one: bool = Field(default=False, alias="fetchOne")
    store: bool = False
    input_files: dict[str, Any] | None = Field(default=None, alias="inputFiles")
    output_files: list[str] | None = Field(default=None, alias="outputFiles")
    database_file: str | None = Field(default=None, alias="databaseFile")
    sqlite_file: str | None = Field(default=None, alias="sqliteFile")
    time_zone_id: str | None = Field(default=None, alias="timeZoneId")
    parameters: Any = None
    transaction: bool | None = None


class CopySpec(TaskSpec):
    url: str
    username: str | None = None
    password: str | None = None
    table: str | None = None
    sql: str | None = None  # CopyOut
    from_: str | None = Field(default=None, alias="from")  # CopyIn
    format: Literal["TEXT", "CSV", "BINARY"] = "TEXT"
    header: bool | None = None
    delimiter: str | None = None
    quote: str | None = None
    escape: str | None = None
    null_string: str | None = Field(default=None, alias="nullString")
    encoding: str | None = None
    columns: list[str] = Field(default_factory=list)
    force_not_null: list[str] | None = Field(default=None, alias="forceNotNull")
    force_null: list[str] | None = Field(default=None, alias="forceNull")
    force_quote: list[str] | None = Field(default=None, alias="forceQuote")
    freeze: bool | None = None
    oids: bool | None = None
    ssl: bool | None = None
    ssl_mode: str | None = Field(default=None, alias="sslMode")
    ssl_root_cert: str | None = Field(default=None, alias="sslRootCert")
    ssl_cert: str | None = Field(default=None, alias="sslCert")
    ssl_key: str | None = Field(default=None, alias="sslKey")
    ssl_key_password: str | None = Field(default=None, alias="sslKeyPassword")


class XmlParserSpec(Spec):
    force_list: list[str] = Field(default_factory=list, alias="forceList")


class SerdesSpec(TaskSpec):
    from_: str | dict[str, str] = Field(alias="from")
    header: bool = True
    field_separator: str = Field(default=",", alias="fieldSeparator")
    new_line: bool = Field(default=True, alias="newLine")
    charset: str = "UTF-8"
    text_delimiter: str = Field(default='"', alias="textDelimiter")
    skip_empty_rows: bool = Field(default=False, alias="skipEmptyRows")
    skip_rows: int = Field(default=0, alias="skipRows")
    date_format: str | None = Field(default=None, alias="dateFormat")
    datetime_format: str | None = Field(default=None, alias="datetimeFormat")
    time_format: str | None = Field(default=None, alias="timeFormat")
    time_zone_id: str | None = Field(default=None, alias="timeZoneId")
    schema_: str = Field(default="", alias="schema")
    compression_codec: str = Field(default="GZIP", alias="compressionCodec")
    sheets_title: str | list[str] | None = Field(default=None, alias="sheetsTitle")
    styles: bool | None = None
    value_render: str = Field(default="UNFORMATTED_VALUE", alias="valueRender")
    date_time_render: str | None = Field(default=None, alias="dateTimeRender")
    root_name: str = Field(default="items", alias="rootName")
    query: str = ""
    parser_configuration: XmlParserSpec | None = Field(default=None, alias="parserConfiguration")
    on_bad_lines: str | None = Field(default=None, alias="onBadLines")
    error_on_different_field_count: bool | None = Field(default=None, alias="errorOnDifferentFieldCount")
    always_delimit_text: bool | None = Field(default=None, alias="alwaysDelimitText")
    line_delimiter: str | None = Field(default=None, alias="lineDelimiter")
    infer_all_fields: bool | None = Field(default=None, alias="inferAllFields")
    strict_schema: bool | None = Field(default=None, alias="strictSchema")
    parquet_version: str | None = Field(default=None, alias="parquetVersion")
    row_group_size: int | None = Field(default=None, alias="rowGroupSize")
    page_size: int | None = Field(default=None, alias="pageSize")
    dictionary_page_size: int | None = Field(default=None, alias="dictionaryPageSize")


class TemplatedSpec(TaskSpec):
    spec: str


class WriteSpec(TaskSpec):
    content: Any
    extension: str = ".ion"


class ScriptTaskSpec(TaskSpec):
    """Every script plugin of Kestra has this shape: `commands` (Commands) or `script` (Script), in a
    container of its language's image."""

    commands: list[str] = Field(default_factory=list)
    script: str | None = None
    dependencies: list[str] = Field(default_factory=list)
    before_commands: list[str] = Field(default_factory=list, alias="beforeCommands")
    container_image: str | None = Field(default=None, alias="containerImage")
    task_runner: TaskRunnerSpec | None = Field(default=None, alias="taskRunner")
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh", "-c"])
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    fail_fast: bool = Field(default=True, alias="failFast")
    target_os: str | None = Field(default=None, alias="targetOS")
    input_files: dict[str, Any] | str | None = Field(default=None, alias="inputFiles")
    output_files: list[str] | None = Field(default=None, alias="outputFiles")
    namespace_files: NamespaceFilesSpec | None = Field(default=None, alias="namespaceFiles")
    warning_on_std_err: bool | None = Field(default=None, alias="warningOnStdErr")
    docker: TaskRunnerSpec | None = None
    runner: str | None = None  # the old way to choose DOCKER or PROCESS
    profiles: str | None = None  # dbt's profiles.yml, written into the working directory
    project_dir: str | None = Field(default=None, alias="projectDir")

    _commands = field_validator("commands", "before_commands", mode="before")(_string_list)


# language -> (Kestra's default image, how a Script's file is run, the file's extension)
LANGUAGES: dict[str, tuple[str, str, str]] = {
    "python": ("python:3.11-slim", "python", "py"),
    "shell": ("ubuntu", "sh", "sh"),
    "node": ("node", "node", "js"),
    "r": ("r-base", "Rscript", "R"),
    "julia": ("julia", "julia", "jl"),
    "ruby": ("ruby", "ruby", "rb"),
    "powershell": ("mcr.microsoft.com/powershell", "pwsh -File", "ps1"),
    "go": ("golang", "go run", "go"),
    "perl": ("perl", "perl", "pl"),
    "php": ("php", "php", "php"),
    "lua": ("nickblah/lua", "lua", "lua"),
    "deno": ("denoland/deno", "deno run --allow-all", "ts"),
    "bun": ("oven/bun", "bun run", "ts"),
    "groovy": ("groovy", "groovy", "groovy"),
}
SCRIPT_TYPES = {
    f"io.kestra.plugin.scripts.{language}.{kind}": language
    for language in LANGUAGES
    for kind in ("Script", "Commands")
}


def script_language(kind: str) -> str | None:
    return SCRIPT_TYPES.get(kind)


def cli_plugin(kind: str) -> str | None:
    """The plugin of a CLI task (`io.kestra.plugin.dbt.cli.DbtCLI` -> "dbt"), or None."""
    match = CLI_TYPE.match(kind)
    return match.group("plugin") if match and match.group("plugin") in CLI_IMAGES else None


def spec_for(kind: str) -> type[TaskSpec] | None:
    """The schema of a task type this tool runs, or None."""
    if kind in SPECS:
        return SPECS[kind]
    if kind.startswith(NOTIFICATIONS):
        return NotificationSpec
    if cli_plugin(kind):
        return ScriptTaskSpec
    return None


class RedisSpec(TaskSpec):
    url: str
    serde_type: Literal["STRING", "JSON"] = Field(default="STRING", alias="serdeType")


class RedisSetSpec(RedisSpec):
    key: str
    value: Any
    get: bool = False
    options: dict[str, Any] | None = None


class RedisGetSpec(RedisSpec):
    key: str
    failed_on_missing: bool = Field(default=False, alias="failedOnMissing")


class RedisDeleteSpec(RedisSpec):
    keys: list[str] = Field(min_length=1)
    failed_on_missing: bool = Field(default=False, alias="failedOnMissing")


SPECS: dict[str, type[TaskSpec]] = {
    LOG: LogSpec,
    FAIL: FailSpec,
    SLEEP: SleepSpec,
    ASSERT: AssertSpec,
    RETURN: ReturnSpec,
    SEQUENTIAL: FlowableSpec,
    PARALLEL: ParallelSpec,
    IF: IfSpec,
    SWITCH: SwitchSpec,
    FOR_EACH: ForEachSpec,
    EACH_SEQUENTIAL: EachSequentialSpec,
    EACH_PARALLEL: EachParallelSpec,
    ALLOW_FAILURE: AllowFailureSpec,
    PAUSE: PauseSpec,
    LABELS: LabelsSpec,
    HTTP_REQUEST: HttpSpec,
    HTTP_DOWNLOAD: HttpSpec,
    KV_SET: KeyValueSpec,
    KV_GET: KeyValueSpec,
    KV_DELETE: KeyValueSpec,
    KV_GET_KEYS: KeyValueSpec,
    PURGE_FILES: PurgeFilesSpec,
    STORAGE_WRITE: WriteSpec,
    TEMPLATED: TemplatedSpec,
    GIT_CLONE: GitCloneSpec,
    **dict.fromkeys(SQL_TYPES, SqlSpec),
    **dict.fromkeys(COPY_TYPES, CopySpec),
    **dict.fromkeys(SERDES_TYPES, SerdesSpec),
    SUBFLOW: SubflowSpec,
    WORKING_DIRECTORY: WorkingDirectorySpec,
    DAG: DagSpec,
    EXIT: ExitSpec,
    OUTPUT_VALUES: OutputValuesSpec,
    DOCKER_RUN: DockerRunSpec,
    DOCKER_STOP: DockerStopSpec,
    **dict.fromkeys(SCRIPT_TYPES, ScriptTaskSpec),
    REDIS_SET: RedisSetSpec,
    REDIS_GET: RedisGetSpec,
    REDIS_DELETE: RedisDeleteSpec,
}
