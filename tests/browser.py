"""A headless Chromium driven over the DevTools protocol, for the tests that look at rendered pages.

    with Browser.start(find_chromium()) as browser:
        page = browser.open(path.as_uri())
        page.evaluate("document.title")
        page.screenshot(tmp_path / "page.png")

The browser talks over a pair of pipes (--remote-debugging-pipe): it reads commands on its fd 3 and
writes answers and events on its fd 4, each a JSON object ended by a NUL byte. No port is opened and no
websocket client is needed. Every wait has a deadline, so a browser that hangs fails the test that uses
it instead of the whole suite; leaving the `with` block always ends the browser's process group and
removes its profile directory.

Pages cannot reach the network: host names resolve to nothing, and every http, https, ws and ftp URL is
blocked before it is sent. The requests a page tried are still recorded (`Page.requested_urls`), so a
test can tell that it tried none.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import cast

TOP = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = TOP / "scripts" / "browser.sh"
DEFAULT_TIMEOUT = 20.0
STARTUP_TIMEOUT = 30.0
VIEWPORT = (1280, 900)
BLOCKED_URLS = ["http://*", "https://*", "ws://*", "wss://*", "ftp://*"]
# Chromium's own fds for --remote-debugging-pipe: it reads commands on 3 and writes answers on 4.
BROWSER_READS_FD, BROWSER_WRITES_FD = 3, 4
# Where the pipe ends wait in this process before the child moves them to 3 and 4: above both, so the
# first move cannot overwrite the second end.
_ABOVE_BROWSER_FDS = 10
_READ_CHUNK = 1 << 20

Message = dict[str, object]


class BrowserError(RuntimeError):
    """The browser failed, answered with an error, or did not answer in time."""


class BrowserUnavailable(BrowserError):
    """No browser here, and none could be installed (no root, no apt-get)."""


def chromium_for_tests() -> str:
    """Chromium for a test: skipped where it is missing and cannot be installed, a failure in CI, whose
    machines can always install it."""
    import pytest  # here, so that running the screenshot script does not need pytest

    try:
        return find_chromium()
    except BrowserUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to install chromium: {error}")
        pytest.skip(f"no Chromium, and it cannot be installed here: {error}")


def find_chromium(*, install: bool = True, timeout: float = 900.0) -> str:
    """The path of Chromium, installed with scripts/browser.sh when missing and `install` is true."""
    found = shutil.which("chromium")
    if found:
        return found
    if not install:
        raise BrowserUnavailable("chromium is not on PATH")
    try:
        done = subprocess.run(
            ["bash", str(INSTALL_SCRIPT), "install"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as error:
        raise BrowserUnavailable(f"{INSTALL_SCRIPT.name} install took more than {timeout:.0f}s") from error
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise BrowserUnavailable(
            f"chromium is missing and could not be installed: {done.stderr.strip()[-2000:]}"
        )
    return lines[-1]


class _Pipe:
    """The two pipes to the browser: messages out, messages in, each waited for at most until a deadline."""

    def __init__(self, to_browser: int, from_browser: int, log: Path) -> None:
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.log = log
        self.buffer = bytearray()
        self.events: list[Message] = []
        self.next_id = 1
        os.set_blocking(to_browser, False)

    def call(
        self, method: str, params: Mapping[str, object] | None = None, *, session: str | None, timeout: float
    ) -> Message:
        deadline = time.monotonic() + timeout
        message_id = self.next_id
        self.next_id += 1
        message: Message = {"id": message_id, "method": method, "params": dict(params or {})}
        if session is not None:
            message["sessionId"] = session
        self._write(json.dumps(message).encode() + b"\0", deadline, method)
        while True:
            answer = self._read(deadline, method)
            if answer.get("id") != message_id:
                self.events.append(answer)
                continue
            if "error" in answer:
                raise BrowserError(f"{method} failed: {answer['error']}")
            result = answer.get("result", {})
            return cast(Message, result) if isinstance(result, dict) else {}

    def wait_for(self, method: str, *, session: str | None, after: int, timeout: float) -> Message:
        """The first event `method` of `session` that came after the first `after` events."""
        deadline = time.monotonic() + timeout
        position = after
        while True:
            for event in self.events[position:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    params = event.get("params", {})
                    return cast(Message, params) if isinstance(params, dict) else {}
            position = len(self.events)
            self.events.append(self._read(deadline, f"the event {method}"))

    def _write(self, data: bytes, deadline: float, waiting_for: str) -> None:
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self.to_browser], [], self._remaining(deadline, waiting_for))
            if writable:
                try:
                    view = view[os.write(self.to_browser, view) :]
                except BlockingIOError:
                    continue
                except BrokenPipeError as error:
                    raise BrowserError(f"the browser is gone ({waiting_for}){self._log_tail()}") from error

    def _read(self, deadline: float, waiting_for: str) -> Message:
        while True:
            end = self.buffer.find(b"\0")
            if end >= 0:
                raw = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                message = json.loads(raw)
                if isinstance(message, dict):
                    return message
                continue
            readable, _, _ = select.select(
                [self.from_browser], [], [], self._remaining(deadline, waiting_for)
            )
            if readable:
                chunk = os.read(self.from_browser, _READ_CHUNK)
                if not chunk:
                    raise BrowserError(f"the browser closed its pipe ({waiting_for}){self._log_tail()}")
                self.buffer += chunk

    def _remaining(self, deadline: float, waiting_for: str) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError(f"no answer from the browser in time: {waiting_for}{self._log_tail()}")
        return remaining

    def _log_tail(self) -> str:
        try:
            tail = self.log.read_text(errors="replace")[-2000:].strip()
        except OSError:
            return ""
        return f"\nbrowser output:\n{tail}" if tail else ""

    def close(self) -> None:
        for fd in (self.to_browser, self.from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)


class Page:
    """One tab, attached with a flat session: its commands carry the session's id."""

    def __init__(self, pipe: _Pipe, target_id: str, session_id: str, timeout: float) -> None:
        self._pipe = pipe
        self.target_id = target_id
        self.session_id = session_id
        self.timeout = timeout

    def call(self, method: str, params: Mapping[str, object] | None = None) -> Message:
        return self._pipe.call(method, params, session=self.session_id, timeout=self.timeout)

    def navigate(self, url: str) -> None:
        """Go to `url` and return once its load event has fired."""
        mark = len(self._pipe.events)
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"could not open {url}: {result['errorText']}")
        self._pipe.wait_for("Page.loadEventFired", session=self.session_id, after=mark, timeout=self.timeout)

    def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression (promises are awaited), as JSON would carry it."""
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        details = result.get("exceptionDetails")
        if isinstance(details, dict):
            exception = details.get("exception")
            text = exception.get("description") if isinstance(exception, dict) else None
            raise BrowserError(f"the page threw: {text or details.get('text')}")
        value = result.get("result")
        return value.get("value") if isinstance(value, dict) else None

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """A PNG of the viewport, or of the whole page when `full_page`."""
        params: dict[str, object] = {"format": "png"}
        if full_page:
            metrics = self.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize")
            if isinstance(size, dict):
                params["captureBeyondViewport"] = True
                params["clip"] = {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": size["height"],
                    "scale": 1,
                }
        data = self.call("Page.captureScreenshot", params).get("data")
        if not isinstance(data, str):
            raise BrowserError("Page.captureScreenshot returned no data")
        path.write_bytes(base64.b64decode(data))
        return path

    def requested_urls(self) -> list[str]:
        """Every URL this page asked for, blocked or not, since it was opened."""
        urls = []
        for event in self._pipe.events:
            if (
                event.get("method") != "Network.requestWillBeSent"
                or event.get("sessionId") != self.session_id
            ):
                continue
            params = event.get("params")
            request = params.get("request") if isinstance(params, dict) else None
            if isinstance(request, dict) and isinstance(request.get("url"), str):
                urls.append(cast(str, request["url"]))
        return urls

    def close(self) -> None:
        self._pipe.call(
            "Target.closeTarget", {"targetId": self.target_id}, session=None, timeout=self.timeout
        )


class Browser:
    def __init__(
        self,
        process: subprocess.Popen[bytes],
        pipe: _Pipe,
        profile: Path,
        *,
        timeout: float,
        viewport: tuple[int, int],
    ) -> None:
        self.process = process
        self.pipe = pipe
        self.profile = profile
        self.timeout = timeout
        self.viewport = viewport

    @classmethod
    @contextlib.contextmanager
    def start(
        cls,
        executable: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        viewport: tuple[int, int] = VIEWPORT,
    ) -> Iterator[Browser]:
        """A running browser for the `with` block; afterwards its processes and profile are gone."""
        profile = Path(tempfile.mkdtemp(prefix="runner-browser-"))
        process: subprocess.Popen[bytes] | None = None
        pipe: _Pipe | None = None
        try:
            process, pipe = _launch(executable or find_chromium(), profile, viewport)
            browser = cls(process, pipe, profile, timeout=timeout, viewport=viewport)
            pipe.call("Browser.getVersion", session=None, timeout=STARTUP_TIMEOUT)
            yield browser
        finally:
            if process is not None:
                _stop(process, pipe)
            if pipe is not None:
                pipe.close()
            shutil.rmtree(profile, ignore_errors=True)

    def version(self) -> str:
        return str(
            self.pipe.call("Browser.getVersion", session=None, timeout=self.timeout).get("product", "")
        )

    def open(self, url: str, *, scripts: bool = True) -> Page:
        """A new tab with the network blocked and requests recorded, showing `url`; without running the
        page's own scripts if `scripts` is false (the DevTools' evaluate still works)."""
        target = self.pipe.call(
            "Target.createTarget", {"url": "about:blank"}, session=None, timeout=self.timeout
        )
        target_id = str(target["targetId"])
        attached = self.pipe.call(
            "Target.attachToTarget",
            {"targetId": target_id, "flatten": True},
            session=None,
            timeout=self.timeout,
        )
        page = Page(self.pipe, target_id, str(attached["sessionId"]), self.timeout)
        page.call("Page.enable")
        page.call("Network.enable")
        page.call("Network.setBlockedURLs", {"urls": BLOCKED_URLS})
        if not scripts:
            page.call("Emulation.setScriptExecutionDisabled", {"value": True})
        width, height = self.viewport
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        page.navigate(url)
        return page


def _launch(
    executable: str, profile: Path, viewport: tuple[int, int]
) -> tuple[subprocess.Popen[bytes], _Pipe]:
    browser_reads, commands = _pipe_above()
    answers, browser_writes = _pipe_above()

    def give_the_browser_its_pipes() -> None:
        os.dup2(browser_reads, BROWSER_READS_FD)
        os.dup2(browser_writes, BROWSER_WRITES_FD)
        # close_fds would close 3 and 4 too (it runs after this); the rest is closed here instead.
        os.closerange(BROWSER_WRITES_FD + 1, os.sysconf("SC_OPEN_MAX"))

    arguments = [
        executable,
        "--headless=new",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--remote-debugging-pipe",
        f"--window-size={viewport[0]},{viewport[1]}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--mute-audio",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
        "about:blank",
    ]
    if os.geteuid() == 0:
        arguments.insert(1, "--no-sandbox")  # the sandbox refuses to start as root
    log = profile / "browser.log"
    try:
        with log.open("wb") as output:
            process = subprocess.Popen(
                arguments,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                close_fds=False,
                preexec_fn=give_the_browser_its_pipes,
                start_new_session=True,  # its helpers share its group, which ends as one
            )
    except BaseException:
        os.close(commands)
        os.close(answers)
        raise
    finally:
        os.close(browser_reads)
        os.close(browser_writes)
    return process, _Pipe(commands, answers, log)


def _pipe_above() -> tuple[int, int]:
    read_end, write_end = os.pipe()
    moved = (
        fcntl.fcntl(read_end, fcntl.F_DUPFD_CLOEXEC, _ABOVE_BROWSER_FDS),
        fcntl.fcntl(write_end, fcntl.F_DUPFD_CLOEXEC, _ABOVE_BROWSER_FDS),
    )
    os.close(read_end)
    os.close(write_end)
    return moved


def _stop(process: subprocess.Popen[bytes], pipe: _Pipe | None) -> None:
    if pipe is not None and process.poll() is None:
        with contextlib.suppress(BrowserError, OSError, ValueError):
            pipe.call("Browser.close", session=None, timeout=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    # Renderers and other helpers may outlive the main process; they are all in its group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
