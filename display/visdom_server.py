"""An offline visdom server launcher.

``visdom.server`` downloads its front-end assets from CDNs before it starts and fails without
internet. The back end (which accepts and stores the client's plots and images) does not need them,
so this launcher runs visdom's own server with the download step skipped. The browser front end does
need them: once ``make visdom-assets`` has put them where visdom serves them (see
``display/visdom_assets.py``), the dashboard works with no internet, from this launcher and from
``python -m visdom.server`` alike::

    python -m display.visdom_server --port 8097        # offline-capable server
    python -m visdom.server -port 8097                 # the usual way (offline once the assets are in place)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence

from display.visdom_assets import PROVISION_HINT, assets_ready

# Runs visdom's own server entry point without its download_scripts() step.
_SERVER_CODE = "import sys; from visdom.server.run_server import main; sys.argv = ['visdom.server'] + sys.argv[1:]; main()"


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


def assets_warning() -> str | None:
    """A one-line warning when visdom's front-end assets are not in place, else None."""
    if assets_ready():
        return None
    return (
        "warning: visdom's front-end assets are not installed: the dashboard page has no scripts on a "
        f"machine without internet (training can still post to this server). Run {PROVISION_HINT} once."
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run a visdom server in the foreground without downloading its web assets."""
    parser = argparse.ArgumentParser(prog="python -m display.visdom_server", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1/localhost binds to loopback only")
    parser.add_argument("--env-path", default=os.path.expanduser("~/.visdom"), help="where envs are saved")
    args = parser.parse_args(argv)
    os.makedirs(args.env_path, exist_ok=True)
    warning = assets_warning()
    if warning:
        print(warning, file=sys.stderr, flush=True)
    cmd = visdom_server_command(args.port, args.env_path, args.host)
    os.execv(cmd[0], cmd)  # become the server (same pid, so Ctrl-C / kill reach it)


if __name__ == "__main__":
    main()
