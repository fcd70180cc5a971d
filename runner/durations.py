"""Durations as people write them: 30, "30s", "5m", "1h30m", "1.5h"."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds in `value`; raises ValueError with a message meant for a user."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip().lower())
    else:
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if seconds <= 0:
        raise ValueError("a duration must be more than zero")
    return seconds


def _parse_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    position, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"'{text}' is not a duration; write it like 30s, 5m, 1h30m")
    return total


def iso_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration such as PT1S, PT1M30S, P1DT2H, or a plain duration like 30s."""
    upper = text.strip().upper()
    if not upper.startswith("P"):
        return parse_duration(text)
    days, _, clock = upper[1:].partition("T")
    total = 0.0
    for part, units in ((days, {"D": 86400.0, "W": 604800.0}), (clock, {"H": 3600.0, "M": 60.0, "S": 1.0})):
        number = ""
        for char in part:
            if char.isdigit() or char in ".,-":
                number += char.replace(",", ".")
            elif char in units and number:
                total += float(number) * units[char]
                number = ""
            else:
                raise ValueError(f"'{text}' is not an ISO-8601 duration such as PT1S or PT5M")
        if number:
            raise ValueError(f"'{text}' is not an ISO-8601 duration such as PT1S or PT5M")
    return total


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
