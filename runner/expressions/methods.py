"""The Java methods Pebble lets a template call on a value (`items.size()`, `name.toUpperCase()`): strings,
lists and maps as Kestra hands them to Pebble. Anything else is an error that names the method."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runner.expressions.values import EvalError, is_list, is_map, java_str

Method = Callable[..., Any]


def _index_of(text: str, part: Any) -> int:
    return text.find(java_str(part))


STRING_METHODS: dict[str, Method] = {
    "length": len,
    "isEmpty": lambda s: len(s) == 0,
    "isBlank": lambda s: not s.strip(),
    "toUpperCase": str.upper,
    "toLowerCase": str.lower,
    "trim": str.strip,
    "strip": str.strip,
    "contains": lambda s, part: java_str(part) in s,
    "startsWith": lambda s, part: s.startswith(java_str(part)),
    "endsWith": lambda s, part: s.endswith(java_str(part)),
    "indexOf": _index_of,
    "lastIndexOf": lambda s, part: s.rfind(java_str(part)),
    "substring": lambda s, start, end=None: s[int(start) : None if end is None else int(end)],
    "charAt": lambda s, index: s[int(index)],
    "replace": lambda s, old, new: s.replace(java_str(old), java_str(new)),
    "split": lambda s, separator: s.split(java_str(separator)),
    "equals": lambda s, other: s == other,
    "equalsIgnoreCase": lambda s, other: s.lower() == java_str(other).lower(),
    "concat": lambda s, other: s + java_str(other),
    "toString": lambda s: s,
}

LIST_METHODS: dict[str, Method] = {
    "size": len,
    "isEmpty": lambda items: len(items) == 0,
    "contains": lambda items, item: item in items,
    "get": lambda items, index: items[int(index)],
    "indexOf": lambda items, item: list(items).index(item) if item in items else -1,
    "subList": lambda items, start, end: list(items)[int(start) : int(end)],
}

MAP_METHODS: dict[str, Method] = {
    "size": len,
    "isEmpty": lambda mapping: len(mapping) == 0,
    "containsKey": lambda mapping, key: key in mapping,
    "containsValue": lambda mapping, value: value in mapping.values(),
    "get": lambda mapping, key: mapping.get(key),
    "getOrDefault": lambda mapping, key, default: mapping.get(key, default),
    "keySet": lambda mapping: list(mapping.keys()),
    "values": lambda mapping: list(mapping.values()),
}


def call_method(value: Any, name: str, args: list[Any]) -> Any:
    table: Mapping[str, Method]
    if isinstance(value, str):
        table = STRING_METHODS
    elif is_map(value):
        table = MAP_METHODS
    elif is_list(value):
        table = LIST_METHODS
    else:
        raise EvalError(f"Method `{name}` cannot be called on {type(value).__name__}")
    method = table.get(name)
    if method is None:
        raise EvalError(f"Unknown method `{name}` on {type(value).__name__}")
    try:
        return method(value, *args)
    except (TypeError, ValueError, IndexError) as exc:
        raise EvalError(f"Method `{name}` failed: {exc}") from exc
