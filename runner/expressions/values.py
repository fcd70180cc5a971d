"""Value semantics of Pebble as Kestra runs it: Java-style equality, arithmetic, coercion and output text."""

from __future__ import annotations

import json
import math
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any


class ExpressionError(Exception):
    """A template or expression that cannot be parsed or evaluated."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class EvalError(ExpressionError):
    """An evaluation failure not yet tied to the template text; the renderer adds where it happened."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class Missing(Exception):
    """An undefined variable, attribute or key. Kept apart from ExpressionError because `default`, `??`,
    `???` and `is defined` catch exactly this and nothing else."""

    def __init__(self, name: str, line: int) -> None:
        super().__init__(name)
        self.name = name
        self.line = line


@dataclass
class Env:
    scope: ChainMap[str, Any]
    root: Mapping[str, Any]
    renderer: Callable[[str, Mapping[str, Any]], str]


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_list(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


def is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def java_double(value: float) -> str:
    """Double.toString: plain notation in [1e-3, 1e7), otherwise `d.dddE±n`, always with a fraction."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, digit_tuple))
    scale = len(digits) + int(exponent) - 1
    digits = digits.rstrip("0") or "0"
    return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:] or '0'}E{scale}"


def offset_text(moment: datetime, letter: str = "X", count: int = 3) -> str:
    offset = moment.utcoffset()
    if offset is None:
        return ""
    total = int(offset.total_seconds()) // 60
    if total == 0 and letter == "X":
        return "Z"
    sign = "+" if total >= 0 else "-"
    hours, minutes = divmod(abs(total), 60)
    if letter == "Z" or count == 2:
        return f"{sign}{hours:02d}{minutes:02d}"
    if count == 1:
        return f"{sign}{hours:02d}" + (f"{minutes:02d}" if minutes else "")
    return f"{sign}{hours:02d}:{minutes:02d}"


def iso_text(moment: datetime) -> str:
    """Instant/ZonedDateTime.toString style: the fraction in groups of three digits, `Z` for UTC."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        fraction = f"{moment.microsecond:06d}"
        text += "." + (fraction[:3] if fraction.endswith("000") else fraction)
    return text + offset_text(moment)


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, datetime | date):
        return to_text(value)
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON as Jackson writes it: no spaces, non-ASCII kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def to_text(value: Any) -> str:
    """How Kestra's output writer prints a value: null as nothing, collections as JSON, Java number text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return java_double(value)
    if is_map(value) or is_list(value):
        return to_json(value)
    if isinstance(value, datetime):
        return iso_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def java_str(value: Any) -> str:
    """String.valueOf: like to_text, except that null reads `null`."""
    return "null" if value is None else to_text(value)


_FALSY = frozenset({"false", "0", "-0", ""})


def is_truthy(text: str | None) -> bool:
    return text is not None and text.strip() not in _FALSY


def is_falsy(text: str | None) -> bool:
    return text is not None and text.strip() in _FALSY


def is_empty(value: Any) -> bool:
    """Pebble's EmptyTest, which also drives the `default` filter: a blank string counts as empty."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if is_list(value) or is_map(value):
        return len(value) == 0
    return False


def to_bool(value: Any, where: str) -> bool:
    """TypeUtils.compatibleCast(…, Boolean): numbers are true when non-zero, strings when non-empty."""
    if isinstance(value, bool):
        return value
    if is_number(value):
        return not math.isnan(value) and value != 0
    if isinstance(value, str):
        return value != ""
    if value is None:
        raise EvalError(f"null value used in {where} and strict variables is set to true")
    raise EvalError(
        f"Unsupported value type {type_name(value)} in {where}; expected a boolean, string or number"
    )


def equals(left: Any, right: Any) -> bool:
    """Numbers compare by value across int and float; otherwise Java equals, where true is not 1."""
    if is_number(left) and is_number(right):
        return bool(left == right)
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return bool(left == right)


def same(left: Any, right: Any) -> bool:
    """Collection membership uses plain Java equals, so an int never equals a float."""
    if is_number(left) and is_number(right) and isinstance(left, float) != isinstance(right, float):
        return False
    return equals(left, right)


def compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    if not (is_number(left) and is_number(right)):
        raise EvalError(
            f"invalid operands for mathematical comparison `{op}`: {type_name(left)}, {type_name(right)}"
        )
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def to_number(value: Any) -> int | float:
    if is_number(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    raise EvalError(f"Cannot convert to a number: {java_str(value)}")


def _int_div(left: int, right: int) -> int:
    quotient = abs(left) // abs(right)
    return quotient if (left >= 0) == (right > 0) else -quotient


def arithmetic(op: str, left: Any, right: Any) -> Any:
    """OperatorUtils: `+` concatenates when either side is a string and appends to lists; the rest is
    numeric, with Java integer division and remainder on two integers."""
    if op == "+" and (isinstance(left, str) or isinstance(right, str)):
        return java_str(left) + java_str(right)
    if op in ("+", "-") and isinstance(left, list | tuple):
        if op == "+":
            return [*left, *right] if is_list(right) else [*left, right]
        if is_list(right):
            return [item for item in left if not any(same(item, other) for other in right)]
        result = list(left)
        for index, item in enumerate(result):
            if same(item, right):
                del result[index]
                break
        return result
    a, b = to_number(left), to_number(right)
    if isinstance(a, float) or isinstance(b, float):
        x, y = float(a), float(b)
        if op == "/":
            if y == 0:
                return (
                    math.nan if x == 0 or math.isnan(x) else math.copysign(math.inf, x) * math.copysign(1, y)
                )
            return x / y
        if op == "%":
            return math.nan if y == 0 or math.isinf(x) else math.fmod(x, y)
        return x + y if op == "+" else x - y if op == "-" else x * y
    if op in ("/", "%") and b == 0:
        raise EvalError("/ by zero")
    if op == "/":
        return _int_div(a, b)
    if op == "%":
        return a - b * _int_div(a, b)
    return a + b if op == "+" else a - b if op == "-" else a * b


def contains(container: Any, item: Any) -> bool:
    """ContainsExpression: collections (all of them when the right side is one), map keys, substrings."""
    if container is None:
        return False
    if is_list(container):
        wanted = list(item) if is_list(item) else [item]
        return all(any(same(element, want) for element in container) for want in wanted)
    if is_map(container):
        return item in container
    if isinstance(container, str):
        return java_str(item) in container
    raise EvalError(
        f"Contains operator can only be used on collections, maps and strings, not {type_name(container)}"
    )
