"""Tensor <-> image conversions, the attention and uncertainty heat maps, and small file helpers.

Conventions: network tensors are (B, C, H, W) or (C, H, W) in [-1, 1]; images are (H, W, 3)
uint8. ``u8 -> tensor -> u8`` is lossless because the way back rounds instead of truncating.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# Anchor colours of a perceptually ordered map (dark blue -> teal -> yellow, like viridis),
# interpolated to 256 entries; written here so that no plotting library is needed.
_ANCHORS = np.array(
    [
        [68, 1, 84],
        [59, 82, 139],
        [33, 145, 140],
        [94, 201, 98],
        [253, 231, 37],
    ],
    dtype=np.float64,
)
HEAT_LUT = (
    np.stack(
        [
            np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)), _ANCHORS[:, c])
            for c in range(3)
        ],
        axis=1,
    )
    .round()
    .astype(np.uint8)
)


def to_unit(t: torch.Tensor) -> np.ndarray:
    """First image of a batch, [-1, 1] -> float64 array (C, H, W) in [0, 1]."""
    if t.dim() == 4:
        t = t[0]
    arr = t.detach().float().cpu().numpy().astype(np.float64)
    return np.clip((arr + 1.0) / 2.0, 0.0, 1.0)


def unit_to_u8(arr: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8, rounding to nearest and clipping; NaN -> 0. The one float-to-8-bit
    conversion of the project. float32 input is scaled in float32 (as it was made), other input in
    float64, so results do not depend on who converts."""
    a = np.asarray(arr)
    if a.dtype != np.float32:
        a = a.astype(np.float64)
    return np.clip(np.rint(np.nan_to_num(a) * 255.0), 0, 255).astype(np.uint8)


def tensor2im(t: torch.Tensor, rgb_bands: tuple[int, int, int] | None = None) -> np.ndarray:
    """(B, C, H, W) or (C, H, W) in [-1, 1] -> (H, W, 3) uint8 of the first image.

    One band is repeated to grey; three bands are shown as they are; more bands need
    ``rgb_bands`` (indices of the red, green and blue bands), else the first three are used.
    """
    unit = to_unit(t)
    c = unit.shape[0]
    if c == 1:
        rgb = np.repeat(unit, 3, axis=0)
    elif rgb_bands is not None:
        rgb = unit[list(rgb_bands)]
    elif c == 2:
        rgb = np.stack([unit[0], unit[1], unit.mean(axis=0)])
    else:
        rgb = unit[:3]
    return unit_to_u8(rgb.transpose(1, 2, 0))


def u8_to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) or (H, W) uint8 -> (C, H, W) float32 in [-1, 1]."""
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float()
    return t / 127.5 - 1.0


def attention_heatmap(att: torch.Tensor) -> np.ndarray:
    """Attention (B, 1, H, W) or (1, H, W) in [0, 1] -> colour heat map (H, W, 3) uint8.

    Dark blue: the output keeps the cloudy input; yellow: it uses the generated content.
    """
    if att.dim() == 4:
        att = att[0]
    a = att[0].detach().float().cpu().numpy().clip(0.0, 1.0)
    return HEAT_LUT[np.rint(a * 255).astype(np.uint8)]


# Predicted standard deviation (data units, [0, 1] scale) shown as the top of the uncertainty heat map.
UNCERTAINTY_PREVIEW_STD = 0.1


def uncertainty_heatmap(var: torch.Tensor, top: float = UNCERTAINTY_PREVIEW_STD) -> np.ndarray:
    """Predicted variance (B, 1, H, W) or (1, H, W), data units squared -> colour heat map (H, W, 3)
    uint8 of its square root, the standard deviation, on a fixed scale [0, ``top``] (the same
    colours mean the same spread in every image; larger spreads saturate).
    Dark blue: the model is sure of the pixel; yellow: it is not."""
    if var.dim() == 4:
        var = var[0]
    std = np.sqrt(var[0].detach().float().cpu().numpy().clip(0.0, None)) / top
    return HEAT_LUT[np.rint(np.nan_to_num(std).clip(0.0, 1.0) * 255).astype(np.uint8)]


def attention_overlay(
    att: torch.Tensor, image: torch.Tensor, rgb_bands=None, alpha: float = 0.6, base: np.ndarray | None = None
) -> np.ndarray:
    """Heat map blended over ``image`` (the cloudy input) in proportion to the attention.

    ``base``: the (H, W, 3) uint8 rendering of ``image`` to draw on (default: ``tensor2im``).
    """
    if att.dim() == 4:
        att = att[0]
    a = att[0].detach().float().cpu().numpy().clip(0.0, 1.0)[:, :, None] * alpha
    base = (tensor2im(image, rgb_bands) if base is None else base).astype(np.float64)
    heat = attention_heatmap(att).astype(np.float64)
    return np.clip(np.rint(base * (1 - a) + heat * a), 0, 255).astype(np.uint8)


def save_image(image: np.ndarray, path: str | os.PathLike, aspect_ratio: float = 1.0) -> None:
    """Write an (H, W, 3) uint8 image as PNG (atomically); ``aspect_ratio`` != 1 stretches it."""
    pil = Image.fromarray(image)
    h, w = image.shape[:2]
    if aspect_ratio > 1.0:
        pil = pil.resize((w, int(h * aspect_ratio)), Image.BICUBIC)
    elif aspect_ratio < 1.0:
        pil = pil.resize((int(w / aspect_ratio), h), Image.BICUBIC)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    pil.save(tmp, format="PNG")
    os.replace(tmp, path)


def visuals_to_images(visuals: dict[str, torch.Tensor], roles=None, previewer=None) -> dict[str, np.ndarray]:
    """Model visuals (tensors) -> uint8 RGB images of the first sample of the batch.

    ``roles`` (a model's :class:`models.base_model.Roles`) says which visuals are attention maps
    (rendered as heat maps; the first also as ``att_overlay`` over the cloudy input), which are
    predicted variances (:func:`uncertainty_heatmap`) and which are SAR; without it, names starting with ``att`` are attention maps and ``real_C`` is SAR.
    ``previewer(name, tensor, kind)`` (a dataset's ``preview``) renders a visual of kind 'optical'
    or 'sar' as an (H, W, 3) uint8 image, e.g. a natural-colour composite, or returns None for the
    default rendering.
    """
    if roles is None:
        attention = tuple(n for n in visuals if n.startswith("att"))
        sar: tuple[str, ...] = ("real_C",)
        cloudy = "real_A"
    else:
        attention, sar, cloudy = roles.attention, roles.sar, roles.cloudy
    uncertainty = getattr(roles, "uncertainty", ())
    images = {}
    for name, tensor in visuals.items():
        if name in attention:
            images[name] = attention_heatmap(tensor)
            continue
        if name in uncertainty:
            images[name] = uncertainty_heatmap(tensor)
            continue
        kind = "sar" if name in sar else "optical"
        image = previewer(name, tensor, kind) if previewer is not None else None
        images[name] = tensor2im(tensor) if image is None else image
    if attention and attention[0] in visuals and cloudy in visuals:
        images["att_overlay"] = attention_overlay(visuals[attention[0]], visuals[cloudy], base=images[cloudy])
    return images


def batch_item(visuals: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """The ``i``-th sample of every visual, keeping a batch dimension of 1."""
    return {name: t[i : i + 1] for name, t in visuals.items()}
