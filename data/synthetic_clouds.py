"""Cloud simulation for optical images: thick cumulus, thin haze and cloud shadows.

Everything here is plain numpy (+ ``scipy.fft``) and works on any float image in
``[0, 1]`` of shape ``(H, W, C)`` (usually RGB), of any size. It is used

* by :mod:`data.synthetic` to make the cloudy half of the synthetic demo triplets,
* on the fly over folders of cloud-free images (the paper's simulated-cloud
  experiment), where speed matters: ``add_clouds`` takes a few milliseconds for a
  256x256 image.

Model (per pixel, all opacities in ``[0, 1]``)::

    ground  = clear * (1 - s * shadow)                 # shadow: thick mask shifted by an offset
    hazy    = ground * (1 - a_haze) + haze_colour * a_haze
    cloudy  = hazy * (1 - a_thick) + cloud_colour * a_thick
    mask    = 1 - (1 - a_haze) * (1 - a_thick)        # returned cloud opacity

``a_thick`` is multi-octave (1/f^beta) noise thresholded at the quantile that gives
the requested cloud cover, with a soft ramp at the edges; the fraction of pixels with
``a_thick >= 0.5 * thickness`` equals the drawn cover fraction.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

__all__ = ["add_clouds", "fractal_noise"]


def fractal_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    beta: float = 3.0,
    fmin: float = 1.0,
    scale: float | None = None,
) -> np.ndarray:
    """Gaussian 1/f^beta ("fractal", multi-octave) noise via an inverse FFT.

    Args:
        rng: random generator (the only source of randomness).
        shape: ``(H, W)`` of the output.
        beta: spectral exponent of the power spectrum; larger = smoother
            (2 = rough, 3 = cumulus-like, 4 = very smooth haze).
        fmin: frequencies below ``fmin`` cycles per ``scale`` pixels are flattened,
            which sets the size of the largest structures.
        scale: reference length in pixels for ``fmin`` (default ``max(H, W)``), so the
            same parameters give the same look at any resolution.

    Returns:
        ``(H, W)`` float32 array with zero mean and unit standard deviation
        (periodic over the array; crop a larger field if that matters).
    """
    h, w = int(shape[0]), int(shape[1])
    ref = float(scale if scale is not None else max(h, w))
    fy = (sfft.fftfreq(h) * ref).astype(np.float32)[:, None]
    fx = (sfft.rfftfreq(w) * ref).astype(np.float32)[None, :]
    f2 = np.maximum(fy * fy + fx * fx, np.float32(fmin * fmin))
    amp = f2 ** np.float32(-beta / 4.0)  # |F| ~ f^(-beta/2)  <=>  power ~ f^-beta
    amp[0, 0] = 0.0
    spec = np.empty((h, w // 2 + 1), dtype=np.complex64)
    spec.real = rng.standard_normal((h, w // 2 + 1), dtype=np.float32)
    spec.imag = rng.standard_normal((h, w // 2 + 1), dtype=np.float32)
    spec *= amp
    out = sfft.irfft2(spec, s=(h, w)).astype(np.float32, copy=False)
    out -= out.mean()
    std = float(out.std())
    if std > 0:
        out /= std
    return out


def _quantile(x: np.ndarray, q: float) -> float:
    """Fast ``np.quantile(x, q)`` (lower value, no interpolation) via partition."""
    flat = x.ravel()
    k = min(max(int(round(q * (flat.size - 1))), 0), flat.size - 1)
    return float(np.partition(flat, k)[k])


def _check_image(clear: np.ndarray) -> np.ndarray:
    img = np.asarray(clear)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[0] < 2 or img.shape[1] < 2:
        raise ValueError(f"add_clouds expects an (H, W, C) or (H, W) image, got shape {np.shape(clear)}")
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"add_clouds expects a float image in [0, 1], got dtype {img.dtype}")
    return img.astype(np.float32, copy=False)


def add_clouds(
    clear: np.ndarray,
    rng: np.random.Generator,
    cover: tuple[float, float] = (0.2, 0.7),
    thickness: float = 1.0,
    haze: bool = True,
    shadows: bool = True,
    thick: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Put simulated clouds on a cloud-free image.

    Args:
        clear: cloud-free image, float in ``[0, 1]``, shape ``(H, W, C)`` (any C, usually
            3) or ``(H, W)``; any size.
        rng: random generator; the output depends only on it and the arguments.
        cover: ``(low, high)``; the thick-cloud cover fraction is drawn uniformly in it
            (fraction of pixels whose thick-cloud opacity is at least half its maximum).
        thickness: maximum opacity of thick clouds in ``[0, 1]`` (1 = opaque cores).
        haze: add a thin, broad, low-opacity haze layer (opacity <= 0.35).
        shadows: darken the ground under the thick-cloud mask shifted by a random
            offset (3-10 % of the image size), as cast by a low sun.
        thick: add the thick cumulus layer (``False`` with ``haze=True`` gives haze only).

    Returns:
        ``(cloudy, mask)``: ``cloudy`` float32 with the shape of ``clear`` in ``[0, 1]``;
        ``mask`` float32 ``(H, W)`` in ``[0, 1]``, the total cloud opacity (thick and
        haze; shadows are not included). Where ``mask == 0`` and no shadow falls,
        ``cloudy == clear`` exactly.
    """
    lo, hi = float(cover[0]), float(cover[1])
    if not (0.0 <= lo <= hi <= 1.0):
        raise ValueError(f"cover must satisfy 0 <= low <= high <= 1, got {cover}")
    if not (0.0 <= thickness <= 1.0):
        raise ValueError(f"thickness must be in [0, 1], got {thickness}")
    squeeze = np.ndim(clear) == 2
    img = _check_image(clear)
    h, w = img.shape[:2]
    ref = float(max(h, w))
    frac = float(rng.uniform(lo, hi)) if hi > lo else lo

    ground = img
    a_thick = np.zeros((h, w), np.float32)
    cloud_bright = np.ones((h, w), np.float32)
    if thick and frac > 0.0 and thickness > 0.0:
        # Offset of the shadow relative to the cloud; pad the noise field so the shadow
        # comes from the (invisible) cloud field outside the frame, not from a wrap.
        ang = rng.uniform(0.0, 2.0 * np.pi)
        dist = rng.uniform(0.03, 0.10) * ref if shadows else 0.0
        dy, dx = int(round(dist * np.sin(ang))), int(round(dist * np.cos(ang)))
        ph = sfft.next_fast_len(h + abs(dy) + 8, True)
        pw = sfft.next_fast_len(w + abs(dx) + 8, True)
        beta = rng.uniform(2.7, 3.4)  # cumulus fields (rough) ... large smooth masses
        fmin = rng.uniform(1.5, 4.0)
        field = fractal_noise(rng, (ph, pw), beta=beta, fmin=fmin, scale=ref)
        oy, ox = max(0, -dy), max(0, -dx)
        crop = field[oy : oy + h, ox : ox + w]
        edge = rng.uniform(0.5, 1.4)  # soft fringe width in noise std units
        if frac >= 1.0:
            t = float(crop.min()) - edge
        else:
            t = _quantile(crop, 1.0 - frac)
        a_full = np.clip((field - t) / edge + 0.5, 0.0, 1.0)
        a_full *= a_full * (3.0 - 2.0 * a_full)  # smoothstep keeps the 0.5 level at n == t
        a_full *= np.float32(thickness)
        a_thick = a_full[oy : oy + h, ox : ox + w]
        # Thicker interior -> brighter top, fringes greyer; relief shading from the
        # field's slope towards the sun (opposite to the shadow offset).
        sy, sx = (dy / dist, dx / dist) if dist > 0 else (0.6, 0.8)
        sm = ndimage.uniform_filter(field[oy : oy + h + 3, ox : ox + w + 3], 5, mode="nearest")
        slope = sy * (sm[3 : h + 3, 1 : w + 1] - sm[:h, 1 : w + 1]) + sx * (
            sm[1 : h + 1, 3 : w + 3] - sm[1 : h + 1, :w]
        )
        cloud_bright = np.clip(0.85 + 0.04 * (crop - t) - 0.45 * slope, 0.6, 0.98).astype(np.float32)
        if shadows:
            sh = a_full[oy + dy : oy + dy + h, ox + dx : ox + dx + w]
            strength = np.float32(rng.uniform(0.45, 0.7))
            ground = img * (1.0 - strength * sh)[:, :, None]

    a_haze = np.zeros((h, w), np.float32)
    if haze:
        level = rng.uniform(0.08, 0.35)
        hn = fractal_noise(rng, (h, w), beta=rng.uniform(3.5, 4.5), fmin=1.0, scale=ref)
        a_haze = (np.clip(0.5 + 0.35 * hn, 0.0, 1.0) * level).astype(np.float32)
        haze_col = np.float32(rng.uniform(0.78, 0.9))
        ground = ground + (haze_col - ground) * a_haze[:, :, None]

    out = ground + (cloud_bright[:, :, None] - ground) * a_thick[:, :, None]
    out = np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
    mask = (1.0 - (1.0 - a_haze) * (1.0 - a_thick)).astype(np.float32)
    if squeeze:
        out = out[:, :, 0]
    return out, mask
