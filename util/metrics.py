"""Image-quality metrics for cloud removal, under two explicitly named protocols.

Every number we report belongs to exactly one protocol (see SPEC.md section 3):

``paper``  What the official ``metrics.py`` of Zhang et al. (2023) meant: 8-bit RGB images of the
           output and the ground truth, ``(H, W, 3) uint8``.  PSNR with data range 255, SSIM over the
           RGB image (Gaussian window 11x11, sigma 1.5, C1 = (0.01*255)^2, C2 = (0.03*255)^2, computed
           per channel then averaged), RMSE on the 0..255 scale.  Keys: ``psnr``, ``ssim``, ``rmse``.

``field``  The convention of UnCRtainTS / GLF-CR / DSen2-CR on SEN12MS-CR: reflectance in [0, 1], all
           bands, ``(C, H, W) float``.  ``rmse = sqrt(mean((t - p)^2))``, ``psnr = 20 log10(1 / rmse)``,
           ``mae = mean(|t - p|)``, ``sam`` = mean over pixels of the spectral angle in degrees, ``ssim``
           = Gaussian 11x11 sigma 1.5 SSIM with C1 = 0.01^2, C2 = 0.03^2, averaged over bands.
           For 3-band 8-bit PNGs the field protocol is applied to ``uint8 / 255`` (see `to_unit_chw`).

Both protocols average per-image values over the test set (`util.metrics_io.MetricsTable` does that).

SSIM matches ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=R)``: local statistics are Gaussian-weighted (radius 5) and the
SSIM map is averaged over the "valid" region only, i.e. a border of 5 pixels is left out.  (UnCRtainTS'
torch SSIM zero-pads instead and averages the whole map; values differ slightly near the borders.)

PSNR of identical images is ``float('inf')``; the summary writers handle it (see `util.metrics_io`).
Everything is computed in float64 with numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SSIM_SIGMA",
    "SSIM_WIN_SIZE",
    "MetricsTable",
    "field_metrics",
    "gaussian_ssim",
    "paper_metrics",
    "psnr_from_mse",
    "spectral_angle",
    "to_unit_chw",
]

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # as scipy.ndimage / scikit-image: radius = int(3.5 * 1.5 + 0.5) = 5
SSIM_WIN_SIZE = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1  # 11
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SAM_EPS = 1e-12


# ----------------------------------------------------------------------------- helpers


def _gaussian_kernel(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """Normalised 1-D Gaussian taps, the same ones scipy.ndimage.gaussian_filter uses."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _valid_filter(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable correlation of ``(..., H, W)`` with ``k`` on both axes, 'valid' output only.

    Output shape ``(..., H - n + 1, W - n + 1)`` with ``n = len(k)``.
    """
    n = len(k)
    h, w = img.shape[-2:]
    rows = sum(k[i] * img[..., i : h - n + 1 + i, :] for i in range(n))
    return sum(k[j] * rows[..., :, j : w - n + 1 + j] for j in range(n))


def gaussian_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> np.ndarray:
    """Mean SSIM per band of two ``(..., H, W)`` arrays (leading axes are bands / channels).

    Gaussian window (sigma 1.5, 11x11), population covariances, C1 = (0.01 R)^2, C2 = (0.03 R)^2 with
    ``R = data_range``; the SSIM map is averaged over the valid region (a 5-pixel border is excluded),
    exactly like scikit-image with ``gaussian_weights=True, use_sample_covariance=False``.

    Returns an array of shape ``a.shape[:-2]`` (a 0-d array for 2-D input); average it yourself
    (``float(gaussian_ssim(...).mean())``) for a per-image number.  H and W must be >= 11.
    """
    if a.shape != b.shape:
        raise ValueError(f"gaussian_ssim: shape mismatch {a.shape} vs {b.shape}")
    if a.ndim < 2 or min(a.shape[-2:]) < SSIM_WIN_SIZE:
        raise ValueError(
            f"gaussian_ssim: images must be at least {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} pixels, got shape {a.shape}"
        )
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    k = _gaussian_kernel()
    ux, uy = _valid_filter(x, k), _valid_filter(y, k)
    vx = _valid_filter(x * x, k) - ux * ux
    vy = _valid_filter(y * y, k) - uy * uy
    vxy = _valid_filter(x * y, k) - ux * uy
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(axis=(-2, -1))


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


def _check_pair(pred: np.ndarray, gt: np.ndarray, who: str) -> None:
    for name, arr in (("pred", pred), ("gt", gt)):
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"{who}: {name} must be a numpy array, got {_describe(arr)}")
    if pred.shape != gt.shape:
        raise ValueError(f"{who}: shape mismatch, pred {pred.shape} vs gt {gt.shape}")


# ----------------------------------------------------------------------------- protocols


def paper_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Paper protocol for one image pair.

    Args:
        pred: output, ``(H, W, 3) uint8`` RGB (0..255), H and W >= 11.
        gt: ground truth, same shape and dtype.

    Returns:
        ``{"psnr": dB (data range 255; inf if identical), "ssim": mean over R, G, B (<= 1),
        "rmse": on the 0..255 scale}``.
    """
    who = "paper_metrics"
    _check_pair(pred, gt, who)
    for name, arr in (("pred", pred), ("gt", gt)):
        if arr.dtype != np.uint8:
            raise ValueError(f"{who}: {name} must be uint8 (0..255), got dtype {arr.dtype}")
    if pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"{who}: expected (H, W, 3) RGB images, got shape {pred.shape}")
    p = pred.astype(np.float64)
    t = gt.astype(np.float64)
    mse = float(np.mean((p - t) ** 2))
    ssim = gaussian_ssim(np.moveaxis(p, -1, 0), np.moveaxis(t, -1, 0), data_range=255.0)
    return {"psnr": psnr_from_mse(mse, 255.0), "ssim": float(ssim.mean()), "rmse": float(np.sqrt(mse))}


def field_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Field (UnCRtainTS) protocol for one image pair.

    Args:
        pred: output reflectance, ``(C, H, W)`` float (any float dtype) in [0, 1], H and W >= 11.
        gt: ground truth, same shape.

    Returns:
        ``{"rmse", "psnr" (dB, 20 log10(1 / rmse); inf if identical), "mae", "sam" (degrees, mean over
        pixels), "ssim" (mean over bands)}``, all over all bands.
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
    diff = t - p
    rmse = float(np.sqrt(np.mean(diff**2)))
    return {
        "rmse": rmse,
        "psnr": float("inf") if rmse == 0.0 else float(20.0 * np.log10(1.0 / rmse)),
        "mae": float(np.mean(np.abs(diff))),
        "sam": float(spectral_angle(p, t).mean()),
        "ssim": float(gaussian_ssim(p, t, data_range=1.0).mean()),
    }


from util.metrics_io import MetricsTable  # noqa: E402  (re-export; metrics_io does not import us)
