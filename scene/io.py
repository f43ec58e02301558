"""A scene's inputs: the cloudy Sentinel-2 and the Sentinel-1 raster, checked to fit each other and
the model, with the bands to read and how to scale them (:class:`Scene`).

Windows are read from a scene in batches by :class:`scene.reader.BatchReader`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from data.sentinel import S2_BANDS, parse_bands
from scene.arrays import BlankRaster
from scene.reader import BatchReader, open_raster, pinned
from scene.windows import WindowGrid
from util.errors import UserError

S2_DTYPES = ("uint16", "int16", "uint32", "int32")  # digital numbers, reflectance x 10000
S1_DTYPES = ("float32", "float64")  # backscatter in dB
SAMPLE = 512  # side of the central window whose values are checked against the scaling


def describe_grid(ds: rasterio.io.DatasetReader) -> str:
    t = ds.transform
    crs = ds.crs.to_string() if ds.crs else "no CRS"
    return f"{ds.width}x{ds.height} px, {crs}, origin ({t.c:.3f}, {t.f:.3f}), pixel ({t.a:g}, {t.e:g})"


def same_grid(a: rasterio.io.DatasetReader, b: rasterio.io.DatasetReader) -> bool:
    """Whether two rasters are pixel-aligned on one grid (same size, CRS and transform)."""
    pixel = max(abs(a.transform.a), abs(a.transform.e), 1e-12)
    return (
        (a.width, a.height) == (b.width, b.height)
        and a.crs == b.crs
        and all(abs(p - q) <= 1e-6 * pixel for p, q in zip(a.transform[:6], b.transform[:6]))
    )


def warp_onto(a: rasterio.io.DatasetReader, b: rasterio.io.DatasetReader) -> dict:
    """``WarpedVRT`` settings that resample ``b`` (the SAR) onto the grid of ``a`` (bilinear; NaN
    outside ``b``); refuses rasters without a CRS and rasters that do not overlap."""
    for ds in (a, b):
        if ds.crs is None:
            raise UserError(
                f"{ds.name} has no CRS, so the SAR cannot be resampled onto the optical grid; georeference it"
            )
    left, bottom, right, top = transform_bounds(b.crs, a.crs, *b.bounds, densify_pts=21)
    if left >= a.bounds.right or right <= a.bounds.left or bottom >= a.bounds.top or top <= a.bounds.bottom:
        raise UserError(
            f"the SAR image {b.name} does not overlap the cloudy image {a.name} "
            f"({describe_grid(b)} vs {describe_grid(a)}); give the SAR of the same place"
        )
    return {
        "crs": a.crs,
        "transform": a.transform,
        "width": a.width,
        "height": a.height,
        "resampling": Resampling.bilinear,
        "nodata": math.nan,
    }


def sar_bands_wanted(n: int) -> str:
    """What the ``n`` SAR bands a model takes are, for messages: VV, VH (Sentinel-1 dB), and for
    three the mean of the two, as in the SAR PNGs (see scripts/convert_sen12mscr.py)."""
    if n == 2:
        return "VV, VH in dB"
    if n == 3:
        return "VV, VH and their mean, in dB, the channels of the SAR PNGs it was trained on"
    return f"{n} Sentinel-1 band(s) in dB"


def check_dtype(ds: rasterio.io.DatasetReader, allowed: tuple[str, ...], what: str) -> None:
    dtype = ds.dtypes[0]
    if dtype not in allowed:
        raise UserError(f"{ds.name} has data type {dtype}, but {what} must be one of {', '.join(allowed)}")


def parse_nodata(text: str | None) -> float | None:
    """``--*_nodata`` text -> value: a number, 'nan', or 'none' (no nodata value)."""
    if text is None or str(text).lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"nodata value {text!r}: expected a number, 'nan' or 'none'") from None


# ---------------------------------------------------------------------------- the scene
@dataclass
class Scene:
    """The two inputs, which of their bands to read (1-based) and how to scale them."""

    cloudy: rasterio.io.DatasetReader
    sar: rasterio.io.DatasetReader
    s2_indexes: list[int]
    s1_indexes: list[int]
    s2_nodata: float | None
    s1_nodata: float | None
    sar_scaling: str = "standard"
    band_names: tuple[str, ...] = ()
    sar_warp: dict | None = None  # WarpedVRT settings when the SAR is on another grid
    warnings: list[str] = field(default_factory=list)  # inputs that may not fit the scaling
    mapping: str = "unit"  # how the model is given the scene (scene.domain: 'unit' or 'png8')

    @property
    def note(self) -> str | None:
        """What the log should say about how the inputs are read (the SAR resampled), or None."""
        if self.sar_warp is None:
            return None
        return (
            f"note: the SAR image {self.sar.name} ({describe_grid(self.sar)}) is resampled onto the grid of "
            f"{self.cloudy.name} ({describe_grid(self.cloudy)}) on the fly (bilinear)"
        )

    def open_inputs(self) -> tuple[list, list]:
        """New handles of the two inputs (the SAR warped if need be), and the handles to close."""
        cloudy = open_raster(self.cloudy.name, "cloudy")
        if isinstance(self.sar, BlankRaster):  # a model without SAR input: nothing to open
            return [cloudy, self.sar], [cloudy]
        sar = open_raster(self.sar.name, "SAR")
        if self.sar_warp is None:
            return [cloudy, sar], [cloudy, sar]
        vrt = WarpedVRT(sar, **self.sar_warp)
        return [cloudy, vrt], [cloudy, vrt, sar]

    @property
    def height(self) -> int:
        return self.cloudy.height

    @property
    def width(self) -> int:
        return self.cloudy.width

    def batch_reader(self, grid: WindowGrid, batch_size: int = 1, pin: bool = False) -> BatchReader:
        """Reader of batches; ``pin``: into page-locked memory, for fast asynchronous copies to a GPU."""
        return BatchReader(
            self.open_inputs,
            self.s2_indexes,
            self.s1_indexes,
            self.s2_nodata,
            self.s1_nodata,
            grid,
            batch_size,
            pinned if pin else None,
        )

    def close(self) -> None:  # the handles used for the checks
        self.cloudy.close()
        self.sar.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def central_values(ds: rasterio.io.DatasetReader, indexes: list[int], nodata: float | None) -> np.ndarray:
    """The valid values (finite, not ``nodata``) of the central window (at most SAMPLE^2) of ``ds``."""
    h, w = min(SAMPLE, ds.height), min(SAMPLE, ds.width)
    raw = ds.read(indexes, window=Window((ds.width - w) // 2, (ds.height - h) // 2, w, h))
    ok = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
    if nodata is not None and not math.isnan(nodata):
        ok &= raw != nodata
    return raw[ok]


def check_values(scene: Scene, what: str) -> None:
    """Refuse linear SAR (no value below 0 dB); warn about an optical image of 8-bit values (a
    picture, not digital numbers): each would give the "white output" of a mis-scaled input."""
    if not isinstance(scene.sar, BlankRaster):
        sar = central_values(scene.sar, scene.s1_indexes, scene.s1_nodata)
        if sar.size and float(sar.min()) >= 0:
            raise UserError(
                f"{scene.sar.name} holds no value below 0, so it is linear backscatter, but {what} takes dB: "
                "convert it (10 * log10) first"
            )
    optical = central_values(scene.cloudy, scene.s2_indexes, scene.s2_nodata)
    if optical.size and float(optical.max()) <= 255:
        scene.warnings.append(
            f"warning: {scene.cloudy.name} holds values up to {float(optical.max()):g} only: an 8-bit "
            f"picture, not Sentinel-2 digital numbers (reflectance x 10000) as {what} takes; its output will be dark"
        )


def open_scene(
    cloudy: str | os.PathLike,
    sar: str | os.PathLike | None,
    *,
    input_nc: int,
    sar_nc: int,
    s2_bands: str | None = None,
    cloudy_nodata: str | float | None = None,
    sar_nodata: str | float | None = None,
    sar_scaling: str = "standard",
    what: str = "the model",
) -> Scene:
    """Open and check a cloudy Sentinel-2 (DN) and a Sentinel-1 (dB) raster for a model of
    ``input_nc`` optical and ``sar_nc`` SAR bands (``sar`` None and ``sar_nc`` 0: a model without
    SAR input, which reads a :class:`~scene.arrays.BlankRaster` in its place).

    ``s2_bands`` picks the bands of a 13-band scene ('all', 'rgb', names or numbers); the nodata
    values default to the files' own ('none': no nodata value). ``what``: the model in messages.
    """
    cloudy_ds = open_raster(cloudy, "cloudy")
    try:
        sar_ds = (
            open_raster(sar, "SAR") if sar is not None else BlankRaster(cloudy_ds.height, cloudy_ds.width)
        )
        try:
            return _check_scene(
                cloudy_ds,
                sar_ds,
                cloudy,
                sar,
                input_nc,
                sar_nc,
                s2_bands,
                cloudy_nodata,
                sar_nodata,
                sar_scaling,
                what,
            )
        except BaseException:
            sar_ds.close()
            raise
    except BaseException:
        cloudy_ds.close()
        raise


def _check_scene(
    cloudy: rasterio.io.DatasetReader,
    sar: rasterio.io.DatasetReader,
    cloudy_path: str | os.PathLike,
    sar_path: str | os.PathLike,
    input_nc: int,
    sar_nc: int,
    s2_bands: str | None,
    cloudy_nodata: str | float | None,
    sar_nodata: str | float | None,
    sar_scaling: str,
    what: str,
) -> Scene:
    blank = isinstance(sar, BlankRaster)
    check_dtype(cloudy, S2_DTYPES, "Sentinel-2 digital numbers (reflectance x 10000)")
    if not blank:
        check_dtype(sar, S1_DTYPES, "Sentinel-1 backscatter in dB")
    warp = None if blank or same_grid(cloudy, sar) else warp_onto(cloudy, sar)
    n = cloudy.count
    if s2_bands and n == len(S2_BANDS):
        picked = parse_bands(str(s2_bands))
    elif n == input_nc:
        picked = tuple(range(n))
    else:
        hint = " (give --s2_bands to choose them from a 13-band scene)" if n == len(S2_BANDS) else ""
        if n == len(S2_BANDS) - 1 and input_nc == len(S2_BANDS):
            hint = (
                ": 12 bands is a Level-2A product (no B10), but it was trained on Level-1C's 13 bands; "
                "give the Level-1C product of the scene"
            )
        elif input_nc == len(S2_BANDS):
            hint = ": give all 13 bands of a Sentinel-2 Level-1C image, B1 to B12 in order"
        raise UserError(f"{cloudy_path} has {n} band(s) but {what} takes {input_nc}{hint}")
    if len(picked) != input_nc:
        raise UserError(f"--s2_bands {s2_bands} selects {len(picked)} band(s) but {what} takes {input_nc}")
    if not blank and sar.count != sar_nc:
        raise UserError(
            f"{sar_path} has {sar.count} band(s) but {what} takes {sar_nc} SAR band(s) "
            f"({sar_bands_wanted(sar_nc)})"
        )
    names = (
        tuple(S2_BANDS[i] for i in picked)
        if n == len(S2_BANDS)
        else tuple(d or f"band_{i + 1}" for i, d in enumerate(cloudy.descriptions))
    )
    scene = Scene(
        cloudy,
        sar,
        [i + 1 for i in picked],
        list(range(1, sar.count + 1)),
        parse_nodata(cloudy_nodata) if cloudy_nodata is not None else cloudy.nodata,
        sar.nodata if blank else parse_nodata(sar_nodata) if sar_nodata is not None else sar.nodata,
        str(sar_scaling or "standard"),
        names,
        warp,
    )
    check_values(scene, what)
    return scene
