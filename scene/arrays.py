"""Arrays in memory as the rasters of a scene run, so that arrays and GeoTIFFs go through one pipeline.

:class:`ArrayRaster` offers the part of rasterio's reader that :class:`scene.reader.BatchReader`
uses, :class:`ArrayWriter` the part of rasterio's writer that :func:`scene.pipeline.predict_scene`
uses; the windows, the scaling and the cross-fading are those of a GeoTIFF run, so the numbers are too.
"""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window


class ArrayRaster:
    """A (C, H, W) array read like a rasterio dataset (1-based band indexes, windows)."""

    def __init__(self, data: np.ndarray, name: str) -> None:
        self.data, self.name = data, name
        self.count, self.height, self.width = data.shape
        self.dtypes = (str(data.dtype),) * self.count

    def read(self, indexes: list[int], window: Window, out: np.ndarray | None = None) -> np.ndarray:
        r0, c0 = int(window.row_off), int(window.col_off)
        rows, cols = slice(r0, r0 + int(window.height)), slice(c0, c0 + int(window.width))
        part = self.data[[i - 1 for i in indexes], rows, cols]
        if out is None:
            return part
        out[...] = part
        return out

    def close(self) -> None:
        """Nothing to release (the interface of a dataset)."""


class ArrayWriter:
    """A (C, H, W) float32 array written like a rasterio dataset (windows)."""

    def __init__(self, count: int, height: int, width: int) -> None:
        self.data = np.full((count, height, width), np.nan, np.float32)

    def write(self, data: np.ndarray, window: Window) -> None:
        r0, c0 = int(window.row_off), int(window.col_off)
        self.data[:, r0 : r0 + data.shape[1], c0 : c0 + data.shape[2]] = data


class BlankRaster:
    """The SAR input of a model that takes none: one band of zeros the size of the scene, whose
    zeros are its nodata value (so a pixel's validity follows the cloudy image alone). Nothing is
    stored; every read makes its zeros."""

    count, dtypes, nodata = 1, ("float32",), 0.0

    def __init__(self, height: int, width: int, name: str = "no SAR image") -> None:
        self.height, self.width, self.name = height, width, name

    def read(self, indexes: list[int], window: Window, out: np.ndarray | None = None) -> np.ndarray:
        shape = (len(indexes), int(window.height), int(window.width))
        if out is None:
            return np.zeros(shape, np.float32)
        out[...] = 0
        return out

    def close(self) -> None:
        """Nothing to release (the interface of a dataset)."""
