"""uint8 image helpers of the display: RGB normalisation and image grids (visdom panel, TensorBoard)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as a (H, W, 3) uint8 array (accepts (H, W), (H, W, 1) and (H, W, 4))."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"visuals must be uint8 arrays, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"visuals must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def make_image_grid(
    images: Sequence[np.ndarray], ncols: int, padding: int = 2, fill: int = 255
) -> np.ndarray:
    """Tile (H, W, 3) uint8 images row by row into one (H', W', 3) uint8 grid.

    Cells are as large as the largest image; smaller images sit top-left in
    their cell. ``ncols <= 0`` puts all images on one row.
    """
    if not images:
        raise ValueError("no images to tile")
    ims = [to_rgb_uint8(im) for im in images]
    ncols = len(ims) if ncols <= 0 else min(ncols, len(ims))
    nrows = -(-len(ims) // ncols)
    ch = max(im.shape[0] for im in ims) + padding
    cw = max(im.shape[1] for im in ims) + padding
    grid = np.full((nrows * ch + padding, ncols * cw + padding, 3), fill, dtype=np.uint8)
    for k, im in enumerate(ims):
        y = padding + (k // ncols) * ch
        x = padding + (k % ncols) * cw
        grid[y : y + im.shape[0], x : x + im.shape[1]] = im
    return grid
