"""train.py with a visdom display: plots arrive, a missing or restarted server never stops training,
and the bundled server launcher listens on the loopback interface only unless told otherwise."""

from __future__ import annotations

import json
import os
import uuid

import pytest

import train
from display import visdom_client, visdom_server
from display.visdom_client import make_visdom_client
from display.visdom_server import find_free_port, start_visdom_server, stop_visdom_server
from models.pix2pix_attn_model import Pix2PixAttnModel
from tests.helpers import make_triplets, train_argv

WARNING = "could not reach the visdom server"
RECONNECTED = "Reconnected to the visdom server"
LOSSES = {"G_GAN", "G_L1", "G_SSIM", "G_attn", "G2_L1", "G2_SSIM", "D_real", "D_fake"}


def visdom_argv(tmp_path, host: str, port: int, env: str, *extra: str) -> list[str]:
    """Tiny training (3 images, 2 epochs) that prints and displays after every image."""
    make_triplets(tmp_path / "data", "train", n=3)
    return train_argv(
        tmp_path / "data",
        tmp_path / "ckpt",
        "vis",
        "--n_epochs",
        "2",
        "--display_id",
        "1",
        "--display_server",
        f"http://{host}",
        "--display_port",
        str(port),
        "--display_env",
        env,
        "--print_freq",
        "1",
        "--display_freq",
        "1",
        *extra,
    )


def window(host: str, port: int, env: str, win: str) -> dict:
    client = make_visdom_client(f"http://{host}", port, env, timeout=5.0)
    assert client.win_exists(win, env=env), f"window {win!r} is not on the server"
    return json.loads(client.get_window_data(win, env=env))


def new_env() -> str:
    return f"train_{uuid.uuid4().hex[:8]}"


@pytest.mark.visdom
def test_training_sends_the_loss_plot_and_the_image_panel(visdom_server, tmp_path, capfd):
    host, port = visdom_server
    env = new_env()
    assert train.main(visdom_argv(tmp_path, host, port, env)) == 0
    out, err = capfd.readouterr()
    assert WARNING not in out + err and "end of epoch 2 / 2" in out

    plot = window(host, port, env, "losses_1")
    assert plot["type"] == "plot" and plot["title"] == "vis loss over time"
    traces = {t["name"]: t for t in plot["content"]["data"]}
    assert set(traces) == LOSSES
    assert traces["G_L1"]["x"] == pytest.approx([1 + 1 / 3, 1 + 2 / 3, 2.0, 2 + 1 / 3, 2 + 2 / 3, 3.0])
    images = window(host, port, env, "images_1")
    assert images["type"] == "image" and images["title"] == "vis epoch 2"
    # the model's page order: SAR | attention | attention overlay | cloudy | output | ground truth | ...
    assert images["content"]["caption"].split(" | ") == [
        "real_C", "att_A", "att_overlay", "real_A", "fake_B", "real_B", "fake_C", "g_B"
    ]  # fmt: skip
    assert images["content"]["src"].startswith("data:image/png;base64,")


@pytest.mark.visdom
def test_training_without_a_server_warns_once_and_completes(tmp_path, capfd):
    pytest.importorskip("visdom")
    port = find_free_port()  # nothing listens there
    assert train.main(visdom_argv(tmp_path, "127.0.0.1", port, new_env())) == 0
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if "visdom" in line]
    assert len(lines) == 1 and WARNING in lines[0] and f"127.0.0.1:{port}" in lines[0], lines
    assert "Traceback" not in err and "end of epoch 2 / 2" in out
    assert (tmp_path / "ckpt" / "vis" / "2_net_G.pth").is_file()


@pytest.mark.visdom
def test_server_killed_and_restarted_during_training(tmp_path, monkeypatch, capfd):
    pytest.importorskip("visdom")
    host, port, env = "127.0.0.1", find_free_port(), new_env()
    server = {
        "proc": start_visdom_server(
            port, str(tmp_path / "env"), host=host, log_path=str(tmp_path / "server.log")
        )
    }
    original = Pix2PixAttnModel.optimize_parameters
    calls = []

    def with_outage(self):
        calls.append(1)
        if len(calls) == 3:  # the server dies after two displayed iterations ...
            stop_visdom_server(server["proc"])
        elif len(calls) == 5:  # ... and is back two iterations later
            server["proc"] = start_visdom_server(
                port, str(tmp_path / "env"), host=host, log_path=str(tmp_path / "server.log")
            )
        return original(self)

    monkeypatch.setattr(Pix2PixAttnModel, "optimize_parameters", with_outage)
    try:
        argv = visdom_argv(tmp_path, host, port, env, "--display_retry_interval", "0")
        assert train.main(argv) == 0
        out, err = capfd.readouterr()
        assert "Traceback" not in err and "end of epoch 2 / 2" in out
        assert sum(WARNING in line for line in out.splitlines()) == 1, out
        assert sum(RECONNECTED in line for line in out.splitlines()) == 1, out
        # The restarted server received the whole loss history and the last images.
        traces = {t["name"]: t for t in window(host, port, env, "losses_1")["content"]["data"]}
        assert len(traces["G_L1"]["x"]) == 6
        assert window(host, port, env, "images_1")["title"] == "vis epoch 2"
    finally:
        stop_visdom_server(server["proc"])


def test_display_retry_interval_reaches_the_visdom_client(tmp_path, monkeypatch):
    seen = []
    real = visdom_client.VisdomDisplay.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("retry_interval"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(visdom_client.VisdomDisplay, "__init__", spy)
    monkeypatch.setattr(visdom_client.VisdomDisplay, "send", lambda self, fn: False)
    make_triplets(tmp_path / "data", "train", n=1)
    argv = train_argv(
        tmp_path / "data", tmp_path / "ckpt", "r", "--display_id", "1", "--display_retry_interval", "2.5"
    )
    assert train.main(argv) == 0
    assert seen == [2.5]


# ---------------------------------------------------------------- the server binds to localhost
def test_launcher_binds_to_loopback_by_default(monkeypatch, tmp_path):
    commands = []
    monkeypatch.setattr(visdom_server.os, "execv", lambda path, cmd: commands.append(cmd))
    visdom_server.main(["--port", "8123", "--env-path", str(tmp_path)])
    visdom_server.main(["--port", "8123", "--env-path", str(tmp_path), "--host", "0.0.0.0"])
    default, everywhere = commands
    assert default[default.index("--hostname") + 1] == "127.0.0.1" and "-bind_local" in default
    assert everywhere[everywhere.index("--hostname") + 1] == "0.0.0.0" and "-bind_local" not in everywhere
    assert "-bind_local" in visdom_server.visdom_server_command(8123, str(tmp_path))  # default host


def test_launcher_warns_when_the_dashboard_assets_are_missing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(visdom_server.os, "execv", lambda path, cmd: None)
    monkeypatch.setattr(visdom_server, "assets_ready", lambda: False)
    visdom_server.main(["--port", "8123", "--env-path", str(tmp_path)])
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "front-end assets are not installed" in err and "make visdom-assets" in err
    )
    monkeypatch.setattr(visdom_server, "assets_ready", lambda: True)
    visdom_server.main(["--port", "8123", "--env-path", str(tmp_path)])
    assert capsys.readouterr().err == ""


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the sockets listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                found.append(local.rsplit(":", 1)[0])
    return found


@pytest.mark.visdom
def test_started_server_listens_on_loopback_only(visdom_server):
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("needs Linux /proc/net/tcp")
    _, port = visdom_server
    assert _listeners(port) == ["0100007F"]  # 127.0.0.1 only: not 0.0.0.0, not any IPv6 address
