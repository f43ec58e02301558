"""Product readers: what users download, behind one interface (:class:`Product`, :class:`BandStack`).

* :mod:`scene.products.geotiff` — stacked GeoTIFFs (SEN12MS-CR's format, exports of any archive);
* :mod:`scene.products.safe` — Sentinel-2 ``.SAFE`` products (folder, metadata file or zip), L1C and L2A;
* :mod:`scene.products.stac` — STAC items with one raster asset per band (Sentinel-2, Sentinel-1);
* :mod:`scene.products.sar` — Sentinel-1 in dB or linear power, and what is refused.

What a model expects is its :class:`models.weight_sets.InputDomain`; the inputs are checked against
it by :func:`scene.domain.check_domain`.

:func:`open_product` picks the reader from the path; the scene never knows which one read its inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scene.products.base import RESAMPLINGS, Band, BandStack, Filled, Grid, Product, band_name
from scene.products.geotiff import parse_offset, read_geotiff
from scene.products.safe import is_safe, read_safe
from scene.products.sar import GRD_HINT, SAR_UNITS
from scene.products.stac import is_stac, read_stac
from util.errors import UserError

__all__ = [
    "RESAMPLINGS",
    "SAR_UNITS",
    "Band",
    "BandStack",
    "Filled",
    "Grid",
    "Product",
    "ReadOptions",
    "band_name",
    "open_product",
    "product_format",
]


@dataclass(frozen=True)
class ReadOptions:
    """How products are read (predict.py's options of the same names).

    ``s2_offset``: 'auto' (the product's metadata; none for a plain stack) or a number of digital
    numbers added before scaling (e.g. -1000); ``s2_resampling``: how 20/60 m bands reach the 10 m
    grid; ``sar_units``: 'auto', 'db' or 'linear'; ``b10_fill``: the stored value B10 reads as when a
    product lacks it (Level-2A), in digital numbers (reflectance x 10000).
    """

    s2_offset: str | float = "auto"
    s2_resampling: str = "nearest"
    sar_units: str = "auto"
    b10_fill: float = 20.0

    def __post_init__(self) -> None:
        if self.s2_resampling not in RESAMPLINGS:
            raise UserError(f"--s2_resampling {self.s2_resampling!r}: choose one of {', '.join(RESAMPLINGS)}")
        if str(self.sar_units).lower() not in SAR_UNITS:
            raise UserError(f"--sar_units {self.sar_units!r}: choose one of {', '.join(SAR_UNITS)}")
        parse_offset(self.s2_offset)
        if not 0 <= float(self.b10_fill) <= 65535:
            raise UserError(f"--b10_fill {self.b10_fill}: expected digital numbers from 0 to 65535")


def is_url(path: str) -> bool:
    return str(path).split("://", 1)[0].lower() in ("http", "https", "s3", "gs")


def product_format(path: str | os.PathLike) -> str:
    """'SAFE', 'STAC item' or 'GeoTIFF', from the path alone."""
    text = str(path)
    if is_stac(text):
        return "STAC item"
    if not is_url(text) and is_safe(text):
        return "SAFE"
    return "GeoTIFF"


def open_product(
    path: str | os.PathLike, role: str, sensor: str, options: ReadOptions | None = None
) -> Product:
    """Read the product at ``path`` (``role``: 'cloudy' or 'SAR', for messages; ``sensor``: 'S2' or 'S1')."""
    options = options or ReadOptions()
    text = str(path)
    kind = product_format(text)
    if not is_url(text) and not Path(text).exists():
        raise UserError(f"{role} image {text} does not exist")
    if kind == "STAC item":
        return read_stac(
            text, role, sensor, s2_offset=parse_offset(options.s2_offset), sar_units=options.sar_units
        )
    if kind == "SAFE":
        if sensor == "S1":
            raise UserError(f"the SAR input {text} is a SAFE product; {GRD_HINT}")
        return read_safe(text, role, s2_offset=parse_offset(options.s2_offset))
    if Path(text).is_dir():
        raise UserError(f"the {role} input {text} is a folder but not a .SAFE product")
    return read_geotiff(text, role, sensor, s2_offset=options.s2_offset, sar_units=options.sar_units)
