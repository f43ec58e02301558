"""Visdom helpers: a fault-tolerant client connection, image grids, and an offline server launcher.

``VisdomDisplay`` wraps ``visdom.Visdom`` so that training never stops because
the visdom server is down: the first failure prints one warning, later calls are
silently skipped, the connection is retried at most every ``retry_interval``
seconds and, when it comes back, sending resumes (with a one-line notice).

``visdom.server`` downloads JavaScript assets from CDNs before it starts and
fails without internet. The browser front end needs those assets, but the back
end (which accepts and stores the client's plots and images) does not, so this
module can start a server with the download step skipped::

    python -m util.visdom_display --port 8097            # offline-capable server
    python -m visdom.server -port 8097                   # the usual way (needs internet once)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

INSTALL_HINT = "pip install 'setuptools<81' && pip install --no-build-isolation visdom"

# Runs visdom's own server entry point without its download_scripts() step.
_SERVER_CODE = "import sys; from visdom.server.run_server import main; sys.argv = ['visdom.server'] + sys.argv[1:]; main()"


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
                f"(offline: `python -m util.visdom_display --port {self.port}`), or set display_id=0."
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


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as a (H, W, 3) uint8 array (accepts (H, W), (H, W, 1) and (H, W, 4))."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"visuals must be uint8 arrays, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"visuals must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def make_image_grid(
    images: Sequence[np.ndarray], ncols: int, padding: int = 2, fill: int = 255
) -> np.ndarray:
    """Tile (H, W, 3) uint8 images row by row into one (H', W', 3) uint8 grid.

    Cells are as large as the largest image; smaller images sit top-left in
    their cell. ``ncols <= 0`` puts all images on one row.
    """
    if not images:
        raise ValueError("no images to tile")
    ims = [to_rgb_uint8(im) for im in images]
    ncols = len(ims) if ncols <= 0 else min(ncols, len(ims))
    nrows = -(-len(ims) // ncols)
    ch = max(im.shape[0] for im in ims) + padding
    cw = max(im.shape[1] for im in ims) + padding
    grid = np.full((nrows * ch + padding, ncols * cw + padding, 3), fill, dtype=np.uint8)
    for k, im in enumerate(ims):
        y = padding + (k // ncols) * ch
        x = padding + (k % ncols) * cw
        grid[y : y + im.shape[0], x : x + im.shape[1]] = im
    return grid


# ----------------------------------------------------------------- server launcher


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is currently free on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def visdom_server_command(port: int, env_path: str, host: str = "127.0.0.1") -> list[str]:
    """Command line that runs a visdom server without downloading its web assets."""
    cmd = [sys.executable, "-c", _SERVER_CODE, "-port", str(port), "--hostname", host]
    cmd += ["-env_path", env_path, "-logging_level", "WARNING"]
    if host in ("127.0.0.1", "localhost"):
        cmd.append("-bind_local")
    return cmd


def visdom_server_alive(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return True if a visdom server answers on ``host:port`` (POST ``/win_exists``)."""
    body = json.dumps({"win": "__probe__", "eid": "main"}).encode()
    req = urllib.request.Request(f"http://{host}:{port}/win_exists", data=body, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status == 200 and resp.read().strip() in (b"true", b"false")
    except OSError:
        return False


def start_visdom_server(
    port: int, env_path: str, host: str = "127.0.0.1", log_path: str | None = None, wait: float = 30.0
) -> subprocess.Popen:
    """Start an offline visdom server in a subprocess and wait until it answers.

    Raises ``RuntimeError`` (after stopping it) if it does not answer within ``wait`` seconds.
    """
    os.makedirs(env_path, exist_ok=True)
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            visdom_server_command(port, env_path, host), stdout=out, stderr=subprocess.STDOUT, cwd=env_path
        )
    finally:
        if log_path:
            out.close()  # the child holds its own descriptor
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if visdom_server_alive(host, port, timeout=0.5):
            return proc
        time.sleep(0.1)
    stop_visdom_server(proc)
    raise RuntimeError(f"visdom server on {host}:{port} did not start (exit code {proc.returncode})")


def stop_visdom_server(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Terminate a server started by ``start_visdom_server`` (kill it if it lingers)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def main(argv: Sequence[str] | None = None) -> None:
    """Run a visdom server in the foreground without downloading its web assets."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1/localhost binds to loopback only")
    parser.add_argument("--env-path", default=os.path.expanduser("~/.visdom"), help="where envs are saved")
    args = parser.parse_args(argv)
    os.makedirs(args.env_path, exist_ok=True)
    cmd = visdom_server_command(args.port, args.env_path, args.host)
    os.execv(cmd[0], cmd)  # become the server (same pid, so Ctrl-C / kill reach it)


if __name__ == "__main__":
    main()
