"""Provisioning visdom's front-end assets from an npm registry (here a fake one in tmp_path, reached
through file:// URLs: no network), and the pinned manifest against visdom's own download list."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from display import visdom_assets
from display.visdom_assets import (
    BUILT_MARKER,
    assets_ready,
    check_assets,
    install_assets,
    load_manifest,
    missing_assets,
)
from scripts import visdom_assets as cli
from tests.helpers import expect_error
from util.errors import UserError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def fake_registry(tmp_path):
    """Two packages in a file:// registry, and their manifest; returns (registry URL, manifest path)."""
    root = tmp_path / "registry"
    packages = {
        ("alpha", "1.0.0"): {"package/dist/a.min.js": b"var a = 1;", "package/a.css": b"a {}"},
        ("beta", "2.1.0"): {"package/index.js": b"module.exports = 2;"},
    }
    where = {
        "package/dist/a.min.js": "js/a.min.js",
        "package/a.css": "css/a-styles.css",
        "package/index.js": "fonts/beta",
    }
    doc = {"about": "test", "visdom": "0.2.4", "packages": []}
    for (name, version), files in packages.items():
        tgz = make_tarball(files)
        folder = root / name / "-"
        folder.mkdir(parents=True)
        (folder / f"{name}-{version}.tgz").write_bytes(tgz)
        doc["packages"].append(
            {
                "name": name,
                "version": version,
                "sha256": sha(tgz),
                "files": [
                    {"from": m, "to": where[m], "sha256": sha(d), "replaces": "x"} for m, d in files.items()
                ],
            }
        )
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(doc))
    return root.as_uri(), manifest


def test_install_puts_each_file_where_visdom_serves_it(fake_registry, tmp_path):
    registry, manifest_path = fake_registry
    manifest = load_manifest(manifest_path)
    static = tmp_path / "static"
    logs = []
    written = install_assets(static, registry=registry, manifest=manifest, log=logs.append)
    assert sorted(p.relative_to(static).as_posix() for p in written) == [
        "css/a-styles.css",
        "fonts/beta",
        "js/a.min.js",
    ]
    assert (static / "js" / "a.min.js").read_bytes() == b"var a = 1;"
    assert (static / "fonts" / "beta").read_bytes() == b"module.exports = 2;"
    assert (static / BUILT_MARKER).read_text() == (visdom_assets.installed_visdom_version() or "0.2.4")
    assert missing_assets(static, manifest) == []
    assert assets_ready(static, manifest)
    check_assets(static, manifest)
    assert logs == ["fetching alpha@1.0.0", "fetching beta@2.1.0"]
    assert not [p for p in static.rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_a_second_run_downloads_nothing_and_repairs_a_changed_file(fake_registry, tmp_path):
    registry, manifest_path = fake_registry
    manifest = load_manifest(manifest_path)
    static = tmp_path / "static"
    install_assets(static, registry=registry, manifest=manifest, log=lambda m: None)
    assert install_assets(static, registry="file:///nonexistent", manifest=manifest, log=lambda m: None) == []
    (static / "fonts" / "beta").write_bytes(b"tampered")
    assert not assets_ready(static, manifest)
    logs = []
    written = install_assets(static, registry=registry, manifest=manifest, log=logs.append)
    assert [p.name for p in written] == ["beta"] and logs == ["fetching beta@2.1.0"]
    assert (static / "fonts" / "beta").read_bytes() == b"module.exports = 2;"


def test_cache_dir_serves_a_later_install_without_the_registry(fake_registry, tmp_path):
    registry, manifest_path = fake_registry
    manifest = load_manifest(manifest_path)
    cache = tmp_path / "cache"
    install_assets(tmp_path / "s1", registry=registry, cache_dir=cache, manifest=manifest, log=lambda m: None)
    assert sorted(p.name for p in cache.iterdir()) == ["alpha-1.0.0.tgz", "beta-2.1.0.tgz"]
    install_assets(
        tmp_path / "s2", registry="file:///nowhere", cache_dir=cache, manifest=manifest, log=lambda m: None
    )
    assert missing_assets(tmp_path / "s2", manifest) == []


def test_a_tarball_with_another_checksum_installs_nothing(fake_registry, tmp_path):
    registry, manifest_path = fake_registry
    tgz = Path(registry.removeprefix("file://")) / "beta" / "-" / "beta-2.1.0.tgz"
    tgz.write_bytes(make_tarball({"package/index.js": b"evil()"}))
    static = tmp_path / "static"
    with pytest.raises(UserError, match=r"checksum mismatch for beta@2\.1\.0 .*nothing installed"):
        install_assets(static, registry=registry, manifest=load_manifest(manifest_path), log=lambda m: None)
    assert not static.exists()  # alpha was fetched, but nothing is written before every check passed


def test_a_file_with_another_checksum_inside_a_good_tarball_is_refused(fake_registry, tmp_path):
    registry, manifest_path = fake_registry
    doc = json.loads(manifest_path.read_text())
    doc["packages"][0]["files"][0]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"checksum mismatch for package/dist/a\.min\.js in alpha@1\.0\.0"):
        install_assets(
            tmp_path / "s", registry=registry, manifest=load_manifest(manifest_path), log=lambda m: None
        )


def test_unreachable_registry_is_one_clear_error(fake_registry, tmp_path):
    _, manifest_path = fake_registry
    missing = (tmp_path / "no-registry").as_uri()
    with pytest.raises(
        UserError, match=r"cannot download alpha@1\.0\.0 from .*alpha-1\.0\.0\.tgz.*--cache-dir"
    ):
        install_assets(
            tmp_path / "s", registry=missing, manifest=load_manifest(manifest_path), log=lambda m: None
        )


def test_cli_installs_checks_and_reports_errors_in_one_line(fake_registry, tmp_path, capfd):
    registry, manifest_path = fake_registry
    static = tmp_path / "static"
    base = ["--static-dir", str(static), "--manifest", str(manifest_path)]
    expect_error(capfd, cli.main, [*base, "--check"], "4 of visdom's assets missing", "make visdom-assets")
    assert cli.main([*base, "--registry", registry]) == 0
    assert "3 file(s) written" in capfd.readouterr().out
    assert cli.main([*base, "--check"]) == 0
    expect_error(
        capfd, cli.main, ["--manifest", str(tmp_path / "none.json")], "cannot read the asset manifest"
    )
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    expect_error(
        capfd, cli.main, ["--static-dir", str(blocker / "static"), "--manifest", str(manifest_path), "--registry", registry],
        "cannot write visdom's assets",
    )  # fmt: skip


# ---------------------------------------------------------------------------- the real manifest


def test_manifest_pins_every_package_and_file():
    manifest = load_manifest()
    names = {p.name for p in manifest.packages}
    assert names >= {
        "jquery", "bootstrap", "react", "react-dom", "react-modal", "plotly.js-dist-min", "sjcl",
        "layout-bin-packer", "d3", "save-svg-as-png", "react-resizable", "react-grid-layout", "classnames",
        "mathjax", "d3-selection-multi",
    }  # fmt: skip
    dests = [f.dest for f in manifest.files]
    assert len(dests) == len(set(dests)) == 29
    for package in manifest.packages:
        assert len(package.sha256) == 64 and package.version.count(".") == 2
        assert package.tarball_url("https://registry.npmjs.org") == (
            f"https://registry.npmjs.org/{package.name}/-/{package.name}-{package.version}.tgz"
        )
        assert all(len(f.sha256) == 64 and f.member.startswith("package/") for f in package.files)


class _Recorder:
    """Stands in for visdom's downloads: records each URL and answers with a few bytes."""

    def __init__(self):
        self.urls: list[str] = []

    def open(self, req, *args, **kwargs):
        self.urls.append(req.full_url)
        return io.BytesIO(b"x")

    def get(self, url, *args, **kwargs):
        self.urls.append(url)
        return type("Response", (), {"content": b"x"})()


def run_visdoms_download(monkeypatch, install_dir: Path) -> list[str]:
    """Run visdom's own ``download_scripts`` with every download recorded instead of made."""
    pytest.importorskip("visdom", reason="visdom is not installed (make install)")
    import requests
    from visdom.server import build

    recorder = _Recorder()
    monkeypatch.setattr(build.request, "build_opener", lambda *handlers: recorder)
    monkeypatch.setattr(build.request, "install_opener", lambda opener: None)
    monkeypatch.setattr(requests, "get", recorder.get)
    build.download_scripts(install_dir=str(install_dir))
    return recorder.urls


def test_manifest_is_exactly_what_visdoms_start_up_downloads(monkeypatch, tmp_path):
    urls = run_visdoms_download(monkeypatch, tmp_path / "fresh")
    written = sorted(
        p.relative_to(tmp_path / "fresh" / "static").as_posix()
        for p in (tmp_path / "fresh" / "static").rglob("*")
        if p.is_file() and p.name != BUILT_MARKER
    )
    manifest = load_manifest()
    assert written == sorted(f.dest for f in manifest.files)
    doc = json.loads(visdom_assets.MANIFEST.read_text())
    replaces = {f["to"]: f["replaces"] for p in doc["packages"] for f in p["files"]}
    mathjax = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.5/"
    # visdom asks for the MathJax files with a ?V= query; the manifest records the file's address
    assert sorted(u.split("?")[0] for u in urls) == sorted(u.split("?")[0] for u in replaces.values())
    assert all(u.startswith(mathjax) for d, u in replaces.items() if d.startswith("js/mathjax/"))


def test_with_the_assets_in_place_visdoms_start_up_downloads_nothing(monkeypatch, tmp_path):
    static = tmp_path / "pkg" / "static"
    for f in load_manifest().files:
        (static / f.dest).parent.mkdir(parents=True, exist_ok=True)
        (static / f.dest).write_bytes(b"provisioned")
    version = visdom_assets.installed_visdom_version()
    (static / BUILT_MARKER).write_text(version or "")
    assert run_visdoms_download(monkeypatch, tmp_path / "pkg") == []
    assert (static / "js" / "jquery.min.js").read_bytes() == b"provisioned"


def test_installed_visdom_assets_if_provisioned():
    """The venv's visdom, after `make visdom-assets`: every file in place with its pinned checksum."""
    pytest.importorskip("visdom", reason="visdom is not installed (make install)")
    static = visdom_assets.default_static_dir()
    if not os.environ.get("REQUIRE_VISDOM_ASSETS") and not assets_ready(static):
        pytest.skip(f"visdom's assets are not provisioned in {static} (make visdom-assets; CI requires them)")
    check_assets(static)
