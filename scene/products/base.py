"""The one interface every product reader offers: bands by name, the grid, and what the values are.

A reader (stacked GeoTIFF, SAFE, STAC item) turns what a user downloaded into a :class:`Product`:
where each band lives (a file, a GDAL subdataset, a path inside a zip, a URL, and the band's
index there), the grid of the product's finest bands, and what its stored values mean (sensor,
processing level, units, the offset and gain that turn Sentinel-2 digital numbers into
SEN12MS-CR's convention). The scene (:mod:`scene.io`) picks bands by name and opens a
:class:`BandStack` per reading thread, which reads windows of them on one grid, resampling the
rasters on another grid (20/60 m bands, a SAR image in another CRS) on the fly with rasterio's
``WarpedVRT``. Each format's quirks live in its reader; nothing here knows which format it reads.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from data.sentinel import S2_BANDS
from util.errors import UserError

RESAMPLINGS = ("nearest", "bilinear", "cubic", "average")
# STAC / EO common names of the Sentinel-2 bands (rededge is shared by B5-B7: names decide there).
COMMON_NAMES = {
    "coastal": "B1",
    "blue": "B2",
    "green": "B3",
    "red": "B4",
    "nir": "B8",
    "nir08": "B8A",
    "nir09": "B9",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
}


def band_name(text: str | None) -> str | None:
    """A Sentinel band name as given by a product (``B02``, ``b8a``, ``B8A``, ``vv``, ``VH``) ->
    the canonical one (``B2``, ``B8A``, ``VV``, ``VH``); None when ``text`` names neither."""
    if not text:
        return None
    t = str(text).strip().upper().replace("_", "")
    if t in ("VV", "VH", "HH", "HV"):
        return t
    if t.startswith("B") and t[1:].isdigit():
        t = f"B{int(t[1:])}"
    elif t in ("B8A", "B08A"):
        t = "B8A"
    return t if t in S2_BANDS else None


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform and size."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, ds: rasterio.io.DatasetReader) -> Grid:
        return cls(ds.crs, ds.transform, ds.width, ds.height)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid's CRS."""
        t = self.transform
        xs = (t.c, t.c + t.a * self.width)
        ys = (t.f, t.f + t.e * self.height)
        return min(xs), min(ys), max(xs), max(ys)

    @property
    def resolution(self) -> float:
        return abs(self.transform.a)

    def describe(self) -> str:
        t, crs = self.transform, self.crs.to_string() if self.crs else "no CRS"
        return (
            f"{self.width}x{self.height} px, {crs}, origin ({t.c:.3f}, {t.f:.3f}), pixel ({t.a:g}, {t.e:g})"
        )

    def same(self, other: Grid) -> bool:
        """Whether the two grids are pixel-aligned (same size, CRS and transform)."""
        pixel = max(abs(self.transform.a), abs(self.transform.e), 1e-12)
        return (
            (self.width, self.height) == (other.width, other.height)
            and self.crs == other.crs
            and all(abs(p - q) <= 1e-6 * pixel for p, q in zip(self.transform[:6], other.transform[:6]))
        )

    def overlaps(self, other: Grid) -> bool:
        """Whether ``other`` covers some of this grid (both need a CRS)."""
        left, bottom, right, top = transform_bounds(other.crs, self.crs, *other.bounds, densify_pts=21)
        l2, b2, r2, t2 = self.bounds
        return left < r2 and right > l2 and bottom < t2 and top > b2


@dataclass(frozen=True)
class Band:
    """One band of a product and where GDAL reads it."""

    name: str  # canonical name: B1..B12, B8A, VV, VH
    path: str  # what rasterio.open takes: a file, a GDAL subdataset, a /vsizip/ path, a URL
    index: int  # 1-based band of that raster
    grid: Grid  # that raster's own grid
    dtype: str
    nodata: float | None = None
    offset: float = 0.0  # added to the stored value (the 2022 processing-baseline offset, -1000)
    gain: float = 1.0  # then multiplied (10000 / the product's quantification value)


@dataclass(frozen=True)
class Filled:
    """A band the product lacks, read as a constant stored value where the product has data."""

    name: str
    value: float


@dataclass
class Product:
    """One input as delivered (a Sentinel-2 or a Sentinel-1 product), behind the one interface.

    ``bands`` maps canonical band names to where they are, in the product's own order; ``grid``
    is the grid of its finest bands, where every band is read. ``level`` (Sentinel-2: 'L1C' or
    'L2A') and ``quantity`` (Sentinel-1: 'sigma0' or 'gamma0') are None when the product does not
    say. ``units``: 'dn' for Sentinel-2 (digital numbers; each band's offset and gain turn them into
    reflectance x 10000), 'dB' or 'linear' (power) for Sentinel-1. ``notes``: what the log should say.
    """

    path: str
    role: str  # "cloudy" or "SAR": the option that named it, for messages
    format: str  # "GeoTIFF", "SAFE", "STAC item"
    sensor: str  # "S2" or "S1"
    grid: Grid
    bands: dict[str, Band]
    level: str | None = None
    baseline: str | None = None  # Sentinel-2 processing baseline, e.g. "04.00"
    units: str = "dn"
    quantity: str | None = None
    positional: bool = False  # band names are positions (a plain stack), not read from the product
    notes: list[str] = field(default_factory=list)
    properties: dict = field(default_factory=dict)  # what the output's STAC item repeats (datetime, ids)

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(self.bands)

    def describe(self) -> str:
        what = {"S2": "Sentinel-2", "S1": "Sentinel-1"}[self.sensor]
        level = f" {self.level}" if self.level else ""
        return f"{self.format} {self.path} ({what}{level}, {', '.join(self.bands)})"

    def select(self, names: Sequence[str], fills: dict[str, float] | None = None) -> list[Band | Filled]:
        """The bands ``names`` in that order (``fills``: stored values of bands it may lack)."""
        fills, picked, missing = fills or {}, [], []
        for name in names:
            if name in self.bands:
                picked.append(self.bands[name])
            elif name in fills:
                picked.append(Filled(name, fills[name]))
            else:
                missing.append(name)
        if missing:
            raise UserError(
                f"the {self.role} input {self.path} lacks band(s) {', '.join(missing)} that the model takes "
                f"(it has {', '.join(self.bands) or 'none'})"
            )
        return picked


def open_dataset(path: str, role: str) -> rasterio.io.DatasetReader:
    """rasterio.open with a one-line error naming the input."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except (RasterioError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot read {role} image {path}: {first}") from None


def check_overlap(target: Grid, band: Band, role: str) -> None:
    """Refuse a band that cannot be resampled onto ``target`` (no CRS) or does not cover it."""
    for grid, what in ((target, "the optical grid"), (band.grid, band.path)):
        if grid.crs is None:
            raise UserError(
                f"{what} has no CRS, so the {role} input cannot be resampled onto the optical grid; "
                "georeference it"
            )
    if not target.overlaps(band.grid):
        raise UserError(
            f"the {role} input {band.path} ({band.grid.describe()}) does not overlap the optical grid "
            f"({target.describe()}); give the {role} input of the same place"
        )


class BandStack:
    """Bands of one or more rasters read as one raster on ``grid``: the part of rasterio's reader
    that :class:`scene.reader.BatchReader` uses (``read(indexes, window=, out=)``, ``dtypes``,
    ``width``, ``height``, ``name``, ``close``).

    Consecutive bands of one raster are read in one call (a stacked GeoTIFF: one read, as a plain
    rasterio dataset); a raster on another grid is read through a ``WarpedVRT`` onto ``grid`` with
    ``resampling`` (pixels outside it read as its nodata value, NaN for floats, 0 for integers). A
    :class:`Filled` band reads as its value, and as nodata where every real band is nodata.
    Opened per reading thread (GDAL handles must not be shared between threads).
    """

    def __init__(
        self,
        slots: Sequence[Band | Filled],
        grid: Grid,
        resampling: str,
        name: str,
        nodata: float | None,
        dtype: str,
    ) -> None:
        self.name, self.width, self.height, self.count = name, grid.width, grid.height, len(slots)
        self.dtypes = (dtype,) * self.count
        self.nodata = nodata
        self._handles: list = []
        self._runs: list[tuple[int, int, object, list[int]]] = []  # (first slot, end, dataset, indexes)
        self._fills = [(i, s.value) for i, s in enumerate(slots) if isinstance(s, Filled)]
        self._slots = list(slots)
        opened: dict[str, object] = {}
        try:
            for i, slot in enumerate(slots):
                if isinstance(slot, Filled):
                    continue
                if slot.path not in opened:
                    ds = open_dataset(slot.path, name)
                    self._handles.append(ds)
                    if not slot.grid.same(grid):
                        ds = WarpedVRT(ds, **warp_settings(grid, resampling, slot))
                        self._handles.append(ds)
                    opened[slot.path] = ds
                ds = opened[slot.path]
                last = self._runs[-1] if self._runs else None
                if last is not None and last[2] is ds and last[1] == i:
                    self._runs[-1] = (last[0], i + 1, ds, [*last[3], slot.index])
                else:
                    self._runs.append((i, i + 1, ds, [slot.index]))
        except BaseException:
            self.close()
            raise
        self._real = [i for i, s in enumerate(slots) if not isinstance(s, Filled)]

    def read(self, indexes: list[int], window: Window, out: np.ndarray | None = None) -> np.ndarray:
        """Bands ``indexes`` (1-based, of the stack) of ``window`` as a (len(indexes), h, w) array."""
        h, w = int(window.height), int(window.width)
        if out is None:
            out = np.empty((len(indexes), h, w), np.dtype(self.dtypes[0]))
        if list(indexes) != list(range(1, self.count + 1)):
            for pos, index in enumerate(indexes):
                self._read_slots(index - 1, index, window, out[pos : pos + 1])
            return out
        self._read_slots(0, self.count, window, out)
        return out

    def _read_slots(self, first: int, end: int, window: Window, out: np.ndarray) -> None:
        for start, stop, ds, idx in self._runs:
            lo, hi = max(start, first), min(stop, end)
            if lo < hi:
                ds.read(idx[lo - start : hi - start], window=window, out=out[lo - first : hi - first])
        for slot, value in self._fills:
            if first <= slot < end:
                target = out[slot - first]
                target[...] = value
                if self.nodata is not None and self._real:
                    target[self._missing(first, end, window, out)] = self.nodata

    def _missing(self, first: int, end: int, window: Window, out: np.ndarray) -> np.ndarray:
        """(h, w) True where every real band is nodata (outside the swath)."""
        missing = None
        for slot in self._real:
            if first <= slot < end:
                band = out[slot - first]
            else:
                band = np.empty((1, *out.shape[1:]), out.dtype)
                self._read_slots(slot, slot + 1, window, band)
                band = band[0]
            missing = band == self.nodata if missing is None else missing & (band == self.nodata)
        return missing

    def close(self) -> None:
        for ds in reversed(self._handles):
            ds.close()
        self._handles.clear()


def warp_settings(grid: Grid, resampling: str, band: Band) -> dict:
    """``WarpedVRT`` settings that resample ``band``'s raster onto ``grid``."""
    float_data = np.dtype(band.dtype).kind == "f"
    nodata = band.nodata if band.nodata is not None else (math.nan if float_data else 0)
    return {
        "crs": grid.crs,
        "transform": grid.transform,
        "width": grid.width,
        "height": grid.height,
        "resampling": Resampling[resampling],
        "nodata": nodata,
    }


def common(values: Sequence, what: str, product: str):
    """The one value all bands share, or a one-line error."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1:
        raise UserError(f"the bands of {product} differ in {what} ({', '.join(map(str, distinct))})")
    return distinct[0] if distinct else None
