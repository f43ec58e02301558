"""Rule-based cloud and cloud-shadow masks of a cloudy optical image, in plain PyTorch.

DSen2-CR (Meraner et al. 2020, section 4.3.1) trains with a binary cloud-and-shadow mask computed
from the cloudy Sentinel-2 image itself; its official code (``Code/tools/feature_detectors.py``)
gives the details reproduced here, on top-of-atmosphere reflectance (DN / 10000):

Clouds (the detector of Schmitt et al. 2019, "Aggregating cloud-free Sentinel-2 images with Google
Earth Engine"): a score starts at 1 and is lowered to the minimum of linear ramps
``r(x, lo, hi) = (x - lo) / (hi - lo)`` of: blue B2 over [0.1, 0.5]; aerosol B1 over [0.1, 0.3];
B1 + cirrus B10 over [0.15, 0.2]; B4 + B3 + B2 over [0.2, 0.8] (clouds are bright); and the
snow index NDSI = (B3 - B11) / (B3 + B11) over [0.8, 0.6] (clouds are not snow). The score is
then closed with a 5x5 grey closing (dilation then erosion), smoothed with a 7x7 box filter
(zero padding), clipped to [1e-5, 1] and thresholded: cloud where score >= 0.2.

Shadows (the cloud-shadow index of Zhai et al. 2018, as the official code applies it, per image):
CSI = (B8 + B11) / 2; shadow where CSI < T3 and B2 < T4, with T3 = min(CSI) + 3/4 (mean(CSI) -
min(CSI)) and T4 = min(B2) + 5/6 (mean(B2) - min(B2)); then a 5x5 median filter (zero padding).

The DSen2-CR mask is 1 where either detector fires, 0 elsewhere.

RGB fallback (3-band data; ours, not the paper's): only the visible bands exist, so the cloud
score keeps the two visible-band ramps (blue over [0.1, 0.5], R + G + B over [0.2, 0.8]) and
drops the aerosol, cirrus and snow tests (snow is then taken for cloud); the shadow test uses the
mean visible reflectance (R + G + B) / 3 in place of the NIR/SWIR index CSI, with the same
per-image thresholds computed over the pixels not found cloudy (clouds, far brighter in the
visible than in the NIR/SWIR, would otherwise lift the thresholds above the clear ground). Dark
water and dark forest can then count as shadow: the loss treats them as "reconstruct", the safe
side. Both detectors need reflectance, not display values: see
``reflectance_scale`` in :class:`BandLayout`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Official values (Code/dsen2cr_main.py: cloud_threshold; feature_detectors.py: the rest).
CLOUD_THRESHOLD = 0.2
CLOSING_SIZE = 5
BOX_SIZE = 7
MEDIAN_SIZE = 5
SHADOW_CSI_FRACTION = 3 / 4
SHADOW_BLUE_FRACTION = 5 / 6


@dataclass(frozen=True)
class BandLayout:
    """Where the bands the detectors read sit in the image (0-based channel positions).

    ``blue``, ``green``, ``red`` are required (B2, B3, B4); with all of ``aerosol`` (B1),
    ``cirrus`` (B10), ``nir`` (B8) and ``swir1`` (B11) too, the full Sentinel-2 detectors run,
    otherwise the RGB fallback. ``reflectance_scale`` turns the image's [0, 1] values into
    reflectance (1 for reflectance data; 0.3 for previews that stretched [0, 0.3] to 0..255).
    """

    blue: int
    green: int
    red: int
    aerosol: int | None = None
    cirrus: int | None = None
    nir: int | None = None
    swir1: int | None = None
    reflectance_scale: float = 1.0

    @classmethod
    def from_names(cls, names: tuple[str, ...], reflectance_scale: float = 1.0) -> BandLayout:
        """The layout of an image whose channels are the Sentinel-2 bands ``names`` (e.g.
        ``("B4", "B3", "B2")`` for RGB); raises ``ValueError`` naming any of B2, B3, B4 missing."""
        where = {name: i for i, name in enumerate(names)}
        lacking = [b for b in ("B2", "B3", "B4") if b not in where]
        if lacking:
            raise ValueError(
                f"the cloud detector needs the bands B2, B3 and B4; missing: {', '.join(lacking)}"
            )
        return cls(
            blue=where["B2"],
            green=where["B3"],
            red=where["B4"],
            aerosol=where.get("B1"),
            cirrus=where.get("B10"),
            nir=where.get("B8"),
            swir1=where.get("B11"),
            reflectance_scale=reflectance_scale,
        )

    @property
    def full(self) -> bool:
        """True when every band of the Sentinel-2 detectors is present."""
        return None not in (self.aerosol, self.cirrus, self.nir, self.swir1)


def _ramp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return (x - lo) / (hi - lo)


def _normalized_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    total = a + b
    # The official code replaces a zero denominator by 0.001.
    return (a - b) / torch.where(total == 0, torch.full_like(total, 0.001), total)


def _grey_closing(x: torch.Tensor, size: int) -> torch.Tensor:
    """Flat grey closing of (B, 1, H, W). Max pooling pads with -inf, which for a max (and, negated,
    a min) filter equals scipy.ndimage's default 'reflect' border: the mirrored values already
    lie inside the window."""
    pad = size // 2
    dilated = F.max_pool2d(x, size, stride=1, padding=pad)
    return -F.max_pool2d(-dilated, size, stride=1, padding=pad)


def _band(image: torch.Tensor, index: int) -> torch.Tensor:
    return image[:, index : index + 1]


def cloud_score(reflectance: torch.Tensor, layout: BandLayout) -> torch.Tensor:
    """(B, C, H, W) reflectance -> (B, 1, H, W) cloud score in [1e-5, 1] (before thresholding)."""
    blue, green, red = (_band(reflectance, i) for i in (layout.blue, layout.green, layout.red))
    score = torch.ones_like(blue)
    score = torch.minimum(score, _ramp(blue, 0.1, 0.5))
    if layout.full:
        aerosol = _band(reflectance, layout.aerosol)
        score = torch.minimum(score, _ramp(aerosol, 0.1, 0.3))
        score = torch.minimum(score, _ramp(aerosol + _band(reflectance, layout.cirrus), 0.15, 0.2))
    score = torch.minimum(score, _ramp(red + green + blue, 0.2, 0.8))
    if layout.full:
        ndsi = _normalized_difference(green, _band(reflectance, layout.swir1))
        score = torch.minimum(score, _ramp(ndsi, 0.8, 0.6))
    score = _grey_closing(score, CLOSING_SIZE)
    score = F.avg_pool2d(score, BOX_SIZE, stride=1, padding=BOX_SIZE // 2, count_include_pad=True)
    return score.clamp(1e-5, 1.0)


def shadow_mask(
    reflectance: torch.Tensor, layout: BandLayout, cloud: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, C, H, W) reflectance -> (B, 1, H, W) bool: cloud shadow (thresholds per image).

    ``cloud`` (B, 1, H, W) bool, used by the RGB fallback only: pixels left out of the per-image
    statistics (in visible bands clouds are so bright that they would lift every threshold).
    """
    blue = _band(reflectance, layout.blue)
    if layout.full:
        index, counted = (_band(reflectance, layout.nir) + _band(reflectance, layout.swir1)) / 2, None
    else:
        index = (_band(reflectance, layout.red) + _band(reflectance, layout.green) + blue) / 3
        counted = None if cloud is None else ~cloud

    def threshold(x: torch.Tensor, fraction: float) -> torch.Tensor:
        if counted is None:
            low, mean = x.amin(dim=(1, 2, 3), keepdim=True), x.mean(dim=(1, 2, 3), keepdim=True)
        else:
            low = torch.where(counted, x, torch.full_like(x, float("inf"))).amin(dim=(1, 2, 3), keepdim=True)
            n = counted.sum(dim=(1, 2, 3), keepdim=True)
            mean = (x * counted).sum(dim=(1, 2, 3), keepdim=True) / n.clamp(min=1)
            low = torch.where(n > 0, low, torch.zeros_like(low))  # all cloud: no shadow test passes
        return low + fraction * (mean - low)

    dark = (index < threshold(index, SHADOW_CSI_FRACTION)) & (blue < threshold(blue, SHADOW_BLUE_FRACTION))
    # A 5x5 median of a 0/1 map with zero padding is 1 where at least 13 of the 25 values are.
    votes = F.avg_pool2d(
        dark.float(), MEDIAN_SIZE, stride=1, padding=MEDIAN_SIZE // 2, count_include_pad=True
    )
    return votes * MEDIAN_SIZE**2 > (MEDIAN_SIZE**2) // 2 + 0.5


def cloud_shadow_mask(
    image: torch.Tensor, layout: BandLayout, *, threshold: float = CLOUD_THRESHOLD
) -> torch.Tensor:
    """The DSen2-CR mask: ``image`` (B, C, H, W) with values in [0, 1] (``layout.reflectance_scale``
    turns them into reflectance) -> (B, 1, H, W) float, 1 on cloud or shadow, 0 elsewhere.

    Computed in float32 without gradients (it is a fixed function of the input).
    """
    with torch.no_grad():
        reflectance = image.detach().float() * layout.reflectance_scale
        cloud = cloud_score(reflectance, layout) >= threshold
        return (cloud | shadow_mask(reflectance, layout, cloud)).float()
