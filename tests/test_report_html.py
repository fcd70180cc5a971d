"""The HTML report as a browser shows it: every check here asks Chromium about the rendered page (the DOM,
positions, computed colours), never the HTML text. The browser is started once for the module; without
one, and with no way to install it, the tests are skipped, except in CI, where that is a failure."""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from runner.reports.html import MAX_LOG_LINES, render_report
from tests.browser import Browser, Page, chromium_for_tests
from tests.browser_screenshot import make_picture
from tests.report_runs import (
    BUILD_LINES,
    FINALLY_STARTS,
    GROUP_ENDS,
    INTEGRATION_LINES,
    PLAN,
    RUN_ID,
    RUN_SECONDS,
    SERVICE,
    SERVICE_TIMES,
    TIMES,
    Event,
    killed_run,
    long_output_run,
    realistic_run,
)

pytestmark = pytest.mark.browser

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PIXEL = 1.0  # how far apart two edges may be and still count as the same x

# A rectangle as the page measures it; a script evaluated in the page returns these.
RECT_JS = """
function rect(element) {
  if (!element) { return null; }
  const r = element.getBoundingClientRect();
  return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height};
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser.start(chromium_for_tests()) as started:
        yield started


def open_report(browser: Browser, events: list[Event], path: Path) -> Page:
    path.write_text(render_report(events), encoding="utf-8")
    return browser.open(path.as_uri())


@pytest.fixture(scope="module")
def report(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Page:
    return open_report(browser, realistic_run(), tmp_path_factory.mktemp("report") / "report.html")


def js(page: Page, body: str) -> object:
    """The value of a function body run in the page, with `rect(element)` at hand."""
    return page.evaluate(f"(() => {{ {RECT_JS} {body} }})()")


def rect_of(page: Page, selector: str) -> dict[str, float]:
    value = js(page, f"return rect(document.querySelector({json.dumps(selector)}));")
    assert isinstance(value, dict), f"nothing matches {selector}"
    return cast(dict[str, float], value)


def step_bar(step: str) -> str:
    return f'.lane.step[data-step="{step}"] .bar'


def rgb(page: Page, selector: str) -> tuple[int, int, int]:
    colour = js(
        page, f"return getComputedStyle(document.querySelector({json.dumps(selector)})).backgroundColor;"
    )
    match = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, [\d.]+)?\)", str(colour))
    assert match, f"{selector} has background {colour!r}"
    red, green, blue = (int(part) for part in match.groups())
    return red, green, blue


def track_x(page: Page, step_selector: str, seconds: float) -> float:
    """Where `seconds` after the run's start falls on the lane's track."""
    track = rect_of(page, f"{step_selector} .track")
    return track["left"] + track["width"] * seconds / RUN_SECONDS


def test_every_step_has_one_lane_and_one_bar_with_its_status(report: Page) -> None:
    lanes = js(
        report,
        """return [...document.querySelectorAll('.lane.step')].map(lane => ({
             step: lane.dataset.step, status: lane.dataset.status, block: lane.dataset.block,
             bars: lane.querySelectorAll('.bar').length}));""",
    )
    expected = {
        "checkout": "SUCCESS",
        "build": "SUCCESS",
        "unit-tests": "SUCCESS",
        "lint": "WARNING",
        "integration": "FAILED",
        "deploy": "SKIPPED",
        "cleanup": "SUCCESS",
    }
    assert isinstance(lanes, list)
    assert [lane["step"] for lane in lanes] == [step for step, *_ in PLAN]
    assert {lane["step"]: lane["status"] for lane in lanes} == expected
    assert all(lane["bars"] == 1 for lane in lanes)
    assert {lane["step"]: lane["block"] for lane in lanes}["cleanup"] == "finally"


def test_a_group_is_a_bracket_over_its_steps_not_a_bar(report: Page) -> None:
    group = js(
        report,
        """const lane = document.querySelector('.lane.group[data-group="checks"]');
           return {bars: lane.querySelectorAll('.bar').length, status: lane.dataset.status,
                   bracket: rect(lane.querySelector('.bracket')),
                   members: [...document.querySelectorAll('.lane.step[data-group="checks"]')]
                              .map(l => l.dataset.step)};""",
    )
    assert isinstance(group, dict)
    assert group["bars"] == 0
    assert group["status"] == "WARNING"
    assert group["members"] == ["unit-tests", "lint"]
    unit_tests, lint = rect_of(report, step_bar("unit-tests")), rect_of(report, step_bar("lint"))
    assert abs(group["bracket"]["left"] - min(unit_tests["left"], lint["left"])) <= PIXEL
    assert (
        abs(group["bracket"]["right"] - track_x(report, '.lane.group[data-group="checks"]', GROUP_ENDS))
        <= PIXEL
    )
    assert group["bracket"]["right"] >= max(unit_tests["right"], lint["right"])


def test_parallel_steps_overlap_in_time_on_lanes_of_their_own(report: Page) -> None:
    unit_tests, lint = rect_of(report, step_bar("unit-tests")), rect_of(report, step_bar("lint"))
    assert unit_tests["left"] < lint["right"] and lint["left"] < unit_tests["right"]
    assert unit_tests["bottom"] <= lint["top"] or lint["bottom"] <= unit_tests["top"]


def test_sequential_steps_follow_each_other(report: Page) -> None:
    checkout, build = rect_of(report, step_bar("checkout")), rect_of(report, step_bar("build"))
    assert checkout["right"] <= build["left"]
    assert checkout["bottom"] <= build["top"]


@pytest.mark.parametrize("step", sorted(TIMES))
def test_bars_sit_where_their_steps_ran(report: Page, step: str) -> None:
    lane = f'.lane.step[data-step="{step}"]'
    started, ended = TIMES[step]
    bar = rect_of(report, f"{lane} .bar")
    assert abs(bar["left"] - track_x(report, lane, started)) <= PIXEL
    assert abs(bar["right"] - track_x(report, lane, ended)) <= PIXEL


def test_the_finally_line_is_where_the_finally_step_starts_and_crosses_every_lane(report: Page) -> None:
    line = rect_of(report, "#finally-start")
    bar = rect_of(report, step_bar("cleanup"))
    assert abs(line["left"] - bar["left"]) <= PIXEL
    assert abs(line["left"] - track_x(report, '.lane.step[data-step="cleanup"]', FINALLY_STARTS)) <= PIXEL
    first, last = rect_of(report, ".lane"), rect_of(report, ".lane:last-child")
    assert line["top"] <= first["top"] and line["bottom"] >= last["bottom"]
    assert js(report, "return document.querySelector('#finally-start').textContent;") == "finally"
    badge = js(
        report, """return document.querySelector('.lane.step[data-step="cleanup"] .badge').textContent;"""
    )
    assert badge == "finally"


def test_the_service_has_a_lane_whose_bar_spans_its_life(report: Page) -> None:
    lane = f'.lane.service[data-service="{SERVICE}"]'
    assert js(
        report, f"return document.querySelector({json.dumps(lane)}).querySelector('.label').textContent;"
    ) == (f"service {SERVICE}")
    bar = rect_of(report, f"{lane} .bar")
    created, removed = SERVICE_TIMES
    assert abs(bar["left"] - track_x(report, lane, created)) <= PIXEL
    assert abs(bar["right"] - track_x(report, lane, removed)) <= PIXEL
    assert js(report, "return document.querySelectorAll('.lane.service').length;") == 1


def test_colours_follow_the_status(report: Page) -> None:
    red, green, blue = rgb(report, step_bar("integration"))
    assert red > 180 and green < 100 and blue < 100, "a failed step is red"
    red, green, blue = rgb(report, step_bar("deploy"))
    assert max(red, green, blue) - min(red, green, blue) < 25 and 120 < red < 220, "a skipped step is grey"
    red, green, blue = rgb(report, step_bar("build"))
    assert green > 120 and green > red + 50 and green > blue + 50, "a successful step is green"
    red, green, blue = rgb(report, step_bar("lint"))
    assert red > 200 and 100 < green < 180 and blue < 60, "a warning is amber"
    assert js(
        report,
        f"return document.querySelector({json.dumps(step_bar('deploy'))}).classList.contains('marker');",
    )


def test_logs_are_folded_and_show_the_lines_as_text(report: Page) -> None:
    logs = js(
        report,
        """return [...document.querySelectorAll('.lane.step details.log')].map(d => ({
             step: d.dataset.step, open: d.open,
             shown: d.querySelector('pre') ? d.querySelector('pre').getClientRects().length : 0}));""",
    )
    assert isinstance(logs, list)
    assert [log["step"] for log in logs] == [step for step, *_ in PLAN]
    assert not any(log["open"] or log["shown"] for log in logs)

    for step, lines in (("build", BUILD_LINES), ("integration", INTEGRATION_LINES)):
        text = js(
            report, f"""return document.querySelector('details.log[data-step="{step}"] pre').textContent;"""
        )
        assert text == "\n".join(ANSI.sub("", line) for line in lines)
    seen = js(
        report,
        """const log = document.querySelector('details.log[data-step="build"]');
           log.open = true;
           const pre = log.querySelector('pre');
           const shown = {text: pre.innerText, height: rect(pre).height};
           log.open = false;
           return shown;""",
    )
    assert isinstance(seen, dict)
    assert seen["height"] > 0
    assert "<build> wrote dist/app-1.4.2.tar.gz & dist/app-1.4.2-py3-none-any.whl" in seen["text"]
    assert "\x1b" not in seen["text"]
    assert js(report, "return document.querySelectorAll('build').length;") == 0, "a log line made an element"
    assert "$SECRET" in str(
        js(
            report,
            """return document.querySelector('details.log[data-step="integration"] pre').textContent;""",
        )
    )


def test_each_log_summary_tells_how_its_step_ended(report: Page) -> None:
    summary = js(
        report,
        """const s = document.querySelector('details.log[data-step="integration"] summary');
           return {status: s.querySelector('.status').textContent,
                   exit: s.querySelector('.exit-code').textContent,
                   duration: s.querySelector('.duration').textContent,
                   message: s.querySelector('.message').textContent,
                   lines: s.querySelector('.line-count').textContent};""",
    )
    assert summary == {
        "status": "FAILED",
        "exit": "exit 3",
        "duration": "4.4s",
        "message": "exited with code 3",
        "lines": "5 lines",
    }


def test_the_header_tells_what_ran_and_how_it_ended(report: Page) -> None:
    facts = js(
        report,
        """return Object.fromEntries([...document.querySelectorAll('header.run [data-fact]')].map(
             f => [f.dataset.fact, (f.querySelector('dd') || f).textContent]));""",
    )
    assert facts == {
        "pipeline": "release",
        "status": "failed (exit code 1)",
        "run": RUN_ID,
        "source": "pipelines/release.yml",
        "engine": "unix:///var/run/docker.sock",
        "started": "2025-03-01 14:22:33.000 UTC",
        "duration": "20.1s",
        "resources": "9 created, 9 removed",
    }


def test_resources_are_listed_with_when_they_came_and_went(report: Page) -> None:
    rows = js(
        report,
        """return [...document.querySelectorAll('table.resources tbody tr')].map(row => ({
             kind: row.dataset.kind, name: row.dataset.name, removed: row.dataset.removed,
             cells: [...row.cells].map(cell => cell.innerText)}));""",
    )
    assert isinstance(rows, list)
    assert len(rows) == 9
    assert all(row["removed"] == "true" for row in rows)
    network = next(row for row in rows if row["kind"] == "network")
    assert network["cells"] == ["network", "runner-7f3a-net", "the run", "+0.1s", "+19.9s"]
    service = next(row for row in rows if row["name"] == SERVICE)
    assert service["cells"][2:] == ["integration", "+12.7s", "+17.6s"]


def test_the_report_asks_the_network_for_nothing(report: Page) -> None:
    assert report.requested_urls() == [report.evaluate("location.href")]
    assert report.evaluate("performance.getEntriesByType('resource').length") == 0


def test_a_page_that_asks_the_network_is_seen_and_blocked(browser: Browser, tmp_path: Path) -> None:
    """The check above would pass on a harness that saw no requests at all; this page makes one."""
    path = tmp_path / "asks.html"
    path.write_text('<!DOCTYPE html><img id="far" src="http://example.com/pixel.png">', encoding="utf-8")
    page = browser.open(path.as_uri())
    try:
        assert "http://example.com/pixel.png" in page.requested_urls()
        assert page.evaluate("document.getElementById('far').naturalWidth") == 0
    finally:
        page.close()


def test_a_screenshot_is_a_real_png_of_the_page(report: Page, tmp_path: Path) -> None:
    png = report.screenshot(tmp_path / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width == 1280
    assert height >= 900, "the whole page, beyond the viewport"
    assert len(png) > 30_000, "a page of colour and text, not a blank image"


def test_without_javascript_the_page_is_whole(report: Page, browser: Browser) -> None:
    """Scripts only add conveniences (the buttons); the page is laid out the same without them."""
    bare = browser.open(str(report.evaluate("location.href")), scripts=False)
    try:
        assert bare.evaluate("document.querySelectorAll('.toolbar').length") == 0
        assert report.evaluate("document.querySelectorAll('.toolbar').length") == 1
        for step in TIMES:
            with_scripts, without = rect_of(report, step_bar(step)), rect_of(bare, step_bar(step))
            assert abs(with_scripts["left"] - without["left"]) <= PIXEL
            assert abs(with_scripts["width"] - without["width"]) <= PIXEL
        assert rect_of(bare, "#finally-start")["left"] == rect_of(report, "#finally-start")["left"]
    finally:
        bare.close()


def test_the_readme_picture_can_be_made_again(browser: Browser, tmp_path: Path) -> None:
    """python -m tests.browser_screenshot, which wrote docs/report.png (its own browser: `browser` is here
    for its skip)."""
    png = make_picture(tmp_path / "docs" / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", png[16:24])[0] == 1280


def test_a_journal_without_an_end_still_renders(browser: Browser, tmp_path: Path) -> None:
    page = open_report(browser, killed_run(at_seconds=15.0), tmp_path / "killed.html")
    try:
        state = js(
            page,
            """return {run: document.querySelector('header.run').dataset.status,
                 steps: Object.fromEntries([...document.querySelectorAll('.lane.step')].map(
                   l => [l.dataset.step, l.dataset.status])),
                 finallyLine: document.querySelector('#finally-start') !== null,
                 integration: document.querySelector(
                   '.lane.step[data-step="integration"] .status').textContent,
                 serviceOpen: document.querySelector('.lane.service .bar').classList.contains('open'),
                 notRemoved: [...document.querySelectorAll('table.resources tr[data-removed="false"]')]
                   .map(r => r.dataset.name)};""",
        )
        assert isinstance(state, dict)
        assert state["run"] == "unfinished"
        assert state["steps"] == {
            "checkout": "SUCCESS",
            "build": "SUCCESS",
            "unit-tests": "SUCCESS",
            "lint": "WARNING",
            "integration": "UNFINISHED",
            "deploy": "PENDING",
            "cleanup": "PENDING",
        }
        assert state["integration"] == "running / unknown"
        assert not state["finallyLine"]
        assert state["serviceOpen"]
        assert sorted(state["notRemoved"]) == sorted(
            ["runner-7f3a-net", "runner-7f3a-workspace", SERVICE, "runner-7f3a-integration"]
        )
        # The last event is the integration step's last line: what never ended reaches it, the axis's end.
        track = rect_of(page, '.lane.step[data-step="integration"] .track')
        for selector in ('.lane.step[data-step="integration"] .bar', ".lane.service .bar"):
            assert abs(rect_of(page, selector)["right"] - track["right"]) <= PIXEL
    finally:
        page.close()


def test_a_long_output_is_cut_to_its_last_lines(browser: Browser, tmp_path: Path) -> None:
    events = long_output_run(100_000)
    began = time.monotonic()
    page = open_report(browser, events, tmp_path / "long.html")
    try:
        assert time.monotonic() - began < 10, "rendering and loading 100,000 lines"
        shown = js(
            page,
            """const log = document.querySelector('details.log[data-step="build"]');
               const lines = log.querySelector('pre').textContent.split('\\n');
               return {total: log.dataset.lines, count: lines.length, first: lines[0],
                       last: lines[lines.length - 1], note: log.querySelector('.earlier').textContent};""",
        )
        assert shown == {
            "total": "100000",
            "count": MAX_LOG_LINES,
            "first": f"line {100_000 - MAX_LOG_LINES} <of> 100000 & more",
            "last": "line 99999 <of> 100000 & more",
            "note": f"{100_000 - MAX_LOG_LINES} earlier lines in runner logs {RUN_ID} build",
        }
    finally:
        page.close()
