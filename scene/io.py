"""Whole-scene GeoTIFF I/O for ``predict.py``: inputs, the window grid, blending, streaming output.

The scene is covered by square windows of side ``window`` placed every ``stride = window -
overlap`` pixels from the top-left corner; the last row/column of windows may run past the
bottom/right border, and that part is filled by reflecting the scene (so every window the
network sees is full-size, and all seams are alike). Each window's prediction is weighted by a
separable profile that is 1 in the middle and rises as sin^2 over the overlap on every side that
has a neighbour (sides on the scene border stay at 1); in the overlap the rising and the falling
ramps sum to exactly 1, so the blend is a smooth cross-fade, and the accumulated weights are
divided out in any case.

Windows are processed in raster order, strip by strip, and read in batches (:class:`BatchReader`);
``util/scene_predict.py`` blends them on the device and writes each strip's first ``stride`` rows as soon as
no later window touches them, carrying only the last ``overlap`` rows to the next strip, so memory
does not grow with the scene height.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

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


# ---------------------------------------------------------------------------- window grid
@dataclass(frozen=True)
class WindowGrid:
    """Windows of side ``window`` every ``window - overlap`` pixels over a ``height x width`` scene."""

    height: int
    width: int
    window: int
    overlap: int

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.window:
            raise UserError(
                f"--overlap {self.overlap} must be at least 0 and less than --window {self.window}"
            )

    @property
    def stride(self) -> int:
        return self.window - self.overlap

    def origins(self, length: int) -> list[int]:
        count = 1 if length <= self.window else math.ceil((length - self.window) / self.stride) + 1
        return [i * self.stride for i in range(count)]

    @cached_property
    def rows(self) -> list[int]:
        """Top rows of the strips of windows."""
        return self.origins(self.height)

    @cached_property
    def cols(self) -> list[int]:
        """Left columns of the windows in a strip."""
        return self.origins(self.width)

    @property
    def padded_width(self) -> int:
        return self.cols[-1] + self.window

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def windows(self) -> list[tuple[int, int]]:
        """(strip k, column j) of every window, in raster order."""
        return [(k, j) for k in range(len(self.rows)) for j in range(len(self.cols))]

    def final_rows(self, k: int) -> int:
        """Rows of strip ``k`` (from its top) that no later strip touches."""
        return self.stride if k < len(self.rows) - 1 else self.height - self.rows[k]

    def ramp(self, index: int, count: int) -> np.ndarray:
        """1-D blend weight (window,) of window ``index`` of ``count`` along one axis (all > 0)."""
        weight = np.ones(self.window, np.float64)
        r = self.overlap
        if r:
            up = np.sin(0.5 * np.pi * (np.arange(r) + 0.5) / r) ** 2  # up[i] + up[r-1-i] == 1
            if index > 0:
                weight[:r] *= up
            if index < count - 1:
                weight[-r:] *= up[::-1]
        return weight.astype(np.float32)


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


# ---------------------------------------------------------------------------- output
def output_profile(
    src: rasterio.io.DatasetReader, count: int, nodata: float, compress: str, stride: int
) -> dict:
    """Float32 GeoTIFF profile on the grid of ``src``.

    Tiles are 256 wide and as tall as the largest power of two (16..256) dividing the stride, so
    the rows finished by each strip fill whole tiles (no tile is written twice).
    """
    block_h = next((b for b in (256, 128, 64, 32, 16) if stride % b == 0), 16)
    profile = {
        "driver": "GTiff",
        "width": src.width,
        "height": src.height,
        "count": count,
        "dtype": "float32",
        "crs": src.crs,
        "transform": src.transform,
        "nodata": nodata,
        # Band-interleaved: writes need no reordering of the (bands, rows, cols) arrays.
        "tiled": True,
        "blockxsize": 256,
        "blockysize": block_h,
        "interleave": "band",
        "BIGTIFF": "IF_SAFER",
    }
    if compress != "none":
        # Float reflectance compresses little (10-25%) at any level: take the fastest, on all cores.
        profile.update(compress=compress, predictor=3, zlevel=1, zstd_level=1, num_threads="ALL_CPUS")
    return profile


class AtomicOutput:
    """Write ``path`` through a temporary file beside it; rename on success, remove on failure.

    An existing file at ``path`` is replaced only by a complete new one.
    """

    def __init__(self, path: str | os.PathLike, profile: dict) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.tif")
        self.profile = profile
        self.dataset = None

    def __enter__(self) -> rasterio.io.DatasetWriter:
        try:
            self.dataset = rasterio.open(self.tmp, "w", **self.profile)
        except (RasterioError, OSError) as err:
            self.tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write {self.tmp}: {err}; choose a writable --out folder") from None
        return self.dataset

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.dataset.close()
        except (RasterioError, OSError) as err:
            if exc_type is None:
                self.tmp.unlink(missing_ok=True)
                raise UserError(f"writing {self.path} failed: {err}") from None
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
