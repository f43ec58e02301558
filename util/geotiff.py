"""Small GeoTIFF reading and writing through rasterio (imported lazily, so PNG-only users never need it).

Whole arrays of small rasters (SEN12MS-CR patches, test outputs); whole scenes are streamed by
the ``scene`` package instead.

Georeference is carried as plain data that torch's default collate and JSON handle:

* the CRS as a WKT string ("" when the file has none);
* the affine transform as 6 floats ``(a, b, c, d, e, f)`` in rasterio's ``Affine`` order, i.e.
  ``x = a * col + b * row + c`` and ``y = d * col + e * row + f`` for the pixel corner (col, row).
  (GDAL's geotransform orders the same numbers ``(c, a, b, f, d, e)``.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from util.errors import UserError
from util.fileio import atomic_path

Transform = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class GeoInfo:
    """Header of one raster: size, bands, data type, no-data value and georeference."""

    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    crs: str
    transform: Transform


def read_geotiff(path: str | os.PathLike) -> tuple[np.ndarray, GeoInfo]:
    """All bands of a GeoTIFF as a ``(C, H, W)`` array of the file's data type, and its header.

    Raises ``UserError`` naming the file when it cannot be opened or decoded.
    """
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as src:
            dtypes = set(src.dtypes)
            if len(dtypes) != 1:
                raise UserError(f"{path} mixes band data types ({', '.join(sorted(dtypes))})")
            arr = src.read()
            info = GeoInfo(
                width=src.width,
                height=src.height,
                count=src.count,
                dtype=src.dtypes[0],
                nodata=None if src.nodata is None else float(src.nodata),
                crs=src.crs.to_wkt() if src.crs is not None else "",
                transform=tuple(float(v) for v in tuple(src.transform)[:6]),  # type: ignore[arg-type]
            )
    except RasterioError as err:
        raise UserError(f"cannot read GeoTIFF {path}: {err}") from None
    return arr, info


def write_geotiff(
    path: str | os.PathLike,
    array: np.ndarray,
    crs: str,
    transform: Sequence[float],
    *,
    dtype: str = "float32",
    nodata: float | None = None,
    band_names: Sequence[str] | None = None,
) -> None:
    """Write a ``(C, H, W)`` (or ``(H, W)``) array as a deflate-compressed GeoTIFF (atomically).

    ``crs`` is WKT (or anything rasterio's ``CRS.from_user_input`` accepts; "" for none) and
    ``transform`` the 6 affine coefficients ``(a, b, c, d, e, f)``.
    """
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"write_geotiff: expected a (C, H, W) array, got shape {arr.shape}")
    if len(transform) != 6:
        raise ValueError(f"write_geotiff: expected 6 transform coefficients, got {len(transform)}")
    profile = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": dtype,
        "crs": CRS.from_user_input(crs) if crs else None,
        "transform": Affine(*[float(v) for v in transform]),
        "nodata": nodata,
        "compress": "deflate",
    }
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr.astype(dtype, copy=False))
        for i, name in enumerate(band_names or (), start=1):
            dst.set_band_description(i, name)


def same_crs(a: str, b: str) -> bool:
    """Whether two WKT strings name the same CRS (textual match, else rasterio's comparison)."""
    if a == b:
        return True
    if not a or not b:
        return False
    from rasterio.crs import CRS

    return CRS.from_wkt(a) == CRS.from_wkt(b)


def same_transform(a: Sequence[float], b: Sequence[float], atol: float = 1e-4) -> bool:
    """Whether two affine transforms agree to ``atol`` (map units: 0.1 mm for UTM metres)."""
    return bool(
        np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=0.0, atol=atol)
    )


def window_transform(
    transform: Sequence[float],
    *,
    scale: tuple[float, float] = (1.0, 1.0),
    offset: tuple[float, float] = (0.0, 0.0),
    flip_width: int | None = None,
) -> Transform:
    """The transform of a resampled, cropped and horizontally flipped raster, in that order.

    ``scale`` = (old width / new width, old height / new height) of a resize; ``offset`` = the
    (col, row) of the crop's top-left corner in the resized raster; ``flip_width`` = the width of
    the raster that was mirrored left-right (None: no flip).
    """
    a, b, c, d, e, f = (float(v) for v in transform)
    a, b, d, e = a * scale[0], b * scale[1], d * scale[0], e * scale[1]
    c, f = a * offset[0] + b * offset[1] + c, d * offset[0] + e * offset[1] + f
    if flip_width is not None:
        c, f = a * flip_width + c, d * flip_width + f
        a, d = -a, -d
    return (a, b, c, d, e, f)
