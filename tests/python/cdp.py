"""Headless Chromium driven over the Chrome DevTools Protocol (a WebSocket; the `websockets` package of
requirements-dev.txt), with no network beyond 127.0.0.1: every other host goes to a dead proxy and resolves to
nothing, so a page fetching from a CDN fails visibly (`Page.failed`). For the docs pages' tests (test_docs_ui.py).

    with Chromium.start() as browser:
        page = browser.page()                        # a Page, on a fresh tab
        page.goto("http://127.0.0.1:8000/docs")
        page.wait_for("document.querySelectorAll('.opblock').length > 0")
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from websockets.sync.client import ClientConnection, connect

__all__ = ["Chromium", "Page", "chromium_path", "require_chromium"]


def chromium_path() -> Optional[str]:
    """The Chromium to drive: $COVET_CHROMIUM, else /usr/bin/chromium or chromium/chromium-browser on PATH."""
    explicit = os.environ.get("COVET_CHROMIUM")
    if explicit:
        return explicit
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium(purpose: str) -> str:
    """The Chromium to drive, or the calling test skipped (failed under COVET_REQUIRE_CHROMIUM=1) naming `purpose`."""
    import pytest

    path = chromium_path()
    if path is None:
        reason = f"no Chromium (/usr/bin/chromium or $COVET_CHROMIUM; scripts/setup.sh installs it) {purpose}"
        if os.environ.get("COVET_REQUIRE_CHROMIUM"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


class Page:
    """One tab: commands are synchronous; events are recorded by a reader thread (`failed`, `console`)."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._results: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self.failed: list[str] = []  # requests that failed or answered >= 400: "url: reason"
        self.console: list[str] = []  # console errors and uncaught exceptions
        self._urls: dict[str, str] = {}
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Page.bringToFront")

    def _read(self) -> None:
        try:
            for raw in self._ws:
                message = json.loads(raw)
                if "id" in message:
                    with self._cond:
                        self._results[message["id"]] = message
                        self._cond.notify_all()
                else:
                    self._event(message["method"], message.get("params", {}))
        except Exception:  # the connection closed: commands waiting fail on the flag
            pass
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            self._urls[params["requestId"]] = params["request"]["url"]
        elif method == "Network.responseReceived":
            response = params["response"]
            if response["status"] >= 400 and not response["url"].endswith("/favicon.ico"):
                self.failed.append(f"{response['url']}: HTTP {response['status']}")
        elif method == "Network.loadingFailed":
            url = self._urls.get(params["requestId"], "?")
            self.failed.append(f"{url}: {params.get('errorText')}{' (blocked)' if params.get('blockedReason') else ''}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.console.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.console.append(f"{params['entry'].get('url', '')}: {params['entry']['text']}")

    def send(self, method: str, params: Optional[dict[str, Any]] = None, timeout: float = 15.0) -> dict[str, Any]:
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._results:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise AssertionError(f"CDP {method}: no answer ({'closed' if self._closed else 'timeout'})")
                self._cond.wait(left)
            message = self._results.pop(ident)
        if "error" in message:
            raise AssertionError(f"CDP {method} {params}: {message['error']}")
        result: dict[str, Any] = message["result"]
        return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def wait_for(self, expression: str, timeout: float = 15.0, what: str = "") -> Any:
        """Polls `expression` until it is truthy; its value. On timeout: AssertionError with the failed requests
        and console errors."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what or expression} not within {timeout} s; failed requests: {self.failed}; "
                                     f"console errors: {self.console}")
            time.sleep(0.1)

    def click(self, selector: str, text: Optional[str] = None) -> None:
        """Clicks the first element matching `selector` (and, if given, whose text contains `text`)."""
        found = self.evaluate(f"""(() => {{
            const el = [...document.querySelectorAll({json.dumps(selector)})]
                .find(e => {json.dumps(text)} === null || e.textContent.includes({json.dumps(text)}));
            if (!el) return false;
            el.scrollIntoView({{block: "center"}});
            el.click();
            return true;
        }})()""")
        assert found, f"no element {selector!r}{f' with text {text!r}' if text else ''} to click"

    def type_into(self, selector: str, text: str) -> None:
        """Focuses the input matching `selector` and types `text` (as keyboard input: React sees the change)."""
        found = self.evaluate(f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
                              " if (!el) return false; el.focus(); return true; })()")
        assert found, f"no input {selector!r}"
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path: Path) -> None:
        """A PNG of the viewport into `path`."""
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


class Chromium:
    """A headless Chromium process in a temporary profile, reachable only over its DevTools port."""

    def __init__(self, executable: str, *, width: int = 1280, height: int = 900) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="covet-chromium-")
        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
             "--mute-audio", "--hide-scrollbars", "--disable-background-timer-throttling",
             "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
             f"--window-size={width},{height}",
             # No network beyond loopback: other hosts resolve to nothing and would go to a dead proxy.
             "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.port = self._devtools_port()
        self._sockets = contextlib.ExitStack()  # the tabs' connections

    def _devtools_port(self) -> int:
        assert self.proc.stderr is not None
        seen: list[str] = []
        deadline = time.monotonic() + 30
        for line in self.proc.stderr:
            seen.append(line)
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if match:
                # Keep draining stderr so that Chromium never blocks writing to it.
                threading.Thread(target=lambda: [None for _ in self.proc.stderr or ()], daemon=True).start()
                return int(match.group(1))
            if time.monotonic() > deadline:
                break
        self.close()
        raise AssertionError(f"Chromium announced no DevTools port; its output:\n{''.join(seen[-30:])}")

    @classmethod
    @contextlib.contextmanager
    def start(cls, executable: Optional[str] = None) -> Iterator[Chromium]:
        path = executable or chromium_path()
        if path is None:
            raise FileNotFoundError("no Chromium found (set COVET_CHROMIUM)")
        browser = cls(path)
        try:
            yield browser
        finally:
            browser.close()

    def page(self) -> Page:
        """A new tab, connected."""
        # A new tab starts a renderer process: seconds on a loaded machine whose page cache is cold.
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            target = json.loads(response.read())
        ws = self._sockets.enter_context(connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30))
        return Page(ws)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._sockets.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait(10)
        self._profile.cleanup()


if __name__ == "__main__":  # a quick manual check: python cdp.py URL
    import sys

    with Chromium.start() as chromium:
        tab = chromium.page()
        tab.goto(sys.argv[1])
        time.sleep(3)
        print(tab.evaluate("document.title"), tab.failed, tab.console)
