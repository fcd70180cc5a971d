"""The browser harness itself: a page that never answers fails in time, errors in the page reach the test,
and nothing of the browser outlives its `with` block."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.browser import Browser, BrowserError, chromium_for_tests

pytestmark = pytest.mark.browser
SETTLE = 5.0  # seconds for SIGKILL to land on every process of the group


def living(group: int) -> list[int]:
    """The processes of a process group that are neither gone nor zombies: a zombie holds nothing, and
    whether one is reaped soon depends on this machine's init, not on the harness."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, process_group = fields[0], int(fields[2])
        if process_group == group and state not in ("Z", "X"):
            alive.append(int(stat.parent.name))
    return alive


def gone(group: int) -> bool:
    deadline = time.monotonic() + SETTLE
    while living(group):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def executable() -> str:
    return chromium_for_tests()


def blank_page(tmp_path: Path) -> str:
    path = tmp_path / "blank.html"
    path.write_text("<!DOCTYPE html><title>blank</title><p id=here>here</p>", encoding="utf-8")
    return path.as_uri()


def test_a_page_that_never_answers_fails_in_time(executable: str, tmp_path: Path) -> None:
    with Browser.start(executable, timeout=1.0) as browser:
        page = browser.open(blank_page(tmp_path))
        began = time.monotonic()
        with pytest.raises(BrowserError, match="in time"):
            page.evaluate("new Promise(() => {})")
        assert time.monotonic() - began < 3
        assert page.evaluate("document.getElementById('here').textContent") == "here", "still usable after"


def test_an_exception_in_the_page_reaches_the_test(executable: str, tmp_path: Path) -> None:
    with Browser.start(executable) as browser:
        page = browser.open(blank_page(tmp_path))
        with pytest.raises(BrowserError, match="no such thing"):
            page.evaluate("(() => { throw new Error('no such thing'); })()")
        assert page.evaluate("({a: [1, 'two', null]})") == {"a": [1, "two", None]}


def test_nothing_of_the_browser_is_left_after_it(executable: str, tmp_path: Path) -> None:
    with Browser.start(executable) as browser:
        browser.open(blank_page(tmp_path))
        group, profile = browser.process.pid, browser.profile
        assert profile.is_dir()
    assert browser.process.returncode is not None
    assert gone(group), f"still running: {living(group)}"
    assert not profile.exists()


def test_the_browser_ends_even_when_the_test_fails(executable: str) -> None:
    with pytest.raises(RuntimeError), Browser.start(executable) as browser:
        group, profile = browser.process.pid, browser.profile
        raise RuntimeError("the test failed")
    assert gone(group), f"still running: {living(group)}"
    assert not profile.exists()
