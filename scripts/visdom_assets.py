"""Provision visdom's front-end assets from the npm registry, so its dashboard works offline.

    python -m scripts.visdom_assets                       # into the installed visdom (make visdom-assets)
    python -m scripts.visdom_assets --check               # exit 2 unless every asset is in place
    python -m scripts.visdom_assets --cache-dir DIR       # keep / reuse the npm tarballs in DIR

Versions and sha256 checksums are pinned in ``display/visdom_assets.json``. For an air-gapped
machine: run with ``--cache-dir DIR`` on a connected one, copy DIR over, and run the same command
there. See ``display/visdom_assets.py``.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.visdom_assets")

import argparse
import os
import sys
import time

from display import visdom_assets
from util.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scripts.visdom_assets",
        description="Install visdom's JavaScript/CSS/fonts from the npm registry (pinned, checksummed).",
    )
    p.add_argument(
        "--static-dir", default=None, help="where visdom serves its assets (default: the installed visdom)"
    )
    p.add_argument(
        "--registry",
        default=os.environ.get("npm_config_registry") or visdom_assets.DEFAULT_REGISTRY,
        help="npm registry (default: $npm_config_registry or %(default)s)",
    )
    p.add_argument("--cache-dir", default=None, help="folder to keep and reuse the package tarballs")
    p.add_argument("--check", action="store_true", help="only check that every asset is in place")
    p.add_argument(
        "--manifest", default=str(visdom_assets.MANIFEST), help="pinned versions and checksums (%(default)s)"
    )
    return p


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    manifest = visdom_assets.load_manifest(args.manifest)
    static_dir = args.static_dir or visdom_assets.default_static_dir()
    if args.check:
        visdom_assets.check_assets(static_dir, manifest)
        print(f"visdom assets: all in place in {static_dir}")
        return 0
    start = time.monotonic()
    written = visdom_assets.install_assets(
        static_dir, registry=args.registry, cache_dir=args.cache_dir, manifest=manifest
    )
    visdom_assets.check_assets(static_dir, manifest)
    took = time.monotonic() - start
    print(f"visdom assets: {len(written)} file(s) written to {static_dir} in {took:.1f} s; all in place")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
