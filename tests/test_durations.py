from __future__ import annotations

import pytest

from runner.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        ("30", 30.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
    ],
)
def test_durations_are_read_as_people_write_them(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "5 minutes", "", "1h-", 0, -3, True, [1]])
def test_nonsense_is_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_are_shown_short() -> None:
    assert [format_duration(s) for s in (0.42, 75, 3725)] == ["0.4s", "1m15s", "1h02m"]
