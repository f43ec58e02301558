"""Other papers' evaluation protocols, replayed on our outputs (``--protocols`` / ``--protocol``).

The field's tables mix protocols: a number is only comparable with another of the same protocol.
Each protocol here reproduces its authors' evaluation code (tested against fixtures that code
computed, ``tests/fixtures/make_*_protocol_reference.py``) on ``(C, H, W)`` reflectance in [0, 1]
(8-bit images: ``uint8 / 255``), one image at a time; `MetricsTable` then takes the mean over images.
docs/metrics.md has one card per protocol.

``glf_cr``     GLF-CR (Xu et al. 2022; ``codes/test_CR.py``, ``codes/metrics.py``, ``codes/dataloader.py``):
               the centre 128 x 128 crop (theirs: of the 256 patch; an image of 128 px or less is
               used whole), all bands; ``psnr`` = 20 log10(1 / sqrt(mse)), 100 when mse is 0; ``ssim``
               their SSIM (`metrics.authors_ssim.glf_cr_ssim`, a half-pixel-shifted Gaussian).
``dsen2cr``    DSen2-CR (Meraner et al. 2020; ``Code/tools/image_metrics.py``, ``tools/dataIO.py``,
               ``dsen2cr_tools.predict_dsen2cr``): the top-left 128 x 128 window (their prediction
               generator reads it: no random crop), all bands; ``mae``, ``rmse``, ``psnr`` (peak 1),
               ``sam`` (mean spectral angle, no guard for zero spectra), ``ssim`` (``tf.image.ssim``,
               valid map), and their split over the cloud-and-shadow mask of the cloudy window (their
               detector, threshold 0.2): ``mae_covered`` / ``sam_covered`` output vs target over
               covered pixels, ``mae_clear`` / ``sam_clear`` output vs the *cloudy input* over clear
               pixels; 0 where the class is empty, as their code returns. Their code computes MAE and
               RMSE in its data units (digital numbers / 2000 = reflectance x 5) and SAM in radians:
               here reflectance and degrees, the units of their paper's table.
``allclear``   AllClear (Zhou et al. 2024; ``allclear/benchmark.py``, class ``Metrics``): only the
               pixels clear in the target (its cloud-and-shadow mask; here the cloud detector run on
               the target), all bands: ``mae``, ``rmse``, ``psnr``, ``ssim`` (masked inputs, map
               averaged over the mask), ``sam`` exactly as their code computes it, which normalises
               along image rows rather than bands (dimension 2 of a (B*T, C, H, W) tensor), and
               ``sam_true``, the spectral angle over the same pixels. An image without clear target
               pixels gives no value (their NaN-mean skips it).
``uncrtaints`` UnCRtainTS (Ebel et al. 2023): the whole image; our field protocol is their code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from metrics.authors_ssim import allclear_ssim_map, glf_cr_ssim, tf_ssim
from metrics.cloud_masks import RGB_NAMES, cloud_mask, resolve_detector
from metrics.protocols import field_metrics, spectral_angle

__all__ = [
    "AUTHOR_DESCRIPTIONS",
    "AUTHOR_PROTOCOLS",
    "AuthorProtocols",
    "allclear_metrics",
    "allclear_sam",
    "dsen2cr_metrics",
    "glf_cr_metrics",
    "parse_author_protocols",
]

AUTHOR_PROTOCOLS = ("glf_cr", "dsen2cr", "allclear", "uncrtaints")
AUTHOR_DESCRIPTIONS: dict[str, str] = {
    "glf_cr": "GLF-CR's protocol (xufangchn/GLF-CR codes/test_CR.py, metrics.py): the centre 128x128 crop, "
    "all bands, reflectance in [0,1]; psnr=20 log10(1/sqrt(mse)), 100 when mse is 0; ssim with their 11x11 "
    "Gaussian (sigma 1.5) centred half a pixel off, zero padding 5, the mean of the map; mean over images",
    "dsen2cr": "DSen2-CR's protocol (ameraner/dsen2-cr Code/tools/image_metrics.py): the top-left 128x128 "
    "window, all bands, reflectance in [0,1] (their code: MAE and RMSE x5, SAM in radians); mae, rmse, psnr "
    "(peak 1), sam (degrees), ssim (tf.image.ssim: 11x11 Gaussian sigma 1.5, valid map); mae_covered/"
    "sam_covered: output vs target over their cloud-and-shadow mask of the cloudy window (threshold 0.2); "
    "mae_clear/sam_clear: output vs the cloudy input over its clear pixels; 0 where a class is empty; mean "
    "over images (a NaN of their code, the SAM of a zero spectrum, is left out)",
    "allclear": "AllClear's protocol (Zhou-Hangyu/allclear allclear/benchmark.py, Metrics): only the pixels "
    "clear in the target (the cloud detector run on the target), all bands, reflectance in [0,1]; mae, rmse, "
    "psnr, ssim (11x11 Gaussian sigma 1.5 on the masked images, the map's mean over the mask); sam as their "
    "code computes it (vectors normalised along image rows, not bands); sam_true: the spectral angle over the "
    "same pixels; an image without clear pixels has no value (their NaN-mean); mean over images",
    "uncrtaints": "UnCRtainTS' protocol (PatrickTUM/UnCRtainTS), which our field protocol is: the whole "
    "image, all bands, reflectance in [0,1]; mean over images",
}
CROP = 128  # GLF-CR's centre crop and DSen2-CR's window
NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's


def parse_author_protocols(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"glf_cr,allclear"`` -> ``("glf_cr", "allclear")``; raises ``ValueError`` naming an unknown one."""
    if not text:
        return ()
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in AUTHOR_PROTOCOLS]
    if unknown:
        raise ValueError(
            f"unknown protocol(s) {', '.join(unknown)}; choose from {', '.join(AUTHOR_PROTOCOLS)}"
        )
    return tuple(dict.fromkeys(names))


def _floats(*arrays: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def glf_cr_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """GLF-CR's PSNR and SSIM of the centre 128 x 128 crop of two ``(C, H, W)`` arrays in [0, 1]."""
    p, t = _floats(pred, gt)
    h, w = p.shape[-2:]
    y, x = max(0, h - CROP) // 2, max(0, w - CROP) // 2
    p, t = p[:, y : y + CROP, x : x + CROP], t[:, y : y + CROP, x : x + CROP]
    mse = float(np.mean((p - t) ** 2))
    psnr = 100.0 if mse == 0 else 20 * math.log10(1.0 / math.sqrt(mse))
    return {"psnr": psnr, "ssim": glf_cr_ssim(p, t)}


def _dsen2cr_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Their ``get_sam``: ``acos(clip(<a, b> / |a| / |b|, -1, 1))`` per pixel, radians; NaN for a zero
    spectrum (no guard)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.sum(a * b, 0) / np.sqrt(np.sum(a * a, 0)) / np.sqrt(np.sum(b * b, 0))
        return np.arccos(np.clip(cos, -1.0, 1.0))


def dsen2cr_metrics(
    pred: np.ndarray, gt: np.ndarray, cloudy: np.ndarray, covered: np.ndarray
) -> dict[str, float]:
    """DSen2-CR's metrics of the top-left 128 x 128 window of ``(C, H, W)`` arrays in [0, 1];
    ``covered``: the ``(h, w)`` bool cloud-and-shadow mask of that window of ``cloudy``."""
    p, t, c = (a[:, :CROP, :CROP] for a in _floats(pred, gt, cloudy))
    covered = np.asarray(covered, dtype=bool)
    if covered.shape != p.shape[1:]:
        raise ValueError(f"dsen2cr_metrics: mask of shape {covered.shape} for a window of {p.shape[1:]}")
    bands = p.shape[0]
    rmse = math.sqrt(float(np.mean((p - t) ** 2)))
    out = {
        "mae": float(np.mean(np.abs(p - t))),
        "rmse": rmse,
        "psnr": math.inf if rmse == 0 else 20 * math.log10(1.0 / rmse),
        "sam": math.degrees(float(np.mean(_dsen2cr_angles(t, p)))),
        "ssim": tf_ssim(p, t),
    }
    clear = ~covered
    for name, pixels, ref in (("covered", covered, t), ("clear", clear, c)):
        n = int(pixels.sum())
        out[f"mae_{name}"] = float(np.abs(p - ref)[:, pixels].sum() / (n * bands)) if n else 0.0
        out[f"sam_{name}"] = math.degrees(float(_dsen2cr_angles(ref, p)[pixels].sum() / n)) if n else 0.0
    return out


def allclear_sam(pred: np.ndarray, gt: np.ndarray, clear: np.ndarray) -> float:
    """AllClear's ``Metrics.sam``: vectors normalised along image rows (``F.normalize(x, dim=2)`` of
    (N, C, H, W)), the angle of each (band, column) pair, weighted by that column's masked pixels."""
    p, t = _floats(pred, gt)
    m = np.asarray(clear, dtype=np.float64)
    unit_p = p / np.maximum(np.sqrt(np.sum(p * p, axis=1, keepdims=True)), NORMALIZE_EPS)
    unit_t = t / np.maximum(np.sqrt(np.sum(t * t, axis=1, keepdims=True)), NORMALIZE_EPS)
    angles = np.degrees(np.arccos(np.clip(np.sum(unit_p * unit_t, axis=1), -1.0, 1.0)))  # (C, W)
    return float(np.sum(angles[:, None, :] * m[None]) / (p.shape[0] * m.sum()))


def allclear_metrics(pred: np.ndarray, gt: np.ndarray, clear: np.ndarray) -> dict[str, float]:
    """AllClear's metrics over the pixels of ``clear`` (``(H, W)`` bool, clear in the target) of two
    ``(C, H, W)`` arrays in [0, 1]; empty when no pixel is clear."""
    p, t = _floats(pred, gt)
    clear = np.asarray(clear, dtype=bool)
    if not clear.any():
        return {}
    diff = (p - t)[:, clear]
    rmse = math.sqrt(float(np.mean(diff**2)))
    return {
        "mae": float(np.mean(np.abs(diff))),
        "rmse": rmse,
        "psnr": math.inf if rmse == 0 else 20 * math.log10(1.0 / rmse),
        "sam": allclear_sam(p, t, clear),
        "sam_true": float(spectral_angle(p, t)[clear].mean()),
        "ssim": float(allclear_ssim_map(p, t, clear)[:, clear].mean()),
    }


class AuthorProtocols:
    """The protocols ``names`` for data with channels ``band_names`` (None: plain images, whose 3
    channels are a natural-colour preview); ``detector``: the cloud detector of AllClear's target
    masks (``none``: every target pixel counts as clear). DSen2-CR's masks use its own detector.
    Raises ``ValueError`` (one line) when a protocol cannot run on such data."""

    def __init__(
        self,
        names: Sequence[str],
        band_names: tuple[str, ...] | None,
        n_channels: int,
        detector: str = "auto",
    ) -> None:
        self.names = tuple(names)
        self.is_preview = band_names is None and n_channels == 3
        self.band_names = RGB_NAMES if self.is_preview else band_names
        self.detector = resolve_detector(detector, self.band_names) if "allclear" in self.names else "none"
        # DSen2-CR's split uses its own cloud-and-shadow detector; on data without B1, B8, B10, B11
        # (3-band images) only that detector's visible-band rule can run: the rgb detector.
        self.dsen2cr_detector = "none"
        if "dsen2cr" in self.names:
            try:
                self.dsen2cr_detector = resolve_detector("cloud_shadow", self.band_names)
            except ValueError as err:
                try:
                    self.dsen2cr_detector = resolve_detector("rgb", self.band_names)
                except ValueError:
                    raise ValueError(f"protocol dsen2cr masks clouds with its own detector: {err}") from None

    def mask(self, image: np.ndarray, detector: str) -> np.ndarray:
        return cloud_mask(image, detector, self.band_names, is_preview=self.is_preview)

    def measure(
        self, pred: np.ndarray, gt: np.ndarray, cloudy: np.ndarray | None
    ) -> dict[str, dict[str, float]]:
        """Protocol -> metrics of one ``(C, H, W)`` output (or cloudy input) against the target;
        ``cloudy``: the cloudy input (DSen2-CR's split needs it). A value their code makes NaN
        (DSen2-CR's SAM of a zero spectrum) and a protocol without any value for this image
        (AllClear, no clear pixel) are left out, so the mean over images is their NaN-mean."""
        out: dict[str, dict[str, float]] = {}
        for name in self.names:
            if name == "glf_cr":
                out[name] = glf_cr_metrics(pred, gt)
            elif name == "uncrtaints":
                out[name] = field_metrics(
                    np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
                )
            elif name == "dsen2cr":
                if cloudy is None:
                    raise ValueError(
                        "protocol dsen2cr needs the cloudy input: its split is over its cloud mask"
                    )
                window = np.asarray(cloudy)[:, :CROP, :CROP]
                out[name] = dsen2cr_metrics(pred, gt, cloudy, self.mask(window, self.dsen2cr_detector))
            elif name == "allclear":
                clear = (
                    np.ones(np.shape(gt)[1:], bool)
                    if self.detector == "none"
                    else ~self.mask(gt, self.detector)
                )
                out[name] = allclear_metrics(pred, gt, clear)
        return {p: kept for p, values in out.items() if (kept := {k: v for k, v in values.items() if v == v})}
