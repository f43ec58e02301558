"""Reading windows of a scene in batches, as stored (digital numbers, dB), from several threads.

Boxes running past the bottom/right border are filled by mirroring the scene (see
:mod:`scene.windows`); scaling and per-pixel nodata masks are left to the device
(:mod:`scene.scaling`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioError
from rasterio.windows import Window

from scene.windows import WindowGrid
from util.errors import UserError


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

    Each thread opens its own handles with ``open_inputs`` (GDAL datasets must not be shared
    between threads); anything with rasterio's ``read(indexes, window=, out=)`` will do. The
    windows of a batch in one strip are read as one box, whose width is bounded by the batch size.
    A window is active when one of its pixels inside the scene has data in either input; scaling
    and per-pixel nodata masks are left to the device.
    """

    def __init__(
        self,
        open_inputs: Callable[[], tuple[list, list]],
        s2_indexes: list[int],
        s1_indexes: list[int],
        s2_nodata: float | None,
        s1_nodata: float | None,
        grid: WindowGrid,
        batch_size: int = 1,
        alloc: Callable[[int, np.dtype], tuple[np.ndarray, object]] | None = None,
    ) -> None:
        self.open_inputs = open_inputs  # -> ([cloudy, sar] to read, [handles to close])
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
            datasets, handles = self.open_inputs()
            self._local.datasets = tuple(datasets)
            with self._lock:
                self._opened.extend(handles)
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


def pinned(n: int, dtype: np.dtype) -> tuple[np.ndarray, torch.Tensor]:
    """A page-locked torch buffer of n values (unsigned integers as the signed type of their size,
    which torch supports fully) and a numpy view of it in ``dtype``."""
    signed = np.dtype(dtype.str.replace("u", "i"))
    tensor = torch.empty(n, dtype=torch.from_numpy(np.empty(0, signed)).dtype, pin_memory=True)
    return tensor.numpy().view(dtype), tensor
