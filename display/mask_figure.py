"""A picture of cloud masks on Sentinel-2 triplets: natural colour, cloud-free, then each detector's mask.

One row per triplet (``s2_cloudy/<name>.tif`` and ``s2_cloudfree/<name>.tif`` of a folder, 13-band
digital numbers); the masks are drawn in red over the cloudy image's natural-colour preview.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TILE, GAP, LABEL = 200, 4, 18
RED, ALPHA = np.array([230.0, 40.0, 40.0]), 0.55


def overlay(preview: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 preview with ``(H, W)`` bool ``mask`` tinted red -> ``(H, W, 3)`` uint8."""
    out = preview.astype(np.float64)
    out[mask] = (1 - ALPHA) * out[mask] + ALPHA * RED
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def draw_masks(folder: str | os.PathLike, detectors: Sequence[str], path: str | os.PathLike) -> None:
    """Write the picture of every triplet of ``folder`` with the masks of ``detectors`` to ``path``
    (JPEG or PNG by its extension). Raises `UserError` when a detector cannot run on the data."""
    from data.sentinel import S2_BANDS, s2_preview
    from metrics.cloud_masks import MissingDependency, cloud_mask, resolve_detector
    from metrics.readers import read_reflectance
    from util.errors import UserError

    folder = Path(folder)
    names = sorted(p.name for p in (folder / "s2_cloudy").glob("*.tif"))
    titles = ["cloudy (B4 B3 B2)", "cloud-free", *detectors]
    width = GAP + len(titles) * (TILE + GAP)
    canvas = Image.new("RGB", (width, LABEL + GAP + len(names) * (TILE + GAP)), "white")
    draw = ImageDraw.Draw(canvas)
    for col, title in enumerate(titles):  # the column titles, above the first row
        draw.text((GAP + col * (TILE + GAP), 3), title, fill="black")
    for row, name in enumerate(names):
        cloudy = read_reflectance(folder / "s2_cloudy" / name).astype(np.float32)
        clear = read_reflectance(folder / "s2_cloudfree" / name).astype(np.float32)
        preview = s2_preview(cloudy)
        tiles = [preview, s2_preview(clear)]
        for detector in detectors:
            try:
                resolve_detector(detector, S2_BANDS)
            except (MissingDependency, ValueError) as err:
                raise UserError(f"cloud detector {detector} on {name}: {err}") from None
            tiles.append(overlay(preview, cloud_mask(cloudy, detector, S2_BANDS)))
        top = LABEL + row * (TILE + GAP)
        for col, tile in enumerate(tiles):
            left = GAP + col * (TILE + GAP)
            canvas.paste(Image.fromarray(tile).resize((TILE, TILE), Image.BILINEAR), (left, top))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    canvas.save(path, **({"quality": 90} if jpeg else {}))
