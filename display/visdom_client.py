"""A fault-tolerant connection to a visdom server: training never stops because the server is down.

``VisdomDisplay`` wraps ``visdom.Visdom``: the first failure prints one warning, later calls are
silently skipped, the connection is retried at most every ``retry_interval`` seconds and, when it
comes back, sending resumes (with a one-line notice). ``visdom`` is imported only when a display is
wanted, so a run with ``--display_id 0`` never needs it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

INSTALL_HINT = "pip install 'setuptools<81' && pip install --no-build-isolation visdom"


@contextlib.contextmanager
def _quiet_visdom_logger() -> Iterator[None]:
    """Temporarily silence the visdom client's logger ("Setting up a new session..." etc.)."""
    logger = logging.getLogger("visdom")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def make_visdom_client(server: str, port: int, env: str, timeout: float) -> Any:
    """Create a ``visdom.Visdom`` client that raises on network errors and never waits long.

    The client posts to the server in its constructor, so an unreachable server
    raises ``ConnectionError`` here. Every request uses ``timeout`` seconds.
    """
    import visdom  # optional dependency, imported only when a display is wanted

    class _TimeoutVisdom(visdom.Visdom):
        """``visdom.Visdom`` with a timeout on each HTTP request (the documented override point)."""

        def _handle_post(self, url: str, data: Any = None) -> str:
            r = self.session.post(url, data={} if data is None else data, timeout=timeout)
            return r.text

    with _quiet_visdom_logger():
        return _TimeoutVisdom(
            server=server, port=port, env=env, raise_exceptions=True, use_incoming_socket=False
        )


class VisdomDisplay:
    """A lazily created, self-healing connection to a visdom server.

    Use ``send(fn)``: ``fn(client)`` is called when connected; network failures
    are swallowed (``send`` returns False) and never propagate.
    """

    def __init__(
        self,
        server: str = "http://localhost",
        port: int = 8097,
        env: str = "main",
        retry_interval: float = 60.0,
        timeout: float = 5.0,
        log: Callable[[str], None] = print,
    ) -> None:
        """Store the settings; no connection is attempted before the first ``send``."""
        self.server = server
        self.port = port
        self.env = env
        self.retry_interval = retry_interval
        self.timeout = timeout
        self.log = log
        self.client: Any = None
        self._next_attempt = 0.0
        self._warned = False
        self._unavailable = False  # visdom not installed: never retry

    @property
    def address(self) -> str:
        """``server:port`` as used in messages."""
        return f"{self.server}:{self.port}"

    def _connect(self) -> bool:
        """Return True if a client is ready, (re)connecting when a retry is due."""
        if self.client is not None:
            return True
        if self._unavailable or time.monotonic() < self._next_attempt:
            return False
        try:
            self.client = make_visdom_client(self.server, self.port, self.env, self.timeout)
        except ImportError:
            self._unavailable = True
            self.log(f"WARNING: visdom is not installed; display disabled ({INSTALL_HINT}).")
            return False
        except OSError as exc:  # ConnectionError, requests' exceptions, socket errors
            self._failed(exc)
            return False
        if self._warned:
            self.log(f"Reconnected to the visdom server at {self.address}; display resumed.")
            self._warned = False
        return True

    def _failed(self, exc: BaseException) -> None:
        """Drop the client, schedule a retry and warn once per outage."""
        self.client = None
        self._next_attempt = time.monotonic() + self.retry_interval
        if not self._warned:
            self._warned = True
            self.log(
                f"WARNING: could not reach the visdom server at {self.address} ({type(exc).__name__}). "
                f"Training continues without it; retrying at most every {self.retry_interval:g} s. "
                f"Start one with `python -m visdom.server -port {self.port}` "
                f"(offline: `python -m display.visdom_server --port {self.port}`), or set display_id=0."
            )

    def send(self, fn: Callable[[Any], object]) -> bool:
        """Call ``fn(client)`` if connected; return whether it was sent."""
        if not self._connect():
            return False
        try:
            with _quiet_visdom_logger():
                fn(self.client)
        except OSError as exc:
            self._failed(exc)
            return False
        return True
