"""The write-ahead ledger: each resource is recorded before it is created, and confirmed after.

Labels are the source of truth; the ledger is the index that survives the runner, and the record of
how each run ended, and on which engine, that `runner ps` reads.

Boring on purpose: a connection per operation (nothing held across threads or forks), a schema version
migrated forward in one transaction, and rows read back by column name only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import LedgerUnavailable

SCHEMA_VERSION = 3
# Each entry takes the schema from the version before it to its own number.
MIGRATIONS: dict[int, str] = {
    1: """
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
    """,
    2: "ALTER TABLE runs ADD COLUMN engine TEXT NOT NULL DEFAULT '';",
    # what a later run needs to resume or re-run this one: how its pipeline was chosen, its build number,
    # the run it continued, and what each step shared with the steps after it
    3: """
    ALTER TABLE runs ADD COLUMN selection TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE runs ADD COLUMN build_number INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN parent TEXT NOT NULL DEFAULT '';
    ALTER TABLE steps ADD COLUMN variables TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE steps ADD COLUMN masked TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE steps ADD COLUMN recorded REAL NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN outputs TEXT NOT NULL DEFAULT '{}';
    """,
}


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
    engine: str = ""  # the engine's id; "" for runs recorded before engines were
    selection: dict[str, object] = field(default_factory=dict)  # how the pipeline was chosen from its file
    build_number: int = 0
    parent: str = ""  # the run this one resumed or re-ran

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        return cls(
            run_id=row["run_id"],
            pipeline=row["pipeline"],
            source=row["source"],
            owner=row["owner"],
            started=row["started"],
            ended=row["ended"],
            status=row["status"],
            exit_code=row["exit_code"],
            engine=row["engine"],
            selection=json.loads(row["selection"]),
            build_number=row["build_number"],
            parent=row["parent"],
        )


@dataclass(frozen=True)
class StepRecord:
    run_id: str
    step_id: str
    name: str
    status: str
    exit_code: int | None
    variables: dict[str, str]  # what the step shared with the steps after it
    masked: tuple[str, ...]  # the names among them whose values are never shown
    outputs: dict[str, object]  # what later steps' expressions read of it (`outputs.ID...`)
    duration: float = 0.0  # seconds

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StepRecord:
        return cls(
            run_id=row["run_id"],
            step_id=row["step_id"],
            name=row["name"],
            status=row["status"],
            exit_code=row["exit_code"],
            variables=json.loads(row["variables"]),
            masked=tuple(json.loads(row["masked"])),
            outputs=json.loads(row["outputs"]),
            duration=float(row["duration"] or 0.0),
        )


class Ledger:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or state_dir()
        self.path = self.directory / "ledger.sqlite"
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
            with self._connection() as db:
                db.execute("PRAGMA journal_mode=WAL")
                self._migrate(db)
            os.chmod(self.path, 0o600)
        except (OSError, sqlite3.Error) as exc:
            raise self._unwritable(exc) from exc

    def _unwritable(self, exc: Exception) -> LedgerUnavailable:
        return LedgerUnavailable(
            f"cannot write the run ledger under {self.directory}: {exc}",
            "free disk space or fix permissions there, or set RUNNER_STATE_DIR to a writable directory",
        )

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10, isolation_level=None)) as db:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=NORMAL")
            yield db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")  # two runners starting at once migrate one after the other
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version == 0 and db.execute("SELECT name FROM sqlite_master WHERE name = 'runs'").fetchone():
                version = 1  # a ledger written before the schema had a version
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"the ledger's schema is version {version}, newer than this runner's {SCHEMA_VERSION}"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._connection() as db:
                yield db
        except sqlite3.Error as exc:
            raise self._unwritable(exc) from exc

    def _read(self, query: str, parameters: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._connection() as db:
            return db.execute(query, parameters).fetchall()

    def close(self) -> None:
        """Nothing stays open between calls; kept for callers that close what they open."""

    # runs

    def start_run(
        self,
        run_id: str,
        pipeline: str,
        source: str,
        owner: str,
        engine: str = "",
        selection: Mapping[str, object] | None = None,
        build_number: int = 0,
        parent: str = "",
    ) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO runs (run_id, pipeline, source, owner, started, ended, status, exit_code, "
                "engine, selection, build_number, parent) "
                "VALUES (?, ?, ?, ?, ?, NULL, 'running', NULL, ?, ?, ?, ?)",
                (
                    run_id,
                    pipeline,
                    source,
                    owner,
                    time.time(),
                    engine,
                    json.dumps(dict(selection or {})),
                    build_number,
                    parent,
                ),
            )

    def end_run(self, run_id: str, status: str, exit_code: int | None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET ended = ?, status = ?, exit_code = ? WHERE run_id = ?",
                (time.time(), status, exit_code, run_id),
            )

    def run(self, run_id: str) -> RunRecord | None:
        rows = self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return RunRecord.from_row(rows[0]) if rows else None

    def count_runs(self, source: str) -> int:
        rows = self._read("SELECT COUNT(*) AS count FROM runs WHERE source = ?", (source,))
        return int(rows[0]["count"])

    def unfinished(self, engine: str | None = None) -> list[RunRecord]:
        """Runs still marked running; with `engine`, only those on that engine (or recorded without one)."""
        if engine is None:
            rows = self._read("SELECT * FROM runs WHERE status = 'running'")
        else:
            rows = self._read("SELECT * FROM runs WHERE status = 'running' AND engine IN (?, '')", (engine,))
        return [RunRecord.from_row(row) for row in rows]

    def runs(self, limit: int = 50, engine: str | None = None) -> list[RunRecord]:
        if engine is None:
            rows = self._read("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,))
        else:
            rows = self._read(
                "SELECT * FROM runs WHERE engine = ? ORDER BY started DESC LIMIT ?", (engine, limit)
            )
        return [RunRecord.from_row(row) for row in rows]

    # resources

    def intend(self, run_id: str, kind: str, name: str, step: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO resources (run_id, kind, name, ident, step, state, created, removed) "
                "VALUES (?, ?, ?, NULL, ?, 'intended', ?, NULL)",
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
        rows = self._read(
            "SELECT kind, name FROM resources WHERE run_id = ? AND state != 'removed'", (run_id,)
        )
        return [(str(row["kind"]), str(row["name"])) for row in rows]

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
        variables: Mapping[str, str] | None = None,
        masked: Sequence[str] = (),
        outputs: Mapping[str, object] | None = None,
    ) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO steps (run_id, step_id, name, status, exit_code, duration, log_path, "
                "variables, masked, recorded, outputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    step_id,
                    name,
                    status,
                    exit_code,
                    duration,
                    log,
                    json.dumps(dict(variables or {})),
                    json.dumps(sorted(masked)),
                    time.time(),
                    json.dumps(dict(outputs or {}), default=str),
                ),
            )

    def steps(self, run_id: str) -> list[StepRecord]:
        """The steps of a run, in the order they ended."""
        rows = self._read("SELECT * FROM steps WHERE run_id = ? ORDER BY recorded, rowid", (run_id,))
        return [StepRecord.from_row(row) for row in rows]

    def last_passed(self, source: str, pipeline: str, step_id: str, before: str = "") -> StepRecord | None:
        """The newest record of this step passing in a run of this pipeline of this file."""
        rows = self._read(
            "SELECT steps.* FROM steps JOIN runs ON runs.run_id = steps.run_id "
            "WHERE runs.source = ? AND runs.pipeline = ? AND steps.step_id = ? AND steps.status = 'SUCCESS' "
            "AND runs.run_id != ? ORDER BY runs.started DESC LIMIT 1",
            (source, pipeline, step_id, before),
        )
        return StepRecord.from_row(rows[0]) if rows else None

    def find_runs(self, prefix: str) -> list[RunRecord]:
        """Runs whose id starts with `prefix`, the newest first."""
        rows = self._read(
            "SELECT * FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY started DESC", (len(prefix), prefix)
        )
        return [RunRecord.from_row(row) for row in rows]

    def continued_by(self, run_id: str) -> list[RunRecord]:
        """The runs that resumed or re-ran this one."""
        rows = self._read("SELECT * FROM runs WHERE parent = ? ORDER BY started", (run_id,))
        return [RunRecord.from_row(row) for row in rows]

    def runs_of(self, source: str, limit: int = 20) -> list[RunRecord]:
        """The newest runs of a file."""
        rows = self._read(
            "SELECT * FROM runs WHERE source = ? ORDER BY started DESC LIMIT ?", (source, limit)
        )
        return [RunRecord.from_row(row) for row in rows]
