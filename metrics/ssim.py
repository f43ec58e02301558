"""The two SSIMs we report, each reproducing one reference implementation.

`paper_ssim`  scikit-image's ``structural_similarity`` with its defaults, as the official ``metrics.py``
              of Zhang et al. (2023) called it on 8-bit RGB images: 7x7 uniform window, sample
              covariances (N / (N - 1) with N = 49), C1 = (0.01 R)^2, C2 = (0.03 R)^2 with R = 255, the
              SSIM map averaged over the region the window fits in (a 3-pixel border is left out), then
              the mean over the channels.
`field_ssim`  the SSIM of UnCRtainTS (``util/pytorch_ssim``), used by GLF-CR, EMRDM and the SEN12MS-CR
              literature: Gaussian window 11x11, sigma 1.5, applied with zero padding 5 (a same-size map,
              borders included), every band filtered on its own (a grouped convolution), C1 = 0.01^2,
              C2 = 0.03^2 on [0, 1] data, population covariances, the mean of the whole map over all bands.

The two differ in window, covariance and border handling, so their numbers are not interchangeable:
on real SEN12MS-CR pairs scikit-image's Gaussian variant (border cropped) is up to 2.6% off the field's
number, and a Gaussian SSIM of the 8-bit images is not the paper's uniform one (0.561 vs 0.533 on the
same real test pairs).
Everything is computed in float64 with numpy and scipy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

__all__ = [
    "FIELD_WIN_SIZE",
    "PAPER_WIN_SIZE",
    "field_ssim",
    "field_ssim_map",
    "gaussian_taps",
    "paper_ssim",
    "paper_ssim_map",
]

K1, K2 = 0.01, 0.03
PAPER_WIN_SIZE = 7  # scikit-image's default win_size
FIELD_WIN_SIZE = 11  # UnCRtainTS: window_size=11, sigma 1.5, padding window_size // 2
FIELD_SIGMA = 1.5


def gaussian_taps(size: int = FIELD_WIN_SIZE, sigma: float = FIELD_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian of ``size`` taps centred on ``size // 2`` (the field's window is the
    outer product of these with themselves)."""
    x = np.arange(size, dtype=np.float64) - size // 2
    taps = np.exp(-(x**2) / (2.0 * sigma**2))
    return taps / taps.sum()


def _ssim_map(
    mean: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float = 1.0,
) -> np.ndarray:
    """SSIM map from local means ``mean(.)`` of x, y, x^2, y^2, xy (the same filter for all five)."""
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def field_ssim_map(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The ``(C, H, W)`` SSIM map of two ``(C, H, W)`` reflectance arrays in [0, 1], as UnCRtainTS
    computes it before averaging: the Gaussian window applied to each band with zero padding
    (``mode="constant"``), so the map has the image's size and its border pixels see a darker
    neighbourhood."""
    x = np.asarray(pred, dtype=np.float64)
    y = np.asarray(gt, dtype=np.float64)
    taps = gaussian_taps()

    def mean(img: np.ndarray) -> np.ndarray:  # separable == the 2-D outer-product window, zero-padded
        rows = ndimage.correlate1d(img, taps, axis=-1, mode="constant", cval=0.0)
        return ndimage.correlate1d(rows, taps, axis=-2, mode="constant", cval=0.0)

    return _ssim_map(mean, x, y, K1**2, K2**2)


def field_ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """SSIM of two ``(C, H, W)`` reflectance arrays in [0, 1], exactly as UnCRtainTS computes it:
    the mean of the whole `field_ssim_map`. Any image size works. Returns a float (1.0 for
    identical images)."""
    return float(field_ssim_map(pred, gt).mean())


def paper_ssim_map(pred: np.ndarray, gt: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """scikit-image's SSIM map of two ``(H, W, C)`` arrays (H and W >= 7) before averaging, as a
    ``(C, H - 6, W - 6)`` array: row/column ``k`` of the map is pixel ``k + 3`` of the image (the
    windows that fit inside it; scikit-image leaves the 3-pixel border out of its mean).

    Local statistics are 7x7 box means; variances and covariance carry scikit-image's sample
    correction 49 / 48.
    """
    x = np.moveaxis(np.asarray(pred, dtype=np.float64), -1, 0)
    y = np.moveaxis(np.asarray(gt, dtype=np.float64), -1, 0)
    n = PAPER_WIN_SIZE
    taps = np.full(n, 1.0 / n)

    def mean(img: np.ndarray) -> np.ndarray:  # box mean over the windows that fit ("valid" output)
        h, w = img.shape[-2:]
        rows = sum(taps[i] * img[..., i : h - n + 1 + i, :] for i in range(n))
        return sum(taps[j] * rows[..., :, j : w - n + 1 + j] for j in range(n))

    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    return _ssim_map(mean, x, y, c1, c2, cov_norm=n * n / (n * n - 1.0))


def paper_ssim(pred: np.ndarray, gt: np.ndarray, data_range: float = 255.0) -> float:
    """``skimage.metrics.structural_similarity(pred, gt, channel_axis=-1, data_range=255)``.

    ``pred``, ``gt``: ``(H, W, C)`` arrays (8-bit RGB for the paper protocol), H and W >= 7.
    The `paper_ssim_map` is averaged per channel, and the channel means are averaged.
    """
    per_channel = paper_ssim_map(pred, gt, data_range).mean(axis=(-2, -1))
    return float(per_channel.mean())
