"""Sentinel-1 / Sentinel-2 conventions shared by the SEN12MS-CR reader, the converter and predict.py.

Field-standard preprocessing: S2 reflectance clipped to [0, 10000] and divided by
10000; S1 backscatter clipped to [-25, 0] dB and mapped to [0, 1] by (x + 25) / 25 (the DSen2-CR
variant clips VH to [-32.5, 0] instead). Models see [0, 1] mapped to [-1, 1].
"""

from __future__ import annotations

import numpy as np

from util.errors import UserError
from util.util import unit_to_u8

S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
S1_BANDS = ("VV", "VH")
S2_RGB = (3, 2, 1)  # B4, B3, B2 among the 13 bands
S2_MAX = 10000.0
S2_PREVIEW_MAX = 0.3  # reflectance shown as white in natural-colour previews (3000 / 10000)
S1_CLIP = {"standard": ((-25.0, 0.0), (-25.0, 0.0)), "dsen2cr": ((-25.0, 0.0), (-32.5, 0.0))}


def parse_bands(spec: str, names: tuple[str, ...] = S2_BANDS) -> tuple[int, ...]:
    """``'all'``, ``'rgb'`` or a comma list of band names / 1-based numbers -> 0-based indices."""
    text = spec.strip().lower()
    if text == "all":
        return tuple(range(len(names)))
    if text == "rgb":
        return S2_RGB
    lookup = {n.lower(): i for i, n in enumerate(names)}
    out = []
    for part in text.split(","):
        part = part.strip()
        if part in lookup:
            out.append(lookup[part])
        elif part.isdigit() and 1 <= int(part) <= len(names):
            out.append(int(part) - 1)
        else:
            raise UserError(
                f"band {part!r} in {spec!r} is unknown; use 'all', 'rgb', names "
                f"({', '.join(names)}) or numbers 1-{len(names)}"
            )
    if len(set(out)) != len(out):
        raise UserError(f"band list {spec!r} names a band twice")
    return tuple(out)


def s2_to_unit(dn: np.ndarray) -> np.ndarray:
    """S2 digital numbers (C, H, W) -> reflectance in [0, 1] (float32); NaN stays NaN."""
    return (np.clip(dn.astype(np.float32), 0.0, S2_MAX) / S2_MAX).astype(np.float32)


def s1_to_unit(db: np.ndarray, variant: str = "standard") -> np.ndarray:
    """S1 backscatter in dB (2, H, W: VV, VH) -> [0, 1] (float32), per-band clip of ``variant``."""
    if variant not in S1_CLIP:
        raise UserError(f"unknown SAR scaling {variant!r}; choose one of {', '.join(S1_CLIP)}")
    out = np.empty(db.shape, dtype=np.float32)
    for band in range(db.shape[0]):
        lo, hi = S1_CLIP[variant][min(band, 1)]
        out[band] = (np.clip(db[band].astype(np.float32), lo, hi) - lo) / (hi - lo)
    return out


def s2_preview(unit: np.ndarray, rgb: tuple[int, int, int] = S2_RGB) -> np.ndarray:
    """Natural-colour preview: reflectance (C, H, W) -> (H, W, 3) uint8, [0, 0.3] stretched to 0..255."""
    rgb_img = np.stack([unit[i] for i in rgb], axis=-1) / S2_PREVIEW_MAX
    return unit_to_u8(rgb_img)


def s1_preview(unit: np.ndarray) -> np.ndarray:
    """False-colour SAR preview: [0, 1] (2, H, W) -> (H, W, 3) uint8 as VV, VH, mean(VV, VH)."""
    vv, vh = unit[0], unit[1] if unit.shape[0] > 1 else unit[0]
    img = np.stack([vv, vh, (vv + vh) / 2.0], axis=-1)
    return unit_to_u8(img)
