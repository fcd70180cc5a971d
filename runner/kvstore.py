"""Kestra's key-value store, kept on this machine: a JSON file per namespace in the state directory, read
by `kv()` in expressions, written by the KV tasks and by `runner kv`. One writer at a time per file."""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runner.errors import InputError
from runner.teardown.ledger import state_dir

NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _file(namespace: str) -> Path:
    if not NAMESPACE.match(namespace):
        raise InputError(f"'{namespace}' is not a namespace", "use letters, digits, '.', '_' and '-'")
    return state_dir() / "kv" / f"{namespace}.json"


@contextmanager
def _locked(namespace: str) -> Iterator[dict[str, Any]]:
    """The namespace's entries, written back when the block ends without an error."""
    path = _file(namespace)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        yield entries
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(entries, indent=2, sort_keys=True), encoding="utf-8")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)


def get(namespace: str, key: str) -> Any:
    """The value, or KeyError."""
    path = _file(namespace)
    entries = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return entries[key]


def put(namespace: str, key: str, value: Any) -> None:
    with _locked(namespace) as entries:
        entries[key] = value


def delete(namespace: str, key: str) -> bool:
    with _locked(namespace) as entries:
        return entries.pop(key, None) is not None


def keys(namespace: str) -> list[str]:
    path = _file(namespace)
    return sorted(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else []
