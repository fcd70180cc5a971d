"""The write-ahead ledger: each resource is recorded before it is created, and confirmed after.

Labels are the source of truth; the ledger is the index that survives the runner, and the record of
how each run ended that `runner ps` reads.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from runner.errors import LedgerUnavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, pipeline TEXT, source TEXT, owner TEXT,
    started REAL, ended REAL, status TEXT, exit_code INTEGER
);
CREATE TABLE IF NOT EXISTS resources (
    run_id TEXT, kind TEXT, name TEXT, ident TEXT, step TEXT, state TEXT,
    created REAL, removed REAL, PRIMARY KEY (run_id, kind, name)
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT, step_id TEXT, name TEXT, status TEXT, exit_code INTEGER,
    duration REAL, log_path TEXT, PRIMARY KEY (run_id, step_id)
);
"""


def state_dir() -> Path:
    explicit = os.environ.get("RUNNER_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "runner"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    pipeline: str
    source: str
    owner: str
    started: float
    ended: float | None
    status: str
    exit_code: int | None


class Ledger:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or state_dir()
        self.lock = threading.Lock()
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
            path = self.directory / "ledger.sqlite"
            self.connection = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
            os.chmod(path, 0o600)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=NORMAL")
            self.connection.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise self._unwritable(exc) from exc

    def _unwritable(self, exc: Exception) -> LedgerUnavailable:
        return LedgerUnavailable(
            f"cannot write the run ledger under {self.directory}: {exc}",
            "free disk space or fix permissions there, or set RUNNER_STATE_DIR to a writable directory",
        )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            try:
                yield self.connection
            except sqlite3.Error as exc:
                raise self._unwritable(exc) from exc

    def close(self) -> None:
        with self.lock:
            self.connection.close()

    # runs

    def start_run(self, run_id: str, pipeline: str, source: str, owner: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, NULL, 'running', NULL)",
                (run_id, pipeline, source, owner, time.time()),
            )

    def end_run(self, run_id: str, status: str, exit_code: int | None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET ended = ?, status = ?, exit_code = ? WHERE run_id = ?",
                (time.time(), status, exit_code, run_id),
            )

    def run(self, run_id: str) -> RunRecord | None:
        with self.lock:
            row = self.connection.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return RunRecord(*row) if row else None

    def count_runs(self, source: str) -> int:
        with self.lock:
            row = self.connection.execute("SELECT COUNT(*) FROM runs WHERE source = ?", (source,)).fetchone()
        return int(row[0])

    def unfinished(self) -> list[RunRecord]:
        with self.lock:
            rows = self.connection.execute("SELECT * FROM runs WHERE status = 'running'").fetchall()
        return [RunRecord(*row) for row in rows]

    def runs(self, limit: int = 50) -> list[RunRecord]:
        with self.lock:
            rows = self.connection.execute(
                "SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,)
            ).fetchall()
        return [RunRecord(*row) for row in rows]

    # resources

    def intend(self, run_id: str, kind: str, name: str, step: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO resources VALUES (?, ?, ?, NULL, ?, 'intended', ?, NULL)",
                (run_id, kind, name, step, time.time()),
            )

    def confirm(self, run_id: str, kind: str, name: str, ident: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE resources SET ident = ?, state = 'created' "
                "WHERE run_id = ? AND kind = ? AND name = ?",
                (ident, run_id, kind, name),
            )

    def removed(self, run_id: str, kind: str, name: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE resources SET state = 'removed', removed = ? "
                "WHERE run_id = ? AND kind = ? AND name = ?",
                (time.time(), run_id, kind, name),
            )

    def open_resources(self, run_id: str) -> list[tuple[str, str]]:
        """(kind, name) of every resource of the run not known to be removed."""
        with self.lock:
            rows = self.connection.execute(
                "SELECT kind, name FROM resources WHERE run_id = ? AND state != 'removed'", (run_id,)
            ).fetchall()
        return [(str(kind), str(name)) for kind, name in rows]

    # steps

    def step_result(
        self,
        run_id: str,
        step_id: str,
        name: str,
        status: str,
        exit_code: int | None,
        duration: float,
        log: str,
    ) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, step_id, name, status, exit_code, duration, log),
            )
