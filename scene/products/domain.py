"""What a model was trained on (its input domain), what an input gives, and one line per mismatch.

SEN12MS-CR, the data of every model here, is Sentinel-2 Level-1C top-of-atmosphere reflectance x
10000 of 2017-2018 (before the 2022 offset), 13 bands, and Sentinel-1 sigma0 in dB. The scene
brings every input to those units (offsets taken out, linear power turned into dB, bands resampled
to 10 m); what cannot be brought there (surface reflectance, a band the product lacks, gamma0 for
sigma0) is said in one line each, before the run starts, and the run goes on.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from data.sentinel import S2_BANDS, parse_bands

SENTINEL_DATASETS = ("sen12mscr",)  # dataset modes that read Sentinel GeoTIFFs (SEN12MS-CR's tree)


@dataclass(frozen=True)
class InputDomain:
    """A model's (or weight file's) recorded input domain.

    ``s2_bands``: band names in the model's order (None: unknown names, taken by position);
    ``s2_level``: 'L1C' or 'L2A' (None: unknown); ``s2_offset``: the offset the training data's
    digital numbers carried (0: none, SEN12MS-CR); ``sar_units``: the units the model's SAR clip
    is in ('dB'); ``sar_quantity``: 'sigma0' or 'gamma0' (None: unknown); ``sar_clip``: the name of
    the clip (``data.sentinel.S1_CLIP``); ``source``: where the record comes from, for messages.
    """

    s2_bands: tuple[str, ...] | None = S2_BANDS
    s2_level: str | None = "L1C"
    s2_offset: float = 0.0
    sar_units: str = "dB"
    sar_quantity: str | None = "sigma0"
    sar_clip: str = "standard"
    source: str = "SEN12MS-CR"


@dataclass(frozen=True)
class InputReport:
    """What a scene's inputs give, as read (after the readers' conversions).

    ``s2_level``/``sar_quantity``: None when the product does not say; ``s2_offsets``: the distinct
    offsets taken out of the digital numbers; ``s2_filled``: bands the product lacks, filled (name,
    stored value); ``sar_units``: the units as delivered (converted to dB when 'linear').
    """

    s2_format: str
    s2_level: str | None
    s2_offsets: tuple[float, ...]
    s2_bands: tuple[str, ...]
    s2_filled: tuple[tuple[str, float], ...]
    sar_format: str
    sar_units: str
    sar_quantity: str | None


def domain_from_options(opt: argparse.Namespace, name: str) -> InputDomain:
    """The input domain of a model trained here, from its options (``train_opt.json``)."""
    source = f"experiment {name}"
    sar_clip = str(getattr(opt, "sar_scaling", None) or "standard")
    if getattr(opt, "dataset_mode", None) in SENTINEL_DATASETS:
        bands = tuple(S2_BANDS[i] for i in parse_bands(str(getattr(opt, "s2_bands", "all") or "all")))
        return InputDomain(bands, "L1C", 0.0, "dB", "sigma0", sar_clip, f"{source} (SEN12MS-CR)")
    spec = getattr(opt, "s2_bands", None)
    bands = tuple(S2_BANDS[i] for i in parse_bands(str(spec))) if spec else None
    return InputDomain(bands, None, 0.0, "dB", None, sar_clip, source)


def check_domain(domain: InputDomain, given: InputReport) -> list[str]:
    """One line per way the inputs differ from what the model was trained on (empty: none)."""
    lines = []
    filled = ", ".join(f"{b} with {v:g} (reflectance {v / 10000:g})" for b, v in given.s2_filled)
    if domain.s2_level and given.s2_level and given.s2_level != domain.s2_level:
        what = {
            "L2A": "surface reflectance (atmospherically corrected)",
            "L1C": "top-of-atmosphere reflectance",
        }
        missing = f"; it has no B10, filled {filled}" if filled else ""
        lines.append(
            f"the cloudy input is Level-{given.s2_level[1:]} {what.get(given.s2_level, '')} but {domain.source} "
            f"was trained on Level-{domain.s2_level[1:]} {what.get(domain.s2_level, '')}: expect colours and "
            f"levels off by the atmospheric correction{missing}"
        )
    elif filled:
        lines.append(f"the cloudy input lacks band(s) the model takes: filled {filled}")
    if domain.s2_offset and not any(given.s2_offsets):
        lines.append(
            f"{domain.source} was trained on digital numbers carrying an offset of {domain.s2_offset:g}; "
            "the input is given without"
        )
    if domain.sar_quantity and given.sar_quantity and given.sar_quantity != domain.sar_quantity:
        lines.append(
            f"the SAR input is {given.sar_quantity} but {domain.source} was trained on {domain.sar_quantity} "
            "(on flat ground gamma0 = sigma0 / cos(incidence): 0.6 to 1.6 dB brighter at IW's 30-46 degrees)"
        )
    return lines
