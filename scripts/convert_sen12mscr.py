"""Convert native SEN12MS-CR GeoTIFFs into the official PNG triplet layout (8-bit RGB), reproducibly.

    python -m scripts.convert_sen12mscr --root SEN12MSCR --out DATA [--bands rgb|B4,B3,B2]
        [--stretch 0.3 | --percentile 2 98] [--sar_scaling standard|dsen2cr] [--seasons spring,winter]
        [--splits train,test] [--skip_incomplete] [--overwrite]

writes ``DATA/<split>/<split>A/<stem>.png`` (cloudy S2), ``<split>B`` (cloud-free S2) and ``<split>C``
(S1), e.g. ``DATA/train/trainA/ROIs1158_spring_1_p30.png``, by the official scene split
(``val`` holds the scenes UnCRtainTS holds out and is written only when ``--splits``
names it: those scenes are never put into train), and ``DATA/sen12mscr_manifest.json`` with every
parameter, so the data can be rebuilt. Train with ``--dataroot DATA/train --dataset_mode unaligned_sar``.

Optical bands (``--bands``, exactly three, written as R, G, B): ``rgb`` = B4, B3, B2 (natural
colour, the default), or any three band names / 1-based numbers. DN are clipped to [0, 10000] and
divided by 10000 (reflectance), then stretched to 0..255:

* ``--stretch S`` (default 0.3): reflectance [0, S] -> 0..255 linearly, clipped; the same mapping for
  every band and image (0.3 = DN 3000, the field's natural-colour preview; clouds saturate).
* ``--percentile LO HI``: per triplet and band, the LO and HI percentiles of the CLOUD-FREE image
  map to 0 and 255; the same mapping is applied to the cloudy image, so A and B stay comparable.

SAR: dB clipped per ``--sar_scaling`` (standard: VV and VH to [-25, 0]; dsen2cr: VH to [-32.5, 0]),
mapped to [0, 1] and then 0..255, channels VV, VH, mean(VV, VH). NaN / no-data -> 0 (counted).
Attribution: SEN12MS-CR, Ebel, Meraner, Schmitt, Zhu, IEEE TGRS 2020; modified Copernicus Sentinel data.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit(
        "error: run it from the repository root as a module: python -m scripts.convert_sen12mscr"
    )

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from data.sen12mscr import SPLITS, TEST_SCENES, VAL_SCENES, list_triplets, parse_seasons, read_triplet
from data.sentinel import S1_CLIP, S2_BANDS, S2_MAX, parse_bands, s1_preview
from options.parser import OneLineParser
from util.errors import UserError, run_cli
from util.util import unit_to_u8

MANIFEST = "sen12mscr_manifest.json"
ATTRIBUTION = (
    "SEN12MS-CR: Ebel, Meraner, Schmitt, Zhu, IEEE TGRS 2020; contains modified Copernicus Sentinel data"
)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (``--help`` shows them with the module docstring)."""
    p = OneLineParser(
        prog="convert_sen12mscr.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", required=True, type=Path, help="root of the native SEN12MS-CR tree")
    p.add_argument("--out", required=True, type=Path, help="output folder (gets <split>/<split>{A,B,C}/)")
    p.add_argument(
        "--bands",
        default="rgb",
        help="three S2 bands written as R, G, B: 'rgb' (= B4,B3,B2) or names/1-based numbers (default: rgb)",
    )
    stretch = p.add_mutually_exclusive_group()
    stretch.add_argument(
        "--stretch",
        type=float,
        default=None,
        metavar="S",
        help="fixed stretch: reflectance [0, S] -> 0..255 (default: 0.3, i.e. DN 3000)",
    )
    stretch.add_argument(
        "--percentile",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="per triplet and band: cloud-free LO/HI percentiles -> 0/255, applied to A and B",
    )
    p.add_argument(
        "--sar_scaling",
        default="standard",
        choices=tuple(S1_CLIP),
        help="S1 dB clip: standard = [-25, 0] for VV and VH; dsen2cr = VH [-32.5, 0] (default: standard)",
    )
    p.add_argument("--seasons", default="all", help="'all' or a comma list of spring, summer, fall, winter")
    p.add_argument(
        "--splits", default="train,test", help="comma list of train, val, test (default: train,test)"
    )
    p.add_argument("--skip_incomplete", action="store_true", help="leave out patches lacking a partner file")
    p.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty --out (replacing its PNGs)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def stretch_u8(unit: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(3, H, W) reflectance -> (H, W, 3) uint8: per band, [low, high] -> 0..255 linearly, clipped."""
    span = np.maximum(high - low, 1e-6)[:, None, None]
    scaled = (unit.astype(np.float64) - low[:, None, None]) / span
    return unit_to_u8(scaled).transpose(1, 2, 0)


def stretch_limits(clear: np.ndarray, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Per-band reflectance mapped to 0 and 255 (from the cloud-free image for --percentile)."""
    if args.percentile is not None:
        lo, hi = np.percentile(clear.reshape(clear.shape[0], -1), args.percentile, axis=1)
        return lo, hi
    return np.zeros(clear.shape[0]), np.full(clear.shape[0], float(args.stretch))


def check_args(args: argparse.Namespace) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Validate the options; returns the band indices and the splits to write."""
    bands = parse_bands(args.bands)
    if len(bands) != 3:
        raise UserError(f"--bands {args.bands!r} names {len(bands)} band(s); an RGB PNG needs exactly 3")
    if args.percentile is None and args.stretch is None:
        args.stretch = 0.3
    if args.stretch is not None and not (0.0 < args.stretch <= 1.0):
        raise UserError(f"--stretch must be a reflectance in (0, 1], got {args.stretch:g}")
    if args.percentile is not None:
        lo, hi = args.percentile
        if not (0.0 <= lo < hi <= 100.0):
            raise UserError(f"--percentile LO HI needs 0 <= LO < HI <= 100, got {lo:g} {hi:g}")
    splits = tuple(dict.fromkeys(s.strip() for s in args.splits.split(",") if s.strip()))
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise UserError(f"--splits {args.splits!r}: use a comma list of {', '.join(SPLITS)}")
    return bands, splits


def prepare_out(out: Path, splits: tuple[str, ...], overwrite: bool) -> None:
    """Refuse a non-empty ``out`` unless ``overwrite``; then clear the PNGs this run will write."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(
                f"--out {out} is not empty; add --overwrite to write into it, or choose another folder"
            )
        for split in splits:
            for role in "ABC":
                for old in (out / split / f"{split}{role}").glob("*.png"):
                    old.unlink()
        (out / MANIFEST).unlink(missing_ok=True)
    for split in splits:
        for role in "ABC":
            (out / split / f"{split}{role}").mkdir(parents=True, exist_ok=True)


def manifest(args: argparse.Namespace, bands: tuple[int, ...], counts: dict, nonfinite: int, argv) -> dict:
    """Everything needed to rebuild the data set."""
    if args.percentile is not None:
        stretch = {
            "kind": "percentile",
            "low": args.percentile[0],
            "high": args.percentile[1],
            "per": "triplet and band, percentiles of the cloud-free image, applied to cloudy and cloud-free",
        }
    else:
        stretch = {"kind": "fixed", "max_reflectance": args.stretch, "max_dn": args.stretch * S2_MAX}
    clip = S1_CLIP[args.sar_scaling]
    return {
        "format": "official PNG triplets: <split>/<split>A cloudy, <split>B cloud-free, <split>C SAR; 8-bit RGB",
        "source": str(args.root.resolve()),
        "converter": "scripts/convert_sen12mscr.py",
        "command": ["scripts/convert_sen12mscr.py", *(argv if argv is not None else sys.argv[1:])],
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "bands": [S2_BANDS[b] for b in bands],
        "s2_scaling": f"DN clipped to [0, {S2_MAX:g}] / {S2_MAX:g} = reflectance, then the stretch",
        "stretch": stretch,
        "sar": {
            "scaling": args.sar_scaling,
            "clip_db": {"VV": list(clip[0]), "VH": list(clip[1])},
            "channels": ["VV", "VH", "mean(VV, VH)"],
        },
        "seasons": args.seasons,
        "splits": counts,
        "split_rule": {"test": TEST_SCENES, "val": VAL_SCENES, "train": "every other scene"},
        "skip_incomplete": bool(args.skip_incomplete),
        "nonfinite_replaced_by_0": nonfinite,
        "attribution": ATTRIBUTION,
    }


def convert(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bands, splits = check_args(args)
    seasons = parse_seasons(args.seasons)
    todo = {
        s: list_triplets(args.root, s, seasons, skip_incomplete=args.skip_incomplete, option="--root")
        for s in splits
    }
    prepare_out(args.out, splits, args.overwrite)
    counts, nonfinite = {}, 0
    total = sum(len(v) for v in todo.values())
    with tqdm(total=total, desc="converting", unit="triplet", disable=args.quiet, file=sys.stdout) as bar:
        for split, triplets in todo.items():
            folder = args.out / split
            for t in triplets:
                data = read_triplet(t, bands, args.sar_scaling)
                nonfinite += data["nonfinite"]
                low, high = stretch_limits(data["B"], args)
                Image.fromarray(stretch_u8(data["A"], low, high)).save(folder / f"{split}A" / f"{t.stem}.png")
                Image.fromarray(stretch_u8(data["B"], low, high)).save(folder / f"{split}B" / f"{t.stem}.png")
                Image.fromarray(s1_preview(data["C"])).save(folder / f"{split}C" / f"{t.stem}.png")
                bar.update(1)
            counts[split] = len(triplets)
    text = json.dumps(manifest(args, bands, counts, nonfinite, argv), indent=2) + "\n"
    (args.out / MANIFEST).write_text(text)
    if nonfinite:
        print(f"warning: {nonfinite} NaN / no-data values were replaced by 0")
    print(
        f"wrote {', '.join(f'{n} {s}' for s, n in counts.items())} triplets to {args.out} (manifest: {MANIFEST})"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit status 0, or 2 with a one-line error."""
    return run_cli(lambda: convert(argv))


if __name__ == "__main__":
    sys.exit(main())
