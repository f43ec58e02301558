"""Reading a scene: the two input rasters, their checks, and batches of windows read from them.

Windows of the grid (:mod:`scene.windows`) are read in batches (:class:`BatchReader`), as stored
(digital numbers, dB): the scaling and the per-pixel nodata masks are applied on the device
(:mod:`scene.scaling`). Boxes running past the bottom/right border are filled by mirroring the
scene, as :mod:`scene.windows` describes.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioError
from rasterio.windows import Window

from data.sentinel import S2_BANDS, parse_bands
from scene.windows import WindowGrid
from util.errors import UserError

S2_DTYPES = ("uint16", "int16", "uint32", "int32")  # digital numbers, reflectance x 10000
S1_DTYPES = ("float32", "float64")  # backscatter in dB


# ---------------------------------------------------------------------------- inputs
def open_raster(path: str | os.PathLike, role: str) -> rasterio.io.DatasetReader:
    """Open a GeoTIFF (or any GDAL raster) for reading, with a one-line error if it cannot be."""
    if not Path(path).is_file():
        raise UserError(f"{role} image {path} does not exist")
    try:
        return rasterio.open(path)
    except (RasterioError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot read {role} image {path}: {first}") from None


def describe_grid(ds: rasterio.io.DatasetReader) -> str:
    t = ds.transform
    crs = ds.crs.to_string() if ds.crs else "no CRS"
    return f"{ds.width}x{ds.height} px, {crs}, origin ({t.c:.3f}, {t.f:.3f}), pixel ({t.a:g}, {t.e:g})"


def check_same_grid(a: rasterio.io.DatasetReader, b: rasterio.io.DatasetReader) -> None:
    """Refuse inputs that are not pixel-aligned on one grid (same size, CRS and transform)."""
    pixel = max(abs(a.transform.a), abs(a.transform.e), 1e-12)
    same = (
        (a.width, a.height) == (b.width, b.height)
        and a.crs == b.crs
        and all(abs(p - q) <= 1e-6 * pixel for p, q in zip(a.transform[:6], b.transform[:6]))
    )
    if not same:
        raise UserError(
            f"the cloudy and the SAR image are not on the same grid ({a.name}: {describe_grid(a)}; "
            f"{b.name}: {describe_grid(b)}); resample the SAR onto the optical grid first, e.g. "
            f"gdalwarp -t_srs <optical CRS> -te <optical bounds> -ts {a.width} {a.height} -r bilinear SAR.tif SAR_on_S2.tif"
        )


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


def any_data(raw: np.ndarray, nodata: float | None) -> bool:
    """Whether some pixel of ``raw`` (C, H, W) has a band with a value (finite, not the nodata value).

    Cheap: it looks band by band and stops at the first band with data.
    """
    if raw.dtype.kind != "f" and (nodata is None or math.isnan(nodata)):
        return raw.size > 0
    for band in raw:
        ok = np.isfinite(band) if band.dtype.kind == "f" else np.ones(band.shape, bool)
        if nodata is not None and not math.isnan(nodata):
            ok &= band != nodata
        if ok.any():
            return True
    return False


def read_box(
    ds: rasterio.io.DatasetReader,
    indexes: list[int],
    row: int,
    col: int,
    height: int,
    width: int,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, int, int]:
    """Bands ``indexes`` (1-based) of the box at (row, col) of size (height, width), into ``out`` if given.

    The part outside the scene (bottom/right only) is the scene mirrored at its last row/column
    (as ``np.pad(scene, mode='reflect')``), whatever the box, so that a window's content does not
    depend on how windows are grouped into reads. Returns the (C, height, width) array and the
    number of rows and columns inside the scene.
    """
    rows, cols = _reflect(row, height, ds.height), _reflect(col, width, ds.width)
    r0, c0 = int(rows.min()), int(cols.min())
    inside = rows[-1] - rows[0] == height - 1 and cols[-1] - cols[0] == width - 1
    try:
        raw = ds.read(
            indexes,
            window=Window(c0, r0, int(cols.max()) + 1 - c0, int(rows.max()) + 1 - r0),
            out=out if inside else None,
        )
    except (RasterioError, OSError) as err:
        raise UserError(f"reading {ds.name} failed in rows {r0}-{rows.max()}: {err}") from None
    if not inside:
        raw = raw[:, rows - r0][:, :, cols - c0]
        if out is not None:
            out[...] = raw
            raw = out
    return raw, min(height, ds.height - row), min(width, ds.width - col)


def _reflect(start: int, count: int, size: int) -> np.ndarray:
    """Source indices of positions ``start .. start+count-1`` of an axis of ``size`` mirrored past its end."""
    idx = np.arange(start, start + count)
    if size == 1:
        return np.zeros_like(idx)
    period = 2 * (size - 1)
    idx %= period
    return np.where(idx >= size, period - idx, idx)


@dataclass
class Box:
    """Raw inputs of consecutive windows of one strip, read as one box ``(bands, window, width)``."""

    k: int  # strip
    x0: int  # scene column of the box's first column
    cloudy: np.ndarray  # digital numbers as stored
    sar: np.ndarray  # dB as stored
    inside: tuple[int, int]  # rows and columns of the box inside the scene (the rest is mirrored)
    owners: tuple = ()  # what holds the memory of cloudy and sar (see BatchReader's alloc)


@dataclass
class Batch:
    """Windows ``(k, j)`` in raster order, whether each has any data (``active``), and their boxes."""

    windows: list[tuple[int, int]]
    active: list[bool]
    boxes: list[Box]  # one per strip the batch touches, in order


class BatchReader:
    """Reads batches of windows as they are stored; safe to call from several threads at once.

    Each thread opens its own handles (GDAL datasets must not be shared between threads). The
    windows of a batch in one strip are read as one box, whose width is bounded by the batch size.
    A window is active when one of its pixels inside the scene has data in either input; scaling
    and per-pixel nodata masks are left to the device.
    """

    def __init__(
        self,
        cloudy: str,
        sar: str,
        s2_indexes: list[int],
        s1_indexes: list[int],
        s2_nodata: float | None,
        s1_nodata: float | None,
        grid: WindowGrid,
        batch_size: int = 1,
        alloc: Callable[[int, np.dtype], tuple[np.ndarray, object]] | None = None,
    ) -> None:
        self.paths = (cloudy, sar)
        self.indexes = (s2_indexes, s1_indexes)
        self.nodata = (s2_nodata, s1_nodata)
        self.grid = grid
        # Every box is allocated at the size of the widest one, so that allocators reuse the
        # same blocks whatever the scene; ``alloc(n, dtype) -> (flat array, owner)``.
        self.max_width = grid.window + (batch_size - 1) * grid.stride
        self.alloc = alloc or (lambda n, dtype: (np.empty(n, dtype), None))
        self._local, self._opened, self._lock = threading.local(), [], threading.Lock()

    def _datasets(self) -> tuple[rasterio.io.DatasetReader, rasterio.io.DatasetReader]:
        if not hasattr(self._local, "datasets"):
            self._local.datasets = tuple(open_raster(p, r) for p, r in zip(self.paths, ("cloudy", "SAR")))
            with self._lock:
                self._opened.extend(self._local.datasets)
        return self._local.datasets

    def close(self) -> None:
        with self._lock:
            for ds in self._opened:
                ds.close()
            self._opened.clear()

    def read(self, windows: list[tuple[int, int]]) -> Batch:
        g, w = self.grid, self.grid.window
        cloudy_ds, sar_ds = self._datasets()
        active, boxes = [], []
        for k in sorted({k for k, _ in windows}):
            js = [j for kk, j in windows if kk == k]
            y, x0 = g.rows[k], g.cols[js[0]]
            width = g.cols[js[-1]] + w - x0
            (cloudy, owner_a), (sar, owner_c) = (
                self._buffer(ds, idx, width)
                for ds, idx in ((cloudy_ds, self.indexes[0]), (sar_ds, self.indexes[1]))
            )
            cloudy, rows, cols = read_box(cloudy_ds, self.indexes[0], y, x0, w, width, out=cloudy)
            sar = read_box(sar_ds, self.indexes[1], y, x0, w, width, out=sar)[0]
            boxes.append(Box(k, x0, cloudy, sar, (rows, cols), (owner_a, owner_c)))
            for j in js:
                off = g.cols[j] - x0
                part = (slice(None), slice(0, rows), slice(off, min(off + w, cols)))
                active.append(any_data(cloudy[part], self.nodata[0]) or any_data(sar[part], self.nodata[1]))
        return Batch(windows, active, boxes)

    def _buffer(
        self, ds: rasterio.io.DatasetReader, indexes: list[int], width: int
    ) -> tuple[np.ndarray, object]:
        shape = (len(indexes), self.grid.window, width)
        flat, owner = self.alloc(
            len(indexes) * self.grid.window * max(width, self.max_width), np.dtype(ds.dtypes[0])
        )
        return flat[: math.prod(shape)].reshape(shape), owner


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

    @property
    def height(self) -> int:
        return self.cloudy.height

    @property
    def width(self) -> int:
        return self.cloudy.width

    def batch_reader(self, grid: WindowGrid, batch_size: int = 1, pin: bool = False) -> BatchReader:
        """Reader of batches; ``pin``: into page-locked memory, for fast asynchronous copies to a GPU."""
        return BatchReader(
            self.cloudy.name,
            self.sar.name,
            self.s2_indexes,
            self.s1_indexes,
            self.s2_nodata,
            self.s1_nodata,
            grid,
            batch_size,
            pinned if pin else None,
        )

    def close(self) -> None:
        self.cloudy.close()
        self.sar.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pinned(n: int, dtype: np.dtype) -> tuple[np.ndarray, torch.Tensor]:
    """A page-locked torch buffer of n values (unsigned integers as the signed type of their size,
    which torch supports fully) and a numpy view of it in ``dtype``."""
    signed = np.dtype(dtype.str.replace("u", "i"))
    tensor = torch.empty(n, dtype=torch.from_numpy(np.empty(0, signed)).dtype, pin_memory=True)
    return tensor.numpy().view(dtype), tensor


def open_scene(
    cloudy: str | os.PathLike,
    sar: str | os.PathLike,
    *,
    input_nc: int,
    sar_nc: int,
    s2_bands: str | None = None,
    cloudy_nodata: str | float | None = None,
    sar_nodata: str | float | None = None,
    sar_scaling: str = "standard",
) -> Scene:
    """Open and check a cloudy Sentinel-2 (DN) and a Sentinel-1 (dB) raster for a model of
    ``input_nc`` optical and ``sar_nc`` SAR bands.

    ``s2_bands`` picks the bands of a 13-band scene ('all', 'rgb', names or numbers); the nodata
    values default to the files' own ('none': no nodata value).
    """
    cloudy_ds = open_raster(cloudy, "cloudy")
    try:
        sar_ds = open_raster(sar, "SAR")
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
) -> Scene:
    check_dtype(cloudy, S2_DTYPES, "Sentinel-2 digital numbers (reflectance x 10000)")
    check_dtype(sar, S1_DTYPES, "Sentinel-1 backscatter in dB")
    check_same_grid(cloudy, sar)
    n = cloudy.count
    if s2_bands and n == len(S2_BANDS):
        picked = parse_bands(str(s2_bands))
    elif n == input_nc:
        picked = tuple(range(n))
    else:
        hint = " (give --s2_bands to choose them from a 13-band scene)" if n == len(S2_BANDS) else ""
        raise UserError(f"{cloudy_path} has {n} band(s) but the model takes {input_nc}{hint}")
    if len(picked) != input_nc:
        raise UserError(f"--s2_bands {s2_bands} selects {len(picked)} band(s) but the model takes {input_nc}")
    if sar.count != sar_nc:
        raise UserError(f"{sar_path} has {sar.count} band(s) but the model takes {sar_nc} SAR band(s)")
    names = (
        tuple(S2_BANDS[i] for i in picked)
        if n == len(S2_BANDS)
        else tuple(d or f"band_{i + 1}" for i, d in enumerate(cloudy.descriptions))
    )
    return Scene(
        cloudy,
        sar,
        [i + 1 for i in picked],
        list(range(1, sar.count + 1)),
        parse_nodata(cloudy_nodata) if cloudy_nodata is not None else cloudy.nodata,
        parse_nodata(sar_nodata) if sar_nodata is not None else sar.nodata,
        str(sar_scaling or "standard"),
        names,
    )
