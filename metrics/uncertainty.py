"""Scoring predicted uncertainty as UnCRtainTS' code does: per-image statistics and calibration.

Per image (protocol ``uncertainty``, for a model that predicts a variance per pixel), on the data's
[0, 1] scale (reflectance for Sentinel-2; 8-bit / 255 for PNGs), with t the ground truth, p the
output and s the predicted variance (over every band and pixel; a band-mean variance map gives
the same mean)::

    mean_var = mean(s)        error = mean(t - p)        mean_se = mean((t - p)^2)        mean_ae = mean(|t - p|)

(``img_metrics`` of ``model/src/learning/metrics.py``: NaN values are left out of each mean.)

Calibration over a test set (``compute_uce_auce`` of ``model/train_reconstruct.py``, with its
defaults: 5 % bins, the L2 form): the images are put in 20 bins of equal width between the
smallest and the largest per-image ``mean_var``; in each bin b with n_b images,
RMV_b = sqrt(mean(mean_var)) (root mean variance) and E_b = sqrt(mean(error^2)) (root mean square
of the images' mean signed errors, which is what their code bins, not the images' RMSE)::

    UCE = sum_b n_b / N |E_b - RMV_b|        AUCE = mean over the non-empty bins of |E_b - RMV_b|

N is the number of images. A calibrated model has both near 0; the scores are in the data's units.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from util.errors import UserError

PROTOCOL = "uncertainty"
UNCERTAINTY_METRICS = ("mean_var", "error", "mean_se", "mean_ae")
N_BINS = 20  # the authors' percent=5
VARIANCE_EXTENSIONS = frozenset({".npy", ".tif", ".tiff"})
DESCRIPTION = (
    "predicted uncertainty, as UnCRtainTS' code scores it: on the [0,1] data scale, mean_var = mean "
    "predicted variance over bands and pixels, error = mean(t - p) (signed), mean_se = mean((t - p)^2), "
    "mean_ae = mean(|t - p|); NaN values left out"
)
CALIBRATION_DEFINITION = (
    "UnCRtainTS' compute_uce_auce (L2, 20 bins): images binned by mean_var into 20 equal-width bins "
    "between its extremes; per bin RMV = sqrt(mean(mean_var)) and E = sqrt(mean(error^2)); "
    "UCE = sum(n_bin / N * |E - RMV|), AUCE = mean over non-empty bins of |E - RMV|"
)


def uncertainty_metrics(pred: np.ndarray, truth: np.ndarray, var: np.ndarray) -> dict[str, float]:
    """One image's statistics: ``pred``, ``truth`` (C, H, W) and ``var`` (any shape whose mean is the
    image's mean variance, e.g. (1, H, W) band means) on the [0, 1] data scale."""
    err = np.asarray(truth, dtype=np.float64) - np.asarray(pred, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return {
            "mean_var": float(np.nanmean(np.asarray(var, dtype=np.float64))),
            "error": float(np.nanmean(err)),
            "mean_se": float(np.nanmean(err * err)),
            "mean_ae": float(np.nanmean(np.abs(err))),
        }


def calibration(variances: np.ndarray, errors: np.ndarray, n_bins: int = N_BINS) -> dict[str, float]:
    """UCE and AUCE of per-image mean variances and mean signed errors (see the module docstring).

    Returns ``{"uce", "auce", "bins", "images"}``; images whose variance or error is NaN are left out
    of the bins (still counted in N); NaN scores when no image is left.
    """
    var = np.asarray(variances, dtype=np.float64)
    err = np.asarray(errors, dtype=np.float64)
    if var.shape != err.shape or var.ndim != 1:
        raise ValueError(
            f"calibration: {var.shape} variances and {err.shape} errors; expected two 1-D arrays"
        )
    out = {"uce": math.nan, "auce": math.nan, "bins": n_bins, "images": int(var.size)}
    n = var.size  # the weights' denominator: every image, as their code divides by the data set's size
    keep = np.isfinite(var) & np.isfinite(err)
    var, err = var[keep], err[keep]
    if var.size == 0:
        return out
    edges = np.linspace(var.min(), var.max(), num=n_bins)[1:]
    index = np.digitize(var, bins=edges)  # 0 .. n_bins - 1; the largest variance in the last bin
    gaps, weights = [], []
    for b in range(n_bins):
        members = index == b
        if not members.any():
            continue
        rmv = math.sqrt(float(np.mean(var[members])))
        rms_error = math.sqrt(float(np.mean(err[members] ** 2)))
        gaps.append(abs(rms_error - rmv))
        weights.append(members.sum() / n)
    out["uce"] = float(np.sum(np.asarray(weights) * np.asarray(gaps)))
    out["auce"] = float(np.mean(gaps))
    return out


def read_variance(path: str | os.PathLike) -> np.ndarray:
    """A predicted-variance file: ``.npy`` or a GeoTIFF, (C, H, W) or (H, W) floats >= 0 (the data's
    [0, 1] units squared) -> float64 (C, H, W). NaN marks missing values. One-line UserError otherwise."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import rasterio

            with rasterio.open(path) as src:
                arr = src.read()
        else:
            raise UserError(f"{path}: a variance file must be .npy or a GeoTIFF (.tif)")
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the variance file {path}: {err}") from None
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.dtype.kind != "f":
        raise UserError(
            f"{path} holds {arr.dtype} of shape {arr.shape}; a variance file holds floats, (bands, height, width)"
        )
    arr = arr.astype(np.float64)
    if np.any(arr[np.isfinite(arr)] < 0):
        raise UserError(f"{path} holds negative values; a variance file holds predicted variances (>= 0)")
    return arr
