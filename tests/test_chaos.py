"""The fault-injection harness, reduced: `make chaos` runs it at full size."""

from __future__ import annotations

import pytest

from tests import chaos

pytestmark = pytest.mark.docker


def test_random_kills_and_signals_leave_nothing_and_every_run_says_how_it_ended(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = chaos.main(["--kills", "20", "--signals", "8"])
    out = capsys.readouterr().out
    print(out)
    assert code == 0, out
    assert "20 SIGKILL trials, 8 signal trials" in out
