"""The picture of the HTML report in the README, made again from the made-up run the report's tests use:

    python -m tests.browser_screenshot                 # writes docs/report.png
    python -m tests.browser_screenshot --out x.png     # anywhere else

Chromium is installed with scripts/browser.sh if it is missing. The failed step's output is opened, so
the picture shows what a fold holds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from runner.reports.html import render_report
from tests.browser import TOP, Browser, BrowserError, find_chromium
from tests.report_runs import realistic_run

DEFAULT_OUT = TOP / "docs" / "report.png"
OPENED_STEP = "integration"


def make_picture(out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="runner-report-") as scratch:
        page_file = Path(scratch) / "report.html"
        page_file.write_text(render_report(realistic_run()), encoding="utf-8")
        with Browser.start(find_chromium()) as browser:
            page = browser.open(page_file.as_uri())
            page.evaluate(f"document.querySelector('details.log[data-step=\"{OPENED_STEP}\"]').open = true")
            out.parent.mkdir(parents=True, exist_ok=True)
            return page.screenshot(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.browser_screenshot", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"the PNG to write (default {DEFAULT_OUT})"
    )
    arguments = parser.parse_args(argv)
    try:
        written = make_picture(arguments.out)
    except BrowserError as error:
        print(f"browser_screenshot: {error}", file=sys.stderr)
        return 1
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
