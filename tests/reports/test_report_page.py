"""`runner report` of a real run, as Chromium shows it: every step, its status, the service beside its
step, where `finally` began, the resources, and no secret; every check asks the browser, not the HTML."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import Browser, chromium_for_tests
from tests.reports.conftest import SECRET, FinishedRun

pytestmark = [pytest.mark.docker, pytest.mark.browser]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser.start(chromium_for_tests()) as started:
        yield started


def test_the_report_of_a_real_run_shows_what_happened(
    finished_run: FinishedRun, browser: Browser, tmp_path: Path
) -> None:
    made = finished_run.runner("report", "-o", str(tmp_path / "report.html"))
    assert made.returncode == 0, made.stderr
    assert f"run {finished_run.run_id}" in made.stdout
    page = browser.open((tmp_path / "report.html").as_uri())
    steps = page.evaluate(
        "[...document.querySelectorAll('.lane.step')].map(l => [l.querySelector('.name').textContent.trim(),"
        " l.dataset.status, l.dataset.block, l.querySelectorAll('.bar').length])"
    )
    assert steps == [
        ["build", "SUCCESS", "steps", 1],
        ["lint", "SUCCESS", "steps", 1],
        ["unit", "SUCCESS", "steps", 1],
        ["broken", "FAILED", "steps", 1],
        ["never", "SKIPPED", "steps", 1],
        ["cleanup", "SUCCESS", "finally", 1],
    ]
    # the parallel steps' bars overlap in time, on lanes of their own
    lint, unit = (
        page.evaluate(
            f"(() => {{ const r = document.querySelector('.lane.step[data-step=\"{name}\"] .bar')"
            ".getBoundingClientRect(); return [r.left, r.right, r.top]; })()"
        )
        for name in ("lint", "unit")
    )
    assert isinstance(lint, list) and isinstance(unit, list)
    assert lint[0] < unit[1] and unit[0] < lint[1] and lint[2] != unit[2]
    services = page.evaluate("[...document.querySelectorAll('.lane.service')].map(l => l.dataset.step)")
    assert services == ["build"]
    finally_x = page.evaluate("document.getElementById('finally-start').getBoundingClientRect().left")
    cleanup_x = page.evaluate(
        "document.querySelector('.lane.step[data-step=\"cleanup\"] .bar').getBoundingClientRect().left"
    )
    assert isinstance(finally_x, float | int) and isinstance(cleanup_x, float | int)
    assert abs(finally_x - cleanup_x) <= 2
    log = page.evaluate(
        "(() => { const d = document.querySelector('details.log[data-step=\"broken\"]');"
        " return [d.open, d.querySelector('pre.lines').textContent]; })()"
    )
    assert isinstance(log, list)
    folded, text = log
    assert folded is False and "about to fail with $SECRET" in text
    removed = page.evaluate(
        "[...document.querySelectorAll('table.resources tr[data-kind]')].map(r => r.dataset.removed)"
    )
    assert isinstance(removed, list) and len(removed) >= 8 and set(removed) == {"true"}
    shown = page.evaluate("document.body.innerText")
    assert isinstance(shown, str) and SECRET not in shown and "$SECRET" in shown
    assert page.requested_urls() == [(tmp_path / "report.html").as_uri()]
    page.screenshot(tmp_path / "report.png")
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_the_report_cannot_find_is_refused(finished_run: FinishedRun) -> None:
    made = finished_run.runner("report", "ffffffffff")
    assert made.returncode == 2 and "no run 'ffffffffff'" in made.stderr
