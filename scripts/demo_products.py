"""The demo scene again, as the products users download, so that docs/scenes.md runs on `make demo`'s data.

    python -m scripts.demo_products [--scene datasets/demo/scene]

From ``s2_cloudy.tif`` (3 bands: B4, B3, B2 as digital numbers) and ``s1.tif`` (3 bands of dB) it
writes, beside them:

* ``S2A_MSIL1C_..._T32TQM_....SAFE/`` — a Level-1C SAFE folder of processing baseline 04.00 (its
  digital numbers carry the offset: DN + 1000, ``RADIO_ADD_OFFSET`` -1000);
* ``S2A_MSIL2A_..._T32TQM_....zip`` — a Level-2A SAFE zip (12 bands, ``BOA_ADD_OFFSET`` -1000);
* ``stac_s2/item.json`` — a STAC item with one COG per band, keyed as catalogues key them (blue,
  green, red, ...), ``raster:bands`` scale 0.0001 and offset -0.1;
* ``s1_linear.tif`` — the SAR in linear power (10^(dB / 10); its band units say 'linear').

The 13 bands are B4, B3, B2 of the demo scene; the other bands are their mean (the demo is
synthetic RGB), block-averaged to 20 and 60 m. The products cover the scene's first 510 x 510 px
(a multiple of 60 m), so the SAR, 512 px wide, is resampled onto that grid on the fly. Read back
with ``--s2_bands B4,B3,B2`` (the demo model takes three bands), every product gives the demo
model the values of ``s2_cloudy.tif``.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.demo_products")

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from data.sentinel import S2_BANDS
from data.sentinel_products import COMMON_KEYS, NATIVE, write_safe, write_stac_item
from options.parser import OneLineParser
from util.errors import UserError, run_cli

SIDE = 510  # 10 m pixels: a multiple of 6, so that the 60 m grid fits
OFFSET = -1000  # processing baseline 04.00 on
L1C_GLOB, L2A_GLOB = "S2A_MSIL1C_*.SAFE", "S2A_MSIL2A_*.zip"


def _native(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """13 bands at native resolution from (3, SIDE, SIDE) DN of B4, B3, B2."""
    grey = rgb.astype(np.float64).mean(axis=0)
    ten = {"B4": rgb[0], "B3": rgb[1], "B2": rgb[2]}
    out = {}
    for band in S2_BANDS:
        full = ten.get(band, grey)
        k = NATIVE[band] // 10
        coarse = full.reshape(SIDE // k, k, SIDE // k, k).mean(axis=(1, 3)) if k > 1 else full
        out[band] = np.rint(coarse).astype(np.int64) - OFFSET
    return {b: a.clip(1, 65535).astype("uint16") for b, a in out.items()}


def write_demo_products(scene: Path) -> list[Path]:
    """Write the products beside the demo scene (those missing); returns what is there."""
    cloudy, sar = scene / "s2_cloudy.tif", scene / "s1.tif"
    if not (cloudy.is_file() and sar.is_file()):
        raise UserError(f"no demo scene in {scene}: run `make demo` (or python -m scripts.demo) first")
    with rasterio.open(cloudy) as src:
        rgb, crs, transform = src.read(window=((0, SIDE), (0, SIDE))), src.crs.to_string(), src.transform
    bands, origin = _native(rgb), (transform.c, transform.f)
    with tempfile.TemporaryDirectory(dir=scene, prefix=".products") as tmp:
        tmp = Path(tmp)
        if not any(scene.glob(L1C_GLOB)):
            made = write_safe(tmp / "l1c", bands, level="L1C", crs=crs, origin=origin)
            shutil.move(str(made), scene / made.name)
        if not any(scene.glob(L2A_GLOB)):
            l2a = {b: a for b, a in bands.items() if b != "B10"}
            made = write_safe(tmp / "l2a", l2a, level="L2A", crs=crs, origin=origin, zip_it=True)
            shutil.move(str(made), scene / made.name)
        if not (scene / "stac_s2" / "item.json").is_file():
            write_stac_item(
                tmp / "stac_s2",
                bands,
                properties={
                    "platform": "sentinel-2a",
                    "s2:processing_baseline": "04.00",
                    "s2:product_type": "S2MSI1C",
                },
                crs=crs,
                origin=origin,
                raster={b: {"scale": 0.0001, "offset": OFFSET / 10000} for b in bands},
                keys=COMMON_KEYS,
                collection="sentinel-2-l1c",
            )
            shutil.rmtree(scene / "stac_s2", ignore_errors=True)
            shutil.move(str(tmp / "stac_s2"), scene / "stac_s2")
        linear = scene / "s1_linear.tif"
        if not linear.is_file():
            with rasterio.open(sar) as src:
                profile, db = src.profile, src.read()
            with rasterio.open(tmp / linear.name, "w", **profile) as dst:
                dst.write((10.0 ** (db.astype(np.float64) / 10.0)).astype("float32"))
                dst.units = ("linear",) * dst.count
            shutil.move(str(tmp / linear.name), linear)
    return sorted([*scene.glob(L1C_GLOB), *scene.glob(L2A_GLOB), scene / "stac_s2" / "item.json", linear])


def run(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m scripts.demo_products", description=__doc__.splitlines()[0])
    p.add_argument("--scene", type=Path, default=Path("datasets/demo/scene"), help="the demo scene's folder")
    args = p.parse_args(argv)
    for path in write_demo_products(args.scene):
        print(f"demo product: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
