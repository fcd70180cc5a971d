"""Dates for the `date`, `dateAdd` and `timestamp` filters, following Kestra's AbstractDate: inputs are
converted to a zoned date, then printed with a java.time DateTimeFormatter pattern."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runner.expressions.values import EvalError, is_number, offset_text

# Kestra's named formats; `iso` is its default. Anything else is a DateTimeFormatter pattern.
NAMED = {
    "iso": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "sql": "yyyy-MM-dd HH:mm:ss.SSSSSS",
    "sql_seq": "yyyy-MM-dd HH:mm:ss",
    "iso_local_date": "yyyy-MM-dd",
    "iso_date": "yyyy-MM-ddXXX",
    "iso_local_time": "HH:mm:ss{f}",
    "iso_time": "HH:mm:ss{f}XXX",
    "iso_offset_time": "HH:mm:ss{f}XXX",
    "iso_local_date_time": "yyyy-MM-dd'T'HH:mm:ss{f}",
    "iso_date_time": "yyyy-MM-dd'T'HH:mm:ss{f}XXX",
    "iso_zoned_date_time": "yyyy-MM-dd'T'HH:mm:ss{f}XXX",
    # DateTimeFormatter.RFC_1123_DATE_TIME, as it prints and reads an instant in UTC
    "rfc_1123_date_time": "EEE, d MMM yyyy HH:mm:ss 'GMT'",
}

_EXACT_UNITS = {  # in microseconds
    "NANOS": 0.001, "MICROS": 1, "MILLIS": 1000, "SECONDS": 10**6, "MINUTES": 60 * 10**6,
    "HOURS": 3600 * 10**6, "HALF_DAYS": 12 * 3600 * 10**6,
}  # fmt: skip
_MONTH_UNITS = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200, "MILLENNIA": 12000}
_STRPTIME = {
    "y": "%Y", "u": "%Y", "M": "%m", "d": "%d", "H": "%H", "h": "%I", "m": "%M", "s": "%S",
    "S": "%f", "a": "%p", "X": "%z", "x": "%z", "Z": "%z", "L": "%m",
}  # fmt: skip


def zone(name: Any) -> tzinfo:
    """Kestra falls back to the server's zone; a local run has no server, so UTC stands in for it."""
    if name is None or name in ("UTC", "Z"):
        return UTC
    if not isinstance(name, str):
        raise EvalError(f"timeZone must be a string, got {name!r}")
    if match := re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name):
        minutes = int(match[2]) * 60 + int(match[3])
        return timezone(timedelta(minutes=-minutes if match[1] == "-" else minutes))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise EvalError(f"Unknown time zone `{name}`") from None


def _tokens(pattern: str) -> list[str | tuple[str, int]]:
    """A DateTimeFormatter pattern as literal strings and (letter, repeat count) fields."""
    out: list[str | tuple[str, int]] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            if end < 0:
                raise EvalError(f"Unterminated quote in date pattern `{pattern}`")
            out.append(pattern[i + 1 : end] or "'")
            i = end + 1
        elif char.isascii() and char.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == char:
                j += 1
            out.append((char, j - i))
            i = j
        else:
            out.append(char)
            i += 1
    return out


def _field(moment: datetime, letter: str, count: int) -> str:
    numbers = {
        "d": moment.day, "D": moment.timetuple().tm_yday, "H": moment.hour, "h": moment.hour % 12 or 12,
        "k": moment.hour or 24, "K": moment.hour % 12, "m": moment.minute, "s": moment.second,
    }  # fmt: skip
    if letter in numbers:
        return str(numbers[letter]).zfill(count)
    if letter in "yu":
        return f"{moment.year % 100:02d}" if count == 2 else str(moment.year).zfill(count)
    if letter in "ML":
        return moment.strftime("%B" if count >= 4 else "%b") if count >= 3 else str(moment.month).zfill(count)
    if letter == "S":
        return f"{moment.microsecond:06d}000"[:count]
    if letter == "a":
        return "AM" if moment.hour < 12 else "PM"
    if letter == "E":
        return moment.strftime("%A" if count >= 4 else "%a")
    if letter in "XxZ":
        return offset_text(moment, letter, count)
    if letter == "z":
        return moment.tzname() or ""
    if letter == "V":
        return str(getattr(moment.tzinfo, "key", None) or moment.tzname() or "")
    raise EvalError(f"Unsupported date pattern letter `{letter}`")


def format_date(moment: datetime, fmt: str, tz: tzinfo) -> str:
    """DateTimeFormatter.ofPattern(fmt).withZone(tz): the instant is shown in the requested zone."""
    moment = moment.astimezone(tz)
    pattern = NAMED.get(fmt, fmt)
    if "{f}" in pattern:  # ISO_* formatters print only the fraction digits that are needed
        fraction = f"{moment.microsecond:06d}".rstrip("0")
        pattern = pattern.replace("{f}", f".{'S' * len(fraction)}" if fraction else "")
    parts = _tokens(pattern)
    return "".join(part if isinstance(part, str) else _field(moment, *part) for part in parts)


def _parse(text: str, pattern: str, tz: tzinfo) -> datetime:
    directives = []
    for part in _tokens(NAMED.get(pattern, pattern).replace("{f}", ".SSSSSS")):
        if isinstance(part, str):
            directives.append(part.replace("%", "%%"))
        elif part[0] in "ML" and part[1] >= 3:  # month names: MMM is "Jun", MMMM is "June"
            directives.append("%B" if part[1] >= 4 else "%b")
        elif part[0] == "E":
            directives.append("%A" if part[1] >= 4 else "%a")
        elif part[0] in _STRPTIME:
            directives.append(_STRPTIME[part[0]] if part != ("y", 2) else "%y")
        else:
            raise EvalError(f"Unsupported letter `{part[0]}` in existingFormat `{pattern}`")
    try:
        parsed = datetime.strptime(text, "".join(directives))
    except ValueError:
        raise EvalError(f"Unable to parse date `{text}` with format `{pattern}`") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def to_datetime(value: Any, tz: tzinfo, existing_format: Any = None) -> datetime:
    """AbstractDate.convert: date-times keep their zone, plain dates mean noon, integers are epoch seconds,
    strings are ISO-8601 with or without offset, or a bare date (start of day)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(12), tz)
    if is_number(value) and isinstance(value, int):
        return datetime.fromtimestamp(value, tz)
    if not isinstance(value, str):
        raise EvalError(f"Unable to convert {value!r} to a date")
    if existing_format is not None:
        return _parse(value, str(existing_format), tz)
    text, _, region = value.partition("[")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise EvalError(f"Unable to parse date `{value}`") from None
    if region and parsed.tzinfo:
        parsed = parsed.astimezone(zone(region.rstrip("]")))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def add(moment: datetime, amount: int, unit: str) -> datetime:
    """ZonedDateTime.plus: time-based units are exact durations, date-based ones move the wall clock."""
    if unit in _EXACT_UNITS:
        step = timedelta(microseconds=_EXACT_UNITS[unit] * amount)
        return (moment.astimezone(UTC) + step).astimezone(moment.tzinfo)
    if unit in ("DAYS", "WEEKS"):
        return moment + timedelta(days=amount * (7 if unit == "WEEKS" else 1))
    if unit in _MONTH_UNITS:
        years, month = divmod(moment.month - 1 + amount * _MONTH_UNITS[unit], 12)
        year = moment.year + years
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        return moment.replace(year=year, month=month + 1, day=day)
    raise EvalError(f"Unknown time unit `{unit}`")
