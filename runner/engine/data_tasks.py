"""Data tasks the runner does itself: SQL against DuckDB, SQLite or a server, and Ion, Kestra's own file
format (one value per line, as Kestra's FileSerde writes it), which the conversions of `serdes` share."""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runner.engine.status import StepStatus
from runner.globs import matches
from runner.model import CopyAction, SqlAction


@dataclass(frozen=True)
class DataContext:
    render: Callable[[str, dict[str, Any]], str]  # a template, with these names besides the run's
    log: Callable[[str], None]
    read_stored: Callable[[str], bytes | None]  # a stored file's content by URI, None when not stored
    store_file: Callable[[str, bytes], str]  # (name, content) -> URI
    engine_host: str = "127.0.0.1"  # where this process reaches the ports the engine publishes


@dataclass
class DataResult:
    status: StepStatus
    message: str = ""
    outputs: dict[str, Any] | None = None


def plain(value: Any) -> Any:
    """A database value as Kestra's outputs carry it: dates and times as ISO text, decimals as numbers."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value % 1 else int(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def ion_lines(rows: Iterable[Any]) -> bytes:
    from amazon.ion import simpleion

    return b"".join(
        simpleion.dumps(row, binary=False, omit_version_marker=True).encode("utf-8") + b"\n" for row in rows
    )


def read_ion(data: bytes) -> list[Any]:
    from amazon.ion import simpleion

    if not data.strip():
        return []
    values = simpleion.loads(data.decode("utf-8"), single_value=False)
    return [_from_ion(value) for value in values]


def _from_ion(value: Any) -> Any:
    """Ion's values (subclasses of dict, list, str, int…) as plain Python ones."""
    from amazon.ion.simple_types import IonPyNull

    if value is None or isinstance(value, IonPyNull):  # a typed null of Ion (null.string…) too
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): _from_ion(item) for key, item in value.items()}
    if isinstance(value, Sequence):
        return [_from_ion(item) for item in value]
    for kind in (bool, int, float):
        if isinstance(value, kind):
            return kind(value)
    return plain(value)


def without_scheme(url: str) -> str:
    """A JDBC URL's place (`//host:port/db`, a file) without its `jdbc:NAME:` scheme."""
    return re.sub(r"^jdbc:[A-Za-z0-9]+:", "", url.strip())


def run_sql(action: SqlAction, context: DataContext) -> DataResult:
    with tempfile.TemporaryDirectory(prefix="runner-sql-") as folder:
        names = {"workingDir": folder}
        for name, value in action.input_files.items():
            content = context.render(value, names)
            stored = context.read_stored(content.strip())
            target = Path(folder) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(stored if stored is not None else content.encode("utf-8"))
        sql = context.render(action.sql, names)
        database = without_scheme(context.render(action.database, names))
        # credentials are often secret('…') or inputs, rendered like the rest
        action = action.model_copy(
            update={
                "username": context.render(action.username, names),
                "password": context.render(action.password, names),
            }
        )
        if database and not database.startswith("/") and database != ":memory:":
            database = str(Path(folder) / database)  # a database file named alone is in the working directory
        try:
            results, count = _execute(action, sql, database, folder, context.engine_host)
        except Exception as exc:  # every driver has its own error classes: the message is what matters
            return DataResult(StepStatus.FAILED, f"{action.engine}: {exc}")
        fetched = [_fetched(action.fetch, columns, rows, context) for columns, rows in results]
        outputs: dict[str, Any] = dict(fetched[-1]) if fetched else {"size": 0}
        if action.fetch == "NONE":
            outputs = {"size": count}
        if action.several:  # Queries: one output per statement that returned rows, in order
            outputs["outputs"] = fetched
        if action.output_files:
            kept: dict[str, str] = {}
            for path in sorted(Path(folder).rglob("*")):
                relative = path.relative_to(folder).as_posix()
                if path.is_file() and matches(relative, action.output_files):
                    kept[relative] = context.store_file(relative, path.read_bytes())
            outputs["outputFiles"] = kept
        rows_read = sum(len(rows) for _, rows in results)
        context.log(f"{action.engine}: {rows_read} row(s) from {len(results)} result(s)")
        return DataResult(StepStatus.SUCCESS, outputs=outputs)


def _fetched(
    fetch: str, columns: list[str], rows: list[tuple[Any, ...]], context: DataContext
) -> dict[str, Any]:
    """One result as Kestra's fetchType gives it."""
    records = [{column: plain(value) for column, value in zip(columns, row, strict=False)} for row in rows]
    if fetch == "FETCH":
        return {"rows": records, "size": len(records)}
    if fetch == "FETCH_ONE":
        return {"row": records[0] if records else None, "size": min(len(records), 1)}
    if fetch == "STORE":
        return {"uri": context.store_file("result.ion", ion_lines(records)), "size": len(records)}
    return {"size": len(records)}


Result = tuple[list[str], list[tuple[Any, ...]]]  # (columns, rows) of a statement that returned rows


def _execute(
    action: SqlAction, sql: str, database: str, folder: str, engine_host: str = "127.0.0.1"
) -> tuple[list[Result], int]:
    """The results of the statements of `sql` that return rows, in order, and the rows the last statement
    touched; relative file names in the SQL are the working directory's, as in Kestra (not this process's
    current folder, which threads share)."""
    if action.engine == "duckdb":
        return _duckdb(sql, database, folder)
    if action.engine == "sqlite":
        return _sqlite(sql, database)
    if action.engine == "postgres":
        return _postgres(action, sql, database, engine_host)
    return _mysql(action, sql, database, engine_host)


# statements of DuckDB that answer with rows; the others answer with a count
_DUCKDB_ROWS = {"SELECT", "PRAGMA", "EXPLAIN", "CALL", "RELATION", "LOGICAL_PLAN"}


def _duckdb(sql: str, database: str, folder: str) -> tuple[list[Result], int]:
    import duckdb

    connection = duckdb.connect(database or ":memory:")
    try:
        connection.execute(f"SET file_search_path = '{folder}'")
        results: list[Result] = []
        count = 0
        for statement in connection.extract_statements(sql):
            cursor = connection.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
            if statement.type.name in _DUCKDB_ROWS:
                results.append(([column[0] for column in cursor.description or []], rows))
                count = len(rows)
            else:
                count = int(rows[0][0]) if rows and rows[0] and isinstance(rows[0][0], int) else 0
        return results, count
    finally:
        connection.close()


def _sqlite(sql: str, database: str) -> tuple[list[Result], int]:
    import sqlite3

    lite = sqlite3.connect(database or ":memory:")
    try:
        results: list[Result] = []
        count = 0
        cursor = lite.cursor()
        for statement in _sqlite_statements(sql):
            cursor.execute(statement)
            if cursor.description:
                rows = cursor.fetchall()
                results.append(([column[0] for column in cursor.description], rows))
                count = len(rows)
            else:
                count = max(cursor.rowcount, 0)
        lite.commit()
        return results, count
    finally:
        lite.close()


def _sqlite_statements(sql: str) -> list[str]:
    """The statements of a script, each cut where SQLite itself judges it complete: a `;` inside a string
    or a trigger's body does not end one."""
    import sqlite3

    statements: list[str] = []
    start = 0
    for index, character in enumerate(sql):
        if character == ";" and sqlite3.complete_statement(sql[start : index + 1]):
            statements.append(sql[start : index + 1])
            start = index + 1
    statements.append(sql[start:])
    return [statement for statement in statements if statement.strip()]


def _server(database: str, default_port: int, engine_host: str) -> tuple[str, int, str, dict[str, str]]:
    """(host, port, database name, query parameters) of a JDBC URL's `//host:port/name?k=v`. The engine's
    host names (localhost for a remote engine, host.docker.internal) mean where its published ports are,
    as for the Redis tasks."""
    parts = urlsplit(database if database.startswith("//") else "//" + database)
    host = parts.hostname or "localhost"
    if host == "host.docker.internal" or (
        engine_host not in ("127.0.0.1", "localhost") and host in ("localhost", "127.0.0.1")
    ):
        host = engine_host
    query = dict(item.split("=", 1) for item in parts.query.split("&") if "=" in item)
    return host, parts.port or default_port, parts.path.lstrip("/"), query


def _postgres_connection(database: str, username: str, password: str, engine_host: str) -> Any:
    import pg8000.dbapi

    host, port, name, query = _server(database, 5432, engine_host)
    return pg8000.dbapi.connect(
        host=host,
        port=port,
        database=name or None,
        user=username or query.get("user") or "postgres",
        password=password or query.get("password") or None,
        timeout=30,
    )


def _postgres(action: SqlAction, sql: str, database: str, engine_host: str) -> tuple[list[Result], int]:
    connection = _postgres_connection(database, action.username, action.password, engine_host)
    try:
        cursor = connection.cursor()
        cursor.execute(sql)  # several statements at once: the server answers with the last one's rows
        results: list[Result] = []
        if cursor.description:
            results.append(
                ([column[0] for column in cursor.description], [tuple(r) for r in cursor.fetchall()])
            )
        connection.commit()
        return results, max(cursor.rowcount, len(results[-1][1]) if results else 0)
    finally:
        connection.close()


def _mysql(action: SqlAction, sql: str, database: str, engine_host: str) -> tuple[list[Result], int]:
    """`//host:port/name` of a jdbc:mysql: or jdbc:mariadb: URL, by PyMySQL; several statements run in
    order, each one's rows a result."""
    import pymysql

    host, port, name, query = _server(database, 3306, engine_host)
    connection = pymysql.connect(
        host=host,
        port=port,
        database=name or None,
        user=action.username or query.get("user") or "root",
        password=action.password or query.get("password") or "",
        connect_timeout=30,
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
    )
    try:
        results: list[Result] = []
        with connection.cursor() as cursor:
            cursor.execute(sql)
            while True:
                if cursor.description:
                    rows = [tuple(row) for row in cursor.fetchall()]
                    results.append(([column[0] for column in cursor.description], rows))
                    count = len(rows)
                else:
                    count = max(cursor.rowcount, 0)
                if not cursor.nextset():
                    break
        connection.commit()
        return results, count
    finally:
        connection.close()


def run_copy(action: CopyAction, context: DataContext) -> DataResult:
    """COPY ... FROM STDIN with the stored file, or COPY ... TO STDOUT into a new one."""
    names: dict[str, Any] = {}
    options = ", ".join(_copy_option(name, value) for name, value in action.options.items())
    columns = f" ({', '.join(_identifier(column) for column in action.columns)})" if action.columns else ""
    stream = io.BytesIO()
    if action.direction == "in":
        uri = context.render(action.source, names).strip()
        data = context.read_stored(uri)
        if data is None:
            return DataResult(StepStatus.FAILED, f"{uri} names no file of this run's storage")
        stream = io.BytesIO(data)
        statement = f"COPY {_table(action.table)}{columns} FROM STDIN"
    else:
        query = context.render(action.query, names).strip().rstrip(";")
        what = f"({query})" if query else f"{_table(action.table)}{columns}"
        statement = f"COPY {what} TO STDOUT"
    if options:
        statement += f" WITH ({options})"
    database = without_scheme(context.render(action.database, names))
    try:
        connection = _postgres_connection(
            database,
            context.render(action.username, names),
            context.render(action.password, names),
            context.engine_host,
        )
        try:
            cursor = connection.cursor()
            cursor.execute(statement, stream=stream)
            count = cursor.rowcount
            connection.commit()
        finally:
            connection.close()
    except Exception as exc:  # the driver's own error classes: the message is what matters
        return DataResult(StepStatus.FAILED, f"postgres COPY: {exc}")
    context.log(f"COPY: {count} row(s) {'loaded' if action.direction == 'in' else 'exported'}")
    if action.direction == "in":
        return DataResult(StepStatus.SUCCESS, outputs={"rowCount": count})
    extension = ".csv" if str(action.options.get("FORMAT", "")).upper() == "CSV" else ".txt"
    uri = context.store_file("copy" + extension, stream.getvalue())
    return DataResult(StepStatus.SUCCESS, outputs={"rowCount": count, "uri": uri})


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(name: str) -> str:
    """A table name as written, schema-qualified or not; quoted only where it must be."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?", name):
        return name
    return _identifier(name)


def _copy_option(name: str, value: str | bool | tuple[str, ...]) -> str:
    if isinstance(value, bool):
        return f"{name} {'true' if value else 'false'}"
    if isinstance(value, tuple):
        return f"{name} ({', '.join(_identifier(column) for column in value)})"
    if name == "FORMAT":
        return f"FORMAT {value.lower()}"
    return f"{name} '" + value.replace("'", "''") + "'"
