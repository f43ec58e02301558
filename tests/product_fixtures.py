"""Tiny Sentinel products for the tests of ``scene.products``: seeded bands at native resolution,
written as SAFE products and STAC items by ``data.sentinel_products``, and what a reader must give.

The 10 m grid is 60 x 60 px on UTM 32N (30 x 30 at 20 m, 10 x 10 at 60 m), the same grid as
``tests.scene_fixtures.write_scene``'s scenes, so the SAR of ``write_scene`` fits it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from data.sentinel import S2_BANDS
from data.sentinel_products import COMMON_KEYS, NATIVE, write_safe, write_stac_item
from tests.scene_fixtures import CRS, TRANSFORM

SIZE = 60  # 10 m pixels; divisible by 6 for the 60 m bands
ORIGIN = (TRANSFORM.c, TRANSFORM.f)


def native_bands(seed: int = 0, names=S2_BANDS, low: int = 1500, high: int = 7000) -> dict[str, np.ndarray]:
    """Seeded uint16 DN per band at its native resolution (smooth, so that a network sees a scene)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        n = SIZE * 10 // NATIVE[name]
        yy, xx = np.mgrid[0:n, 0:n] / max(n, 1)
        a, b = rng.uniform(-1, 1, 2)
        field = 0.5 + 0.3 * np.sin(3 * a * yy + 3 * b * xx) + rng.uniform(-0.05, 0.05, (n, n))
        out[name] = np.rint(low + (high - low) * np.clip(field, 0, 1)).astype("uint16")
    return out


def at_10m(bands: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each band nearest-neighbour upsampled onto the 10 m grid (what --s2_resampling nearest reads)."""
    return {b: np.repeat(np.repeat(a, NATIVE[b] // 10, 0), NATIVE[b] // 10, 1) for b, a in bands.items()}


def shifted(bands: dict[str, np.ndarray], offset: int) -> dict[str, np.ndarray]:
    """The digital numbers a product of baseline 04.00 stores: DN - offset (offset -1000: DN + 1000)."""
    return {b: (a.astype(np.int64) - offset).astype("uint16") for b, a in bands.items()}


def write_stack(path: Path, bands: dict[str, np.ndarray], names=S2_BANDS) -> Path:
    """The equivalent stacked GeoTIFF at 10 m (SEN12MS-CR's format: no offset, bands in order)."""
    ten = at_10m({n: bands[n] for n in names})
    with rasterio.open(
        path, "w", driver="GTiff", width=SIZE, height=SIZE, count=len(names), dtype="uint16",
        crs=CRS, transform=TRANSFORM, nodata=0,
    ) as dst:  # fmt: skip
        dst.write(np.stack([ten[n] for n in names]))
    return path


def safe(folder: Path, bands: dict[str, np.ndarray], **kwargs) -> Path:
    return write_safe(folder, bands, crs=CRS, origin=ORIGIN, **kwargs)


def s2_item(
    folder: Path,
    bands: dict[str, np.ndarray],
    *,
    level: str = "L2A",
    baseline: str = "05.10",
    raster_offset: float | None = -0.1,
    common_keys: bool = True,
    **properties,
) -> Path:
    """A Sentinel-2 STAC item with one COG per band; ``raster_offset``: raster:bands offset (None: no
    scale/offset given); ``common_keys``: assets keyed as catalogues do (blue, rededge1, ...)."""
    raster = {} if raster_offset is None else {b: {"scale": 0.0001, "offset": raster_offset} for b in bands}
    props = {
        "platform": "sentinel-2a",
        "s2:processing_baseline": baseline,
        "s2:product_type": f"S2MSI{level[1:]}",
    }
    return write_stac_item(
        folder,
        bands,
        properties={**props, **properties},
        crs=CRS,
        origin=ORIGIN,
        raster=raster,
        keys=COMMON_KEYS if common_keys else None,
        collection=f"sentinel-2-{level.lower()}",
    )


def s1_item(
    folder: Path,
    vv: np.ndarray,
    vh: np.ndarray,
    *,
    collection: str = "sentinel-1-rtc",
    crs: str = CRS,
    origin: tuple[float, float] = ORIGIN,
    unit: str | None = None,
) -> Path:
    """A Sentinel-1 STAC item with assets vv and vh (float32), e.g. RTC gamma0 in linear power."""
    raster = {b: {"unit": unit} for b in ("VV", "VH")} if unit else {}
    return write_stac_item(
        folder,
        {"VV": vv.astype("float32"), "VH": vh.astype("float32")},
        properties={"platform": "sentinel-1a", "sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD"},
        crs=crs,
        origin=origin,
        raster=raster,
        keys={"VV": "vv", "VH": "vh"},
        collection=collection,
        nodata=None,
    )
