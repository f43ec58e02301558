"""What users look at, checked in a real (headless Chromium) browser with no internet: the visdom
dashboard during a training run, the training page and the results pages.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them; Selenium drives
them) and, for the dashboard, visdom's
front-end assets (``make visdom-assets``); each test says which one it misses when it skips.
Screenshots are kept in the test's temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pytest

import test as test_script
import train
from display import visdom_assets
from display.results_page import PAGES
from display.visdom_client import make_visdom_client
from display.visdom_server import find_free_port, start_visdom_server, stop_visdom_server, visdom_server_alive
from models.pix2pix_attn_model import Pix2PixAttnModel
from tests.browser import Browser, missing_reason
from tests.helpers import make_triplets, test_argv, train_argv

pytestmark = pytest.mark.browser

LOSSES = {"G_GAN", "G_L1", "G_SSIM", "G_attn", "G2_L1", "G2_SSIM", "D_real", "D_fake"}
TRACES = "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length"
LEGEND = "Array.from(document.querySelectorAll('.js-plotly-plot .legendtext')).map(e => e.textContent)"
POINTS = "Array.from(document.querySelector('.js-plotly-plot').data).map(t => t.x.length)"
IMAGES = "Array.from(document.images).map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0}))"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = missing_reason()
    if reason is not None:
        if os.environ.get("REQUIRE_BROWSER_TESTS"):  # CI: installed on purpose, so its absence is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    with Browser(tmp_path_factory.mktemp("chromium"), offline=True) as b:
        yield b


@pytest.fixture
def offline_assets():
    """visdom installed with its front-end assets in place (else skip, or fail where CI requires them)."""
    pytest.importorskip("visdom", reason="visdom is not installed (make install)")
    if not visdom_assets.assets_ready():
        reason = f"visdom's front-end assets are not installed; run {visdom_assets.PROVISION_HINT}"
        if os.environ.get("REQUIRE_VISDOM_ASSETS"):
            pytest.fail(reason)
        pytest.skip(reason)


def only_local(browser: Browser, port: int) -> None:
    """Nothing failed, no script error, and nothing was asked of any other host."""
    assert browser.script_errors() == []
    assert browser.failed_requests() == []
    local = (f"http://127.0.0.1:{port}/", "ws://127.0.0.1", "data:")
    assert [u for u in browser.requested_urls() if not u.startswith(local)] == []


def test_dashboard_during_training_offline(browser, offline_assets, tmp_path, monkeypatch):
    port, env = find_free_port(), f"dash_{uuid.uuid4().hex[:8]}"
    server = start_visdom_server(port, str(tmp_path / "env"), log_path=str(tmp_path / "server.log"))
    make_triplets(tmp_path / "data", "train", n=3)
    argv = train_argv(
        tmp_path / "data", tmp_path / "ckpt", "vis", "--n_epochs", "2", "--display_id", "1",
        "--display_server", "http://127.0.0.1", "--display_port", str(port), "--display_env", env,
        "--print_freq", "1", "--display_freq", "1",
    )  # fmt: skip
    # Training pauses before its 4th iteration (3 points plotted) while the page is checked.
    original, calls = Pix2PixAttnModel.optimize_parameters, []
    paused, go_on = threading.Event(), threading.Event()

    def pausing(self):
        calls.append(1)
        if len(calls) == 4:
            paused.set()
            go_on.wait(300)
        return original(self)

    monkeypatch.setattr(Pix2PixAttnModel, "optimize_parameters", pausing)
    result = {}
    run = threading.Thread(target=lambda: result.update(code=train.main(argv)))
    try:
        run.start()
        try:
            assert paused.wait(300), "training did not reach its 4th iteration"
            browser.open(f"http://127.0.0.1:{port}/env/{env}")
            assert browser.wait_for(f"{TRACES} === {len(LOSSES)}", timeout=60)
            assert set(browser.eval(LEGEND)) == LOSSES  # one trace per loss
            assert browser.eval(POINTS) == [3] * len(LOSSES)
            panel = browser.wait_for(
                "Array.from(document.querySelectorAll('.react-grid-item img'))"
                ".filter(i => i.complete && i.naturalWidth > 0).map(i => [i.naturalWidth, i.width, i.height])"
            )
            assert len(panel) == 1 and panel[0][0] > 4 * 32  # the image grid: 4 visuals of 32 px per row
            # shown, not just loaded: scaled up to the pane's width (a bare 32-px grid would be hidden
            # behind its caption)
            assert panel[0][1] >= 400 and panel[0][2] >= 200, panel
            text = browser.eval("document.body.innerText")
            assert "vis loss over time" in text and "vis epoch 1" in text
            browser.screenshot(tmp_path / "dashboard_during_training.png")
            only_local(browser, port)
        finally:
            go_on.set()
            run.join(600)
        assert result.get("code") == 0
        # The open page follows the rest of the run live (no reload): all 6 points arrive.
        browser.wait_for(f"{POINTS}.every(n => n === 6)", timeout=60)
        assert "vis epoch 2" in browser.eval("document.body.innerText")
        browser.screenshot(tmp_path / "dashboard_after_training.png")
        only_local(browser, port)
    finally:
        stop_visdom_server(server)


def test_visdom_own_server_starts_and_serves_offline(browser, offline_assets, tmp_path):
    """``python -m visdom.server`` itself: with the assets in place it downloads nothing at start-up
    (every proxy points at a closed port, so an attempt would be logged) and its page works."""
    port = find_free_port()
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead, "HTTPS_PROXY": dead}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    log = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "visdom.server", "-port", str(port), "-env_path", str(tmp_path / "env")]
    cmd += ["--hostname", "127.0.0.1", "-bind_local", "-logging_level", "INFO"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        for _ in range(300):
            if visdom_server_alive("127.0.0.1", port, timeout=0.5) or proc.poll() is not None:
                break
            threading.Event().wait(0.1)
        text = log.read_text(errors="replace")
        assert visdom_server_alive("127.0.0.1", port), text
        assert "Checking for scripts" in text  # visdom's own start-up step ran ...
        assert "Downloading scripts" not in text and "while downloading" not in text, (
            text
        )  # ... and fetched nothing
        client = make_visdom_client("http://127.0.0.1", port, "own", timeout=5)
        client.line(X=np.arange(3), Y=np.arange(3) ** 2, win="w", opts={"title": "own server"})
        browser.open(f"http://127.0.0.1:{port}/env/own")
        assert browser.wait_for(f"{TRACES} === 1", timeout=60)
        only_local(browser, port)
    finally:
        proc.terminate()
        proc.wait(10)


# ---------------------------------------------------------------------------- static pages


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    make_triplets(root / "data", "train", n=3)
    make_triplets(root / "data", "test", n=3, seed=5)
    argv = train_argv(
        root / "data",
        root / "ckpt",
        "web",
        "--n_epochs",
        "2",
        "--display_freq",
        "1",
        "--update_html_freq",
        "1",
        "--print_freq",
        "1",
    )
    assert train.main(argv) == 0
    assert test_script.main(test_argv(root / "data", root / "ckpt", root / "res", "web")) == 0
    return root / "ckpt" / "web" / "web", root / "res" / "web" / "test_latest"


def file_of(url: str) -> Path:
    return Path(url2pathname(urlparse(url).path))


def check_static_page(browser: Browser, page: Path, shot: Path) -> dict:
    """Open ``page``: every image loaded, every link leads to a file or an anchor on the page."""
    browser.open(page.as_uri())
    images = browser.eval(IMAGES)
    assert images, f"no image on {page}"
    broken = [i["src"] for i in images if not i["ok"]]
    assert broken == [], f"broken images on {page}: {broken}"
    for href in browser.eval("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
        target = urlparse(href)
        assert target.scheme == "file", f"{page}: link to {href}"
        if target.fragment and file_of(href) == page:
            assert browser.eval(f"!!document.getElementById({target.fragment!r})"), (
                f"{page}: dead anchor {href}"
            )
        else:
            assert file_of(href).is_file(), f"{page}: dead link {href}"
    assert browser.failed_requests() == [] and browser.script_errors() == []
    browser.screenshot(shot)
    return {"images": len(images)}


def test_training_page_in_a_browser(browser, pages, tmp_path):
    web, _ = pages
    seen = check_static_page(browser, web / "index.html", tmp_path / "training_page.png")
    # 8 visuals x 2 epochs + the loss curves
    assert seen["images"] == 8 * 2 + 1
    assert browser.eval("document.querySelectorAll('h3').length") == 3  # loss curves, epoch [2], epoch [1]


def test_results_pages_in_a_browser(browser, pages, tmp_path):
    _, web = pages
    for name in PAGES:
        seen = check_static_page(browser, web / name, tmp_path / name.replace(".html", ".png"))
        assert seen["images"] == 3 * 8
        # means: paper and field protocols, each over all, cloudy and clear pixels; then the coverage bins
        assert browser.eval("document.querySelectorAll('table.metrics').length") == 3 * 2 + 1
        assert "By cloud coverage" in browser.eval("document.body.innerText")
        assert (
            browser.eval("document.querySelectorAll('table.results > tbody > tr, table.results > tr').length")
            == 3
        )
        assert browser.eval("document.querySelectorAll('table.row-metrics').length") == 3
    # one click from the test-order page to the worst case first
    browser.open((web / "index.html").as_uri())
    browser.eval("document.querySelector('a[href=\"index_worst_first.html\"]').click()")
    browser.wait_for(
        "location.pathname.endsWith('index_worst_first.html') && document.readyState === 'complete'"
    )
    ranks = browser.eval(
        "Array.from(document.querySelectorAll('table.results .rank')).map(e => e.textContent)"
    )
    assert ranks == [f"PSNR rank {k} of 3 (1 = worst)" for k in (1, 2, 3)]
    # and one click from there to the best image's row
    browser.eval("document.querySelector('a.jump-best').click()")
    assert browser.wait_for("location.hash") == "#" + browser.eval(
        "document.querySelector('table.results > tbody > tr:last-child').id"
    )


def test_the_driver_sees_broken_images_script_errors_and_requests(browser, tmp_path):
    """The checks above can fail: a page with a missing image and a throwing script is caught."""
    (tmp_path / "ok.png").write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
        )
    )
    page = tmp_path / "broken.html"
    page.write_text(
        '<html><body><img src="ok.png"><img src="missing.png">'
        "<script>throw new Error('deliberate failure')</script></body></html>"
    )
    browser.open(page.as_uri())
    images = browser.eval(IMAGES)
    assert [i["ok"] for i in images] == [True, False]
    assert any("deliberate failure" in e for e in browser.script_errors())
    assert any("missing.png: " in u for u in browser.failed_requests())
    assert any(u.endswith("ok.png") for u in browser.requested_urls())
    shot = browser.screenshot(tmp_path / "broken.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    clean = tmp_path / "clean.html"
    clean.write_text('<html><body><img src="ok.png"></body></html>')
    browser.open(clean.as_uri())  # a new page starts with empty logs
    assert browser.script_errors() == [] and browser.failed_requests() == []
