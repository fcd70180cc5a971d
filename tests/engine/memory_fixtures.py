"""The in-memory backend and a ledger of its own, for the tests of ordering and state rules (the engine's
and each format's): loaded for the whole suite by tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runner.teardown.ledger import Ledger
from tests.engine.memory_backend import MemoryBackend


@pytest.fixture
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    # outside tmp_path: that is the pipeline's directory, which the workspace copies
    return Ledger(tmp_path_factory.mktemp("state"))


@pytest.fixture
def backend() -> Iterator[MemoryBackend]:
    backend = MemoryBackend()
    yield backend
    assert backend.faults == []
