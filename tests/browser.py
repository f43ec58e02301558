"""A small headless-Chromium driver for the browser tests, over the DevTools protocol.

Chromium (Debian package ``chromium``) is started with a private profile in the test's temporary
folder and a DevTools port of its choosing (read from ``DevToolsActivePort``); one page is driven
through a websocket (``websocket-client``, a visdom dependency). The page's script errors and failed
requests are recorded, so a test can say "nothing broke" as well as "this is on the page".
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
MISSING = "headless Chromium not found (Debian: apt-get install -y chromium; .ci/run installs it)"


def find_chromium() -> str | None:
    """Path of a Chromium executable (``$CHROMIUM`` first), or None."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return shutil.which(explicit) or (explicit if os.path.isfile(explicit) else None)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(
        self, profile_dir: str | os.PathLike, width: int = 1400, height: int = 1000, offline: bool = True
    ) -> None:
        """Start Chromium; ``offline``: no host name resolves (CDNs are out of reach), IP literals such
        as 127.0.0.1 and file:// pages still work."""
        import websocket  # websocket-client, installed with visdom

        exe = find_chromium()
        if exe is None:
            raise BrowserError(MISSING)
        self.profile = Path(profile_dir)
        self.profile.mkdir(parents=True, exist_ok=True)
        self.log_path = self.profile / "chromium.log"
        (self.profile / "profile" / "DevToolsActivePort").unlink(missing_ok=True)  # left by an earlier run
        args = [
            exe,
            "--headless=new",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--allow-file-access-from-files",
            f"--user-data-dir={self.profile / 'profile'}",
            "--remote-debugging-port=0",
            f"--window-size={width},{height}",
        ]
        if offline:
            args.append("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
        args.append("about:blank")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            port = self._devtools_port(timeout=60.0)
            self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{self._browser_path}", timeout=60)
            self._next_id = 0
            self.events: list[dict] = []
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for domain in ("Page", "Runtime", "Network", "Log"):
                self.call(f"{domain}.enable", session=True)
            self.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=True,
            )
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- protocol
    def _devtools_port(self, timeout: float) -> int:
        marker = self.profile / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited ({self.proc.returncode}); see {self.log_path}")
            if marker.is_file():
                lines = marker.read_text().split()
                if len(lines) >= 2:
                    self._browser_path = lines[1]
                    return int(lines[0])
            time.sleep(0.05)
        raise BrowserError(f"chromium did not open its DevTools port in {timeout:g} s; see {self.log_path}")

    def call(
        self, method: str, params: dict | None = None, session: bool = False, timeout: float = 60
    ) -> Any:
        """Send one command and wait for its answer (events that arrive meanwhile are recorded)."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)
        raise BrowserError(f"{method}: no answer in {timeout:g} s")

    def _pump(self, seconds: float) -> None:
        """Read events for up to ``seconds``."""
        import websocket

        self.ws.settimeout(max(0.01, seconds))
        try:
            while True:
                reply = json.loads(self.ws.recv())
                if "method" in reply:
                    self.events.append(reply)
        except websocket.WebSocketTimeoutException:
            pass
        finally:
            self.ws.settimeout(60)

    # ---------------------------------------------------------------- page
    def open(self, url: str, timeout: float = 60) -> None:
        """Navigate and wait for the load event (all images, scripts and style sheets done)."""
        self.events.clear()
        result = self.call("Page.navigate", {"url": url}, session=True)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        deadline = time.monotonic() + timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not finish loading in {timeout:g} s")
            self._pump(0.2)

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60, interval: float = 0.25) -> Any:
        """Evaluate ``expression`` until it is truthy; return its value (BrowserError on time-out)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            self._pump(interval)
        raise BrowserError(f"still falsy after {timeout:g} s: {expression} (last value {value!r})")

    def screenshot(self, path: str | os.PathLike, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole page by default)."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
            width, height = int(size["width"]), min(int(size["height"]), 8000)
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        data = self.call("Page.captureScreenshot", params, session=True)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def script_errors(self) -> list[str]:
        """Uncaught exceptions and console errors seen since the last ``open``."""
        errors = []
        for e in self.events:
            if e["method"] == "Runtime.exceptionThrown":
                details = e["params"]["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif e["method"] == "Log.entryAdded" and e["params"]["entry"].get("level") == "error":
                entry = e["params"]["entry"]
                errors.append(f"{entry.get('text')} ({entry.get('url', '')})")
        return errors

    def failed_requests(self) -> list[str]:
        """Requests since the last ``open`` that failed or got an HTTP error status."""
        urls = {}
        failed = []
        for e in self.events:
            params = e.get("params", {})
            if e["method"] == "Network.requestWillBeSent":
                urls[params["requestId"]] = params["request"]["url"]
            elif e["method"] == "Network.loadingFailed" and not params.get("canceled"):
                failed.append(f"{urls.get(params['requestId'], '?')}: {params.get('errorText')}")
            elif e["method"] == "Network.responseReceived" and params["response"].get("status", 0) >= 400:
                failed.append(f"{params['response']['url']}: HTTP {params['response']['status']}")
        return failed

    def requested_urls(self) -> list[str]:
        return [
            e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"
        ]

    # ---------------------------------------------------------------- lifetime
    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                self.call("Browser.close", timeout=5)
            except Exception:  # noqa: BLE001 - the browser may already be gone
                pass
            ws.close()
            self.ws = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
