"""Visdom's front-end assets from the npm registry, so the dashboard works on machines without internet.

At start-up ``python -m visdom.server`` downloads its JavaScript, CSS and fonts (jquery, bootstrap,
react, plotly, MathJax...) from CDNs into its package's ``static/`` folder (visdom 0.2.4,
``visdom/server/build.py: download_scripts``); offline, the page it serves has no scripts. Every one
of those files is in an npm package of the same version. ``visdom_assets.json`` pins, for each file
visdom fetches, the npm package and version it comes from, the path inside the package's tarball,
where visdom expects it, and sha256 checksums of the tarball and of the file.

``install_assets`` downloads the tarballs (or reuses a cache folder), checks both checksums and
writes the files where visdom serves them, plus visdom's ``static/version.built`` marker: with it,
visdom's own start-up finds every file present and downloads nothing, so ``python -m visdom.server``
works offline too, and with internet nothing changes (the same files at the same versions).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from util.errors import UserError
from util.fileio import atomic_path, write_text

MANIFEST = Path(__file__).with_name("visdom_assets.json")
DEFAULT_REGISTRY = "https://registry.npmjs.org"
BUILT_MARKER = "version.built"  # visdom skips its downloads when this holds its version
PROVISION_HINT = "make visdom-assets (or python -m scripts.visdom_assets)"


@dataclass(frozen=True)
class AssetFile:
    """One file visdom serves: ``member`` of the package tarball, installed at ``static/<dest>``."""

    member: str
    dest: str
    sha256: str


@dataclass(frozen=True)
class Package:
    """One pinned npm package and the files taken from it."""

    name: str
    version: str
    sha256: str
    files: tuple[AssetFile, ...]

    @property
    def tarball_name(self) -> str:
        """``<name>-<version>.tgz`` (a scope, ``@org/``, is not part of the file name)."""
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"

    def tarball_url(self, registry: str) -> str:
        """The registry's tarball address, ``<registry>/<name>/-/<name>-<version>.tgz``."""
        return f"{registry.rstrip('/')}/{self.name}/-/{self.tarball_name}"


@dataclass(frozen=True)
class Manifest:
    visdom_version: str
    packages: tuple[Package, ...]

    @property
    def files(self) -> list[AssetFile]:
        return [f for p in self.packages for f in p.files]


def load_manifest(path: str | os.PathLike = MANIFEST) -> Manifest:
    """Read a manifest (format: ``display/visdom_assets.json``)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        packages = tuple(
            Package(
                name=p["name"],
                version=p["version"],
                sha256=p["sha256"],
                files=tuple(AssetFile(f["from"], f["to"], f["sha256"]) for f in p["files"]),
            )
            for p in doc["packages"]
        )
        return Manifest(visdom_version=doc["visdom"], packages=packages)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"cannot read the asset manifest {path}: {err}") from None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def visdom_package_dir() -> Path:
    """The installed ``visdom`` package's folder (where its server looks for ``static/``)."""
    spec = importlib.util.find_spec("visdom")
    if spec is None or spec.origin is None:
        raise UserError("visdom is not installed (make install, or see the README); nothing to provision")
    return Path(spec.origin).parent


def installed_visdom_version() -> str | None:
    """The installed visdom's version, read without importing it (``visdom/VERSION``), or None."""
    try:
        return (visdom_package_dir() / "VERSION").read_text(encoding="utf-8").strip()
    except (UserError, OSError):
        return None


def default_static_dir() -> Path:
    return visdom_package_dir() / "static"


def missing_assets(static_dir: str | os.PathLike, manifest: Manifest | None = None) -> list[str]:
    """Manifest files that are absent from ``static_dir`` or differ from their checksum."""
    manifest = manifest or load_manifest()
    static_dir = Path(static_dir)
    missing = []
    for f in manifest.files:
        path = static_dir / f.dest
        if not path.is_file() or sha256_file(path) != f.sha256:
            missing.append(f.dest)
    return missing


def assets_ready(static_dir: str | os.PathLike | None = None, manifest: Manifest | None = None) -> bool:
    """True when every asset is in place and visdom's start-up will not try to download any."""
    try:
        static_dir = Path(static_dir) if static_dir is not None else default_static_dir()
    except UserError:
        return False
    return marker_ok(static_dir, manifest) and not missing_assets(static_dir, manifest)


def marker_ok(static_dir: str | os.PathLike, manifest: Manifest | None = None) -> bool:
    """True when ``static/version.built`` names the installed visdom (else visdom downloads everything)."""
    manifest = manifest or load_manifest()
    try:
        built = (Path(static_dir) / BUILT_MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return built == (installed_visdom_version() or manifest.visdom_version)


def _download(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "visdom-assets (urllib)"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return resp.read()


def fetch_tarball(
    package: Package,
    registry: str = DEFAULT_REGISTRY,
    cache_dir: str | os.PathLike | None = None,
    timeout: float = 120.0,
) -> bytes:
    """The package's tarball, checked against its pinned sha256: from ``cache_dir`` or the registry.

    A downloaded tarball is kept in ``cache_dir`` (when given); a cached one with the wrong
    checksum is ignored and downloaded again.
    """
    cached = Path(cache_dir) / package.tarball_name if cache_dir is not None else None
    if cached is not None and cached.is_file():
        data = cached.read_bytes()
        if sha256_bytes(data) == package.sha256:
            return data
    url = package.tarball_url(registry)
    try:
        data = _download(url, timeout)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise UserError(
            f"cannot download {package.name}@{package.version} from {url}: {reason} (no network? "
            "use --registry for a mirror, or --cache-dir with tarballs copied from a connected machine)"
        ) from None
    got = sha256_bytes(data)
    if got != package.sha256:
        raise UserError(
            f"checksum mismatch for {package.name}@{package.version} from {url}: sha256 {got}, "
            f"expected {package.sha256}; nothing installed"
        )
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp:
            tmp.write_bytes(data)
    return data


def extract_files(package: Package, tarball: bytes) -> dict[str, bytes]:
    """``dest -> content`` of the package's files, each checked against its pinned sha256."""
    out = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
            for f in package.files:
                member = tar.extractfile(f.member)  # KeyError when absent, None for a non-file
                if member is None:
                    raise KeyError(f.member)
                content = member.read()
                if sha256_bytes(content) != f.sha256:
                    raise UserError(
                        f"checksum mismatch for {f.member} in {package.name}@{package.version}; "
                        "nothing installed"
                    )
                out[f.dest] = content
    except (tarfile.TarError, KeyError, OSError) as err:
        raise UserError(
            f"{package.name}@{package.version}: cannot read {err} from its tarball; nothing installed"
        ) from None
    return out


def install_assets(
    static_dir: str | os.PathLike | None = None,
    registry: str = DEFAULT_REGISTRY,
    cache_dir: str | os.PathLike | None = None,
    manifest: Manifest | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Put every asset of the manifest in ``static_dir`` (default: visdom's); return the files written.

    Packages whose files are all in place are not downloaded. All tarballs are fetched and checked
    before the first file is written, so a failure leaves ``static_dir`` as it was.
    """
    manifest = manifest or load_manifest()
    static_dir = Path(static_dir) if static_dir is not None else default_static_dir()
    version = installed_visdom_version() or manifest.visdom_version
    if version != manifest.visdom_version:
        log(
            f"warning: the asset list was read from visdom {manifest.visdom_version}; visdom {version} "
            "is installed and may expect other files"
        )
    todo = missing_assets(static_dir, manifest)
    contents: dict[str, bytes] = {}
    for package in manifest.packages:
        if any(f.dest in todo for f in package.files):
            log(f"fetching {package.name}@{package.version}")
            contents.update(extract_files(package, fetch_tarball(package, registry, cache_dir)))
    written = []
    try:
        for dest in sorted(contents):
            path = static_dir / dest
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_bytes(contents[dest])
            written.append(path)
        write_text(static_dir / BUILT_MARKER, version)
    except OSError as err:
        raise UserError(
            f"cannot write visdom's assets to {static_dir}: {err.strerror or err} (install visdom in "
            "an environment you own, e.g. make install, or pass --static-dir)"
        ) from None
    return written


def check_assets(static_dir: str | os.PathLike | None = None, manifest: Manifest | None = None) -> None:
    """Raise a :class:`UserError` naming what is missing unless every asset is in place."""
    manifest = manifest or load_manifest()
    static_dir = Path(static_dir) if static_dir is not None else default_static_dir()
    missing = missing_assets(static_dir, manifest)
    if not marker_ok(static_dir, manifest):
        missing.append(BUILT_MARKER)
    if missing:
        raise UserError(
            f"{len(missing)} of visdom's assets missing or changed in {static_dir} "
            f"({_shorten(missing)}); run {PROVISION_HINT}"
        )


def _shorten(names: Iterable[str], keep: int = 3) -> str:
    names = list(names)
    more = f", ... (+{len(names) - keep})" if len(names) > keep else ""
    return ", ".join(names[:keep]) + more
