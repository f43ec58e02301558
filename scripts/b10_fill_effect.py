"""What filling B10 (the band Level-2A lacks) changes, measured on 13-band Level-1C images where B10 is known.

    python -m scripts.b10_fill_effect IMAGE.tif [IMAGE.tif ...] [--fill 20] [--name EXPERIMENT --sar S1.tif ...]

For each 13-band image of digital numbers (e.g. SEN12MS-CR patches): the mean absolute error of the
filled B10 against the real one (reflectance), and the cloud cover the detectors find with the real
and the filled B10 (s2cloudless if installed, DSen2-CR's cloud_shadow), with the share of pixels
whose mask changes. With ``--name`` (a model trained on 13 bands) and one ``--sar`` per image: the
mean absolute difference of its outputs (reflectance), real B10 against filled.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.b10_fill_effect")

import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from data.sentinel import S2_BANDS, s2_to_unit
from metrics.cloud_masks import cloud_mask, have_s2cloudless
from options.parser import OneLineParser
from scene.products import ReadOptions
from util.errors import UserError, run_cli

B10 = S2_BANDS.index("B10")


def read13(path: Path) -> tuple[np.ndarray, dict]:
    try:
        with rasterio.open(path) as src:
            dn, profile = src.read(), src.profile
    except rasterio.errors.RasterioError as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if dn.shape[0] != len(S2_BANDS):
        raise UserError(f"{path} has {dn.shape[0]} bands; give 13-band Level-1C images (B10 known)")
    return dn, profile


def run(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m scripts.b10_fill_effect", description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", type=Path, help="13-band Level-1C GeoTIFFs of digital numbers")
    p.add_argument("--fill", type=float, default=ReadOptions.b10_fill, help="B10 fill in DN (%(default)g)")
    p.add_argument("--name", help="a 13-band experiment whose outputs to compare (needs --sar)")
    p.add_argument("--sar", type=Path, nargs="*", default=[], help="the Sentinel-1 image of each image")
    p.add_argument("--checkpoints_dir", default="./checkpoints")
    args = p.parse_args(argv)
    if args.name and len(args.sar) != len(args.images):
        raise UserError(f"--name needs one --sar per image ({len(args.images)}), got {len(args.sar)}")
    detectors = (["s2cloudless"] if have_s2cloudless() else []) + ["cloud_shadow"]
    all_b10 = []
    for i, path in enumerate(args.images):
        dn, profile = read13(path)
        all_b10.append(dn[B10].ravel())
        filled = dn.copy()
        filled[B10] = np.where(dn[B10] > 0, args.fill, 0)
        mae = float(np.abs(dn[B10].astype(np.float64) - filled[B10]).mean()) / 10000
        line = [
            f"{path.parent.name}/{path.name}: B10 {np.median(dn[B10]):.0f} DN median, filled {args.fill:g}: MAE {mae:.4f}"
        ]
        for det in detectors:
            real, fill = (cloud_mask(s2_to_unit(x), det, S2_BANDS) for x in (dn, filled))
            line.append(
                f"{det} cover {real.mean():.3f} -> {fill.mean():.3f} ({100 * np.mean(real != fill):.2f}% px)"
            )
        if args.name:
            line.append(f"output MAE {_output_difference(args, dn, filled, profile, args.sar[i]):.5f}")
        print("; ".join(line))
    print(f"median B10 over all images: {np.median(np.concatenate(all_b10)):.0f} DN")
    return 0


def _output_difference(args, dn: np.ndarray, filled: np.ndarray, profile: dict, sar: Path) -> float:
    from scene import ScenePredictor

    predictor = ScenePredictor(args.checkpoints_dir, args.name)
    outs = []
    with tempfile.TemporaryDirectory() as tmp:
        for tag, data in (("real", dn), ("filled", filled)):
            src = Path(tmp) / f"{tag}.tif"
            with rasterio.open(src, "w", **profile) as dst:
                dst.write(data)
            result = predictor.predict(src, sar, Path(tmp) / f"{tag}_out.tif", progress=False, log=None)
            with rasterio.open(result.path) as out:
                outs.append(out.read())
    return float(np.nanmean(np.abs(outs[0] - outs[1])))


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
