"""Validators for the repository's JSON schemas: every event of `run --json`, and the documents of
`run -n --json`, `list --json` and `ps --json`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import jsonschema

from runner.reports.events import SCHEMA as EVENTS

OUTPUTS = Path(EVENTS).with_name("outputs.schema.json")


def _validator(schema: Mapping[str, object]) -> jsonschema.protocols.Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    return jsonschema.Draft202012Validator(schema, format_checker=checker)


def events_validator() -> jsonschema.protocols.Validator:
    return _validator(json.loads(EVENTS.read_text(encoding="utf-8")))


def output_validator(document: str) -> jsonschema.protocols.Validator:
    """For one of outputs.schema.json's documents: plan, list or ps."""
    schema = json.loads(OUTPUTS.read_text(encoding="utf-8"))
    return _validator({"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{document}"})


def problems(validator: jsonschema.protocols.Validator, instance: object) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]
