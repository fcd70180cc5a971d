"""Flow inputs: declared with a type, given with `--input NAME=VALUE`, checked before anything starts."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, model_validator

from runner.errors import InputError
from runner.expressions import ExpressionError, render
from runner.formats.schema import Spec, validate
from runner.formats.source import Document, Loc

InputType = Literal[
    "STRING",
    "INT",
    "FLOAT",
    "BOOLEAN",
    "DATE",
    "DATETIME",
    "TIME",
    "DURATION",
    "JSON",
    "URI",
    "EMAIL",
    "SELECT",
    "MULTISELECT",
    "ARRAY",
    "SECRET",
    "YAML",
    "ENUM",
    "BOOL",
    "FILE",
]
INPUT_ID = re.compile(r"^[a-zA-Z0-9][.a-zA-Z0-9_-]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ISO_DURATION = re.compile(r"^-?P(?:\d+(?:\.\d+)?[YMWD])*(?:T(?:\d+(?:\.\d+)?[HMS])+)?$")


class InputSpec(Spec):
    id: str
    type: InputType = "STRING"
    description: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")
    required: bool = True
    defaults: Any = None
    prefill: Any = None  # what Kestra's form shows first: taken when nothing is given and no default
    values: list[Any] | None = None
    expression: str | None = None  # SELECT and MULTISELECT: the values, from an expression (a JSON list)
    item_type: InputType | None = Field(default=None, alias="itemType")
    allow_custom_value: bool = Field(default=False, alias="allowCustomValue")
    depends_on: Any = Field(default=None, alias="dependsOn")
    validator: str | None = None
    min: Any = None
    max: Any = None
    after: Any = None
    before: Any = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "id" not in data and "name" in data:
            data = {**data, "id": data["name"]}
            del data["name"]
        return data


def resolve_inputs(
    document: Document,
    declared: Any,
    given: dict[str, str],
    *,
    required: bool = True,
    context: dict[str, Any] | None = None,
    check_only: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """The typed value of every input, and the values of SECRET inputs (to mask them)."""
    if declared is None:
        declared = []
    if not isinstance(declared, list):
        raise document.error(("inputs",), "`inputs` is a list of {id, type, ...}", None)
    values: dict[str, Any] = {}
    secrets: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(declared):
        loc: Loc = ("inputs", index)
        spec = validate(document, InputSpec, raw, loc)
        if not INPUT_ID.match(spec.id):
            raise document.error(
                (*loc, "id"), f"'{spec.id}' is not a valid input id", "use letters, digits, '.', '_', '-'"
            )
        if spec.id in seen:
            raise document.error(
                (*loc, "id"), f"Duplicate input id with name [{spec.id}]", "give each input its own id"
            )
        seen.add(spec.id)
        if spec.expression is not None and spec.values is None:
            spec = _values_from_expression(document, spec, loc, context or {}, check_only)
        if spec.id in given:
            raw_value: Any = given[spec.id]
        elif spec.defaults is not None or spec.prefill is not None:
            raw_value = spec.defaults if spec.defaults is not None else spec.prefill
            if isinstance(raw_value, str) and "{{" in raw_value:  # a default may be an expression
                try:
                    raw_value = render(raw_value, context or {})
                except ExpressionError as exc:
                    raise document.error((*loc, "defaults"), f"input '{spec.id}': {exc}", None) from None
        elif spec.required and required:
            raise document.error(
                loc,
                f"input '{spec.id}' is required and has no default",
                f"give it with --input {spec.id}=VALUE",
            )
        else:
            values[spec.id] = None
            continue
        try:
            values[spec.id] = convert(spec.type, raw_value, spec)
        except ValueError as exc:
            raise document.error(loc, f"input '{spec.id}' ({spec.type}): {exc}", _hint(spec)) from None
        if spec.type == "SECRET":
            secrets.append(str(values[spec.id]))
    unknown = sorted(set(given) - seen)
    if unknown:
        raise InputError(
            f"--input {unknown[0]} names no input of this flow",
            f"inputs of this flow: {', '.join(sorted(seen)) or 'none'}",
        )
    return values, secrets


def _values_from_expression(
    document: Document, spec: InputSpec, loc: Loc, context: dict[str, Any], check_only: bool
) -> InputSpec:
    """A SELECT's values from its `expression` (kv('…') of a JSON list, most often), rendered now. When
    only checking, a value the expression cannot give yet (a key not stored here) leaves any value
    allowed."""
    try:
        rendered = render(spec.expression or "", context)
        values = json.loads(rendered) if isinstance(rendered, str) else rendered
        if not isinstance(values, list):
            raise ValueError(f"it gives {str(rendered)[:60]!r}, not a list")
    except (ExpressionError, ValueError) as exc:
        if check_only:
            return spec.model_copy(update={"allow_custom_value": True})
        raise document.error(
            (*loc, "expression"), f"input '{spec.id}': the values' expression fails: {exc}", None
        ) from None
    return spec.model_copy(update={"values": values})


def _hint(spec: InputSpec) -> str:
    examples = {
        "INT": "a whole number, e.g. 42",
        "FLOAT": "a number, e.g. 4.2",
        "BOOLEAN": "true or false",
        "DATE": "a date, e.g. 2024-01-31",
        "DATETIME": "a date and time, e.g. 2024-01-31T12:00:00Z",
        "TIME": "a time, e.g. 12:30:00",
        "DURATION": "an ISO-8601 duration, e.g. PT5M",
        "JSON": "a JSON document",
        "URI": "an absolute URI, e.g. https://example.com/x",
        "EMAIL": "an email address",
    }
    if spec.values:
        return "one of: " + ", ".join(str(v) for v in spec.values)
    return "write " + examples.get(spec.type, "a value of that type")


def convert(kind: str, value: Any, spec: InputSpec) -> Any:
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value)
        if isinstance(value, list | dict)
        else str(value)
    )
    match kind:
        case "STRING" | "SECRET":
            return text
        case "INT":
            if isinstance(value, bool):
                raise ValueError(f"'{text}' is not a whole number")
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"'{text}' is not a whole number") from None
        case "FLOAT":
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"'{text}' is not a number") from None
        case "BOOLEAN" | "BOOL":
            if text.lower() not in ("true", "false"):
                raise ValueError(f"'{text}' is not true or false")
            return text.lower() == "true"
        case "DATE":
            return _parsed(date.fromisoformat, text, "a date")
        case "DATETIME":
            return _parsed(
                lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")), text, "a date and time"
            )
        case "TIME":
            return _parsed(time.fromisoformat, text, "a time")
        case "DURATION":
            if not ISO_DURATION.match(text.upper()) or text.upper() in ("P", "PT"):
                raise ValueError(f"'{text}' is not an ISO-8601 duration")
            return text
        case "JSON":
            try:
                return json.loads(text) if isinstance(value, str) else value
            except ValueError:
                raise ValueError("it is not valid JSON") from None
        case "YAML":
            try:
                return yaml.safe_load(text) if isinstance(value, str) else value
            except yaml.YAMLError:
                raise ValueError("it is not valid YAML") from None
        case "URI":
            parts = urlsplit(text)
            if not parts.scheme or not (parts.netloc or parts.path):
                raise ValueError(f"'{text}' is not an absolute URI")
            return text
        case "EMAIL":
            if not EMAIL.match(text):
                raise ValueError(f"'{text}' is not an email address")
            return text
        case "SELECT" | "ENUM":
            allowed = [str(v) for v in spec.values or []]
            if text not in allowed and not spec.allow_custom_value:
                raise ValueError(f"'{text}' is not one of the values")
            return text
        case "MULTISELECT":
            chosen = _list(value)
            allowed = [str(v) for v in spec.values or []]
            bad = [str(item) for item in chosen if str(item) not in allowed]
            if bad and not spec.allow_custom_value:
                raise ValueError(f"'{bad[0]}' is not one of the values")
            return [str(item) for item in chosen]
        case "ARRAY":
            items = _list(value)
            return [convert(spec.item_type or "STRING", item, spec) for item in items]
    raise ValueError(f"inputs of type {kind} are not supported locally")


def _parsed(parse: Any, text: str, what: str) -> str:
    try:
        parse(text)
    except ValueError:
        raise ValueError(f"'{text}' is not {what}") from None
    return text


def _list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ValueError("it is not a JSON list") from None
        if isinstance(parsed, list):
            return parsed
    return [part.strip() for part in text.split(",") if part.strip()]
