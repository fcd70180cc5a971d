"""Conversions between stored files, as Kestra's serdes plugins make them: every format has a reader (bytes
to records) and a writer (records to bytes), registered by name, and Ion (one value per line) is the format
the other tasks of a flow read and write."""

from __future__ import annotations

import csv
import io
import json
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from runner.engine.data_tasks import DataContext, DataResult, ion_lines, plain, read_ion
from runner.engine.status import StepStatus
from runner.model import SerdesAction

Records = list[Any]


@dataclass(frozen=True)
class Format:
    extension: str
    read: Callable[[bytes, SerdesAction], Records]
    write: Callable[[Records, SerdesAction], bytes]


def run_serdes(action: SerdesAction, context: DataContext) -> DataResult:
    try:
        if action.read == "xlsx":
            return _from_workbook(action, context)
        if action.write == "xlsx" and isinstance(action.source, Mapping):
            sheets = {title: _records_of(uri, action, context) for title, uri in action.source.items()}
        else:
            source = action.source if isinstance(action.source, str) else ""
            sheets = {action.sheet_title: _records_of(source, action, context)}
        if action.write == "xlsx":
            content = _workbook(sheets, action)
        else:
            content = FORMATS[action.write].write(next(iter(sheets.values())), action)
    except (LookupError, ValueError, TypeError) as exc:
        return DataResult(StepStatus.FAILED, f"{action.read} to {action.write}: {exc}")
    size = sum(len(records) for records in sheets.values())
    extension = ".xlsx" if action.write == "xlsx" else FORMATS[action.write].extension
    uri = context.store_file("converted" + extension, content)
    context.log(f"{size} record(s) written as {action.write}")
    return DataResult(StepStatus.SUCCESS, outputs={"uri": uri, "size": size})


def _records_of(source: str, action: SerdesAction, context: DataContext) -> Records:
    uri = context.render(source, {}).strip()
    data = context.read_stored(uri)
    if data is None:
        raise LookupError(f"{uri} names no file of this run's storage")
    return FORMATS[action.read].read(data, action)


# --- text formats -----------------------------------------------------------------------------------


def _read_csv(data: bytes, action: SerdesAction) -> Records:
    text = data.decode(action.charset)
    reader = csv.reader(io.StringIO(text), delimiter=action.separator, quotechar=action.quote)
    rows = list(reader)[action.skip_rows :]
    if action.skip_empty_rows:
        rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not action.header:
        return [list(row) for row in rows]
    header, *body = rows or [[]]
    return [dict(zip(header, row, strict=False)) for row in body]


def _write_csv(records: Records, action: SerdesAction) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=action.separator, quotechar=action.quote, lineterminator="\n")
    writer.writerows(_table(records, action.header, _cell))
    return buffer.getvalue().encode(action.charset)


def _table(records: Records, header: bool, cell: Callable[[Any], Any]) -> Iterator[list[Any]]:
    """The rows of a table of the records: their columns first (when `header`), then one row per record,
    a map by those columns, a list as it is, anything else as one cell."""
    columns = _columns(records)
    if columns and header:
        yield list(columns)
    for record in records:
        if isinstance(record, dict):
            yield [cell(record.get(column)) for column in columns]
        elif isinstance(record, list):
            yield [cell(value) for value in record]
        else:
            yield [cell(record)]


def _columns(records: Records) -> list[str]:
    """Every key of the records, in the order they first appear: a later record may have more."""
    seen: dict[str, None] = {}
    for record in records:
        if isinstance(record, dict):
            seen.update(dict.fromkeys(record))
    return list(seen)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(plain(value))


def _read_json(data: bytes, action: SerdesAction) -> Records:
    text = data.decode(action.charset)
    value = json.loads(text) if text.strip() else []
    return value if isinstance(value, list) else [value]


def _write_json(records: Records, action: SerdesAction) -> bytes:
    return json.dumps([_jsonable(record) for record in records]).encode(action.charset)


def _read_jsonl(data: bytes, action: SerdesAction) -> Records:
    return [json.loads(line) for line in data.decode(action.charset).splitlines() if line.strip()]


def _write_jsonl(records: Records, action: SerdesAction) -> bytes:
    return "".join(json.dumps(_jsonable(record)) + "\n" for record in records).encode(action.charset)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return plain(value)


def _read_ion(data: bytes, action: SerdesAction) -> Records:
    return read_ion(data)


def _write_ion(records: Records, action: SerdesAction) -> bytes:
    return ion_lines(records)


def _read_xml(data: bytes, action: SerdesAction) -> Records:
    """The document as one map, `{root: {...}}`, as Kestra's reader builds it (attributes and child
    elements are keys, a repeated child a list, text "content" beside them); `query`, a JSON pointer into
    that map such as `/catalog/book`, picks what becomes the records."""
    root = ElementTree.fromstring(data)
    value: Any = {root.tag: _element(root, set(action.force_list))}
    for part in [part for part in action.query.split("/") if part]:
        if isinstance(value, list) and part.isdigit():
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise LookupError(f"query {action.query}: the document has nothing at {part!r}")
    return list(value) if isinstance(value, list) else [value]


def _element(element: ElementTree.Element, force_list: set[str]) -> Any:
    children = list(element)
    text = (element.text or "").strip()
    if not children and not element.attrib:
        return _scalar(text)
    value: dict[str, Any] = {key: _scalar(item) for key, item in element.attrib.items()}
    for child in children:
        item = _element(child, force_list)
        if child.tag in value:
            previous = value[child.tag]
            value[child.tag] = [*previous, item] if isinstance(previous, list) else [previous, item]
        else:
            value[child.tag] = [item] if child.tag in force_list else item
    if text:
        value["content"] = _scalar(text)
    return value


def _scalar(text: str) -> Any:
    """Numbers and booleans of an XML text as values, the rest as text."""
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _write_xml(records: Records, action: SerdesAction) -> bytes:
    root = ElementTree.Element(action.root_name)
    for record in records:
        _xml_value(ElementTree.SubElement(root, "item"), record)
    ElementTree.indent(root)
    text: bytes = ElementTree.tostring(root, encoding=action.charset, xml_declaration=True)
    return text


def _xml_value(element: ElementTree.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            for one in item if isinstance(item, list) else [item]:
                _xml_value(ElementTree.SubElement(element, str(key)), one)
    elif value is not None:
        element.text = _cell(value)


# --- binary formats -----------------------------------------------------------------------------------


def _avro_schema(action: SerdesAction) -> dict[str, Any]:
    if not action.schema_text.strip():
        raise ValueError("`schema` is required: the Avro schema of the records, as JSON")
    schema = json.loads(action.schema_text)
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise ValueError('`schema` must be an Avro record schema: {"type": "record", "fields": [...]}')
    return schema


def _read_avro(data: bytes, action: SerdesAction) -> Records:
    import fastavro

    return [_jsonable(record) for record in fastavro.reader(io.BytesIO(data))]


def _write_avro(records: Records, action: SerdesAction) -> bytes:
    import fastavro

    schema = _avro_schema(action)
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), [_conform(record, schema) for record in records])
    return buffer.getvalue()


def _conform(record: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """A record with its values turned into the schema's types: text from a CSV file is numbers, booleans
    and dates where the schema says so, as Kestra's converter reads them."""
    if not isinstance(record, dict):
        raise TypeError(f"a record is a map of fields, not {type(record).__name__}: {record!r}")
    return {
        field["name"]: _typed(record.get(field["name"], field.get("default")), field["type"], field["name"])
        for field in schema["fields"]
    }


def _typed(value: Any, avro_type: Any, name: str) -> Any:
    if isinstance(avro_type, list):  # a union: null when empty, else the first branch that takes it
        if (value is None or value == "") and "null" in avro_type:
            return None
        for branch in [branch for branch in avro_type if branch != "null"]:
            try:
                return _typed(value, branch, name)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"field {name}: {value!r} fits none of {avro_type}")
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "date":
            return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
        if logical in ("timestamp-millis", "timestamp-micros"):
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if avro_type.get("type") == "record":
            return _conform(value, avro_type)
        if avro_type.get("type") == "array":
            return [_typed(item, avro_type["items"], name) for item in value or []]
        return _typed(value, avro_type.get("type"), name)
    if value is None:
        if avro_type == "null":
            return None
        raise ValueError(f"field {name} has no value and its type {avro_type} is not nullable")
    converters: dict[str, Callable[[Any], Any]] = {
        "string": lambda v: json.dumps(v) if isinstance(v, dict | list) else str(v),
        "int": lambda v: int(v),
        "long": lambda v: int(v),
        "float": lambda v: float(v),
        "double": lambda v: float(v),
        "boolean": _boolean,
        "bytes": lambda v: v if isinstance(v, bytes) else str(v).encode(),
    }
    converter = converters.get(str(avro_type))
    return converter(value) if converter else value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{value!r} is not a boolean")


_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "long": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "bytes": "BLOB",
    "date": "DATE",
    "timestamp-millis": "TIMESTAMPTZ",
    "timestamp-micros": "TIMESTAMPTZ",
}


def _duckdb_type(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        branches = [branch for branch in avro_type if branch != "null"]
        return _duckdb_type(branches[0]) if len(branches) == 1 else "JSON"
    if isinstance(avro_type, dict):
        return _DUCKDB_TYPES.get(str(avro_type.get("logicalType")), _duckdb_type(avro_type.get("type")))
    return _DUCKDB_TYPES.get(str(avro_type), "JSON")


def _read_parquet(data: bytes, action: SerdesAction) -> Records:
    import duckdb

    with tempfile.TemporaryDirectory(prefix="runner-serdes-") as folder:
        path = Path(folder) / "data.parquet"
        path.write_bytes(data)
        connection = duckdb.connect()
        try:
            cursor = connection.execute("SELECT * FROM read_parquet($path)", {"path": str(path)})
            columns = [column[0] for column in cursor.description or []]
            return [
                {column: _jsonable(value) for column, value in zip(columns, row, strict=False)}
                for row in cursor.fetchall()
            ]
        finally:
            connection.close()


def _write_parquet(records: Records, action: SerdesAction) -> bytes:
    """Through DuckDB: the records, conformed to the schema, as JSON lines it reads with the schema's
    column types, then written with the codec asked for."""
    import duckdb

    schema = _avro_schema(action)
    codec = {"UNCOMPRESSED": "uncompressed", "SNAPPY": "snappy", "GZIP": "gzip", "ZSTD": "zstd"}.get(
        action.compression.upper()
    )
    if codec is None:
        raise ValueError(f"compressionCodec {action.compression}: use UNCOMPRESSED, SNAPPY, GZIP or ZSTD")
    columns = {field["name"]: _duckdb_type(field["type"]) for field in schema["fields"]}
    with tempfile.TemporaryDirectory(prefix="runner-serdes-") as folder:
        lines = Path(folder) / "records.jsonl"
        lines.write_bytes(_write_jsonl([_conform(record, schema) for record in records], action))
        target = Path(folder) / "data.parquet"
        struct = "{" + ", ".join(f"{_quote(name)}: {_quote(kind)}" for name, kind in columns.items()) + "}"
        connection = duckdb.connect()
        try:
            relation = f"read_json({_quote(str(lines))}, format='newline_delimited', columns={struct})"
            if not records:
                relation = f"(SELECT * FROM {relation} LIMIT 0)"
            connection.execute(
                f"COPY (SELECT * FROM {relation}) TO {_quote(str(target))} (FORMAT parquet, CODEC '{codec}')"
            )
        finally:
            connection.close()
        return target.read_bytes()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _workbook(sheets: dict[str, Records], action: SerdesAction) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active) if book.active is not None else None
    for title, records in sheets.items():
        sheet = book.create_sheet(title=title[:31])  # Excel's limit on a sheet's name
        for row in _table(records, action.header, _excel_cell):
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _excel_cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str | datetime | date):
        return value
    return _cell(value)


def _from_workbook(action: SerdesAction, context: DataContext) -> DataResult:
    """ExcelToIon: one Ion file per sheet, in `uris` by the sheet's title."""
    from openpyxl import load_workbook

    source = action.source if isinstance(action.source, str) else ""
    uri = context.render(source, {}).strip()
    data = context.read_stored(uri)
    if data is None:
        return DataResult(StepStatus.FAILED, f"{uri} names no file of this run's storage")
    book = load_workbook(io.BytesIO(data), read_only=True, data_only=action.value_render != "FORMULA")
    titles = action.sheets or list(book.sheetnames)
    missing = [title for title in titles if title not in book.sheetnames]
    if missing:
        return DataResult(
            StepStatus.FAILED, f"no sheet {', '.join(missing)} in the workbook: it has {book.sheetnames}"
        )
    uris: dict[str, str] = {}
    size = 0
    for title in titles:
        rows = [list(row) for row in book[title].iter_rows(values_only=True)][action.skip_rows :]
        if action.skip_empty_rows:
            rows = [row for row in rows if any(cell not in (None, "") for cell in row)]
        if action.header and rows:
            header = [f"column{index}" if cell is None else str(cell) for index, cell in enumerate(rows[0])]
            records: Records = [dict(zip(header, row, strict=False)) for row in rows[1:]]
        else:
            records = rows
        uris[title] = context.store_file(f"{title}.ion", ion_lines(records))
        size += len(records)
    context.log(f"{size} record(s) read from {len(titles)} sheet(s)")
    return DataResult(StepStatus.SUCCESS, outputs={"uris": uris, "size": size})


FORMATS: dict[str, Format] = {
    "csv": Format(".csv", _read_csv, _write_csv),
    "json": Format(".json", _read_json, _write_json),
    "jsonl": Format(".jsonl", _read_jsonl, _write_jsonl),
    "ion": Format(".ion", _read_ion, _write_ion),
    "xml": Format(".xml", _read_xml, _write_xml),
    "avro": Format(".avro", _read_avro, _write_avro),
    "parquet": Format(".parquet", _read_parquet, _write_parquet),
}
