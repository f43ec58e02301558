"""Tiny SEN12MS-CR trees for the tests: GeoTIFFs in the native layout, made with rasterio in tmp_path.

Scenes cover every split and the prefix trap: ``ROIs1158_spring s1_1`` is train although
``s1_106`` is test. Each patch is ``SIZE`` x ``SIZE`` px in EPSG:32631 with 10 m pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SIZE = 32
CRS = "EPSG:32631"
# (season, scene) -> patch numbers
PATCHES: dict[tuple[str, str], tuple[str, ...]] = {
    ("ROIs1158_spring", "1"): ("1", "2"),  # train (not s1_106!)
    ("ROIs2017_winter", "5"): ("3",),  # train
    ("ROIs1158_spring", "106"): ("30",),  # test
    ("ROIs1970_fall", "139"): ("8",),  # test
    ("ROIs1158_spring", "17"): ("5",),  # val
    ("ROIs2017_winter", "22"): ("7",),  # val
}
TRAIN = ["ROIs1158_spring_1_p1", "ROIs1158_spring_1_p2", "ROIs2017_winter_5_p3"]
TEST = ["ROIs1158_spring_106_p30", "ROIs1970_fall_139_p8"]
VAL = ["ROIs1158_spring_17_p5", "ROIs2017_winter_22_p7"]
INFIX = {"s1": "s1", "s2": "s2", "s2_cloudy": "s2_cloudy"}


def transform_of(scene: str, patch: str) -> tuple[float, ...]:
    """A distinct 10 m north-up transform per patch, as 6 affine coefficients (a, b, c, d, e, f)."""
    return (10.0, 0.0, 500000.0 + 1000.0 * int(patch), 0.0, -10.0, 5600000.0 - 1000.0 * int(scene))


def tif_path(root: str | os.PathLike, modality: str, season: str, scene: str, patch: str) -> Path:
    """Where the native tree keeps one file."""
    return (
        Path(root)
        / f"{season}_{INFIX[modality]}"
        / f"{INFIX[modality]}_{scene}"
        / f"{season}_{INFIX[modality]}_{scene}_p{patch}.tif"
    )


def write_tif(
    path: str | os.PathLike, arr: np.ndarray, transform, crs: str = CRS, nodata: float | None = None
) -> None:
    """Write a (C, H, W) array as a GeoTIFF (parents created)."""
    import rasterio
    from affine import Affine

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=arr.dtype.name,
        crs=crs,
        transform=Affine(*transform),
        nodata=nodata,
    ) as dst:
        dst.write(arr)


def s2_dn(rng: np.random.Generator, size: int = SIZE, cloudy: bool = False) -> np.ndarray:
    """(13, size, size) uint16 digital numbers: smooth ground (a few exceeding 10000) or brighter clouds."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    bands = [300 + 2500 * (b / 13) + 800 * (rng.uniform() * xx + rng.uniform() * yy) for b in range(13)]
    arr = np.stack(bands) + rng.normal(0, 50, (13, size, size))
    if cloudy:
        arr += 4000 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.05)
    arr[:, 0, 0] = 12000  # clipped to reflectance 1
    return np.clip(arr, 0, 65535).astype(np.uint16)


def s1_db(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """(2, size, size) float32 backscatter in dB, VV around -10, VH around -17, some beyond the clips."""
    arr = np.stack([rng.normal(-10, 4, (size, size)), rng.normal(-17, 5, (size, size))]).astype(np.float32)
    arr[:, 0, 0] = (-40.0, -40.0)
    arr[:, 0, 1] = (3.0, 3.0)
    return arr


def make_tree(root: str | os.PathLike, patches: dict | None = None, size: int = SIZE, seed: int = 0) -> Path:
    """Write a native SEN12MS-CR tree under ``root`` (default: :data:`PATCHES`); returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for (season, scene), numbers in (PATCHES if patches is None else patches).items():
        for patch in numbers:
            transform = transform_of(scene, patch)
            write_tif(tif_path(root, "s1", season, scene, patch), s1_db(rng, size), transform)
            write_tif(tif_path(root, "s2", season, scene, patch), s2_dn(rng, size), transform)
            write_tif(
                tif_path(root, "s2_cloudy", season, scene, patch), s2_dn(rng, size, cloudy=True), transform
            )
    return root
