"""Filters, tests and functions: Pebble's core set as Kestra customises it, plus Kestra's own.
Each takes its arguments by name, positional ones bound in the declared order, as Pebble does."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from runner.expressions import dates
from runner.expressions.values import (
    Env,
    EvalError,
    compare,
    is_empty,
    is_list,
    is_map,
    is_number,
    java_str,
    to_json,
    type_name,
)

Args = dict[str, Any]
FilterFn = Callable[[Any, Args], Any]
FunctionFn = Callable[[Env, Args], Any]

# name -> (parameter names, whether None reaches the filter, implementation); most filters map None to None
FILTERS: dict[str, tuple[tuple[str, ...], bool, FilterFn]] = {}
# parameter names of None mean varargs, bound as "0", "1", ... like Pebble's max/min
FUNCTIONS: dict[str, tuple[tuple[str, ...] | None, FunctionFn]] = {}
TESTS: dict[str, Callable[[Any], bool]] = {}


def _filter(*names: str, params: tuple[str, ...] = (), nulls: bool = False) -> Callable[[FilterFn], FilterFn]:
    def register(fn: FilterFn) -> FilterFn:
        for name in names:
            FILTERS[name] = (params, nulls, fn)
        return fn

    return register


def _function(*names: str, params: tuple[str, ...] | None = ()) -> Callable[[FunctionFn], FunctionFn]:
    def register(fn: FunctionFn) -> FunctionFn:
        for name in names:
            FUNCTIONS[name] = (params, fn)
        return fn

    return register


def bind(kind: str, name: str, params: tuple[str, ...] | None, positional: list[Any], named: Args) -> Args:
    if params is None:
        return {str(index): value for index, value in enumerate(positional)} | named
    if len(positional) > len(params):
        raise EvalError(f"Too many arguments for {kind} `{name}`")
    unknown = set(named) - set(params)
    if unknown:
        raise EvalError(f"Unknown argument `{sorted(unknown)[0]}` for {kind} `{name}`")
    return dict(zip(params, positional, strict=False)) | named


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise EvalError(f"`{what}` expects a string, got {type_name(value)}")
    return value


def _int(value: Any, what: str) -> int:
    if not (is_number(value) and isinstance(value, int)):
        raise EvalError(f"`{what}` expects an integer, got {java_str(value)}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not is_list(value):
        raise EvalError(f"`{what}` expects a list, got {type_name(value)}")
    return list(value)


def _map(value: Any, what: str) -> Mapping[Any, Any]:
    if not is_map(value):
        raise EvalError(f"`{what}` expects a map, got {type_name(value)}")
    return value  # type: ignore[no-any-return]


# --- strings ---------------------------------------------------------------------------------------

_filter("upper")(lambda v, a: java_str(v).upper())
_filter("lower")(lambda v, a: java_str(v).lower())
_JAVA_TRIMMED = "".join(map(chr, range(33)))  # String.trim drops every control character, not just spaces
_filter("trim")(lambda v, a: _str(v, "trim").strip(_JAVA_TRIMMED))
_filter("startsWith", params=("value",), nulls=True)(
    lambda v, a: java_str(v).startswith(java_str(a["value"]))
)
_filter("endsWith", params=("value",), nulls=True)(lambda v, a: java_str(v).endswith(java_str(a["value"])))
_filter("urlencode")(lambda v, a: quote_plus(_str(v, "urlencode"), safe="*").replace("~", "%7E"))
_filter("urldecode")(lambda v, a: unquote_plus(_str(v, "urldecode")))
_filter("base64encode")(lambda v, a: base64.b64encode(java_str(v).encode()).decode())
_filter("base64decode")(lambda v, a: base64.b64decode(java_str(v)).decode())


def _digest(algorithm: str, value: Any, args: Args) -> str:
    return hashlib.new(algorithm, _str(value, algorithm).encode()).hexdigest()


for _algorithm in ("md5", "sha1", "sha256", "sha512"):
    _filter(_algorithm)(partial(_digest, _algorithm))


def _title_each(text: str, every_word: bool) -> str:
    """Pebble upper-cases the first letter (of each word) and leaves the rest alone."""
    out, start = [], True
    for char in text:
        if char.isspace():
            start = start or every_word
        elif start:
            char, start = char.title(), False
        out.append(char)
    return "".join(out)


_filter("title")(lambda v, a: _title_each(_str(v, "title"), True))
_filter("capitalize")(lambda v, a: _title_each(_str(v, "capitalize"), False))


@_filter("abbreviate", params=("length",))
def _abbreviate(value: Any, args: Args) -> str:
    text, width = _str(value, "abbreviate"), _int(args.get("length"), "abbreviate")
    if width < 0:
        raise EvalError("Invalid argument to abbreviate filter; must be greater than zero")
    if len(text) < width or len(text) <= 3:
        return text
    return text[:width] if width <= 3 else text[: width - 3] + "..."


@_filter("split", params=("delimiter", "limit"))
def _split(value: Any, args: Args) -> list[str]:
    """String.split: the delimiter is a regular expression; with no limit, trailing empty parts go."""
    text, limit = _str(value, "split"), args.get("limit") or 0
    delimiter = args.get("delimiter")
    if delimiter is None:
        raise EvalError("missing delimiter parameter in split filter")
    if text == "":
        return [""]
    parts: list[str] = []
    start = 0
    for match in re.finditer(_str(delimiter, "split"), text):
        if 0 < limit <= len(parts) + 1:
            break
        if match.end() == 0:
            continue
        parts.append(text[start : match.start()])
        start = match.end()
    parts.append(text[start:])
    while limit == 0 and parts and parts[-1] == "":
        parts.pop()
    return parts


@_filter("replace", params=("replace_pairs", "regexp"))
def _replace(value: Any, args: Args) -> Any:
    """Kestra's replace: a map of target -> replacement, applied through lists and maps. The two-string
    form `replace('a', 'b')` is accepted too, since flows written for other engines use it."""
    pairs, regexp = args.get("replace_pairs"), args.get("regexp", False)
    if isinstance(pairs, str) and isinstance(regexp, str):
        pairs, regexp = {pairs: regexp}, False
    pairs = _map(pairs, "replace")

    def one(text: str) -> str:
        for target, replacement in pairs.items():
            if regexp:
                text = re.sub(java_str(target), re.sub(r"\$(\d+)", r"\\g<\1>", java_str(replacement)), text)
            else:
                text = text.replace(java_str(target), java_str(replacement))
        return text

    def walk(item: Any) -> Any:
        if is_map(item):
            return {key: walk(inner) for key, inner in item.items()}
        if is_list(item):
            return [walk(inner) for inner in item]
        return one(java_str(item))

    return walk(value)


@_filter("slugify")
def _slugify(value: Any, args: Args) -> str:
    slug = unicodedata.normalize("NFD", re.sub(r"\s", "-", java_str(value)))
    slug = re.sub(r"[^\w-]", "", slug, flags=re.ASCII).replace("_", "-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug.removeprefix("-").removesuffix("-").lower()


def _substring(value: Any, args: Args, after: bool, last: bool) -> str:
    """Apache StringUtils.substringBefore/After(Last)."""
    text, sep = java_str(value), args.get("separator")
    if sep is None:
        raise EvalError("The substring filters expect an argument 'separator'.")
    sep = java_str(sep)
    index = text.rfind(sep) if last else text.find(sep)
    if sep == "":
        return ("" if after else text) if last else (text if after else "")
    if index < 0:
        return "" if after else text
    return text[index + len(sep) :] if after else text[:index]


for _name, _after, _last in (
    ("substringBefore", False, False),
    ("substringAfter", True, False),
    ("substringBeforeLast", False, True),
    ("substringAfterLast", True, True),
):
    _filter(_name, params=("separator",))(partial(_substring, after=_after, last=_last))


def _indent(value: Any, args: Args, first_line: bool) -> str:
    text = java_str(value)
    if text == "":
        return text
    amount = _int(args.get("amount"), "indent")
    if amount < 0:
        raise EvalError("The indent filters expect a positive integer >=0 as argument 'amount'.")
    newline = next((sep for sep in ("\r\n", "\n\r", "\n", "\r") if sep in text), "\n")
    prefix = java_str(args.get("prefix", " ")) * amount
    return ((newline if first_line else "") + text).replace(newline, newline + prefix)


_filter("indent", params=("amount", "prefix"))(lambda v, a: _indent(v, a, False))
_filter("nindent", params=("amount", "prefix"))(lambda v, a: _indent(v, a, True))


# --- values and collections ------------------------------------------------------------------------

_filter("default", params=("default",), nulls=True)(lambda v, a: a.get("default") if is_empty(v) else v)
_filter("json", "toJson", nulls=True)(lambda v, a: "null" if v is None else to_json(v))
_filter("flatten")(lambda v, a: [x for i in _list(v, "flatten") for x in (i if is_list(i) else [i])])
_filter("values")(lambda v, a: list(_map(v, "values").values()))
_filter("sort")(lambda v, a: sorted(_list(v, "sort")))
_filter("rsort")(lambda v, a: sorted(_list(v, "rsort"), reverse=True))
_filter("reverse")(lambda v, a: _list(v, "reverse")[::-1])


@_filter("length", nulls=True)
def _length(value: Any, args: Args) -> int:
    return len(value) if isinstance(value, str) or is_list(value) or is_map(value) else 0


@_filter("join", params=("separator",))
def _join(value: Any, args: Args) -> str:
    return java_str(args.get("separator") or "").join(java_str(item) for item in _list(value, "join"))


def _end(value: Any, index: int) -> Any:
    if isinstance(value, str):
        return value[index] if value else None
    items = _list(value, "first" if index == 0 else "last")
    return items[index] if items else None


_filter("first")(lambda v, a: _end(v, 0))
_filter("last")(lambda v, a: _end(v, -1))


@_filter("abs", nulls=True)
def _abs(value: Any, args: Args) -> Any:
    if not is_number(value):
        raise EvalError("The 'abs' filter does require as input a number.")
    return abs(value)


@_filter("number", params=("type",))
def _number(value: Any, args: Args) -> int | float:
    """NumberUtils.createNumber: an integer when the text is one (hex included), else a float."""
    text, kind = _str(value, "number"), str(args.get("type") or "").upper()
    try:
        if kind in ("FLOAT", "DOUBLE", "BIGDECIMAL"):
            return float(text)
        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        return int(text) if kind or re.fullmatch(r"[+-]?\d+", text) else float(text)
    except ValueError:
        raise EvalError(f"`{text}` is not a valid number") from None


@_filter("keys")
def _keys(value: Any, args: Args) -> list[Any]:
    if is_map(value):
        return list(value)
    return list(range(len(_list(value, "keys"))))


@_filter("slice", params=("fromIndex", "toIndex"))
def _slice(value: Any, args: Args) -> Any:
    if not (isinstance(value, str) or is_list(value)):
        raise EvalError(f"Slice filter can only be applied to strings and lists, not {type_name(value)}")
    start = _int(args.get("fromIndex") or 0, "slice")
    end = len(value) if args.get("toIndex") is None else _int(args["toIndex"], "slice")
    if start < 0 or end > len(value) or start >= end:
        raise EvalError(f"Invalid slice bounds [{start}, {end}) for a length of {len(value)}")
    return value[start:end] if isinstance(value, str) else list(value)[start:end]


@_filter("chunk", params=("size",))
def _chunk(value: Any, args: Args) -> list[list[Any]]:
    items, size = _list(value, "chunk"), _int(args.get("size"), "chunk")
    if size <= 0:
        raise EvalError("'chunk' filter expects a positive 'size'.")
    return [items[index : index + size] for index in range(0, len(items), size)]


@_filter("merge", params=("items",), nulls=True)
def _merge(value: Any, args: Args) -> Any:
    other = args.get("items")
    if value is None or other is None:
        if value is None and other is None:
            raise EvalError("The two arguments to be merged are null")
        return other if value is None else value
    if is_map(value):
        return {**value, **(other if is_map(other) else {item: item for item in _list(other, "merge")})}
    if is_list(value):
        return [*value, *([{"key": k, "value": v} for k, v in other.items()] if is_map(other) else other)]
    raise EvalError("The object being filtered is not a Map/List")


# --- dates -----------------------------------------------------------------------------------------

DATE_PARAMS = ("format", "timeZone", "existingFormat", "locale")


def format_args(moment: Any, args: Args) -> str:
    tz = dates.zone(args.get("timeZone"))
    moment = dates.to_datetime(moment, tz, args.get("existingFormat"))
    return dates.format_date(moment, args.get("format", "iso"), tz)


_filter("date", params=DATE_PARAMS)(format_args)


@_filter("dateAdd", params=("amount", "unit", *DATE_PARAMS))
def _date_add(value: Any, args: Args) -> str:
    moment = dates.to_datetime(value, dates.zone(args.get("timeZone")), args.get("existingFormat"))
    added = dates.add(moment, _int(args.get("amount"), "dateAdd"), str(args.get("unit")))
    return format_args(added, {**args, "existingFormat": None})


def _timestamp(value: Any, args: Args, scale: int) -> int:
    """Epoch time, floored like ZonedDateTime.toEpochSecond."""
    moment = dates.to_datetime(value, dates.zone(args.get("timeZone")), args.get("existingFormat"))
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * scale + delta.microseconds * scale // 10**6


for _name, _scale in (("timestamp", 1), ("timestampMicro", 10**6), ("timestampNano", 10**9)):
    _filter(_name, params=("timeZone", "existingFormat"))(partial(_timestamp, scale=_scale))


# --- tests -----------------------------------------------------------------------------------------


def _parity(value: Any, remainder: int) -> bool:
    if not (is_number(value) and isinstance(value, int)):
        raise EvalError(f"Can not apply an even/odd test to {java_str(value)}")
    return value % 2 == remainder


def _is_json(value: Any) -> bool:
    try:
        json.loads(_str(value, "json"))
    except ValueError:
        return False
    return True


def _jq(value: Any, expression: Any) -> list[Any]:
    """Kestra's jq: the input (a value, or JSON text) through a jq program, by libjq itself; always the
    list of every result, hence the `| first` flows write after it."""
    import jq  # libjq's own binding: jq as jq runs it

    data = json.loads(value) if isinstance(value, str) else _plain(value)
    try:
        program = jq.compile(_str(expression, "jq"))
    except ValueError as exc:
        raise EvalError(f"Invalid jq expression `{expression}`: {exc}") from None
    try:
        return list(program.input_value(data).all())
    except ValueError as exc:
        raise EvalError(f"jq `{expression}` failed: {exc}") from None


def _plain(value: Any) -> Any:
    """A value as JSON would carry it (dates as their text), so that libjq takes it."""
    return json.loads(to_json(value))


@_filter("jq", params=("expression",))
def _jq_filter(value: Any, args: Args) -> list[Any]:
    return _jq(value, args.get("expression"))


@_filter("yaml", params=())
def _yaml_filter(value: Any, args: Args) -> str:
    """The value written as YAML, as Kestra's yaml filter writes it (block style, keys in order)."""
    import yaml

    return str(yaml.safe_dump(_plain(value), sort_keys=False, default_flow_style=False, allow_unicode=True))


@_filter("numberFormat", params=("format",))
def _number_format(value: Any, args: Args) -> str:
    """Java's DecimalFormat for the patterns flows use: `0` a digit always shown, `#` a digit shown when
    it is not a leading or trailing zero, `,` grouping, `.` the decimal point; rounded half-even, as
    Java rounds."""
    pattern = _str(args.get("format"), "numberFormat")
    whole, _, fraction = pattern.partition(".")
    least = fraction.count("0")
    most = least + fraction.count("#")
    number = Decimal(str(value)).quantize(Decimal(1).scaleb(-most), rounding=ROUND_HALF_EVEN)
    integer, _, decimals = f"{abs(number):f}".partition(".")
    while len(decimals) > least and decimals.endswith("0"):
        decimals = decimals[:-1]
    integer = integer.lstrip("0").rjust(whole.replace(",", "").count("0"), "0")
    if "," in whole:
        size = len(whole) - whole.rindex(",") - 1
        groups = [integer[max(0, end - size) : end] for end in range(len(integer), 0, -size)]
        integer = ",".join(reversed(groups))
    sign = "-" if number < 0 else ""
    return sign + integer + ("." + decimals if decimals else "")


ESCAPES = {"single": ("'", "\\'"), "double": ('"', '\\"'), "shell": ("'", "'\\''")}


@_filter("escapeChar", params=("type",))
def _escape_char(value: Any, args: Args) -> Any:
    """Kestra's escapeChar: one kind of quote escaped, through lists and maps (other values as text)."""
    kind = args.get("type")
    if kind is None:
        raise EvalError("The 'escapeChar' filter expects an argument 'type'.")
    if str(kind).lower() not in ESCAPES:
        raise EvalError(
            "The 'escapeChar' filter expects the value of 'type' to be either 'single', 'double', or 'shell'."
        )
    quote, replacement = ESCAPES[str(kind).lower()]

    def escape(item: Any) -> Any:
        if is_map(item):
            return {key: escape(inner) for key, inner in item.items()}
        if is_list(item):
            return [escape(inner) for inner in item]
        return java_str(item).replace(quote, replacement)

    return escape(value)


TESTS.update(
    null=lambda v: v is None,
    none=lambda v: v is None,
    empty=is_empty,
    even=lambda v: _parity(v, 0),
    odd=lambda v: _parity(v, 1),
    iterable=is_list,
    map=is_map,
    json=_is_json,
)


# --- functions -------------------------------------------------------------------------------------


@_function("render", params=("toRender", "recursive"))
def _render(env: Env, args: Args) -> Any:
    """Kestra renders with the execution's variables (not loop or `set` locals) and, by default, again
    until the text stops changing; maps and lists are rendered item by item."""
    if "toRender" not in args:
        raise EvalError("The 'render' function expects an argument 'toRender'.")
    recursive = args.get("recursive", True)
    if not isinstance(recursive, bool):
        raise EvalError("The 'render' function expects an optional argument 'recursive' with type boolean.")

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            for _ in range(100):
                rendered = env.renderer(item, env.root)
                if not recursive or rendered == item:
                    return rendered
                item = rendered
            raise EvalError("Too many rendering attempts")
        if is_map(item):
            return {walk(key): walk(value) for key, value in item.items()}
        if is_list(item):
            return [walk(value) for value in item]
        return item

    return walk(args["toRender"])


@_function("errorLogs", params=())
def _error_logs(env: Env, args: Args) -> Any:
    """Kestra's list of the execution's ERROR log entries (each a map with taskId, message, timestamp,
    level, …), the oldest first; empty when nothing failed. The run puts them under a key no template
    can name."""
    return list(env.root.get("errorLogs()", []))


@_function("secret", params=("key",))
def _secret(env: Env, args: Args) -> str:
    """Kestra's secret(): a SECRET_KEY variable (base64, as Kestra's open-source edition reads them), else
    the value given with --secret (or --env)."""
    key = _str(args.get("key"), "secret")
    value = env.root.get("secret()", {}).get(key)
    if value is None:
        raise EvalError(
            f"secret '{key}' is not set: give it with --secret {key}=VALUE, or SECRET_{key} (base64)"
        )
    return str(value)


@_function("kv", params=("key", "namespace", "errorOnMissing"))
def _kv(env: Env, args: Args) -> Any:
    """Kestra's kv(): a value of the key-value store (kept on this machine; `runner kv set` writes it),
    in the flow's namespace unless another is named."""
    from runner import kvstore

    key = _str(args.get("key"), "kv")
    flow = env.root.get("flow") or {}
    namespace = str(args.get("namespace") or flow.get("namespace") or "")
    try:
        return kvstore.get(namespace, key)
    except KeyError:
        if args.get("errorOnMissing", True):
            raise EvalError(
                f"the key '{key}' is not in the key-value store of {namespace}: "
                f"set it with `runner kv set {namespace} {key} VALUE`"
            ) from None
        return None


@_function("read", params=("path",))
def _read(env: Env, args: Args) -> str:
    """Kestra's read() of a namespace file: here, a file of the namespace-files folder."""
    from pathlib import Path

    base = Path(str(env.root.get("read()", ".")))
    relative = _str(args.get("path"), "read")
    target = (base / relative.lstrip("/")).resolve()
    if not target.is_relative_to(base.resolve()):
        raise EvalError(f"read('{relative}') leaves the namespace files' folder")
    try:
        return target.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvalError(f"read('{relative}'): {exc.strerror or exc} in {base}") from None


@_function("jq", params=("value", "expression"))
def _jq_function(env: Env, args: Args) -> list[Any]:
    return _jq(args.get("value"), args.get("expression"))


@_function("yaml", params=("yaml",))
def _from_yaml(env: Env, args: Args) -> Any:
    """Kestra's yaml(): YAML text read into a value."""
    import yaml

    text = args.get("yaml")
    if text is None:
        raise EvalError("The 'yaml' function expects an argument 'yaml'.")
    try:
        return yaml.safe_load(_str(text, "yaml"))
    except yaml.YAMLError as exc:
        raise EvalError(f"Invalid YAML: {exc}") from None


@_function("renderOnce", params=("toRender",))
def _render_once(env: Env, args: Args) -> Any:
    """render() that renders once, not again until the text stops changing."""
    return _render(env, {**args, "recursive": False})


@_function("now", params=DATE_PARAMS)
def _now(env: Env, args: Args) -> Any:
    """Kestra returns the formatted text; with no arguments the date itself is returned, which prints the
    same way and still feeds the date filters."""
    moment = datetime.now(UTC)
    return format_args(moment, args) if args else moment


@_function("json", "fromJson", params=("json",))
def _from_json(env: Env, args: Args) -> Any:
    text = args.get("json")
    if text is None:
        return None
    try:
        return json.loads(_str(text, "fromJson"))
    except ValueError as exc:
        raise EvalError(f"Invalid JSON: {exc}") from None


@_function("range", params=("start", "end", "increment"))
def _range(env: Env, args: Args) -> list[Any]:
    return range_values(args.get("start"), args.get("end"), args.get("increment", 1))


def range_values(start: Any, end: Any, step: Any) -> list[Any]:
    """Pebble's range includes its end; single characters range over code points."""
    step = _int(step, "range")
    if step == 0:
        raise EvalError("The increment of the range function must be different than 0")
    stop = 1 if step > 0 else -1
    if is_number(start) and is_number(end):
        return list(range(int(start), int(end) + stop, step))
    if isinstance(start, str) and isinstance(end, str) and len(start) == len(end) == 1:
        return [chr(code) for code in range(ord(start), ord(end) + stop, step)]
    raise EvalError("Arguments of range function must be of type Number or String with a length of 1")


def _extreme(args: Args, op: str) -> Any:
    best = None
    for index in range(len(args)):
        candidate = args[str(index)]
        if best is None or compare(op, candidate, best):
            best = candidate
    return best


_function("max", params=None)(lambda env, a: _extreme(a, ">"))
_function("min", params=None)(lambda env, a: _extreme(a, "<"))
_function("uuid")(lambda env, a: str(uuid.uuid4()))


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@_function("id")
def _id(env: Env, args: Args) -> str:
    """Kestra ids are random UUIDs written in base 62."""
    number, out = uuid.uuid4().int, ""
    while number:
        number, digit = divmod(number, 62)
        out = _BASE62[digit] + out
    return out


@_function("randomInt", params=("lower", "upper"))
def _random_int(env: Env, args: Args) -> int:
    """Lower bound included, upper excluded, as Kestra computes it."""
    lower, upper = _int(args.get("lower"), "randomInt"), _int(args.get("upper"), "randomInt")
    if upper < lower:
        raise EvalError("In 'randomInt' upper is less than lower")
    return lower if upper == lower else random.randrange(lower, upper)
