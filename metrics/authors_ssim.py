"""The SSIMs of other papers' evaluation code, each reproducing that code's numbers.

`glf_cr_ssim`    GLF-CR's ``codes/metrics.py`` ``SSIM``: an 11x11 Gaussian window (sigma 1.5) whose
                 taps are centred on ``x = 11 / 2 = 5.5`` rather than 5 (their ``gaussian`` subtracts
                 ``window_size / 2``, a true division in Python 3), so the window is half a pixel off
                 centre; zero padding 5 (a same-size map), every band on its own, C1 = 0.01^2,
                 C2 = 0.03^2 on [0, 1] data, the mean of the whole map.
`tf_ssim`        ``tf.image.ssim`` as DSen2-CR's ``cloud_ssim`` calls it (``filter_size=11``,
                 ``filter_sigma=1.5``, k1 = 0.01, k2 = 0.03, ``max_val`` the data's peak): a centred
                 Gaussian applied without padding (the "valid" map, 5 px smaller on each side), the mean
                 over the map and the bands. Their call scales the data and ``max_val`` alike (digital
                 numbers, 10000), which leaves SSIM unchanged: here reflectance and peak 1.
`allclear_ssim_map`  AllClear's ``Metrics.ssim``: the field's centred Gaussian with zero padding applied
                 to the masked images (pixels outside the mask set to 0 before filtering); the map is
                 then averaged over the mask only (by the caller).

Everything is computed in float64 (the authors' code runs in float32: the numbers agree to ~1e-6).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from metrics.ssim import FIELD_SIGMA, FIELD_WIN_SIZE, K1, K2, _ssim_map, gaussian_taps

__all__ = ["allclear_ssim_map", "glf_cr_ssim", "glf_cr_taps", "tf_ssim"]


def glf_cr_taps(size: int = FIELD_WIN_SIZE, sigma: float = FIELD_SIGMA) -> np.ndarray:
    """GLF-CR's 1-D window: ``exp(-(x - size / 2)^2 / (2 sigma^2))`` for x = 0..size-1, normalised."""
    x = np.arange(size, dtype=np.float64) - size / 2
    taps = np.exp(-(x**2) / (2.0 * sigma**2))
    return taps / taps.sum()


def _filter(taps: np.ndarray):
    """Local means with the separable window ``taps`` (outer product), zero padding, same-size map;
    tap k weighs the pixel k - len(taps) // 2 away, as a convolution layer's padded cross-correlation."""

    def mean(img: np.ndarray) -> np.ndarray:
        rows = ndimage.correlate1d(img, taps, axis=-1, mode="constant", cval=0.0)
        return ndimage.correlate1d(rows, taps, axis=-2, mode="constant", cval=0.0)

    return mean


def glf_cr_ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """GLF-CR's SSIM of two ``(C, H, W)`` arrays in [0, 1] (see the module docstring)."""
    x, y = (np.asarray(a, dtype=np.float64) for a in (pred, gt))
    return float(_ssim_map(_filter(glf_cr_taps()), x, y, K1**2, K2**2).mean())


def tf_ssim(pred: np.ndarray, gt: np.ndarray, max_val: float = 1.0) -> float:
    """``tf.image.ssim`` of two ``(C, H, W)`` arrays (H, W >= 11), one image: the valid map's mean."""
    x, y = (np.asarray(a, dtype=np.float64) for a in (pred, gt))
    if min(x.shape[-2:]) < FIELD_WIN_SIZE:
        raise ValueError(f"tf_ssim: images must be at least {FIELD_WIN_SIZE} px on each side, got {x.shape}")
    same = _filter(gaussian_taps())
    half = FIELD_WIN_SIZE // 2

    def valid(img: np.ndarray) -> np.ndarray:  # the windows that fit: TensorFlow's padding="VALID"
        return same(img)[..., half:-half, half:-half]

    c1, c2 = (K1 * max_val) ** 2, (K2 * max_val) ** 2
    return float(_ssim_map(valid, x, y, c1, c2).mean())


def allclear_ssim_map(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """AllClear's SSIM map ``(C, H, W)`` of two ``(C, H, W)`` arrays in [0, 1] masked by ``mask``
    (``(H, W)`` bool): every local statistic is taken of the masked images."""
    m = np.asarray(mask, dtype=np.float64)[None]
    x, y = (np.asarray(a, dtype=np.float64) for a in (pred, gt))
    mean = _filter(gaussian_taps())
    ux, uy = mean(x * m), mean(y * m)
    vx, vy, vxy = mean(x * x * m) - ux * ux, mean(y * y * m) - uy * uy, mean(x * y * m) - ux * uy
    c1, c2 = K1**2, K2**2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
