"""The journals the report reads. The made-up ones its tests use keep to events.schema.json, so the report
is tested against what runs write, not against what its tests imagine; and any journal at all, however
cut short or wrong, renders."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.reports.html import render_report
from tests.report_runs import Event, killed_run, long_output_run, realistic_run

SCHEMA = Path(__file__).resolve().parents[1] / "runner" / "reports" / "events.schema.json"
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def schema() -> dict[str, object]:
    return cast(dict[str, object], json.loads(SCHEMA.read_text(encoding="utf-8")))


def definition_of(event_type: str, definitions: dict[str, dict[str, object]]) -> dict[str, object]:
    for definition in definitions.values():
        properties = cast(dict[str, dict[str, object]], definition.get("properties", {}))
        declared = properties.get("type", {})
        if declared.get("const") == event_type or event_type in cast(list[str], declared.get("enum", [])):
            return definition
    raise AssertionError(f"the schema has no event of type {event_type}")


def resolve(rule: dict[str, object], definitions: dict[str, dict[str, object]]) -> dict[str, object]:
    reference = rule.get("$ref")
    if isinstance(reference, str):
        return definitions[reference.removeprefix("#/$defs/")]
    return rule


def problems(
    value: object, rule: dict[str, object], definitions: dict[str, dict[str, object]], where: str
) -> list[str]:
    """What in `value` breaks `rule`: the parts of JSON Schema this schema uses for its fields."""
    rule = resolve(rule, definitions)
    found: list[str] = []
    if "const" in rule and value != rule["const"]:
        found.append(f"{where} is {value!r}, not {rule['const']!r}")
    if "enum" in rule and value not in cast(list[object], rule["enum"]):
        found.append(f"{where} is {value!r}, not one of {rule['enum']}")
    if "type" in rule:
        names = rule["type"] if isinstance(rule["type"], list) else [rule["type"]]
        allowed = tuple(kind for name in cast(list[str], names) for kind in JSON_TYPES[name])
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            found.append(f"{where} is {value!r}, not of type {names}")
    if isinstance(value, dict):
        for name in cast(list[str], rule.get("required", [])):
            if name not in value:
                found.append(f"{where} lacks {name}")
        for name, field_rule in cast(dict[str, dict[str, object]], rule.get("properties", {})).items():
            if name in value:
                found += problems(value[name], field_rule, definitions, f"{where}.{name}")
    if isinstance(value, list) and isinstance(rule.get("items"), dict):
        for index, item in enumerate(value):
            found += problems(item, cast(dict[str, object], rule["items"]), definitions, f"{where}[{index}]")
    return found


@pytest.mark.parametrize(
    "journal", [realistic_run, killed_run, lambda: long_output_run(10)], ids=["realistic", "killed", "long"]
)
def test_the_test_journals_keep_to_the_schema(journal: Callable[[], list[Event]]) -> None:
    document = schema()
    definitions = cast(dict[str, dict[str, object]], document["$defs"])
    events = journal()
    found: list[str] = []
    for index, event in enumerate(events):
        where = f"event {index} ({event.get('type')})"
        found += problems(event, document, definitions, where)
        found += problems(event, definition_of(str(event["type"]), definitions), definitions, where)
    assert not found


STEP_IDS = ["a", "b", "c", ""]
PLAUSIBLE: dict[str, st.SearchStrategy[object]] = {
    "step": st.sampled_from(STEP_IDS),
    "name": st.sampled_from(["build", "", "<b>&"]),
    "block": st.sampled_from(["services", "steps", "errors", "finally", "after", "elsewhere"]),
    "status": st.sampled_from(["SUCCESS", "FAILED", "SKIPPED", "UNFINISHED", "failed", ""]),
    "kind": st.sampled_from(["container", "network", "volume", "image", ""]),
    "group": st.one_of(st.booleans(), st.none(), st.sampled_from(STEP_IDS)),
    "line": st.text(),
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
TIMES = st.one_of(
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat()),
    st.datetimes(timezones=st.builds(timezone, st.timedeltas(-timedelta(hours=23), timedelta(hours=23)))).map(
        lambda moment: moment.isoformat()
    ),
    st.text(max_size=10),
    JSON_VALUES,
)
FIELDS = [
    "step",
    "name",
    "block",
    "status",
    "exit_code",
    "duration",
    "message",
    "outputs",
    "group",
    "allowed_failure",
    "carried_from",
    "kind",
    "service",
    "line",
    "pipeline",
    "source",
    "engine",
    "resources",
    "text",
    "warning",
]
PLANNED_STEP = st.fixed_dictionaries(
    {"step": PLAUSIBLE["step"], "name": PLAUSIBLE["name"], "block": PLAUSIBLE["block"]},
    optional={"group": st.one_of(st.none(), st.sampled_from(STEP_IDS))},
)
EVENT = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "run.started",
                "step.started",
                "log",
                "step.finished",
                "resource.created",
                "resource.removed",
                "notice",
                "run.finished",
                "later.kind",
            ]
        ),
        "time": TIMES,
        "run": st.text(max_size=4),
    },
    optional={
        "steps": st.lists(PLANNED_STEP, max_size=5) | JSON_VALUES,
        **{name: PLAUSIBLE.get(name, JSON_VALUES) | JSON_VALUES for name in FIELDS},
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENT, max_size=25))
def test_any_journal_renders(events: list[dict[str, object]]) -> None:
    """Journals cut short, from a newer runner or simply wrong still give a page, never an exception."""
    page = render_report(events)
    assert page.startswith("<!DOCTYPE html>")
    page.encode("utf-8")
