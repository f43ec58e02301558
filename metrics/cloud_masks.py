"""Cloud masks of a cloudy optical image, as the field computes them, for cloud-aware evaluation.

Detectors (``--cloud_detector``), each giving an ``(H, W)`` bool mask, True on cloud (or shadow):

``s2cloudless``   The field's default (UnCRtainTS' data loader, detector ``s2cloudless_mask``):
                  ``S2PixelCloudDetector(threshold=0.4, all_bands=True, average_over=4,
                  dilation_size=2).get_cloud_masks`` of the 13 Sentinel-2 bands as DN / 10000 (DN
                  clipped to [0, 10000]). Clouds only (no shadows). Needs the optional package
                  ``s2cloudless`` (its LightGBM model ships with it: works offline).
``cloud_shadow``  The rule-based cloud and cloud-shadow detector (UnCRtainTS' ``cloud_cloudshadow_mask``,
                  cloud threshold 0.2), the one DSen2-CR trains with (`models.networks.cloud_mask`).
                  Needs the bands of its full rule: B1, B2, B3, B4, B8, B10, B11.
``rgb``           The same detector's RGB-only rule: the visible-band cloud tests and a shadow test on
                  mean visible brightness (see `models.networks.cloud_mask`), on B2, B3, B4 alone
                  whatever other bands the data has (13-band data included). 8-bit images are taken as
                  previews whose white is reflectance 0.3 (``S2_PREVIEW_MAX``), the Sentinel-2
                  natural-colour stretch.
``auto``          ``s2cloudless`` for 13-band data when the package is installed, else ``cloud_shadow``
                  for data with the full rule's bands, ``rgb`` for other data with B2, B3, B4 (3-band
                  natural colour included).

As the field's loader does, a blank patch (all values zero) counts as all cloud. Coverage is the
mask's mean: the fraction of the cloudy input flagged cloud or shadow.
"""

from __future__ import annotations

import numpy as np
import torch

from data.sentinel import S2_BANDS, S2_MAX, S2_PREVIEW_MAX

__all__ = [
    "DETECTORS",
    "CloudMasker",
    "MissingDependency",
    "cloud_mask",
    "have_s2cloudless",
    "resolve_detector",
    "s2cloudless_mask",
]

DETECTORS = ("auto", "s2cloudless", "cloud_shadow", "rgb", "none")
RGB_NAMES = ("B4", "B3", "B2")  # the bands of a natural-colour image, in its channel order
RULE_NAMES = ("B1", "B2", "B3", "B4", "B8", "B10", "B11")  # the full cloud/shadow rule's bands
# UnCRtainTS' data loader: S2PixelCloudDetector(threshold=0.4, all_bands=True, average_over=4, dilation_size=2)
S2CLOUDLESS_PARAMS = {"threshold": 0.4, "all_bands": True, "average_over": 4, "dilation_size": 2}
INSTALL_HINT = "the s2cloudless cloud detector needs the package s2cloudless: pip install s2cloudless"
BLANK_TOLERANCE = 1e-5 / S2_MAX  # the field's test, mean and std below 1e-5 DN, in reflectance

_detector = None  # one S2PixelCloudDetector, loaded on first use (its model takes ~1 s to read)


class MissingDependency(RuntimeError):
    """An optional package a detector needs is not installed (the message says how to install it)."""


def have_s2cloudless() -> bool:
    try:
        import s2cloudless  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_detector(name: str, band_names: tuple[str, ...] | None) -> str:
    """The detector ``name`` stands for on data with channels ``band_names`` (None: unknown).

    Returns one of ``s2cloudless``, ``cloud_shadow``, ``rgb``, ``none``; raises ``ValueError`` (a
    one-line reason) when the chosen detector cannot run on such data, ``MissingDependency`` when
    s2cloudless is chosen and not installed. ``auto`` on data of unknown bands gives ``none``.
    """
    if name not in DETECTORS:
        raise ValueError(f"unknown cloud detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if name == "none":
        return name
    full = band_names is not None and tuple(band_names) == S2_BANDS
    rgb = band_names is not None and tuple(band_names) == RGB_NAMES
    visible = band_names is not None and set(RGB_NAMES) <= set(band_names)
    rule = band_names is not None and set(RULE_NAMES) <= set(band_names)
    if name == "auto":
        if full and have_s2cloudless():
            return "s2cloudless"
        if rule and not rgb:
            return "cloud_shadow"
        return "rgb" if visible else "none"
    if name == "s2cloudless":
        if not full:
            raise ValueError(
                f"the s2cloudless detector needs the 13 Sentinel-2 bands; the data has {_bands(band_names)}"
            )
        if not have_s2cloudless():
            raise MissingDependency(INSTALL_HINT)
        return name
    if not visible:
        raise ValueError(
            f"the {name} detector needs the bands B2, B3 and B4; the data has {_bands(band_names)}"
        )
    if name == "cloud_shadow" and not rule:
        # Without B1, B8, B10, B11 only the visible bands' rule could run: that is the rgb detector.
        raise ValueError(
            f"the cloud_shadow detector needs the bands {', '.join(RULE_NAMES)}; the data has "
            f"{_bands(band_names)}: use --cloud_detector rgb (the visible bands' rule)"
        )
    return name


def _bands(names: tuple[str, ...] | None) -> str:
    return "bands of unknown names" if names is None else f"bands {', '.join(names)}"


def s2cloudless_mask(reflectance: np.ndarray) -> np.ndarray:
    """``(13, H, W)`` Sentinel-2 reflectance in [0, 1] -> ``(H, W)`` bool, the field's s2cloudless mask.

    The field's detector sees ``DN / 10000`` of integer DNs; reflectance read from DNs (float32 or
    after a [-1, 1] round trip) is put back on that grid first, so the masks are the field's, bit
    for bit.
    """
    global _detector
    if _detector is None:
        try:
            from s2cloudless import S2PixelCloudDetector
        except ImportError:
            raise MissingDependency(INSTALL_HINT) from None
        _detector = S2PixelCloudDetector(**S2CLOUDLESS_PARAMS)
    dn = np.rint(np.clip(np.asarray(reflectance, dtype=np.float64), 0.0, 1.0) * S2_MAX)
    bands_last = np.moveaxis(dn / S2_MAX, 0, -1)[None, ...]
    return _detector.get_cloud_masks(bands_last)[0].astype(bool)


def _rule_mask(image: np.ndarray, band_names: tuple[str, ...], scale: float) -> np.ndarray:
    from models.networks.cloud_mask import BandLayout, cloud_shadow_mask  # the DSen2-CR detector

    layout = BandLayout.from_names(tuple(band_names), scale)
    batch = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    return cloud_shadow_mask(batch, layout)[0, 0].numpy() > 0.5


def cloud_mask(
    image: np.ndarray, detector: str, band_names: tuple[str, ...] | None = None, *, is_preview: bool = False
) -> np.ndarray:
    """``(C, H, W)`` cloudy image in [0, 1] -> ``(H, W)`` bool, True on cloud (or shadow).

    ``detector``: a resolved name (see `resolve_detector`; not ``auto`` or ``none``). ``band_names``:
    the channels' Sentinel-2 band names (default: the 13 bands, or B4, B3, B2 for 3 channels).
    ``is_preview``: the values are a natural-colour preview (white = reflectance 0.3), not reflectance.
    A blank image (all zero) is all cloud, as in the field's loader.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"cloud_mask: expected a (C, H, W) image, got shape {image.shape}")
    if band_names is None:
        band_names = RGB_NAMES if image.shape[0] == 3 else S2_BANDS
    if len(band_names) != image.shape[0]:
        raise ValueError(f"cloud_mask: {image.shape[0]} channels but {len(band_names)} band names")
    if detector in ("cloud_shadow", "rgb"):
        resolve_detector(detector, tuple(band_names))  # the bands it needs, or a one-line reason
    if float(np.mean(image)) < BLANK_TOLERANCE and float(np.std(image)) < BLANK_TOLERANCE:
        return np.ones(image.shape[1:], dtype=bool)
    if detector == "s2cloudless":
        return s2cloudless_mask(image)
    scale = S2_PREVIEW_MAX if is_preview else 1.0
    if detector == "rgb":
        # The visible bands alone, whatever else the data holds: the rule then cannot reach B1,
        # B8, B10 or B11 and runs its RGB form.
        visible = [band_names.index(name) for name in RGB_NAMES]
        return _rule_mask(image[visible], RGB_NAMES, scale)
    if detector == "cloud_shadow":
        return _rule_mask(image, band_names, scale)
    raise ValueError(f"cloud_mask: cannot run detector {detector!r}")


class CloudMasker:
    """The cloud mask of a dataset's cloudy images: the detector resolved once for the data's bands.

    ``band_names``: the channels' Sentinel-2 band names, or None for plain images, whose 3 channels
    are then taken as a natural-colour preview (R, G, B). ``name``: the detector that runs (``none``:
    no mask can be computed, e.g. ``auto`` on bands of unknown names).
    """

    def __init__(self, detector: str, band_names: tuple[str, ...] | None, n_channels: int) -> None:
        self.is_preview = band_names is None and n_channels == 3
        self.band_names = RGB_NAMES if self.is_preview else band_names
        self.name = resolve_detector(detector, self.band_names)

    @property
    def active(self) -> bool:
        return self.name != "none"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """``(C, H, W)`` cloudy image in [0, 1] -> ``(H, W)`` bool, True on cloud or shadow."""
        return cloud_mask(image, self.name, self.band_names, is_preview=self.is_preview)
