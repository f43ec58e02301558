"""Reading what `scripts/evaluate.py` scores: RGB images (paper and field protocol) and multiband
rasters of reflectance (field protocol), each into the array layout its protocol expects.

``image``      PNG / JPEG / BMP / TIFF, 8-bit (any Pillow mode) or 16-bit: ``(H, W, 3)`` uint8 or
               uint16 (`read_image`); the paper protocol uses `to_uint8` of it, the field protocol
               `metrics.protocols.to_unit_chw` of it.
``multiband``  GeoTIFF (``.tif``/``.tiff``, any band count) or ``.npy`` holding ``(C, H, W)``:
               uint16 Sentinel-2 digital numbers (clipped to [0, 10000] and divided by 10000, the
               field's preprocessing, `data.sentinel.s2_to_unit`) or float reflectance in [0, 1]
               (`read_reflectance`).

Which one a file is: `file_kind` (by extension, and for TIFF by its header: an 8- or 16-bit TIFF of one
band, or of 3 or 4 bands stored as RGB, is an image; anything else, e.g. a GeoTIFF of 13 bands or of
3 uint16 bands as GDAL writes them, is a multiband raster). Every problem is a one-line `UserError`
naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from util.errors import UserError

__all__ = [
    "IMAGE_EXTENSIONS",
    "RASTER_EXTENSIONS",
    "file_kind",
    "read_image",
    "read_reflectance",
    "to_uint8",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
RASTER_EXTENSIONS = frozenset({".tif", ".tiff", ".npy"})
KINDS = ("image", "multiband")
UNIT_TOLERANCE = 1e-6  # float reflectance may overshoot [0, 1] by rounding only


def file_kind(path: str | os.PathLike) -> str:
    """``"image"`` or ``"multiband"`` for one file (see the module docstring)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".npy":
        return "multiband"
    if ext not in (".tif", ".tiff"):
        return "image"
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            bands, dtype, rgb = int(page.samplesperpixel), np.dtype(page.dtype), page.photometric == 2
    except Exception as err:  # any header failure means "unreadable"
        raise UserError(f"cannot read TIFF {path}: {err}") from None
    if dtype in (np.uint8, np.uint16) and (bands == 1 or (rgb and bands in (3, 4))):
        return "image"
    return "multiband"


def to_uint8(img: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 (returned as is) or uint16 (-> ``round(x / 257)``, i.e. x * 255 / 65535)."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return np.floor(img.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    raise ValueError(f"to_uint8: expected uint8 or uint16, got dtype {img.dtype}")


def _rawmode(im: object) -> str:
    """Pillow's raw (on-disk) pixel layout of an opened image, e.g. ``"RGB;16B"``; "" if unknown."""
    tile = getattr(im, "tile", None)
    if not tile:
        return ""
    args = tile[0].args
    return str(args[0] if isinstance(args, tuple) else args)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8- or 16-bit image as ``(H, W, 3)`` RGB, dtype uint8 or uint16 (values not rescaled).

    8-bit images of any Pillow mode (L, P, RGBA, ...) go through ``convert("RGB")`` (alpha dropped,
    grey replicated), like the official code.  16-bit grey PNG/TIFF is replicated to 3 channels;
    16-bit colour TIFF is read with tifffile.  Raises ``ValueError`` for float images and for 16-bit
    colour PNG (Pillow would silently truncate it to 8 bits), ``OSError`` if the file cannot be decoded.
    """
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("RGB", "RGBA", "RGBX") and ";16" in _rawmode(im):
            if (im.format or "").upper() != "TIFF":
                raise ValueError("16-bit colour PNG is not supported (Pillow truncates it to 8 bits)")
            import tifffile

            arr = np.asarray(tifffile.imread(path))
            if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
                raise ValueError(f"unsupported 16-bit TIFF layout {arr.shape} {arr.dtype}")
            return np.ascontiguousarray(arr[:, :, :3])
        if im.mode.startswith("I"):
            arr = np.asarray(im)
            if arr.min() < 0 or arr.max() > 65535:
                raise ValueError(f"integer image with values outside 0..65535 (mode {im.mode})")
            return np.repeat(arr.astype(np.uint16)[:, :, None], 3, axis=2)
        if im.mode == "F":
            raise ValueError("floating-point images are not supported (use 8- or 16-bit images)")
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _load_raster(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as err:  # a truncated file, a pickle, not an .npy at all
            raise UserError(f"cannot read {path}: {err}") from None
        if not isinstance(arr, np.ndarray) or arr.ndim != 3:
            shape = getattr(arr, "shape", "?")
            raise UserError(f"{path} holds an array of shape {shape}; save a (C, H, W) array (bands first)")
        return arr
    from rasterio.errors import NotGeoreferencedWarning

    from util.geotiff import read_geotiff

    with warnings.catch_warnings():  # scoring needs no georeference: plain TIFFs are fine
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        arr, _ = read_geotiff(path)
    return arr


def read_reflectance(path: str | os.PathLike) -> np.ndarray:
    """A multiband GeoTIFF or ``.npy`` as ``(C, H, W)`` float64 reflectance in [0, 1].

    uint16: Sentinel-2 digital numbers, clipped to [0, 10000] and divided by 10000 (as the field's
    data loaders do). float: reflectance, which must be finite and within [0, 1]. Any other data type,
    NaN, or values outside [0, 1] raise a `UserError` naming the file.
    """
    path = Path(path)
    arr = _load_raster(path)
    if arr.dtype == np.uint16:
        from data.sentinel import s2_to_unit  # the one DN -> reflectance conversion

        return s2_to_unit(arr).astype(np.float64)
    if not np.issubdtype(arr.dtype, np.floating):
        raise UserError(
            f"{path} has data type {arr.dtype}; expected uint16 Sentinel-2 digital numbers (scaled by "
            "1/10000) or float reflectance in [0, 1]"
        )
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise UserError(f"{path} contains NaN or inf; fill no-data pixels before scoring")
    lo, hi = float(out.min()), float(out.max())
    if lo < -UNIT_TOLERANCE or hi > 1 + UNIT_TOLERANCE:
        raise UserError(
            f"{path} holds float values in [{lo:.4g}, {hi:.4g}]; expected reflectance in [0, 1] "
            "(divide digital numbers by 10000, map [-1, 1] outputs with (x + 1) / 2)"
        )
    return np.clip(out, 0.0, 1.0)
