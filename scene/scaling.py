"""Scaling of the raw inputs on the device, with the conventions of :mod:`data.sentinel`.

Batches travel to the device as stored (integers or dB floats; unsigned integers as the signed
type of their size, since torch has few unsigned kernels) and are scaled there, which moves fewer
bytes than float32 reflectance would. What the products' readers found out about the stored values
(:class:`InputScaling`: a Sentinel-2 offset and gain per band, Sentinel-1 in dB or linear power) is
applied there too, so a 2024 product and a SEN12MS-CR patch reach the network in the same units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from data.sentinel import S1_CLIP, S2_MAX
from util.errors import UserError


def as_float(raw: torch.Tensor, unsigned: bool) -> torch.Tensor:
    """Integers as stored -> float32; ``unsigned``: ``raw`` holds uint16/uint32 bits viewed as int16/int32."""
    if unsigned:
        wide, mask = (torch.int32, 0xFFFF) if raw.dtype == torch.int16 else (torch.int64, 0xFFFFFFFF)
        raw = raw.to(wide) & mask
    return raw.float()


@dataclass(frozen=True)
class InputScaling:
    """How stored values become the network's inputs in [0, 1].

    Sentinel-2: ``(DN + s2_offset[band]) * s2_gain[band]`` is reflectance x 10000 (empty tuples: no
    offset, gain 1) plus the offset the model's training digital numbers carried (its input domain's
    ``s2_dn_offset``, 0 for SEN12MS-CR), then ``data.sentinel.s2_to_unit``. Sentinel-1: ``sar_units`` 'dB' as stored,
    'linear' power turned into dB (10 log10; zero or negative power counts as missing), then the
    clip ``sar_clip`` of ``data.sentinel.S1_CLIP``.
    """

    sar_clip: str = "standard"
    s2_offset: tuple[float, ...] = ()
    s2_gain: tuple[float, ...] = ()
    sar_units: str = "dB"

    def s2_terms(self, device: torch.device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(offset, gain) as (C, 1, 1) tensors on ``device``; None where they change nothing."""
        return _column(self.s2_offset, 0.0, device), _column(self.s2_gain, 1.0, device)


def _column(values: Sequence[float], neutral: float, device: torch.device) -> torch.Tensor | None:
    if all(v == neutral for v in values):
        return None
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)


def _missing(x: torch.Tensor, nodata: float | None, finite: bool) -> torch.Tensor | None:
    """Values that are missing (NaN/inf unless ``finite``, or the nodata value); None when none can be."""
    bad = None if finite else ~torch.isfinite(x)
    if nodata is not None and not math.isnan(nodata):
        bad = (x == nodata) if bad is None else bad | (x == nodata)
    return bad


def s2_unit(
    x: torch.Tensor,
    nodata: float | None,
    offset: torch.Tensor | None = None,
    gain: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``data.sentinel.s2_to_unit`` on the device (same float32 operations, same results) for
    DN (C, H, W) as float32: (reflectance in [0, 1], (H, W) True where every band is missing).

    ``offset``/``gain`` (C, 1, 1) first (see :class:`InputScaling`; the nodata value is that of the
    stored DN). Missing values become 0 (what a DN-0 nodata pixel of a Sentinel-2 product becomes anyway).
    """
    bad = _missing(x, nodata, finite=True)  # integers: no NaN
    if offset is not None:
        x = x + offset
    if gain is not None:
        x = x * gain
    unit = x.clamp(0.0, S2_MAX).div_(S2_MAX)
    return _fill(unit, bad)


def s1_unit(
    x: torch.Tensor, nodata: float | None, variant: str, units: str = "dB"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``data.sentinel.s1_to_unit`` on the device for (C, H, W) float32 backscatter in ``units``
    ('dB', or 'linear' power, turned into dB first), plus the missing mask.

    Missing values become 0 (the clip floor).
    """
    if variant not in S1_CLIP:
        raise UserError(f"unknown SAR scaling {variant!r}; choose one of {', '.join(S1_CLIP)}")
    bad = _missing(x, nodata, finite=False)
    if units == "linear":
        x = torch.log10(x).mul_(10.0)  # 0 -> -inf, negative -> NaN: missing below
        nonfinite = ~torch.isfinite(x)
        bad = nonfinite if bad is None else bad | nonfinite
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
