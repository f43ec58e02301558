"""``--keep_clear`` and ``--cloud_mask``: the input's own pixels where the cloud detector finds clear
ground, the model's where it finds cloud or shadow, feathered at the edges.

The detector (:mod:`metrics.cloud_masks`: ``s2cloudless`` of 13-band inputs when the package is
installed, else DSen2-CR's rule-based ``cloud_shadow`` of inputs with B2, B3, B4, else its ``rgb``
rule) runs on each window the network sees, on the same [0, 1] inputs. Its binary mask is dilated
by ``feather`` pixels and then averaged over a (2 feather + 1)-pixel box: a weight that is 1 on
every detected pixel, falls linearly to 0 over the next 2 feather + 1 pixels, and is exactly 0
beyond. The weights of overlapping windows are cross-faded like the predictions (one more blended
channel: :meth:`Compositor.wrap`), and then, row by row as they are written,

    output = input                                       where the weight is 0 (bit for bit),
    output = weight x prediction + (1 - weight) x input  elsewhere,

the prediction alone where the optical input is missing. The weight is written as
``<out stem>_clouds.tif`` (float32 in [0, 1]: 0 = the input's pixel kept, 1 = the model's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from metrics.cloud_masks import DETECTORS, MissingDependency, resolve_detector, s2cloudless_mask
from models.networks.cloud_mask import BandLayout, cloud_shadow_mask
from util.errors import UserError

PREDICT_DETECTORS = tuple(d for d in DETECTORS if d != "none")
DEFAULT_FEATHER = 8  # pixels: 80 m at 10 m


@dataclass(frozen=True)
class Compositor:
    """A resolved detector and how its mask becomes the compositing weight.

    ``keep``: composite the output with the input (``--keep_clear``); otherwise the weight is only
    written. ``layout``: where the rule detectors find their bands (None for s2cloudless).
    """

    detector: str
    layout: BandLayout | None
    feather: int
    keep: bool

    @classmethod
    def create(
        cls, detector: str, band_names: tuple[str, ...] | None, positional: bool, feather: int, keep: bool
    ) -> Compositor:
        """Resolve ``detector`` for inputs of ``band_names`` (``positional``: names unknown; three
        unnamed bands are taken as a natural-colour image, as the metrics do for PNG data)."""
        if feather < 0:
            raise UserError(f"--feather {feather}: expected 0 or more pixels")
        names = None if positional else tuple(band_names)
        preview = names is None and len(band_names) == 3
        try:
            name = resolve_detector(detector, ("B4", "B3", "B2") if preview else names)
        except (ValueError, MissingDependency) as err:
            raise UserError(f"--cloud_detector {detector}: {err}") from None
        if name == "none":
            raise UserError(
                f"no cloud detector runs on bands {', '.join(band_names)}; --keep_clear and --cloud_mask "
                "need the bands B2, B3 and B4 (named) or a 3-band natural-colour image"
            )
        layout = None
        if name != "s2cloudless":
            layout = BandLayout.from_names(("B4", "B3", "B2") if preview else names, 0.3 if preview else 1.0)
        return cls(name, layout, int(feather), keep)

    def mask(self, a: torch.Tensor) -> torch.Tensor:
        """(n, C, w, w) inputs in [0, 1] -> (n, 1, w, w) weight in [0, 1] (1: the model's pixel)."""
        if self.layout is not None:
            hard = cloud_shadow_mask(a, self.layout)
        else:
            cpu = a.detach().float().cpu().numpy()
            hard = torch.from_numpy(np.stack([s2cloudless_mask(w)[None] for w in cpu]).astype(np.float32))
            hard = hard.to(a.device)
        return feathered(hard, self.feather)

    def wrap(self, forward):
        """``forward`` followed by the weight channel."""

        def with_mask(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return torch.cat([forward(a, c), self.mask(a).to(a.dtype)], 1)

        return with_mask

    @staticmethod
    def compose(
        pred: torch.Tensor,
        weight: torch.Tensor,
        given: torch.Tensor,
        missing: torch.Tensor,
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """Blend (C, h, w) predictions with the (C, h, w) inputs by the (h, w) blended ``weight``;
        ``missing``: (h, w) optical input missing; ``valid``: (h, w) pixels with data (others keep
        ``pred``, the nodata fill)."""
        w = torch.where(missing, torch.ones_like(weight), weight)
        mixed = torch.where(w > 0, w * pred + (1 - w) * given, given)
        return torch.where(valid, mixed, pred)


def feathered(hard: torch.Tensor, feather: int) -> torch.Tensor:
    """A (n, 1, h, w) 0/1 mask dilated by ``feather`` px and box-averaged over 2 feather + 1 px."""
    if feather == 0:
        return hard
    k = 2 * feather + 1
    grown = F.max_pool2d(hard, k, stride=1, padding=feather)
    return F.avg_pool2d(grown, k, stride=1, padding=feather, count_include_pad=False).clamp_(0.0, 1.0)
