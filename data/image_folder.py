"""Listing and reading image files, with clear errors for everything a real dataset holds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from util.errors import UserError

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")


def is_image_file(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def list_images(folder: str | os.PathLike, max_size: float = float("inf")) -> list[Path]:
    """Image files directly in ``folder`` (hidden and non-image files ignored), sorted by name; an
    empty (0-byte) image is refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p.name))
    if not files:
        raise UserError(f"image folder {folder} holds no images ({', '.join(IMG_EXTENSIONS)})")
    files = files[: int(min(max_size, len(files)))]
    # Found here, at start-up, rather than when a run reaches the file (the sizes are at hand).
    empty = [p for p in files if p.stat().st_size == 0]
    if empty:
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise UserError(f"image {empty[0]} is empty (0 bytes){more}; replace or remove it")
    return files


def _to_8bit(img: Image.Image) -> Image.Image:
    """High-bit-depth greyscale (``I;16``, ``I``, ``F``) scaled to 8 bits by its type's range."""
    arr = np.asarray(img)
    if img.mode.startswith("I;16") or (img.mode == "I" and arr.max(initial=0) > 255):
        arr = np.rint(arr.astype(np.float64) / 257.0)
    elif img.mode == "F":
        arr = np.rint(np.clip(arr, 0.0, 1.0) * 255.0) if arr.max(initial=0) <= 1.0 else arr
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")


def load_image(path: str | os.PathLike, channels: int = 3) -> Image.Image:
    """Read ``path`` as an 8-bit PIL image with ``channels`` bands (1 -> 'L', 3 -> 'RGB').

    Palette, grey, grey+alpha, RGBA and 16-bit images are converted (alpha is dropped); an
    unreadable, truncated or empty file raises :class:`UserError` naming it.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UserError(f"image {path} is empty (0 bytes); replace or remove it")
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                img = _to_8bit(img)
            if img.mode == "P":
                img = img.convert("RGBA")
            img = img.convert("RGB" if channels == 3 else "L")
    except UserError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(
            f"cannot read image {path} ({type(err).__name__}: {err}); replace or remove it"
        ) from None
    if channels not in (1, 3):
        raise UserError(
            f"{path}: a PNG dataset gives 1 or 3 bands, but {channels} were asked for "
            "(--input_nc/--output_nc/--sar_nc); use a GeoTIFF dataset for other band counts"
        )
    return img
