"""Tiny whole scenes and experiments for the tests of the ``scene`` package and predict.py.

A Sentinel-2-like uint16 scene and a Sentinel-1-like float32 dB scene on one UTM grid, and a
random-weight experiment as train.py leaves it, all made in ``tmp_path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine

from data.sentinel import s1_to_unit, s2_to_unit

CRS = "EPSG:32632"
TRANSFORM = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5100000.0)
# unet_32 needs window sides divisible by 32; 4 filters keep the networks tiny.
TINY_MODEL = ["--netG", "unet_32", "--ngf", "4", "--ndf", "4", "--sar_nc", "2", "--gpu_ids", "-1"]


def smooth_field(rng: np.random.Generator, h: int, w: int, bands: int) -> np.ndarray:
    """(bands, h, w) float in [0, 1]: random planes plus a few long-wave sinusoids (no edges)."""
    yy, xx = np.mgrid[0:h, 0:w] / 64.0
    out = []
    for _ in range(bands):
        a, b, c, d = rng.uniform(-1, 1, 4)
        out.append(
            0.5 + 0.15 * (a * yy + b * xx) / max(1.0, (h + w) / 64) + 0.1 * np.sin(c * 3 * yy + d * 3 * xx)
        )
    return np.clip(np.stack(out), 0, 1)


def write_scene(
    folder: Path,
    h: int,
    w: int,
    *,
    seed: int = 0,
    s2_bands: int = 13,
    s2_dtype: str = "uint16",
    sar_bands: int = 2,
    transform=TRANSFORM,
    sar_transform=None,
    sar_crs: str = CRS,
    sar_size: tuple[int, int] | None = None,
    s2_nodata: float | None = 0,
    smooth: bool = False,
) -> tuple[Path, Path]:
    """A Sentinel-2-like uint16 scene and a Sentinel-1-like float32 dB scene (same grid unless told)."""
    rng = np.random.default_rng(seed)
    s2 = (
        smooth_field(rng, h, w, s2_bands) * 6000 + 500 if smooth else rng.uniform(500, 6000, (s2_bands, h, w))
    )
    sh, sw = sar_size or (h, w)
    s1 = (
        smooth_field(rng, sh, sw, sar_bands) * -20 - 3
        if smooth
        else rng.uniform(-24, -3, (sar_bands, sh, sw))
    )
    common = {"driver": "GTiff", "crs": CRS}
    s2_path, s1_path = folder / "s2.tif", folder / "s1.tif"
    with rasterio.open(
        s2_path,
        "w",
        width=w,
        height=h,
        count=s2_bands,
        dtype=s2_dtype,
        transform=transform,
        nodata=s2_nodata,
        **common,
    ) as dst:
        dst.write(s2.astype(s2_dtype))
    with rasterio.open(
        s1_path,
        "w",
        driver="GTiff",
        width=sw,
        height=sh,
        count=sar_bands,
        dtype="float32",
        crs=sar_crs,
        transform=sar_transform or transform,
    ) as dst:
        dst.write(s1.astype("float32"))
    return s2_path, s1_path


def make_experiment(root: Path, name: str, *extra: str, saved: dict | None = None) -> Path:
    """A random-weight experiment as train.py leaves it: latest_net_{G,G2,A,D}.pth and train_opt.json."""
    from models import create_model
    from options.train_options import TrainOptions

    opt = TrainOptions().parse(
        ["--dataroot", "unused", "--name", name, "--checkpoints_dir", str(root), *TINY_MODEL, *extra]
    )
    create_model(opt).save_networks("latest")
    if saved:
        path = root / name / "train_opt.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **saved}))
    return root


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def identity(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return a


def numpy_unit(raw: np.ndarray, kind: str, nodata: float | None = None) -> np.ndarray:
    """data.sentinel's scaling, missing values (NaN, nodata) set to 0: what predict.py must match."""
    unit = s2_to_unit(raw) if kind == "s2" else s1_to_unit(raw)
    bad = ~np.isfinite(raw) if raw.dtype.kind == "f" else np.zeros(raw.shape, bool)
    if nodata is not None:
        bad |= raw == nodata
    unit[bad] = 0
    return unit


def unit_of(s2: Path) -> np.ndarray:
    with rasterio.open(s2) as src:
        return numpy_unit(src.read(), "s2", src.nodata)


def predict_flags(ckpt: Path, name: str) -> list[str]:
    """predict.py's flags for experiment ``name`` under ``ckpt``: the CPU and small windows."""
    return [
        "--name",
        name,
        "--checkpoints_dir",
        str(ckpt),
        "--gpu_ids",
        "-1",
        "--window",
        "32",
        "--overlap",
        "8",
    ]


def write_arrays(folder: Path, s2: np.ndarray, s1: np.ndarray | None = None) -> tuple[Path, Path | None]:
    """Given arrays as a scene on one UTM grid: ``s2`` (C, H, W) digital numbers as uint16 and ``s1``
    (C', H, W) dB as float32 (None: no SAR file)."""
    paths = []
    for name, data, dtype in (("s2.tif", s2, "uint16"), ("s1.tif", s1, "float32")):
        if data is None:
            paths.append(None)
            continue
        path = folder / name
        profile = {"driver": "GTiff", "crs": CRS, "transform": TRANSFORM, "dtype": dtype}
        with rasterio.open(
            path, "w", width=data.shape[2], height=data.shape[1], count=len(data), **profile
        ) as dst:
            dst.write(data.astype(dtype))
        paths.append(path)
    return paths[0], paths[1]
