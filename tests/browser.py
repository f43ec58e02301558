"""Headless Chromium for the browser tests, driven by Selenium through ChromeDriver.

Chromium and its driver come from the same Debian release (packages ``chromium`` and
``chromium-driver``), so the driver always speaks the browser's protocol version; Selenium
(``requirements-dev.txt``) is the well-kept client on top. Both paths are given to Selenium
explicitly, so it never tries to download a browser or a driver (the machines are offline).

The browser's console and network logs are recorded (ChromeDriver's ``goog:loggingPrefs``), so a
test can say "nothing broke" as well as "this is on the page".
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
DRIVERS = ("chromedriver", "chromium-driver", "/usr/lib/chromium/chromedriver")
MISSING = (
    "headless Chromium with its driver not found "
    "(Debian: apt-get install -y chromium chromium-driver; .ci/run installs both)"
)


def _find(env: str, names: tuple[str, ...]) -> str | None:
    explicit = os.environ.get(env)
    if explicit:
        return shutil.which(explicit) or (explicit if os.path.isfile(explicit) else None)
    for name in names:
        found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def find_chromium() -> str | None:
    """Path of a Chromium executable (``$CHROMIUM`` first), or None."""
    return _find("CHROMIUM", BROWSERS)


def find_chromedriver() -> str | None:
    """Path of ChromeDriver (``$CHROMEDRIVER`` first), or None."""
    return _find("CHROMEDRIVER", DRIVERS)


def missing_reason() -> str | None:
    """Why the browser tests cannot run here (one line), or None when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (make install)"
    if find_chromium() is None or find_chromedriver() is None:
        return MISSING
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
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        reason = missing_reason()
        if reason is not None:
            raise BrowserError(reason)
        self.profile = Path(profile_dir)
        self.profile.mkdir(parents=True, exist_ok=True)
        self.log_path = self.profile / "chromedriver.log"
        self.width, self.height = width, height
        options = webdriver.ChromeOptions()
        options.binary_location = find_chromium()
        for arg in (
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
            f"--window-size={width},{height}",
        ):
            options.add_argument(arg)
        if offline:
            options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        service = Service(executable_path=find_chromedriver(), log_output=str(self.log_path))
        try:
            self.driver = webdriver.Chrome(options=options, service=service)
        except Exception as exc:  # noqa: BLE001 - any start-up failure becomes one line
            raise BrowserError(f"chromium did not start: {exc}; see {self.log_path}") from exc
        self.driver.set_page_load_timeout(60)
        self.console: list[dict] = []  # the browser log since the last open
        self.network: list[dict] = []  # DevTools Network.* events since the last open

    # ---------------------------------------------------------------- logs
    def _collect(self) -> None:
        """Move what the browser logged since the last call into ``console`` and ``network``."""
        self.console += self.driver.get_log("browser")
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method", "").startswith("Network."):
                self.network.append(message)

    def script_errors(self) -> list[str]:
        """Uncaught exceptions and console errors seen since the last ``open``."""
        self._collect()
        return [e["message"] for e in self.console if e.get("level") == "SEVERE"]

    def failed_requests(self) -> list[str]:
        """Requests since the last ``open`` that failed or got an HTTP error status."""
        self._collect()
        urls, failed = {}, []
        for e in self.network:
            params = e.get("params", {})
            if e["method"] == "Network.requestWillBeSent":
                urls[params["requestId"]] = params["request"]["url"]
            elif e["method"] == "Network.loadingFailed" and not params.get("canceled"):
                failed.append(f"{urls.get(params['requestId'], '?')}: {params.get('errorText')}")
            elif e["method"] == "Network.responseReceived" and params["response"].get("status", 0) >= 400:
                failed.append(f"{params['response']['url']}: HTTP {params['response']['status']}")
        return failed

    def requested_urls(self) -> list[str]:
        self._collect()
        return [
            e["params"]["request"]["url"] for e in self.network if e["method"] == "Network.requestWillBeSent"
        ]

    # ---------------------------------------------------------------- page
    def open(self, url: str) -> None:
        """Navigate and wait for the load event (all images, scripts and style sheets done)."""
        from selenium.common.exceptions import WebDriverException

        self._collect()
        self.console.clear()
        self.network.clear()
        try:
            self.driver.get(url)
        except WebDriverException as exc:
            raise BrowserError(f"cannot open {url}: {exc.msg}") from exc

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        from selenium.common.exceptions import JavascriptException

        try:
            return self.driver.execute_script(f"return ({expression});")
        except JavascriptException as exc:
            raise BrowserError(f"{expression!r}: {exc.msg}") from exc

    def wait_for(self, expression: str, timeout: float = 60, interval: float = 0.25) -> Any:
        """Evaluate ``expression`` until it is truthy; return its value (BrowserError on time-out)."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.wait import WebDriverWait

        last: list[Any] = [None]

        def truthy(_driver: Any) -> Any:
            last[0] = self.eval(expression)
            return last[0]

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=interval).until(truthy)
        except TimeoutException:
            raise BrowserError(
                f"still falsy after {timeout:g} s: {expression} (last value {last[0]!r})"
            ) from None

    def screenshot(self, path: str | os.PathLike, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole page, up to 8000 px tall, by default)."""
        path = Path(path)
        if full_page:
            height = int(self.eval("Math.max(document.documentElement.scrollHeight, window.innerHeight)"))
            self.driver.set_window_size(self.width, min(max(height, self.height), 8000))
        try:
            if not self.driver.save_screenshot(str(path)):
                raise BrowserError(f"could not save a screenshot to {path}")
        finally:
            if full_page:
                self.driver.set_window_size(self.width, self.height)
        return path

    # ---------------------------------------------------------------- lifetime
    def close(self) -> None:
        driver = getattr(self, "driver", None)
        if driver is not None:
            self.driver = None
            driver.quit()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
