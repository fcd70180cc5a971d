"""Validate plain data against a pydantic spec and report problems at their YAML positions."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from runner.errors import InputError
from runner.formats.source import Document, Loc

SpecT = TypeVar("SpecT", bound=BaseModel)

MAX_REPORTED = 10


class Spec(BaseModel):
    """Base of every format's raw schema: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def validate(document: Document, spec: type[SpecT], data: Any = None, loc: Loc = ()) -> SpecT:
    value = document.data if data is None else data
    try:
        return spec.model_validate(value)
    except ValidationError as exc:
        # a misspelt key explains the "missing" error it causes, so it comes first
        errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
        problems = [_problem(document, spec, loc, error, value) for error in errors[:MAX_REPORTED]]
        raise InputError.collect(problems) from None


def _problem(document: Document, spec: type[BaseModel], base: Loc, error: Any, data: Any) -> InputError:
    loc: Loc = (*base, *_data_loc(data, error["loc"], missing=error["type"] == "missing"))
    kind = error["type"]
    shown = ".".join(str(part) for part in loc) or "the document"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(spec, loc[len(base) : -1])
        return document.error(
            loc, f"unknown key '{key}' in {_parent(loc)}", _did_you_mean(key, allowed), key=True
        )
    if kind == "missing":
        key = str(loc[-1])
        return document.error(loc[:-1], f"missing required key '{key}' in {_parent(loc)}", f"add `{key}:`")
    message = _describe(kind, error)
    got = error.get("input")
    suffix = f", got {_show(got)}" if kind.endswith(("_type", "_parsing")) else ""
    hint = _HINTS.get(kind)
    if kind == "string_type" and isinstance(got, dict) and len(got) == 1:
        hint = "YAML reads ': ' in an unquoted value as a key; put the whole line in quotes"
    return document.error(loc, f"{shown}: {message}{suffix}", hint)


def _data_loc(data: Any, loc: tuple[Any, ...], *, missing: bool) -> Loc:
    """The part of pydantic's error path that names places in the data: pydantic also puts the names of
    union members and validators in it. A missing key is kept as the last part."""
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        if _holds(current, part):
            current = current[part]
        elif not (missing and index == len(loc) - 1):
            continue
        path.append(part)
    return tuple(path)


def _holds(container: Any, part: Any) -> bool:
    if isinstance(container, dict):
        return part in container
    return isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container)


def _parent(loc: Loc) -> str:
    parent = ".".join(str(part) for part in loc[:-1])
    return f"'{parent}'" if parent else "the top level"


def _describe(kind: str, error: Any) -> str:
    if kind in ("value_error", "assertion_error"):
        message = str(error["msg"])
        return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return _MESSAGES.get(kind, str(error["msg"]).lower())


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


_MESSAGES = {
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "greater_than_equal": "is too small",
    "greater_than": "is too small",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
    "literal_error": "is not one of the allowed values",
    "string_pattern_mismatch": "has characters that are not allowed",
}

_HINTS = {
    "string_type": "quote the value if it should be text",
    "int_parsing": "write a number such as 30",
    "bool_parsing": "write true or false",
    "list_type": "start each item on its own line with '- '",
    "dict_type": "write `key: value` pairs indented under this key",
    "model_type": "write `key: value` pairs indented under this key",
}


def _did_you_mean(key: str, allowed: list[str]) -> str | None:
    if not allowed:
        return None
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "allowed keys: " + ", ".join(sorted(allowed))


def _allowed_keys(spec: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the spec allows in the mapping at `loc`, found by following field annotations."""
    current: Any = spec
    for part in loc:
        current = _step_into(current, part)
        if current is None:
            return []
    current = _unwrap_model(current)
    if current is None:
        return []
    return [field.alias or name for name, field in current.model_fields.items()]


def _step_into(annotation: Any, part: str | int) -> Any:
    model = _unwrap_model(annotation)
    if model is not None and isinstance(part, str):
        for name, field in model.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    for option in _options(annotation):
        args = typing.get_args(option)
        origin = typing.get_origin(option)
        if origin in (list, tuple) and args:
            return args[0]
        if origin is dict and len(args) == 2:
            return args[1]
    return None


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    for option in _options(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None


def _options(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return list(typing.get_args(annotation))
    if origin is typing.Annotated:
        return _options(typing.get_args(annotation)[0])
    return [annotation]
