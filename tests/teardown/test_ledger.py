from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import LedgerUnavailable
from runner.teardown.labels import Owner
from runner.teardown.ledger import Ledger


def test_resources_are_recorded_before_creation_and_confirmed_after(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "state")
    ledger.start_run("r1", "demo", "/p/runner.yml", "host/1/2")
    ledger.intend("r1", "container", "runner-r1-a-1", "a")
    assert ledger.open_resources("r1") == [("container", "runner-r1-a-1")]
    ledger.confirm("r1", "container", "runner-r1-a-1", "abc123")
    ledger.intend("r1", "network", "runner-r1-net", "")
    ledger.removed("r1", "container", "runner-r1-a-1")
    assert ledger.open_resources("r1") == [("network", "runner-r1-net")]
    ledger.end_run("r1", "failed", 1)
    record = ledger.run("r1")
    assert record is not None and (record.status, record.exit_code, record.pipeline) == ("failed", 1, "demo")
    assert record.ended is not None and record.ended >= record.started


def test_the_state_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "state")
    assert stat.S_IMODE(os.stat(ledger.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(ledger.directory / "ledger.sqlite").st_mode) == 0o600


def test_an_unwritable_state_dir_refuses_to_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    with pytest.raises(LedgerUnavailable) as caught:
        Ledger(blocker / "state")
    assert "RUNNER_STATE_DIR" in (caught.value.hint or "")


def test_two_ledgers_on_one_file_see_each_other(tmp_path: Path) -> None:
    first, second = Ledger(tmp_path), Ledger(tmp_path)
    first.start_run("a", "p", "s", "o")
    second.start_run("b", "p", "s", "o")
    assert {r.run_id for r in first.runs()} == {"a", "b"}


def test_an_owner_is_alive_only_while_its_process_runs() -> None:
    me = Owner.current()
    assert me.is_alive()
    assert Owner.parse(str(me)) == me
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = Owner(me.host, child.pid, "0")
    child.wait()
    assert not dead.is_alive()
    assert not Owner(me.host, os.getpid(), "1").is_alive()  # same pid, other start time: a reused pid
    assert Owner("another-host", 1, "1").is_alive()  # unknown elsewhere: never assumed dead
    assert Owner.parse("garbage") is None


def test_a_runner_in_another_pid_namespace_of_this_host_is_never_taken_for_dead() -> None:
    # two runners in containers on the host's network share its name, yet neither sees the other's
    # processes: the pid 1 of another namespace is not this namespace's pid 1
    me = Owner.current()
    name, _, namespace = me.host.partition("@")
    assert namespace, me.host
    assert Owner(f"{name}@{int(namespace) + 1}", 1, "0").is_alive()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not Owner(name, child.pid, "0").is_alive()  # a label written before owners named namespaces
