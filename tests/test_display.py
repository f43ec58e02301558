"""Tests for display.html, display.visualizer and the visdom client/server (visdom tests use a real local server)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sys
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from display import visdom_client
from display.html import HTML, relative_url
from display.images import make_image_grid
from display.loss_log import LossRecord, parse_loss_log
from display.visdom_client import VisdomDisplay, make_visdom_client
from display.visdom_server import find_free_port, start_visdom_server, stop_visdom_server
from display.visualizer import Visualizer

EVIL = "x <script>alert(\"1\")</script> 'q'"
LOSS_LINE = re.compile(
    r"^\(epoch: \d+, iters: \d+, time: \d+\.\d{3}, data: \d+\.\d{3}\)( \w+: -?\d+\.\d{3})+$"
)


def _img(seed: int, h: int = 8, w: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _vis(tmp_path, **kw) -> Visualizer:
    kw.setdefault("display_id", 0)
    return Visualizer(name="exp", checkpoints_dir=str(tmp_path), **kw)


def _env() -> str:
    return f"test_{uuid.uuid4().hex[:8]}"


def _window(host: str, port: int, env: str, win: str) -> dict:
    client = make_visdom_client(f"http://{host}", port, env, timeout=5.0)
    assert client.win_exists(win, env=env), f"window {win!r} not on the server"
    return json.loads(client.get_window_data(win, env=env))


# ---------------------------------------------------------------------------- HTML


def test_html_page_escapes_text_and_file_names(tmp_path):
    page = HTML(str(tmp_path / "web"), f"title {EVIL}", refresh=5)
    page.add_header(f"header {EVIL}")
    name = f"{EVIL}.png"
    page.add_images([name], [f"cap {EVIL}"], [name], width=128)
    page.add_table([[EVIL, 0.123456, 7]], header=["name", "psnr <dB>", "n"])
    path = page.save()
    assert path == str(tmp_path / "web" / "index.html")
    text = open(path, encoding="utf-8").read()
    assert "<script>" not in text and 'alert("1")' not in text
    assert "&lt;script&gt;" in text
    assert f'src="images/{relative_url(name)}"' in text
    assert "%3Cscript%3E" in text and "%22" in text and "%20" in text
    assert "0.1235" in text and "psnr &lt;dB&gt;" in text
    assert 'http-equiv="refresh"' in text
    assert os.path.isdir(tmp_path / "web" / "images")
    assert sorted(os.listdir(tmp_path / "web")) == ["images", "index.html"]  # no temp file left


def test_relative_url_is_never_a_scheme():
    assert relative_url("javascript:alert(1)") == "javascript%3Aalert%281%29"
    assert relative_url("a b/c#d?.png") == "a%20b/c%23d%3F.png"


# ---------------------------------------------------------------------------- images + page


def test_display_results_saves_images_and_page_newest_first(tmp_path, capsys):
    vis = _vis(tmp_path, display_ncols=2)
    visuals = {"real_A": _img(0), f"fake {EVIL}": _img(1), "gray": _img(2)[:, :, 0]}
    vis.display_current_results(visuals, epoch=1, save_result=True)
    vis.display_current_results({"real_A": _img(3)}, epoch=2, save_result=False)  # not saved
    vis.display_current_results({"real_A": _img(4), f"fake {EVIL}": _img(5)}, epoch=12, save_result=True)
    img_dir = tmp_path / "exp" / "web" / "images"
    files = sorted(os.listdir(img_dir))
    fake = f"fake {EVIL}".replace("/", "_")  # path separators are replaced in file names
    assert files == sorted(
        ["epoch001_real_A.png", f"epoch001_{fake}.png", "epoch001_gray.png"]
        + ["epoch012_real_A.png", f"epoch012_{fake}.png"]
    )
    np.testing.assert_array_equal(np.asarray(Image.open(img_dir / "epoch012_real_A.png")), _img(4))
    gray = np.asarray(Image.open(img_dir / "epoch001_gray.png"))
    assert gray.shape == (8, 10, 3)
    html = (tmp_path / "exp" / "web" / "index.html").read_text(encoding="utf-8")
    assert html.index("epoch [12]") < html.index("epoch [1]")
    assert "epoch [2]" not in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert f'src="{relative_url(f"images/epoch012_{fake}.png")}"' in html
    assert html.index("epoch012_real_A.png") < html.index(relative_url(f"epoch012_{fake}"))
    assert capsys.readouterr().out == ""  # display_id=0: no visdom, no warnings


def test_page_rebuilt_from_disk_after_restart(tmp_path):
    _vis(tmp_path).display_current_results({"a": _img(0)}, epoch=3, save_result=True)
    vis2 = _vis(tmp_path)
    vis2.display_current_results({"a": _img(1)}, epoch=4, save_result=True)
    html = (tmp_path / "exp" / "web" / "index.html").read_text(encoding="utf-8")
    assert html.index("epoch [4]") < html.index("epoch [3]")


def test_make_image_grid_layout():
    a, b, c = _img(0, 4, 6), _img(1, 4, 6), _img(2, 2, 3)
    grid = make_image_grid([a, b, c], ncols=2, padding=2)
    assert grid.shape == (2 * 6 + 2, 2 * 8 + 2, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[2:6, 2:8], a)
    np.testing.assert_array_equal(grid[2:6, 10:16], b)
    np.testing.assert_array_equal(grid[8:10, 2:5], c)
    assert (grid[8:12, 10:16] == 255).all()
    assert make_image_grid([a, b, c], ncols=0).shape[0] == 4 + 4
    with pytest.raises(TypeError):
        make_image_grid([a.astype(np.float32)], ncols=1)


# ---------------------------------------------------------------------------- loss log + plot


def test_loss_log_format_and_appending(tmp_path, capsys):
    vis = _vis(tmp_path)
    line = vis.print_current_losses(3, 400, {"G_GAN": 0.5123, "G_L1": 12.0, "D": -0.25}, 0.1234, 0.0101)
    assert line == "(epoch: 3, iters: 400, time: 0.123, data: 0.010) G_GAN: 0.512 G_L1: 12.000 D: -0.250"
    assert capsys.readouterr().out.strip() == line
    vis.print_current_losses(3, 800, {"G_GAN": 0.4, "G_L1": 11.0, "D": 0.3}, 0.2, 0.02)
    _vis(tmp_path).print_current_losses(4, 400, {"G_GAN": 0.3, "G_L1": 10.0, "D": 0.2}, 0.2, 0.02)
    lines = (tmp_path / "exp" / "loss_log.txt").read_text().splitlines()
    headers = [ln for ln in lines if ln.startswith("================ Training Loss (")]
    assert len(headers) == 2 and all(h.endswith(") ================") for h in headers)
    assert lines[0] == headers[0] and len(lines) == 5
    assert all(LOSS_LINE.match(ln) for ln in lines if ln not in headers)
    recs = parse_loss_log(str(tmp_path / "exp" / "loss_log.txt"))
    assert [(r.epoch, r.iters) for r in recs] == [(3, 400), (3, 800), (4, 400)]
    assert recs[0] == LossRecord(3, 400, 0.123, 0.010, {"G_GAN": 0.512, "G_L1": 12.0, "D": -0.25})
    assert not _vis(tmp_path, is_train=False).is_train
    assert len((tmp_path / "exp" / "loss_log.txt").read_text().splitlines()) == 5  # no header in test mode


def test_parse_loss_log_keeps_latest_run(tmp_path):
    log = tmp_path / "loss_log.txt"
    rows = [(1, 10, 1.0), (1, 20, 0.9), (2, 10, 0.8), (2, 20, 0.7), (2, 10, 0.6), (2, 20, 0.5), (3, 10, 0.4)]
    text = "================ Training Loss (x) ================\ngarbage line\n"
    text += "".join(f"(epoch: {e}, iters: {i}, time: 0.1, data: 0.0) G: {v} \n" for e, i, v in rows)
    log.write_text(text)
    recs = parse_loss_log(str(log))
    assert [(r.epoch, r.iters, r.losses["G"]) for r in recs] == [
        (1, 10, 1.0), (1, 20, 0.9), (2, 10, 0.6), (2, 20, 0.5), (3, 10, 0.4)
    ]  # fmt: skip
    assert len(parse_loss_log(str(log), latest_run=False)) == len(rows)
    assert parse_loss_log(str(tmp_path / "missing.txt")) == []


def test_loss_plot_png_and_history_with_changing_names(tmp_path):
    vis = _vis(tmp_path)
    assert vis.save_loss_plot() is None  # nothing yet
    for epoch in (1, 2):
        for it, ratio in ((50, 0.5), (100, 1.0)):
            losses = {"G_GAN": 1.0 / (epoch + ratio), "G_L1": 5.0 / (epoch + ratio)}
            if epoch == 2:
                losses["D_real"] = 0.3
                del losses["G_GAN"]
            vis.plot_current_losses(epoch, ratio, losses)
            vis.print_current_losses(epoch, it, losses, 0.1, 0.01)
    assert vis._plot_x == [1.5, 2.0, 2.5, 3.0]
    assert np.isnan(vis._plot_y["D_real"][:2]).all() and vis._plot_y["D_real"][2:] == [0.3, 0.3]
    assert np.isnan(vis._plot_y["G_GAN"][2:]).all()
    path = vis.save_loss_plot()
    assert path == str(tmp_path / "exp" / "web" / "loss_curves.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100
    assert 'href="loss_curves.png"' in (tmp_path / "exp" / "web" / "index.html").read_text()
    # after a "resume" the history comes back from loss_log.txt
    resumed = _vis(tmp_path)
    curves = resumed.loss_history()
    assert set(curves) == {"G_GAN", "G_L1", "D_real"}
    assert curves["G_L1"][0] == [1.5, 2.0, 2.5, 3.0] and len(curves["D_real"][0]) == 2
    os.remove(path)
    assert resumed.save_loss_plot() == path and os.path.isfile(path)


# ---------------------------------------------------------------------------- unreachable server


def _warnings(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if "could not reach the visdom server" in ln]


@pytest.mark.visdom
def test_unreachable_server_warns_once_and_never_raises(tmp_path, capsys):
    pytest.importorskip("visdom")
    port = find_free_port()
    vis = _vis(tmp_path, display_id=1, display_server="http://127.0.0.1", display_port=port, retry_interval=0)
    t0 = time.monotonic()
    for epoch in range(1, 6):
        vis.plot_current_losses(epoch, 0.5, {"G": 1.0, "D": 2.0})
        vis.display_current_results({"a": _img(epoch)}, epoch, save_result=False)
    assert time.monotonic() - t0 < 10
    out = capsys.readouterr().out
    warnings = _warnings(out)
    assert len(warnings) == 1, out
    assert f"127.0.0.1:{port}" in warnings[0] and f"python -m visdom.server -port {port}" in warnings[0]
    assert "Traceback" not in out and "Exception" not in out
    assert len(vis._plot_x) == 5  # history kept while the server is down


def test_retry_interval_limits_connection_attempts(monkeypatch, capsys):
    calls = []

    def failing_client(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("refused")

    monkeypatch.setattr(visdom_client, "make_visdom_client", failing_client)
    display = VisdomDisplay("http://127.0.0.1", 1, retry_interval=3600)
    assert not any(display.send(lambda vis: None) for _ in range(20))
    assert len(calls) == 1 and len(_warnings(capsys.readouterr().out)) == 1
    display._next_attempt = 0.0  # the retry interval has passed
    assert not display.send(lambda vis: None)
    assert len(calls) == 2 and _warnings(capsys.readouterr().out) == []  # still the same outage


def test_visdom_missing_gives_one_warning(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "visdom", None)  # makes `import visdom` raise ImportError
    vis = _vis(tmp_path, display_id=1, retry_interval=0)
    for epoch in range(3):
        vis.plot_current_losses(epoch, 0.0, {"G": 1.0})
        vis.display_current_results({"a": _img(0)}, epoch, save_result=False)
    out = capsys.readouterr().out
    assert out.count("visdom is not installed") == 1


# ---------------------------------------------------------------------------- real server


@pytest.mark.visdom
def test_loss_plot_and_image_panel_arrive(visdom_server, tmp_path, capsys):
    host, port = visdom_server
    env = _env()
    vis = _vis(tmp_path, display_id=3, display_server=f"http://{host}", display_port=port, display_env=env)
    vis.plot_current_losses(1, 0.5, {"G_GAN": 0.7, "G_L1": 3.0})
    vis.plot_current_losses(1, 1.0, {"G_GAN": 0.6, "G_L1": 2.5})
    vis.plot_current_losses(2, 0.5, {"G_L1": 2.0, "D": 0.4})  # names change
    win = _window(host, port, env, vis.loss_win)
    assert win["type"] == "plot" and "loss over time" in win["title"]
    traces = {t["name"]: t for t in win["content"]["data"]}
    assert set(traces) == {"G_GAN", "G_L1", "D"}
    assert traces["G_L1"]["x"] == [1.5, 2.0, 2.5] and traces["G_L1"]["y"] == [3.0, 2.5, 2.0]
    assert traces["G_GAN"]["y"] == [0.7, 0.6, None] and traces["D"]["y"] == [None, None, 0.4]

    visuals = {"real_A": _img(10), "fake_B": _img(11), "real_B": _img(12)}
    vis.display_current_results(visuals, epoch=2, save_result=False)
    win = _window(host, port, env, vis.images_win)
    assert win["type"] == "image" and win["title"] == "exp epoch 2"
    assert win["content"]["caption"] == "real_A | fake_B | real_B"
    # an image grid narrower than MIN_PANE_WIDTH is scaled up, with room for the caption
    grid = make_image_grid(list(visuals.values()), vis.ncols)
    scale = 480 / grid.shape[1]
    assert win["width"] == 480 and win["height"] == round(grid.shape[0] * scale) + 40
    src = win["content"]["src"]
    assert src.startswith("data:image/png;base64,")
    sent = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
    np.testing.assert_array_equal(sent, make_image_grid(list(visuals.values()), vis.ncols))
    assert capsys.readouterr().out == ""  # connected on the first try: no warning


@pytest.mark.visdom
def test_reconnects_when_server_appears(tmp_path, capsys):
    pytest.importorskip("visdom")
    host, port, env = "127.0.0.1", find_free_port(), _env()
    vis = _vis(tmp_path, display_id=1, display_server=f"http://{host}", display_port=port, display_env=env)
    vis.display.retry_interval = 0.0
    vis.plot_current_losses(1, 0.5, {"G": 1.0})
    vis.plot_current_losses(1, 1.0, {"G": 0.5})
    assert len(_warnings(capsys.readouterr().out)) == 1
    proc = start_visdom_server(port, str(tmp_path / "env"), host=host, log_path=str(tmp_path / "server.log"))
    try:
        vis.plot_current_losses(2, 0.5, {"G": 0.25})
        vis.display_current_results({"a": _img(0)}, 2, save_result=False)
        out = capsys.readouterr().out
        assert out.count("Reconnected to the visdom server") == 1 and not _warnings(out)
        traces = _window(host, port, env, vis.loss_win)["content"]["data"]
        assert traces[0]["x"] == [1.5, 2.0, 2.5] and traces[0]["y"] == [1.0, 0.5, 0.25]  # full history
        assert _window(host, port, env, vis.images_win)["type"] == "image"
    finally:
        stop_visdom_server(proc)
    # the server goes away again: one new warning, still no exception
    vis.plot_current_losses(3, 0.5, {"G": 0.1})
    vis.plot_current_losses(3, 1.0, {"G": 0.1})
    assert len(_warnings(capsys.readouterr().out)) == 1
