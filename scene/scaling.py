"""Scaling of the raw inputs on the device, with the conventions of :mod:`data.sentinel`.

Batches travel to the device as stored (integers or dB floats; unsigned integers as the signed
type of their size, since torch has few unsigned kernels) and are scaled there, which moves fewer
bytes than float32 reflectance would.
"""

from __future__ import annotations

import math

import torch

from data.sentinel import S1_CLIP, S2_MAX
from util.errors import UserError


def as_float(raw: torch.Tensor, unsigned: bool) -> torch.Tensor:
    """Integers as stored -> float32; ``unsigned``: ``raw`` holds uint16/uint32 bits viewed as int16/int32."""
    if unsigned:
        wide, mask = (torch.int32, 0xFFFF) if raw.dtype == torch.int16 else (torch.int64, 0xFFFFFFFF)
        raw = raw.to(wide) & mask
    return raw.float()


def _missing(x: torch.Tensor, nodata: float | None, finite: bool) -> torch.Tensor | None:
    """Values that are missing (NaN/inf unless ``finite``, or the nodata value); None when none can be."""
    bad = None if finite else ~torch.isfinite(x)
    if nodata is not None and not math.isnan(nodata):
        bad = (x == nodata) if bad is None else bad | (x == nodata)
    return bad


def s2_unit(x: torch.Tensor, nodata: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``data.sentinel.s2_to_unit`` on the device (same float32 operations, same results) for
    DN (C, H, W) as float32: (reflectance in [0, 1], (H, W) True where every band is missing).

    Missing values become 0 (what a DN-0 nodata pixel of a Sentinel-2 product becomes anyway).
    """
    bad = _missing(x, nodata, finite=True)  # integers: no NaN
    unit = x.clamp(0.0, S2_MAX).div_(S2_MAX)
    return _fill(unit, bad)


def s1_unit(x: torch.Tensor, nodata: float | None, variant: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``data.sentinel.s1_to_unit`` on the device for dB (C, H, W) float32, plus the missing mask.

    Missing values become 0 (the clip floor).
    """
    if variant not in S1_CLIP:
        raise UserError(f"unknown SAR scaling {variant!r}; choose one of {', '.join(S1_CLIP)}")
    bad = _missing(x, nodata, finite=False)
    unit = torch.empty_like(x)
    for band in range(x.shape[0]):
        lo, hi = S1_CLIP[variant][min(band, 1)]
        torch.clamp(x[band], lo, hi, out=unit[band])
        unit[band].sub_(lo).div_(hi - lo)
    return _fill(unit, bad)


def _fill(unit: torch.Tensor, bad: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if bad is None:
        return unit, torch.zeros(unit.shape[1:], dtype=torch.bool, device=unit.device)
    return unit.masked_fill_(bad, 0.0), bad.all(dim=0)
