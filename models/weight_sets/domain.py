"""What a weight set expects at its input: :class:`InputDomain`, a small plain record.

Every loadable weight set carries one: a published set gets it from its registry entry
(:mod:`models.weight_sets.registry`), our own checkpoints from their ``train_opt.json``
(:func:`domain_from_options`). ``predict.py``, the Python API and the product readers read it to
scale a scene as the weights were trained and to say when an input does not fit.

Fields (all plain data):

``bands``
    The optical bands the network takes, in its channel order, by Sentinel-2 name
    (``B1`` .. ``B12``, ``B8A``); the output has the same bands.
``s2_level``
    Sentinel-2 processing level of the training data: ``"L1C"`` (top-of-atmosphere reflectance,
    13 bands; SEN12MS-CR) or ``"L2A"`` (surface reflectance, 12 bands, no B10); ``"unknown"``.
``s2_dn_offset``
    The digital numbers the network was trained on are ``reflectance x 10000 + s2_dn_offset``.
    SEN12MS-CR (2017-2018) predates processing baseline 04.00, so 0. Products since 25 Jan 2022
    store ``reflectance x 10000 + 1000`` (``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET`` = -1000): a
    reader subtracts the difference before the network sees them.
``sar_bands``
    The Sentinel-1 polarisations read from the SAR product, in order (``()``: no SAR input).
``sar_units``
    ``"dB"``: backscatter in decibels (as SEN12MS-CR), or ``"linear"`` power. A scene's SAR in
    linear power is turned into dB before a ``"dB"`` network sees it.
``sar_quantity``
    What the backscatter is normalised by: ``"sigma0"`` (ground range, GRD terrain-corrected as
    SEN12MS-CR), ``"gamma0"`` (radiometrically terrain-corrected, RTC products), ``"unknown"``.
``sar_clip``
    Per SAR band, the dB range clipped to before scaling to [0, 1] (``data.sentinel.S1_CLIP``).
``scaling``
    How the scene becomes the network's input: ``"unit"`` (reflectance = DN / 10000 clipped to
    [0, 1]; SAR clipped and mapped to [0, 1]; the model maps both on to its own units) or
    ``"png8"`` (the 8-bit PNG conversion of ``scripts/convert_sen12mscr.py``: reflectance
    [0, ``png_stretch``] -> 0..255, SAR as VV, VH, mean -> 0..255; the output is mapped back).
``png_stretch``
    ``png8`` only: the reflectance that 255 stands for (0.3 by default).
``network_units``
    What the network itself receives, for people (e.g. DSen2-CR: optical DN / 2000, SAR in [0, 2]).
``training_data``
    The data the weights were trained on.
``mapping_note``
    Where the mapping comes from when its authors did not publish it (``png8`` of Zhang et al.).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from data.sentinel import S1_CLIP, S2_BANDS, S2_RGB, parse_bands

SCALINGS = ("unit", "png8")
PNG_DATASETS = ("triplet", "simcloud")  # trained on 8-bit PNGs, not on Sentinel GeoTIFFs
PNG_STRETCH = 0.3  # scripts/convert_sen12mscr.py's default --stretch
RGB_BANDS = tuple(S2_BANDS[i] for i in S2_RGB)  # B4, B3, B2


@dataclass(frozen=True)
class InputDomain:
    """What a weight set expects at its input (see the module docstring for each field)."""

    bands: tuple[str, ...] = S2_BANDS
    s2_level: str = "L1C"
    s2_dn_offset: int = 0
    sar_bands: tuple[str, ...] = ("VV", "VH")
    sar_units: str = "dB"
    sar_quantity: str = "sigma0"
    sar_clip: tuple[tuple[float, float], ...] = S1_CLIP["standard"]
    scaling: str = "unit"
    png_stretch: float | None = None
    network_units: str = ""
    training_data: str = ""
    mapping_note: str = ""

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling {self.scaling!r}: expected one of {', '.join(SCALINGS)}")
        if self.scaling == "png8" and not self.png_stretch:
            raise ValueError("a png8 domain needs png_stretch")

    @property
    def uses_sar(self) -> bool:
        return bool(self.sar_bands)

    @property
    def sar_scaling(self) -> str:
        """The name of :data:`data.sentinel.S1_CLIP` entry this clip is ('standard', 'dsen2cr')."""
        clip = tuple(self.sar_clip[: len(S1_CLIP["standard"])])
        for name, value in S1_CLIP.items():
            if clip == value[: len(clip)]:
                return name
        return "standard"

    @property
    def band_indexes(self) -> tuple[int, ...] | None:
        """0-based positions of :attr:`bands` among the 13 Sentinel-2 bands (None: not all named)."""
        if not all(b in S2_BANDS for b in self.bands):
            return None
        return tuple(S2_BANDS.index(b) for b in self.bands)

    def describe(self) -> str:
        """One line: bands, level, SAR and scaling."""
        bands = "all 13 Sentinel-2 bands" if self.bands == S2_BANDS else ", ".join(self.bands)
        sar = (
            f"Sentinel-1 {', '.join(self.sar_bands)} in {self.sar_units} clipped to "
            + ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in self.sar_clip[: len(self.sar_bands)])
            if self.sar_bands
            else "no SAR"
        )
        level = f"Level-{self.s2_level[1:]}" if self.s2_level.startswith("L") else "level unknown"
        scale = "8-bit PNG mapping" if self.scaling == "png8" else "reflectance DN / 10000"
        return f"{bands} ({level}, {scale}); {sar}"


def sentinel_domain(
    bands: tuple[str, ...] = S2_BANDS, sar_scaling: str = "standard", **fields
) -> InputDomain:
    """A domain of Sentinel-2 L1C digital numbers and Sentinel-1 dB with the clip ``sar_scaling``."""
    return InputDomain(bands=bands, sar_clip=S1_CLIP[sar_scaling], **fields)


def png8_domain(
    stretch: float = PNG_STRETCH, sar_scaling: str = "standard", note: str = "", training_data: str = ""
) -> InputDomain:
    """The domain of 3-band RGB + 3-channel SAR PNG triplets as scripts/convert_sen12mscr.py writes them."""
    return InputDomain(
        bands=RGB_BANDS,
        sar_clip=S1_CLIP[sar_scaling],
        scaling="png8",
        png_stretch=stretch,
        network_units="8-bit RGB / 255 and SAR VV, VH, mean(VV, VH) / 255, mapped to [-1, 1]",
        training_data=training_data or "8-bit PNG triplets",
        mapping_note=note,
    )


def domain_from_options(opt: argparse.Namespace, *, official: bool = False) -> InputDomain:
    """The domain of a model trained with the options ``opt`` (a saved ``train_opt.json``).

    SEN12MS-CR data: its bands (``--s2_bands``) and SAR clip (``--sar_scaling``). 3-band PNG
    triplets with 3-channel SAR: the PNG conversion's own mapping (``png8``), with a note that it
    is assumed (``official``: Zhang et al.'s weights, whose mapping was never published). Other
    data (e.g. synthetic scenes): Sentinel scaling with the bands counted from ``--input_nc``.
    """
    dataset = str(getattr(opt, "dataset_mode", "") or "")
    sar_scaling = str(getattr(opt, "sar_scaling", None) or "standard")
    sar = ("VV", "VH") if int(getattr(opt, "sar_nc", 2)) >= 2 else ("VV",)
    if dataset == "sen12mscr":
        names = tuple(S2_BANDS[i] for i in parse_bands(str(opt.s2_bands)))
        return sentinel_domain(
            names, sar_scaling, sar_bands=sar, training_data=f"SEN12MS-CR ({getattr(opt, 'dataroot', '?')})"
        )
    if dataset in PNG_DATASETS and opt.input_nc == 3 and getattr(opt, "sar_nc", 3) == 3:
        note = (
            "Zhang et al. never published how they made their PNGs; this mapping is our documented choice"
            if official
            else "the PNG conversion's defaults, which may differ from how the training PNGs were made"
        )
        data = "8-bit PNG triplets (the official release: not published)" if official else ""
        return png8_domain(note=note, training_data=data or f"8-bit PNG triplets ({dataset})")
    n = int(opt.input_nc)
    names = S2_BANDS if n == len(S2_BANDS) else tuple(f"band_{i + 1}" for i in range(n))
    return InputDomain(
        bands=names,
        s2_level="unknown",
        sar_bands=sar,
        sar_quantity="unknown",
        sar_clip=S1_CLIP.get(sar_scaling, S1_CLIP["standard"]),
        training_data=dataset or "unknown",
    )
