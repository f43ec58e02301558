"""Per-image metrics for cloud removal, under two explicitly named protocols.

Every number we report belongs to exactly one protocol:

``paper``  What the official ``metrics.py`` of Zhang et al. (2023) computed: 8-bit RGB images of the
           output and the ground truth, ``(H, W, 3) uint8``.  PSNR with data range 255; SSIM =
           scikit-image ``structural_similarity`` with its defaults (7x7 uniform window, sample
           covariance, data range 255, mean over R, G, B; see `metrics.ssim.paper_ssim`); RMSE on the
           0..255 scale.  Keys: ``psnr``, ``ssim``, ``rmse``.

``field``  The convention of UnCRtainTS / GLF-CR / DSen2-CR on SEN12MS-CR: reflectance in [0, 1], all
           bands, ``(C, H, W) float``.  ``rmse = sqrt(mean((t - p)^2))``, ``psnr = 20 log10(1 / rmse)``,
           ``mae = mean(|t - p|)``, ``sam`` = mean over pixels of the spectral angle in degrees, ``ssim``
           = UnCRtainTS' SSIM (Gaussian 11x11 sigma 1.5, zero padding, all bands, C1 = 0.01^2,
           C2 = 0.03^2, mean of the whole map; see `metrics.ssim.field_ssim`).
           For 3-band 8-bit PNGs the field protocol is applied to ``uint8 / 255`` (see `to_unit_chw`).

With a pixel ``mask`` (``(H, W)`` bool, e.g. the cloudy or the clear pixels of a cloud mask) each
protocol's metrics are taken over those pixels only: PSNR, RMSE, MAE and SAM over the selected pixels
(all bands), SSIM as the mean of that protocol's SSIM map over the selected pixels (for the paper
protocol, those inside the region scikit-image averages over; none there: no SSIM). Without a mask
the numbers are the whole-image ones, computed exactly as before.

Both protocols average per-image values over the test set (`metrics.table.MetricsTable` does that).
PSNR of identical images is ``float('inf')``; the summary writers handle it.
Everything is computed in float64.
"""

from __future__ import annotations

import numpy as np

from metrics.ssim import PAPER_WIN_SIZE, field_ssim, field_ssim_map, paper_ssim, paper_ssim_map

__all__ = ["field_metrics", "paper_metrics", "psnr_from_mse", "spectral_angle", "to_unit_chw"]

SAM_EPS = 1e-12


# ----------------------------------------------------------------------------- helpers


def psnr_from_mse(mse: float, data_range: float) -> float:
    """``10 log10(R^2 / mse)`` in dB; ``inf`` when ``mse == 0`` (identical images)."""
    if mse <= 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def spectral_angle(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-pixel spectral angle in degrees between ``(C, H, W)`` spectra; returns ``(H, W)``.

    ``cos = <t, p> / max(|t| |p|, 1e-12)`` clipped to [-1, 1].  Zero vectors: a pixel where exactly one
    spectrum is all-zero counts as 90 degrees (cos = 0); a pixel where both are all-zero counts as 0
    degrees (the spectra are identical).  UnCRtainTS would produce NaN there.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(gt, dtype=np.float64)
    dot = np.sum(t * p, axis=0)
    norm_t = np.sqrt(np.sum(t * t, axis=0))
    norm_p = np.sqrt(np.sum(p * p, axis=0))
    cos = np.clip(dot / np.maximum(norm_t * norm_p, SAM_EPS), -1.0, 1.0)
    angle = np.degrees(np.arccos(cos))
    angle[(norm_t == 0) & (norm_p == 0)] = 0.0
    return angle


def to_unit_chw(img: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` uint8 or uint16 image -> ``(C, H, W)`` float64 in [0, 1] (divided by 255 or 65535).

    This is how the field protocol is applied to 8-bit (or 16-bit) RGB PNGs.
    """
    if not isinstance(img, np.ndarray) or img.ndim != 3:
        raise ValueError(f"to_unit_chw: expected an (H, W, C) array, got {_describe(img)}")
    if img.dtype == np.uint8:
        scale = 255.0
    elif img.dtype == np.uint16:
        scale = 65535.0
    else:
        raise ValueError(f"to_unit_chw: expected uint8 or uint16, got dtype {img.dtype}")
    return np.transpose(img.astype(np.float64) / scale, (2, 0, 1))


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return f"object of type {type(x).__name__}"


def _check_mask(mask: np.ndarray | None, size: tuple[int, int], who: str) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != tuple(size):
        raise ValueError(f"{who}: mask must be a bool array of shape {tuple(size)}, got {_describe(mask)}")
    if not mask.any():
        raise ValueError(f"{who}: the mask selects no pixel")
    return mask


def _check_pair(pred: np.ndarray, gt: np.ndarray, who: str) -> None:
    for name, arr in (("pred", pred), ("gt", gt)):
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"{who}: {name} must be a numpy array, got {_describe(arr)}")
    if pred.shape != gt.shape:
        raise ValueError(f"{who}: shape mismatch, pred {pred.shape} vs gt {gt.shape}")


# ----------------------------------------------------------------------------- protocols


def paper_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Paper protocol for one image pair.

    Args:
        pred: output, ``(H, W, 3) uint8`` RGB (0..255), H and W >= 7 (scikit-image's window).
        gt: ground truth, same shape and dtype.
        mask: optional ``(H, W)`` bool, the pixels to measure (see the module docstring).

    Returns:
        ``{"psnr": dB (data range 255; inf if identical), "ssim": scikit-image's default SSIM, mean
        over R, G, B (<= 1), "rmse": on the 0..255 scale}``.
    """
    who = "paper_metrics"
    _check_pair(pred, gt, who)
    for name, arr in (("pred", pred), ("gt", gt)):
        if arr.dtype != np.uint8:
            raise ValueError(f"{who}: {name} must be uint8 (0..255), got dtype {arr.dtype}")
    if pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"{who}: expected (H, W, 3) RGB images, got shape {pred.shape}")
    if min(pred.shape[:2]) < PAPER_WIN_SIZE:
        raise ValueError(
            f"{who}: images must be at least {PAPER_WIN_SIZE}x{PAPER_WIN_SIZE} pixels for SSIM, "
            f"got shape {pred.shape}"
        )
    mask = _check_mask(mask, pred.shape[:2], who)
    p = pred.astype(np.float64)
    t = gt.astype(np.float64)
    if mask is None:
        mse = float(np.mean((p - t) ** 2))
        return {"psnr": psnr_from_mse(mse, 255.0), "ssim": paper_ssim(p, t), "rmse": float(np.sqrt(mse))}
    mse = float(np.mean((p[mask] - t[mask]) ** 2))
    out = {"psnr": psnr_from_mse(mse, 255.0), "rmse": float(np.sqrt(mse))}
    border = PAPER_WIN_SIZE // 2
    inner = mask[border:-border, border:-border]
    if inner.any():
        out["ssim"] = float(paper_ssim_map(p, t)[:, inner].mean())
    return out


def field_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Field (UnCRtainTS) protocol for one image pair.

    Args:
        pred: output reflectance, ``(C, H, W)`` float (any float dtype) in [0, 1], any size.
        gt: ground truth, same shape.
        mask: optional ``(H, W)`` bool, the pixels to measure (see the module docstring).

    Returns:
        ``{"rmse", "psnr" (dB, 20 log10(1 / rmse); inf if identical), "mae", "sam" (degrees, mean over
        pixels), "ssim" (UnCRtainTS' SSIM, the mean of the whole map over all bands)}``, all over all
        bands.
    """
    who = "field_metrics"
    _check_pair(pred, gt, who)
    for name, arr in (("pred", pred), ("gt", gt)):
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(
                f"{who}: {name} must be a float array in [0, 1], got dtype {arr.dtype} "
                "(for 8-bit images use to_unit_chw)"
            )
    if pred.ndim != 3:
        raise ValueError(f"{who}: expected (C, H, W) arrays, got shape {pred.shape}")
    if pred.shape[-1] in (1, 3, 4) and pred.shape[0] > 4:
        raise ValueError(f"{who}: expected (C, H, W) arrays, got shape {pred.shape} (channels-last?)")
    p = pred.astype(np.float64)
    t = gt.astype(np.float64)
    for name, arr in (("pred", p), ("gt", t)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{who}: {name} contains NaN or inf")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(
                f"{who}: {name} must be reflectance in [0, 1], got range [{lo:.4g}, {hi:.4g}] "
                "(map [-1, 1] outputs with (x + 1) / 2)"
            )
    mask = _check_mask(mask, pred.shape[1:], who)
    diff = t - p
    if mask is None:
        rmse = float(np.sqrt(np.mean(diff**2)))
        return {
            "rmse": rmse,
            "psnr": float("inf") if rmse == 0.0 else float(20.0 * np.log10(1.0 / rmse)),
            "mae": float(np.mean(np.abs(diff))),
            "sam": float(spectral_angle(p, t).mean()),
            "ssim": field_ssim(p, t),
        }
    diff = diff[:, mask]
    rmse = float(np.sqrt(np.mean(diff**2)))
    return {
        "rmse": rmse,
        "psnr": float("inf") if rmse == 0.0 else float(20.0 * np.log10(1.0 / rmse)),
        "mae": float(np.mean(np.abs(diff))),
        "sam": float(spectral_angle(p, t)[mask].mean()),
        "ssim": float(field_ssim_map(p, t)[:, mask].mean()),
    }
