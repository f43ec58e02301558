"""How a scene is given to a model, by the model's input domain (:class:`models.weight_sets.InputDomain`).

Most models take Sentinel scaling as it is (``unit``: reflectance DN / 10000, SAR clipped to its
dB range and mapped to [0, 1]; the model maps both on to its own units). A model of 8-bit PNG
triplets (``png8``: Zhang et al.'s official weights among them, or ours trained on PNGs) takes 3
RGB channels and 3 SAR channels; given a real Sentinel-1 image (VV, VH: 2 bands), the scene goes
through the PNG conversion's own mapping (:func:`png8_forward`). A 3-band SAR image (the demo's
scene) is taken as already in the model's channels and read as stored, as before.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from models.weight_sets import InputDomain
from util.errors import UserError

UNIT, PNG8 = "unit", "png8"


def mapping_for(domain: InputDomain, opt: argparse.Namespace, sar_count: int | None) -> str:
    """'png8' for a PNG model given a SAR image of other than its channel count (VV, VH), else 'unit'."""
    if domain.scaling != PNG8 or sar_count == int(opt.sar_nc):
        return UNIT
    return PNG8


def band_counts(domain: InputDomain, opt: argparse.Namespace, mapping: str) -> tuple[int, int]:
    """Bands to read from the cloudy and from the SAR image (0: the model takes no SAR image)."""
    if mapping == PNG8:
        return len(domain.bands), len(domain.sar_bands)
    return int(opt.input_nc), int(opt.sar_nc) if domain.uses_sar else 0


def default_bands(domain: InputDomain, opt: argparse.Namespace, mapping: str) -> str | None:
    """The Sentinel-2 bands to read unless the user picks them: the training's (``--s2_bands``), else
    the domain's when it names them all (None: the scene's bands are taken by position)."""
    if mapping == PNG8:
        return ",".join(domain.bands)
    spec = getattr(opt, "s2_bands", None)
    if spec or domain.band_indexes is None or len(domain.bands) != int(opt.input_nc):
        return spec
    return ",".join(domain.bands)


def check_sar_given(domain: InputDomain, described: str, sar: object | None) -> None:
    """Refuse a SAR image for a model without SAR input, and a missing one for a model with it."""
    if sar is not None and not domain.uses_sar:
        raise UserError(
            f"{described} takes no SAR image, but one was given ({sar}): leave it out (--sar, sar=None), "
            "or use weights with SAR"
        )
    if sar is None and domain.uses_sar:
        raise UserError(f"{described} takes a SAR image (Sentinel-1 VV, VH in dB): give it (--sar, sar=)")


def png8_forward(forward, domain: InputDomain, bands: int, variances: tuple[bool, ...] = ()):
    """``forward`` of a model trained on 8-bit PNG triplets, given a real scene as
    ``scripts/convert_sen12mscr.py`` would have written it (its default fixed stretch).

    In: cloudy reflectance (B, 3, w, w) in [0, 1] (B4, B3, B2) and SAR (B, 2, w, w) in [0, 1]
    (VV, VH clipped and scaled). The optical bands become ``round(r / stretch x 255) / 255`` in
    float64, the SAR ``round(x x 255) / 255`` of VV, VH and their mean in float32, exactly the
    PNG's values; the first ``bands`` channels of the output (PNG units in [0, 1]) are mapped back
    to reflectance (x stretch), the maps after them are kept, but for those ``variances`` marks
    (predicted variances, PNG units squared: x stretch^2)."""
    stretch = float(domain.png_stretch)
    scales = [stretch**2 if v else 1.0 for v in variances]

    def run(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        optical = (a.double() / stretch * 255).round_().clamp_(0, 255).div_(255).float()
        vv, vh = c[:, 0], c[:, 1]
        sar = torch.stack([vv, vh, (vv + vh) / 2], 1).mul(255).round_().clamp_(0, 255).div_(255)
        out = forward(optical, sar)
        maps = [out[:, bands + i : bands + i + 1] * scale for i, scale in enumerate(scales)]
        return torch.cat([out[:, :bands] * stretch, *maps, out[:, bands + len(scales) :]], 1)

    return run


def mapping_line(domain: InputDomain, described: str) -> str | None:
    """The one line saying how a Sentinel scene is mapped for a model of 8-bit PNGs (None for others)."""
    if domain.scaling != PNG8:
        return None
    lo, hi = domain.sar_clip[0]
    return (
        f"note: {described} is a model of 8-bit PNG triplets: the scene goes through the PNG conversion's mapping "
        f"(scripts/convert_sen12mscr.py: {', '.join(domain.bands)} reflectance [0, {domain.png_stretch:g}] -> "
        f"0..255; SAR VV, VH, mean of [{lo:g}, {hi:g}] dB -> 0..255) and the output back to reflectance "
        f"[0, {domain.png_stretch:g}]; {domain.mapping_note}"
    )


def scene_lines(domain: InputDomain, described: str, mapping: str) -> list[str]:
    """What the log says about how one scene is given to the model."""
    if mapping == PNG8:
        return [mapping_line(domain, described)]
    if domain.scaling == PNG8:
        return [
            f"note: {described} is a model of 8-bit PNG triplets and the SAR image has its 3 channels, so the "
            "scene is read as stored (optical DN / 10000, SAR [-25, 0] dB -> [0, 1]) as the demo's scene "
            "expects; a Sentinel-1 VV, VH image gets the PNG conversion's mapping instead"
        ]
    return []


# ---------------------------------------------------------------------------- inputs against the domain
@dataclass(frozen=True)
class InputReport:
    """What a scene's inputs give, as read (after the readers' conversions).

    ``s2_level``/``sar_quantity``: None when the product does not say; ``s2_offsets``: the distinct
    offsets taken out of the digital numbers; ``s2_filled``: bands the product lacks, filled (name,
    stored value); ``sar_units``: the units as delivered (turned into dB when 'linear'); the SAR
    fields are None for a model without SAR input.
    """

    s2_format: str
    s2_level: str | None
    s2_offsets: tuple[float, ...]
    s2_bands: tuple[str, ...]
    s2_filled: tuple[tuple[str, float], ...]
    sar_format: str | None
    sar_units: str | None
    sar_quantity: str | None


LEVELS = {"L2A": "surface reflectance (atmospherically corrected)", "L1C": "top-of-atmosphere reflectance"}


def check_domain(domain: InputDomain, described: str, given: InputReport) -> list[str]:
    """One line per way the inputs differ from what ``domain`` expects and the readers could not
    convert away (empty: none); ``described`` names the model."""
    lines = []
    filled = ", ".join(f"{b} with {v:g} (reflectance {v / 10000:g})" for b, v in given.s2_filled)
    if domain.s2_level in LEVELS and given.s2_level in LEVELS and given.s2_level != domain.s2_level:
        missing = f"; it has no B10, filled {filled}" if filled else ""
        lines.append(
            f"the cloudy input is Level-{given.s2_level[1:]} {LEVELS[given.s2_level]} but {described} "
            f"was trained on Level-{domain.s2_level[1:]} {LEVELS[domain.s2_level]}: expect colours and "
            f"levels off by the atmospheric correction{missing}"
        )
    elif filled:
        lines.append(f"the cloudy input lacks band(s) that {described} takes: filled {filled}")
    if given.sar_format is None:
        return lines
    if domain.sar_units != "dB":
        lines.append(
            f"{described} was trained on SAR in {domain.sar_units} units, but scenes reach it in dB "
            "(clipped to its range)"
        )
    quantities = ("sigma0", "gamma0")
    if domain.sar_quantity in quantities and given.sar_quantity in quantities:
        if given.sar_quantity != domain.sar_quantity:
            lines.append(
                f"the SAR input is {given.sar_quantity} but {described} was trained on {domain.sar_quantity} "
                "(on flat ground gamma0 = sigma0 / cos(incidence): 0.6 to 1.6 dB brighter at IW's 30-46 degrees)"
            )
    return lines
