"""The Kestra plugins real flows call, run locally: script tasks in containers with their files, HTTP
against a server the test starts, the key-value store, secret(), pluginDefaults, labels, notifications,
and the task types that cannot run here, refused all at once. Each docstring states Kestra's behaviour
and where it comes from (Kestra's plugin documentation on kestra.io, and core's sources)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from runner.engine.status import StepStatus
from runner.errors import InputError
from runner.formats import load_pipeline
from runner.formats.options import LoadOptions
from runner.teardown.ledger import Ledger
from tests.engine.helpers import run_file, statuses
from tests.engine.memory_backend import MemoryBackend
from tests.engine.test_semantics_memory import Run, execute
from tests.test_cli import Cli, labelled_of

S = StepStatus
HEAD = "id: f\nnamespace: company.team\n"
LOG = "io.kestra.plugin.core.log.Log"
PYTHON_IMAGE = "runner-test-python:1"


class Recorder(BaseHTTPRequestHandler):
    """Answers GET /data.json with JSON, GET /missing with 404, and records what is POSTed."""

    posted: ClassVar[list[bytes]] = []

    def do_GET(self) -> None:
        if self.path == "/missing":
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({"items": [{"name": "a"}, {"name": "b"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        Recorder.posted.append(self.rfile.read(length))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.posted = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def flow(tmp_path: Path, tasks: str, top: str = "") -> Path:
    path = tmp_path / "flow.yml"
    path.write_text(HEAD + top + "tasks:\n" + tasks, encoding="utf-8")
    return path


def run_flow(path: Path, backend: MemoryBackend, ledger: object, **load: object) -> Run:
    pipeline = load_pipeline(path, options=LoadOptions(**load))  # type: ignore[arg-type]
    return execute(pipeline, backend, ledger)  # type: ignore[arg-type]


def test_http_request_and_download_against_a_local_server(
    tmp_path: Path, backend: MemoryBackend, ledger: object, server: str
) -> None:
    """http.Request: outputs code, headers and body (text), a 4xx fails the task unless allowFailed.
    http.Download: the body is kept as a file of the execution's storage, output `uri`."""
    tasks = (
        f"  - {{id: get, type: io.kestra.plugin.core.http.Request, uri: '{server}/data.json'}}\n"
        "  - {id: first, type: "
        + LOG
        + ", message: \"{{ outputs.get.body | jq('.items[0].name') | first }} {{ outputs.get.code }}\"}\n"
        f"  - {{id: fetch, type: io.kestra.plugin.core.http.Download, uri: '{server}/data.json'}}\n"
        f"  - {{id: tolerated, type: io.kestra.plugin.core.http.Request, uri: '{server}/missing',\n"
        "      options: {allowFailed: true}}\n"
        f"  - {{id: broken, type: io.kestra.plugin.core.http.Request, uri: '{server}/missing'}}\n"
    )
    run = run_flow(flow(tmp_path, tasks), backend, ledger)
    assert statuses(run.result) == {
        "get": S.SUCCESS,
        "first": S.SUCCESS,
        "fetch": S.SUCCESS,
        "tolerated": S.SUCCESS,
        "broken": S.FAILED,
    }
    assert run.reporter.output("first") == ["a 200"]
    uri = str(run.get("fetch").outputs["uri"])
    assert uri.startswith("kestra:///") and uri.endswith("/fetch/data.json")
    assert run.get("fetch").outputs["length"] == len(json.dumps({"items": [{"name": "a"}, {"name": "b"}]}))
    assert run.get("tolerated").outputs["code"] == 404
    assert "answered 404" in run.get("broken").message


def test_the_key_value_store_through_tasks_kv_and_the_command_line(
    tmp_path: Path, backend: MemoryBackend, ledger: object, cli: Cli
) -> None:
    """kv.Set/Get/Delete/GetKeys and kv(): the flow's namespace by default (Kestra's KV store docs);
    here the store is a file of the state directory, also written by `runner kv`."""
    assert cli("kv", "set", "company.team", "preset", '{"n": 3}', "--json").code == 0
    tasks = (
        "  - {id: put, type: io.kestra.plugin.core.kv.Set, key: greeting, value: 'hello {{ flow.id }}'}\n"
        "  - {id: read, type: io.kestra.plugin.core.kv.Get, key: greeting}\n"
        "  - {id: show, type: "
        + LOG
        + ", message: \"{{ kv('greeting') }} {{ kv('preset').n }} {{ outputs.read.value }}\"}\n"
        "  - {id: list, type: io.kestra.plugin.core.kv.GetKeys}\n"
        "  - {id: drop, type: io.kestra.plugin.core.kv.Delete, key: greeting}\n"
        "  - {id: gone, type: "
        + LOG
        + ", message: \"{{ kv('greeting', errorOnMissing=false) ?? 'gone' }}\"}\n"
    )
    run = run_flow(flow(tmp_path, tasks), backend, ledger)
    assert run.result.exit_code == 0, run.result.results
    assert run.reporter.output("show") == ["hello f 3 hello f"]
    assert run.get("list").outputs["keys"] == ["greeting", "preset"]
    assert run.reporter.output("gone") == ["gone"]
    listed = cli("kv", "list", "company.team")
    assert listed.out.split() == ["preset"]
    assert cli("kv", "get", "company.team", "greeting").code == 2


def test_secret_reads_secret_variables_and_secrets_given_on_the_command_line(
    tmp_path: Path, backend: MemoryBackend, ledger: object
) -> None:
    """secret(): Kestra's open-source edition reads SECRET_NAME environment variables, base64-encoded;
    here --secret values too. Either way the value is masked in every log line."""
    tasks = (
        "  - {id: show, type: " + LOG + ", message: \"{{ secret('API_TOKEN') }} / {{ secret('GIVEN') }}\"}\n"
    )
    encoded = base64.b64encode(b"tok-123").decode()
    run = run_flow(
        flow(tmp_path, tasks), backend, ledger, env={"SECRET_API_TOKEN": encoded, "GIVEN": "given-456"}
    )
    assert run.result.exit_code == 0, run.result.results
    assert run.reporter.output("show") == ["$SECRET / given-456"]
    missing = flow(tmp_path, "  - {id: x, type: " + LOG + ", message: \"{{ secret('NOPE') }}\"}\n")
    failed = run_flow(missing, backend, ledger)
    assert failed.get("x").status is S.FAILED
    assert "secret 'NOPE' is not set: give it with --secret NOPE=VALUE" in failed.get("x").message


def test_plugin_defaults_fill_in_and_forced_ones_win(
    tmp_path: Path, backend: MemoryBackend, ledger: object
) -> None:
    """pluginDefaults: values for every task of a type, or of a package; a task's own values win unless
    the default is `forced`."""
    top = (
        "pluginDefaults:\n"
        "  - {type: io.kestra.plugin.core.log, values: {level: WARN, message: from the package}}\n"
        "  - {type: " + LOG + ", forced: true, values: {level: ERROR}}\n"
    )
    tasks = (
        "  - {id: plain, type: " + LOG + "}\n"
        "  - {id: own, type: " + LOG + ", message: its own, level: INFO}\n"
    )
    pipeline = load_pipeline(flow(tmp_path, tasks, top))
    actions = {step.id: step.action for step in pipeline.all_steps()}
    assert (actions["plain"].messages, actions["plain"].level) == (("from the package",), "ERROR")  # type: ignore[union-attr]
    assert (actions["own"].messages, actions["own"].level) == (("its own",), "ERROR")  # type: ignore[union-attr]


def test_labels_envs_trigger_and_notifications_shown_not_sent(
    tmp_path: Path, backend: MemoryBackend, ledger: object, server: str
) -> None:
    """Labels adds labels to the execution; envs are ENV_* variables; trigger.* comes from --trigger;
    a notification is shown, not sent, unless --send-notifications."""
    tasks = (
        "  - {id: tag, type: io.kestra.plugin.core.execution.Labels, labels: {stage: '{{ envs.stage }}'}}\n"
        "  - {id: show, type: " + LOG + ", message: '{{ labels.stage }} {{ trigger.date }}'}\n"
        "  - id: tell\n    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook\n"
        f"    url: '{server}/hook'\n"
        '    payload: \'{"text": "done {{ flow.id }}"}\'\n'
    )
    run = run_flow(
        flow(tmp_path, tasks), backend, ledger, env={"ENV_STAGE": "prod"}, trigger={"date": "2026-01-01"}
    )
    assert run.result.exit_code == 0, run.result.results
    assert run.reporter.output("show") == ["prod 2026-01-01"]
    assert run.reporter.output("tell")[1:] == ['  {"text": "done f"}']
    assert Recorder.posted == []


def test_task_types_that_cannot_run_here_are_refused_at_once_or_skipped(tmp_path: Path) -> None:
    tasks = (
        "  - {id: query, type: io.kestra.plugin.gcp.bigquery.Query, sql: select 1}\n"
        "  - {id: chat, type: io.kestra.plugin.openai.ChatCompletion}\n"
        "  - {id: fine, type: " + LOG + ", message: hi}\n"
    )
    path = flow(tmp_path, tasks)
    with pytest.raises(InputError) as raised:
        load_pipeline(path)
    problems = [raised.value, *raised.value.others]
    assert [p.message.split(" cannot")[0] for p in problems] == [
        "io.kestra.plugin.gcp.bigquery.Query",
        "io.kestra.plugin.openai.ChatCompletion",
    ]
    assert "Google Cloud" in problems[0].message and "language model" in problems[1].message
    pipeline = load_pipeline(path, options=LoadOptions(skip_unsupported=True))
    assert [(s.id, s.skip_reason is not None) for s in pipeline.all_steps()] == [
        ("query", True),
        ("chat", True),
        ("fine", False),
    ]


def test_a_misspelt_type_gets_a_close_suggestion_and_an_unrelated_one_none(tmp_path: Path) -> None:
    with pytest.raises(InputError) as raised:
        load_pipeline(flow(tmp_path, "  - {id: a, type: io.kestra.plugin.core.log.Lgo}\n"))
    assert raised.value.hint == f"did you mean '{LOG}'?"


@pytest.fixture(scope="module")
def python_image() -> Iterator[str]:
    """A Python image built here from the runner's own (Debian's python3), with `python` on the path as
    in Kestra's default image."""
    subprocess.run(
        ["docker", "build", "-q", "-t", PYTHON_IMAGE, "-"],
        input=b"FROM runner/reaper:latest\nLABEL dev.runner.image=1\n"
        b"RUN ln -sf /usr/bin/python3 /usr/local/bin/python\n",
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    yield PYTHON_IMAGE
    subprocess.run(["docker", "rmi", "-f", PYTHON_IMAGE], capture_output=True, check=False)


@pytest.mark.docker
def test_script_tasks_pass_files_and_outputs_from_one_task_to_the_next(
    tmp_path: Path, cli: Cli, python_image: str
) -> None:
    """Script tasks (python.Script, python.Commands, shell.Commands): the script is a file of the task's
    working directory; outputFiles are kept and named by URI (`outputs.ID.outputFiles['name']`), which a
    later task's inputFiles turns back into the file; `::{"outputs": ...}::` lines set `vars`;
    namespaceFiles bring the flow's folder in; the Process task runner still runs in a container."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helper.py").write_text("FACTOR = 7\n", encoding="utf-8")
    text = HEAD + (
        "tasks:\n"
        "  - id: make\n    type: io.kestra.plugin.scripts.python.Script\n"
        "    namespaceFiles: {enabled: true, include: ['lib/**']}\n"
        "    outputFiles: ['out.csv']\n"
        "    script: |\n"
        "      import json, sys\n"
        "      sys.path.insert(0, 'lib')\n"
        "      from helper import FACTOR\n"
        "      open('out.csv', 'w').write('n\\n' + str(6 * FACTOR) + '\\n')\n"
        "      print('::' + json.dumps({'outputs': {'answer': 6 * FACTOR}}) + '::')\n"
        "  - id: use\n    type: io.kestra.plugin.scripts.python.Script\n"
        "    taskRunner: {type: io.kestra.plugin.core.runner.Process}\n"
        "    inputFiles:\n      data.csv: \"{{ outputs.make.outputFiles['out.csv'] }}\"\n"
        "    script: print('got', open('data.csv').read().split()[1])\n"
        "  - id: listing\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    containerImage: " + PYTHON_IMAGE + "\n"
        "    commands: ['ls lib 2>/dev/null || echo no lib here']\n"
        "  - {id: show, type: " + LOG + ", message: '{{ outputs.make.vars.answer }}'}\n"
    )
    path = tmp_path / "flow.yml"
    path.write_text(text, encoding="utf-8")
    completed = cli("run", "--image", f"python:3.11-slim={python_image}", str(path))
    assert completed.code == 0, completed.out + completed.err
    lines = [line.replace(" ", "") for line in completed.out.splitlines()]
    assert "use│got42" in lines and "show│42" in lines
    assert "listing│nolibhere" in lines  # namespace files go to the task that asks for them
    assert "the Process task runner runs the commands in a container" in completed.out
    run_id = completed.out.strip().splitlines()[-1].split()[1]
    assert labelled_of(run_id) == []


def test_a_notification_is_posted_only_when_the_run_allows_it(
    tmp_path: Path, backend: MemoryBackend, ledger: object, server: str
) -> None:
    tasks = (
        "  - id: tell\n    type: io.kestra.plugin.slack.notifications.SlackIncomingWebhook\n"
        f"    url: '{server}/hook'\n"
        '    payload: \'{"text": "done"}\'\n'
        "  - {id: mail, type: io.kestra.plugin.email.MailSend, to: ops@example.com, subject: done}\n"
    )
    pipeline = load_pipeline(flow(tmp_path, tasks))
    run = execute(pipeline, backend, ledger, send_notifications=True)  # type: ignore[arg-type]
    assert Recorder.posted == [b'{"text": "done"}']
    assert run.get("tell").status is S.SUCCESS
    assert (
        run.get("mail").status is S.FAILED and "sending mail is not supported here" in run.get("mail").message
    )


def test_cli_plugins_run_their_commands_in_their_image_and_write_keeps_a_file(
    tmp_path: Path, backend: MemoryBackend, ledger: object
) -> None:
    """DbtCLI and the other CLI plugins are a container with commands (Kestra's plugin docs); dbt's
    `profiles` is written as profiles.yml where DBT_PROFILES_DIR points. storage.Write keeps a text as a
    stored file, output `uri`."""
    tasks = (
        "  - id: dbt\n    type: io.kestra.plugin.dbt.cli.DbtCLI\n"
        "    profiles: 'demo: {}'\n    commands: [dbt build]\n"
        "  - {id: keep, type: io.kestra.plugin.core.storage.Write, content: 'a,b', extension: .csv}\n"
    )
    pipeline = load_pipeline(flow(tmp_path, tasks))
    dbt = pipeline.steps[0].action
    assert dbt.image == "ghcr.io/kestra-io/dbt-duckdb:latest"  # type: ignore[union-attr]
    assert dbt.input_files == {"profiles.yml": "demo: {}"}  # type: ignore[union-attr]
    assert dbt.env["DBT_PROFILES_DIR"] == "/kestra/working-dir"  # type: ignore[union-attr]
    assert dbt.script[-1] == "dbt build"  # type: ignore[union-attr]
    write_only = (
        "  - {id: keep, type: io.kestra.plugin.core.storage.Write, content: 'a,b', extension: .csv}\n"
    )
    keep_only = load_pipeline(flow(tmp_path, write_only))
    run = execute(keep_only, backend, ledger)  # type: ignore[arg-type]
    uri = str(run.get("keep").outputs["uri"])
    assert uri.endswith("/keep/content.csv")


def test_validate_reports_templates_that_cannot_work_at_their_place(tmp_path: Path) -> None:
    """Every template is parsed when the flow is loaded: an unknown function, filter or root name, or a
    syntax error, is a warning with its place (an error under --strict), not a failure halfway through."""
    tasks = (
        "  - id: a\n    type: " + LOG + "\n"
        "    message: \"{{ inpts.x }} {{ nofunc() }} {{ 'x' | nofilter }}\"\n"
        "  - id: b\n    type: " + LOG + "\n"
        '    message: "{% for i in [1, 2] %}{{ i }}{% endfor %}{% set y = 3 %}{{ y }}'
        ' {{ flow.id | upper }}"\n'
        "  - {id: c, type: " + LOG + ", message: '{{ broken'}\n"
    )
    path = flow(tmp_path, tasks)
    warnings = [(w.where.rsplit(":", 2)[1], w.message) for w in load_pipeline(path).warnings]
    assert warnings == [
        ("6", "expression: `inpts` is not a name a template can use here"),
        ("6", "expression: unknown function `nofunc()`"),
        ("6", "expression: unknown filter `nofilter`"),
        ("10", "expression: Syntax error in the expression `{{ broken` at line 1: missing `}}`"),
    ]
    with pytest.raises(InputError, match="inpts"):
        load_pipeline(path, options=LoadOptions(strict=True))


@pytest.mark.docker
def test_git_clone_brings_a_repository_into_the_working_directory(tmp_path: Path) -> None:
    """git.Clone (Kestra's git plugin docs): clones into the working directory the WorkingDirectory's
    tasks share, under `directory`; here by this machine's git, from any path or URL it reaches."""
    repository = tmp_path / "repository"
    repository.mkdir()
    (repository / "README").write_text("cloned content\n", encoding="utf-8")
    for command in (["init", "-q", "-b", "main"], ["add", "README"], ["commit", "-q", "-m", "first"]):
        subprocess.run(
            ["git", "-C", str(repository), "-c", "user.email=t@e", "-c", "user.name=t", *command],
            check=True,
            capture_output=True,
        )
    tasks = (
        "  - id: wd\n    type: io.kestra.plugin.core.flow.WorkingDirectory\n    tasks:\n"
        f"      - {{id: clone, type: io.kestra.plugin.git.Clone, url: '{repository}',\n"
        "          branch: main, directory: repo}\n"
        "      - id: read\n        type: io.kestra.plugin.scripts.shell.Commands\n"
        "        containerImage: busybox\n        commands: ['cat repo/README']\n"
    )
    result, reporter = run_file(flow(tmp_path, tasks))
    assert result.exit_code == 0, result.results
    assert reporter.output("read") == ["cloned content"]
    assert labelled_of(result.run_id) == []


def test_duckdb_sqlite_and_serdes_pass_data_through_the_run_storage(
    tmp_path: Path, backend: MemoryBackend, ledger: object
) -> None:
    """jdbc.duckdb.Query and jdbc.sqlite.Query (Kestra's JDBC plugins): fetchType FETCH_ONE gives `row`,
    FETCH `rows`, STORE an Ion file (`uri`); inputFiles are files of the query's working directory.
    serdes CsvToIon/IonToCsv/IonToJson convert stored files (Kestra's serdes plugins)."""
    tasks = (
        "  - id: raw\n    type: io.kestra.plugin.core.storage.Write\n"
        '    content: "n,name\\n1,a\\n2,b\\n"\n    extension: .csv\n'
        "  - {id: ion, type: io.kestra.plugin.serdes.csv.CsvToIon, from: '{{ outputs.raw.uri }}'}\n"
        "  - {id: back, type: io.kestra.plugin.serdes.csv.IonToCsv, from: '{{ outputs.ion.uri }}'}\n"
        "  - id: count\n    type: io.kestra.plugin.jdbc.duckdb.Query\n"
        "    inputFiles: {data.csv: '{{ outputs.raw.uri }}'}\n"
        "    sql: SELECT count(*) AS n, max(name) AS last FROM read_csv_auto('data.csv')\n"
        "    fetchType: FETCH_ONE\n"
        "  - id: store\n    type: io.kestra.plugin.jdbc.duckdb.Query\n"
        "    sql: SELECT 40 + 2 AS answer\n    fetchType: STORE\n"
        "  - {id: json, type: io.kestra.plugin.serdes.json.IonToJson, from: '{{ outputs.store.uri }}'}\n"
        "  - id: lite\n    type: io.kestra.plugin.jdbc.sqlite.Query\n    url: jdbc:sqlite:demo.db\n"
        "    sql: CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2); SELECT x FROM t ORDER BY x\n"
        "    fetchType: FETCH\n    outputFiles: [demo.db]\n"
        "  - id: many\n    type: io.kestra.plugin.jdbc.duckdb.Queries\n    fetchType: FETCH\n"
        "    sql: \"CREATE TABLE t AS SELECT 1 AS a; SELECT a FROM t; SELECT 'x;y' AS b\"\n"
        "  - id: lite_many\n    type: io.kestra.plugin.jdbc.sqlite.Queries\n    fetchType: FETCH_ONE\n"
        "    sql: \"CREATE TABLE u (v TEXT); INSERT INTO u VALUES ('p;q'); SELECT v FROM u; SELECT 2 AS w\"\n"
        "  - {id: show, type: " + LOG + ", message: '{{ outputs.count.row.n }} {{ outputs.count.row.last }}"
        " {{ outputs.lite.rows | length }}'}\n"
    )
    run = run_flow(flow(tmp_path, tasks), backend, ledger)
    assert run.result.exit_code == 0, run.result.results
    assert run.reporter.output("show") == ["2 b 2"]
    storage = Path(str(ledger.directory)) / "storage"  # type: ignore[attr-defined]

    def stored(uri: object) -> str:
        return (storage / str(uri).removeprefix("kestra:///")).read_text(encoding="utf-8")

    assert stored(run.get("ion").outputs["uri"]).splitlines() == ['{n:"1",name:"a"}', '{n:"2",name:"b"}']
    assert stored(run.get("back").outputs["uri"]) == "n,name\n1,a\n2,b\n"
    assert stored(run.get("json").outputs["uri"]) == '{"answer": 42}\n'
    assert run.get("lite").outputs["rows"] == [{"x": 1}, {"x": 2}]
    assert list(run.get("lite").outputs["outputFiles"]) == ["demo.db"]
    # Queries: every statement that returns rows is an output, in order; the last is also the task's own
    assert run.get("many").outputs["outputs"] == [
        {"rows": [{"a": 1}], "size": 1},
        {"rows": [{"b": "x;y"}], "size": 1},
    ]
    assert run.get("many").outputs["rows"] == [{"b": "x;y"}]
    assert run.get("lite_many").outputs["outputs"] == [
        {"row": {"v": "p;q"}, "size": 1},
        {"row": {"w": 2}, "size": 1},
    ]


def test_serdes_converts_between_avro_parquet_excel_and_xml_with_the_schemas_types(
    tmp_path: Path, backend: MemoryBackend, ledger: object
) -> None:
    """serdes.avro/parquet (Kestra's serdes plugins): `schema`, an Avro record schema, turns CSV's text into
    its types; excel.IonToExcel writes one sheet per entry of a `from` map and ExcelToIon gives `uris` by
    sheet; xml.XmlToIon's `query` is a pointer into the document. Each file is read back by its own library,
    not by the code that wrote it."""
    import duckdb
    import fastavro
    from openpyxl import load_workbook

    schema = (
        '{"type": "record", "name": "Item", "fields": [{"name": "n", "type": "long"}, '
        '{"name": "name", "type": "string"}, {"name": "price", "type": ["null", "double"]}]}'
    )
    tasks = (
        "  - id: raw\n    type: io.kestra.plugin.core.storage.Write\n"
        '    content: "n;name;price\\n1;apple;0.5\\n2;pear;\\n"\n    extension: .csv\n'
        "  - {id: ion, type: io.kestra.plugin.serdes.csv.CsvToIon, from: '{{ outputs.raw.uri }}',"
        " fieldSeparator: ';'}\n"
        "  - id: avro\n    type: io.kestra.plugin.serdes.avro.IonToAvro\n    from: '{{ outputs.ion.uri }}'\n"
        f"    schema: '{schema}'\n"
        "  - {id: from_avro, type: io.kestra.plugin.serdes.avro.AvroToIon, from: '{{ outputs.avro.uri }}'}\n"
        "  - id: parquet\n    type: io.kestra.plugin.serdes.parquet.IonToParquet\n"
        "    from: '{{ outputs.from_avro.uri }}'\n    compressionCodec: SNAPPY\n"
        f"    schema: '{schema}'\n"
        "  - {id: from_parquet, type: io.kestra.plugin.serdes.parquet.ParquetToIon,"
        " from: '{{ outputs.parquet.uri }}'}\n"
        "  - id: excel\n    type: io.kestra.plugin.serdes.excel.IonToExcel\n"
        "    from: {Fruit: '{{ outputs.from_parquet.uri }}', Raw: '{{ outputs.ion.uri }}'}\n"
        "  - {id: from_excel, type: io.kestra.plugin.serdes.excel.ExcelToIon,"
        " from: '{{ outputs.excel.uri }}', sheetsTitle: [Fruit]}\n"
        "  - {id: xml, type: io.kestra.plugin.serdes.xml.IonToXml,"
        " from: \"{{ outputs.from_excel.uris['Fruit'] }}\"}\n"
        "  - {id: from_xml, type: io.kestra.plugin.serdes.xml.XmlToIon, from: '{{ outputs.xml.uri }}',"
        " query: /items/item}\n"
        "  - {id: json, type: io.kestra.plugin.serdes.json.IonToJson, from: '{{ outputs.from_xml.uri }}'}\n"
        "  - {id: show, type: " + LOG + ", message: '{{ outputs.excel.size }} {{ outputs.from_xml.size }}'}\n"
    )
    run = run_flow(flow(tmp_path, tasks), backend, ledger)
    assert run.result.exit_code == 0, [(r.step_id, r.status, r.message) for r in run.result.results]
    assert run.reporter.output("show") == ["4 2"]
    storage = Path(str(ledger.directory)) / "storage"  # type: ignore[attr-defined]

    def stored(uri: object) -> Path:
        return storage / str(uri).removeprefix("kestra:///")

    typed = [{"n": 1, "name": "apple", "price": 0.5}, {"n": 2, "name": "pear", "price": None}]
    with stored(run.get("avro").outputs["uri"]).open("rb") as avro:
        assert list(fastavro.reader(avro)) == typed
    parquet = str(stored(run.get("parquet").outputs["uri"]))
    assert duckdb.sql(f"SELECT * FROM read_parquet('{parquet}') ORDER BY n").fetchall() == [
        (1, "apple", 0.5),
        (2, "pear", None),
    ]
    codecs = duckdb.sql(f"SELECT DISTINCT compression FROM parquet_metadata('{parquet}')").fetchall()
    assert codecs == [("SNAPPY",)]
    book = load_workbook(stored(run.get("excel").outputs["uri"]))
    assert book.sheetnames == ["Fruit", "Raw"]
    assert [list(row) for row in book["Fruit"].iter_rows(values_only=True)] == [
        ["n", "name", "price"],
        [1, "apple", 0.5],
        [2, "pear", None],
    ]
    assert [list(row) for row in book["Raw"].iter_rows(values_only=True)][1] == ["1", "apple", "0.5"]
    assert list(run.get("from_excel").outputs["uris"]) == ["Fruit"]
    xml = stored(run.get("xml").outputs["uri"]).read_text(encoding="utf-8")
    assert "<items>" in xml and "<name>apple</name>" in xml
    lines = stored(run.get("json").outputs["uri"]).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"n": 1, "name": "apple", "price": 0.5},
        {"n": 2, "name": "pear", "price": ""},
    ]


def test_a_parquet_or_avro_conversion_without_its_schema_is_refused_at_its_place(tmp_path: Path) -> None:
    path = flow(
        tmp_path,
        "  - {id: out, type: io.kestra.plugin.serdes.parquet.IonToParquet, from: 'kestra:///x/y.ion'}\n",
    )
    with pytest.raises(InputError) as caught:
        load_pipeline(path)
    assert "flow.yml:4:" in str(caught.value)
    assert "Ion to parquet needs `schema`" in str(caught.value)


@pytest.mark.docker
def test_a_postgresql_query_against_a_database_the_flow_starts(tmp_path: Path) -> None:
    """jdbc.postgresql.Query (Kestra's JDBC plugin): `url` jdbc:postgresql://host:port/db, `username`,
    `password`, fetchType FETCH gives `rows`. The flow starts its database with docker.Run (wait: false,
    a published port) and retries the query until it answers; `finally` stops it."""
    port = free_port()
    text = HEAD + (
        "tasks:\n"
        "  - id: db\n    type: io.kestra.plugin.docker.Run\n    containerImage: runner/postgres:bookworm\n"
        "    wait: false\n    env: {POSTGRES_PASSWORD: secret}\n"
        f"    portBindings: ['127.0.0.1:{port}:5432']\n"
        "  - id: query\n    type: io.kestra.plugin.jdbc.postgresql.Query\n"
        f"    url: jdbc:postgresql://localhost:{port}/postgres\n"
        "    username: postgres\n    password: secret\n"
        "    sql: SELECT 40 + 2 AS answer, current_database() AS name\n    fetchType: FETCH\n"
        "    retry: {type: constant, maxAttempt: 60, interval: PT1S}\n"
        "  - {id: show, type: "
        + LOG
        + ", message: '{{ outputs.query.rows[0].answer }} {{ outputs.query.rows[0].name }}'}\n"
        "finally:\n"
        "  - id: stop\n    type: io.kestra.plugin.docker.Stop\n"
        "    containerId: '{{ outputs.db.taskRunner.containerId }}'\n"
    )
    path = tmp_path / "flow.yml"
    path.write_text(text, encoding="utf-8")
    result, reporter = run_file(path)
    assert result.exit_code == 0, result.results
    assert reporter.output("show") == ["42 postgres"]
    assert labelled_of(result.run_id) == []


@pytest.mark.docker
def test_postgresql_copy_in_and_out_with_credentials_from_secrets(tmp_path: Path) -> None:
    """jdbc.postgresql.CopyIn loads a stored CSV file into a table (`rowCount`); CopyOut writes a query's
    rows to a new stored file (`uri`, `rowCount`); `url`, `username` and `password` are rendered, here
    from secret()."""
    port = free_port()
    url = f"jdbc:postgresql://localhost:{port}/postgres"
    secrets = {
        "SECRET_PG_PASSWORD": base64.b64encode(b"s3cret").decode(),
        "SECRET_PG_URL": base64.b64encode(url.encode()).decode(),
    }
    login = f"    url: {url}\n    username: postgres\n    password: \"{{{{ secret('PG_PASSWORD') }}}}\"\n"
    # the whole URL from a secret, as many real flows write it
    secret_login = login.replace(f"url: {url}", "url: \"{{ secret('PG_URL') }}\"")
    text = HEAD + (
        "tasks:\n"
        "  - id: db\n    type: io.kestra.plugin.docker.Run\n    containerImage: runner/postgres:bookworm\n"
        "    wait: false\n    env: {POSTGRES_PASSWORD: s3cret}\n"
        f"    portBindings: ['127.0.0.1:{port}:5432']\n"
        "  - id: table\n    type: io.kestra.plugin.jdbc.postgresql.Query\n" + login + ""
        "    sql: CREATE TABLE fruit (id int, name text, price numeric)\n"
        "    retry: {type: constant, maxAttempt: 60, interval: PT1S}\n"
        "  - id: csv\n    type: io.kestra.plugin.core.storage.Write\n"
        '    content: "id;name;price\\n1;apple;0.5\\n2;pear;\\n3;\\"fig; dried\\";2\\n"\n'
        "    extension: .csv\n"
        "  - id: load\n    type: io.kestra.plugin.jdbc.postgresql.CopyIn\n" + login + ""
        "    from: '{{ outputs.csv.uri }}'\n    table: fruit\n    format: CSV\n    header: true\n"
        "    delimiter: ';'\n"
        "  - id: export\n    type: io.kestra.plugin.jdbc.postgresql.CopyOut\n" + secret_login + ""
        "    sql: SELECT name, price FROM fruit WHERE price IS NOT NULL ORDER BY id\n"
        "    format: CSV\n    header: true\n"
        "  - {id: show, type: "
        + LOG
        + ", message: '{{ outputs.load.rowCount }} {{ outputs.export.rowCount }}'}\n"
        "finally:\n"
        "  - id: stop\n    type: io.kestra.plugin.docker.Stop\n"
        "    containerId: '{{ outputs.db.taskRunner.containerId }}'\n"
    )
    path = tmp_path / "flow.yml"
    path.write_text(text, encoding="utf-8")
    result, reporter = run_file(path, LoadOptions(env=secrets))
    assert result.exit_code == 0, [(r.step_id, r.status, r.message) for r in result.results]
    assert reporter.output("show") == ["3 2"]
    exported = next(r for r in result.results if r.step_id == "export").outputs["uri"]
    storage = Ledger().directory / "storage"
    content = (storage / str(exported).removeprefix("kestra:///")).read_text(encoding="utf-8")
    assert content.splitlines() == ["name,price", "apple,0.5", "fig; dried,2"]
    assert labelled_of(result.run_id) == []


@pytest.mark.docker
def test_mysql_queries_against_a_mariadb_server_the_flow_starts(tmp_path: Path) -> None:
    """jdbc.mysql.Queries and jdbc.mariadb.Query (Kestra's JDBC plugins): several statements run in order
    and the last one's rows are the result; fetchType FETCH_ONE gives `row`, STORE an Ion file."""
    port = free_port()
    login = f"    url: jdbc:mysql://localhost:{port}/shop\n    username: app\n    password: pw\n"
    text = HEAD + (
        "tasks:\n"
        "  - id: db\n    type: io.kestra.plugin.docker.Run\n    containerImage: runner/mariadb:bookworm\n"
        "    wait: false\n"
        "    env: {MARIADB_ROOT_PASSWORD: root, MARIADB_DATABASE: shop,"
        " MARIADB_USER: app, MARIADB_PASSWORD: pw}\n"
        f"    portBindings: ['127.0.0.1:{port}:3306']\n"
        "  - id: fill\n    type: io.kestra.plugin.jdbc.mysql.Queries\n" + login + ""
        "    sql: |\n"
        "      CREATE TABLE fruit (id INT, name VARCHAR(20), price DECIMAL(5,2));\n"
        "      INSERT INTO fruit VALUES (1, 'apple', 0.50), (2, 'pear', NULL);\n"
        "      SELECT name FROM fruit ORDER BY id;\n"
        "    fetchType: FETCH\n"
        "    retry: {type: constant, maxAttempt: 60, interval: PT1S}\n"
        "  - id: one\n    type: io.kestra.plugin.jdbc.mariadb.Query\n"
        + login.replace("jdbc:mysql:", "jdbc:mariadb:")
        + "    sql: SELECT count(*) AS n, sum(price) AS total FROM fruit\n    fetchType: FETCH_ONE\n"
        "  - {id: show, type: " + LOG + ","
        ' message: "{{ outputs.fill.rows | length }} {{ outputs.fill.rows[1].name }}'
        ' {{ outputs.one.row.n }} {{ outputs.one.row.total }}"}\n'
        "finally:\n"
        "  - id: stop\n    type: io.kestra.plugin.docker.Stop\n"
        "    containerId: '{{ outputs.db.taskRunner.containerId }}'\n"
    )
    path = tmp_path / "flow.yml"
    path.write_text(text, encoding="utf-8")
    result, reporter = run_file(path)
    assert result.exit_code == 0, [(r.step_id, r.status, r.message) for r in result.results]
    assert reporter.output("show") == ["2 pear 2 0.5"]
    assert labelled_of(result.run_id) == []


def test_a_notification_made_of_its_texts_shows_them_without_a_warning(
    tmp_path: Path, backend: MemoryBackend, ledger: object
) -> None:
    """The shape of Kestra's error-logs blueprint: a Slack alert in `errors`, its text built from
    errorLogs(); every property of a notification is part of what it would send."""
    path = flow(
        tmp_path, "  - {id: fail, type: io.kestra.plugin.core.execution.Fail, errorMessage: disk full}\n"
    )
    path.write_text(
        path.read_text(encoding="utf-8")
        + "errors:\n  - id: alert\n    type: io.kestra.plugin.slack.notifications.SlackIncomingWebhook\n"
        + "    url: http://127.0.0.1:9/hook\n"
        + "    messageText: \"failed: {{ errorLogs()[0]['message'] }}\"\n",
        encoding="utf-8",
    )
    pipeline = load_pipeline(path)
    assert pipeline.warnings == ()
    run = execute(pipeline, backend, ledger)  # type: ignore[arg-type]
    assert run.get("alert").status is S.SUCCESS
    assert run.reporter.output("alert")[1:] == ["  messageText: failed: disk full"]


def test_a_templated_task_runs_the_task_its_rendered_spec_describes(
    tmp_path: Path, backend: MemoryBackend, ledger: object
) -> None:
    """templating.TemplatedTask: `spec` is rendered when the task runs (here with an input and an
    earlier output), then runs as the task it describes, whose outputs are the TemplatedTask's. A spec
    that renders into a task that is not valid fails that task with the problem."""
    tasks = (
        "  - {id: first, type: io.kestra.plugin.core.debug.Return, format: 'Return'}\n"
        "  - id: templated\n    type: io.kestra.plugin.core.templating.TemplatedTask\n"
        "    spec: |\n"
        "      id: inner\n"
        "      type: io.kestra.plugin.core.{{ 'debug' }}.{{ outputs.first.value }}\n"
        "      format: '{{ inputs.who }} via {{ outputs.first.value }}'\n"
        "  - {id: show, type: " + LOG + ", message: '{{ outputs.templated.value }}'}\n"
        "  - id: broken\n    type: io.kestra.plugin.core.templating.TemplatedTask\n"
        "    spec: |\n      id: inner2\n      type: io.kestra.plugin.core.log.Log\n      mesage: hi\n"
    )
    top = "inputs:\n  - {id: who, type: STRING, defaults: kestra}\n"
    run = run_flow(flow(tmp_path, tasks, top), backend, ledger)
    assert run.reporter.output("show") == ["kestra via Return"]
    assert run.get("templated").outputs["value"] == "kestra via Return"
    assert run.get("broken").status is S.FAILED
    assert "the rendered task is not valid" in run.get("broken").message


def test_the_process_task_runner_runs_on_this_machine_only_when_allowed(
    tmp_path: Path, backend: MemoryBackend, ledger: object
) -> None:
    """With --allow-host-process, a task of Kestra's Process task runner is a process of this machine: in a
    working directory of its own (`workingDir`) that holds its input files and is removed afterwards; its
    output files are kept, `::{"outputs"}::` lines set `vars`, `warningOnStdErr` makes a task that wrote
    to its standard error a WARNING, and what it leaves running in the background is killed with it."""
    marker = tmp_path / "ran-on-this-machine"
    tasks = (
        "  - id: work\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    taskRunner: {type: io.kestra.plugin.core.runner.Process}\n"
        "    warningOnStdErr: true\n"
        "    inputFiles: {data.txt: 'three words here'}\n"
        "    outputFiles: ['*.out']\n"
        "    commands:\n"
        f"      - touch {marker}\n"
        '      - echo "{{ workingDir }}" > where.out\n'
        "      - wc -w < data.txt > count.out\n"
        "      - 'echo ''::{\"outputs\": {\"words\": 3}}::'''\n"
        "      - echo careful >&2\n"
        "      - sleep 317 &\n"
        "  - {id: quiet, type: io.kestra.plugin.scripts.shell.Commands,"
        " taskRunner: {type: io.kestra.plugin.core.runner.Process}, commands: ['echo fine']}\n"
        "  - {id: show, type: " + LOG + ", message: '{{ outputs.work.vars.words }}'}\n"
    )
    path = flow(tmp_path, tasks)
    run = run_flow(path, backend, ledger, allow_host_process=True)
    assert marker.exists()
    assert run.get("work").status is S.WARNING and "standard error" in run.get("work").message
    assert run.get("quiet").status is S.SUCCESS
    assert run.reporter.output("show") == ["3"]
    assert "careful" in run.reporter.output("work")
    storage = Path(str(ledger.directory)) / "storage"  # type: ignore[attr-defined]
    kept = run.get("work").outputs["outputFiles"]
    assert sorted(kept) == ["count.out", "where.out"]  # type: ignore[call-overload]
    read = {
        name: (storage / uri.removeprefix("kestra:///")).read_text().strip() for name, uri in kept.items()
    }  # type: ignore[attr-defined]
    assert read["count.out"] == "3"
    folder = Path(read["where.out"])
    assert folder.is_absolute() and not folder.exists()  # its own folder, removed after the task
    left = subprocess.run(["pgrep", "-f", "sleep 317"], capture_output=True, text=True, check=False)
    assert left.stdout == ""
    contained = load_pipeline(path)  # not allowed: a container of the task's image runs it
    action = contained.steps[0].action  # type: ignore[union-attr]
    assert action.on_host is False and action.image == "ubuntu"
    assert any("--allow-host-process runs them on this machine" in str(w) for w in contained.warnings)


@pytest.mark.docker
def test_warning_on_std_err_makes_a_container_task_that_wrote_to_stderr_a_warning(tmp_path: Path) -> None:
    """warningOnStdErr: true, as Kestra's script tasks had it by default before 0.23: standard error
    output ends the task in WARNING; without it (Kestra's default now) the task succeeds."""
    text = HEAD + (
        "tasks:\n"
        "  - id: loud\n    type: io.kestra.plugin.scripts.shell.Commands\n    warningOnStdErr: true\n"
        "    commands: ['echo to the error stream >&2']\n"
        "  - id: plain\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    commands: ['echo to the error stream >&2']\n"
        "  - id: clean\n    type: io.kestra.plugin.scripts.shell.Commands\n    warningOnStdErr: true\n"
        "    commands: ['echo \"in {{ workingDir }}\"']\n"
    )
    path = tmp_path / "flow.yml"
    path.write_text(text, encoding="utf-8")
    result, reporter = run_file(path)
    assert reporter.output("clean") == ["in /kestra/working-dir"]  # the task's own working directory
    assert statuses(result) == {"loud": S.WARNING, "plain": S.SUCCESS, "clean": S.SUCCESS}
    assert result.exit_code == 0
    assert labelled_of(result.run_id) == []


def test_what_real_flows_write_before_the_run_starts(
    tmp_path: Path, backend: MemoryBackend, ledger: object, cli: Cli
) -> None:
    """A SELECT's values from `expression` (kv() of a JSON list); an input default naming
    execution.startDate and trigger (Kestra renders defaults for the execution about to start); port
    bindings made of inputs; a cloud task runner (Kubernetes) and the older `docker: {image}` options,
    which run in a container of the image here, with a note."""
    assert cli("kv", "set", "company.team", "sizes", '["S", "M"]', "--json").code == 0
    try:
        check_before_the_run(tmp_path, backend, ledger)
    finally:  # the store is the state directory's, which other tests read
        assert cli("kv", "delete", "company.team", "sizes").code == 0


def check_before_the_run(tmp_path: Path, backend: MemoryBackend, ledger: object) -> None:
    top = (
        "inputs:\n"
        "  - {id: size, type: SELECT, expression: \"{{ kv('sizes') }}\"}\n"
        "  - {id: day, type: STRING,"
        " defaults: \"{{ (trigger.date ?? execution.startDate) | date('yyyy') }}\"}\n"
        "  - {id: port, type: INT, defaults: 18080}\n"
    )
    tasks = (
        "  - {id: show, type: " + LOG + ", message: '{{ inputs.size }} {{ inputs.day }}'}\n"
        "  - id: web\n    type: io.kestra.plugin.docker.Run\n    containerImage: busybox\n"
        "    commands: ['true']\n    portBindings: ['127.0.0.1:{{ inputs.port }}:80']\n"
        "  - id: k8s\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    taskRunner: {type: io.kestra.plugin.ee.kubernetes.runner.Kubernetes, namespace: ci}\n"
        "    containerImage: busybox\n    commands: ['echo on k8s']\n"
        "  - id: old\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    docker: {image: busybox}\n    commands: ['echo old options']\n"
    )
    path = flow(tmp_path, tasks, top)
    run = run_flow(path, backend, ledger, variables={"size": "M"})
    assert run.result.exit_code == 0, [(r.step_id, r.status, r.message) for r in run.result.results]
    year = str(datetime.now(UTC).year)
    assert run.reporter.output("show") == [f"M {year}"]
    pipeline = load_pipeline(path, options=LoadOptions(variables={"size": "M"}))
    web, k8s, old = pipeline.steps[1:4]
    assert web.action.ports[0].host_port == 18080  # type: ignore[union-attr]
    assert k8s.action.image == "busybox" and old.action.image == "busybox"  # type: ignore[union-attr]
    assert any("task runner Kubernetes is not on this machine" in str(w) for w in pipeline.warnings)
    assert any("namespace are not used" in str(w) for w in pipeline.warnings)
    with pytest.raises(InputError) as refused:
        load_pipeline(path, options=LoadOptions(variables={"size": "XL"}))
    assert "input 'size' (SELECT): 'XL' is not one of the values" in str(refused.value)
