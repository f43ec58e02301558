"""Synthetic cloud-free land-cover scenes (Sentinel-2-like true colour) and matching SAR.

A scene is built in layers on a pixel grid of nominally 10 m: agricultural parcels
(rectangular strips or anisotropic Voronoi cells, each with a crop type, a "vigour" and
row texture), forest patches and hedgerows, towns and villages (street grid, red / grey
roofs, gardens), lakes, a meandering river with riparian trees, and roads. Besides the
RGB image it returns a land-cover label map and a per-pixel ``vigor`` anomaly (biomass /
roughness / building strength, roughly N(0, 1)) that the SAR simulation also uses, so
that the SAR carries parcel-level information about the optical scene.

SAR channels (:func:`make_sar`, stored as an RGB PNG by :mod:`data.synthetic`):

* R = VV backscatter, dB mapped linearly from ``[-25, 0]`` to ``[0, 1]``
* G = VH backscatter, dB mapped linearly from ``[-31, -6.5]`` to ``[0, 1]``
* B = VV/VH ratio, ``VV_dB - VH_dB`` mapped linearly from ``[-4, 14]`` to ``[0, 1]``

(the usual Sentinel-1 false-colour composite: vegetation greyish, bare soil purple,
water dark blue, built-up bright yellow-white)

with multiplicative gamma speckle (``looks`` looks, independent in VV and VH).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from data.synthetic_clouds import fractal_noise

__all__ = [
    "CLASS_NAMES",
    "WATER",
    "FOREST",
    "GRASS",
    "URBAN",
    "ROAD",
    "CROP_GREEN",
    "CROP_DARK",
    "CROP_YELLOW",
    "CROP_BARE",
    "CROP_STUBBLE",
    "SAR_RANGES_DB",
    "Scene",
    "generate_scene",
    "make_scene",
    "make_sar",
]

WATER, FOREST, GRASS, URBAN, ROAD, CROP_GREEN, CROP_DARK, CROP_YELLOW, CROP_BARE, CROP_STUBBLE = range(10)
CLASS_NAMES = (
    "water",
    "forest",
    "grass",
    "urban",
    "road",
    "crop_green",
    "crop_dark",
    "crop_yellow",
    "crop_bare",
    "crop_stubble",
)
_FIELD_CLASSES = np.array([CROP_GREEN, CROP_DARK, CROP_YELLOW, CROP_BARE, CROP_STUBBLE, GRASS])
_FIELD_PRIOR = np.array([0.26, 0.14, 0.14, 0.16, 0.12, 0.18])

# Base true-colour appearance per class (rough Sentinel-2 TCI preview colours).
_RGB = np.array(
    [
        [0.05, 0.08, 0.11],  # water
        [0.12, 0.18, 0.10],  # forest (broadleaf; conifers darker)
        [0.31, 0.38, 0.22],  # grass / meadow
        [0.52, 0.50, 0.49],  # urban (overridden by roofs)
        [0.60, 0.58, 0.56],  # road
        [0.29, 0.37, 0.19],  # green crop (cereals)
        [0.18, 0.27, 0.12],  # dense dark crop (maize, potato)
        [0.60, 0.56, 0.31],  # yellow (rapeseed, ripe cereal)
        [0.45, 0.38, 0.31],  # bare / ploughed soil
        [0.56, 0.50, 0.41],  # stubble / harvested
    ],
    dtype=np.float32,
)
_SOIL = np.float32([0.45, 0.39, 0.32])
_ROW_AMP = np.array([0, 0, 0, 0, 0, 0.02, 0.015, 0.015, 0.045, 0.03], dtype=np.float32)
_ROOFS = np.array(
    [
        [0.64, 0.33, 0.25],
        [0.55, 0.53, 0.52],
        [0.33, 0.32, 0.33],
        [0.82, 0.81, 0.79],
        [0.23, 0.31, 0.15],
    ],
    dtype=np.float32,
)  # red, grey, dark, white, garden
_ROOF_P = np.array([0.34, 0.24, 0.12, 0.08, 0.22])

# SAR: mean (VV, VH) dB per class and dB change per unit of vigour.
_SAR_DB = np.array(
    [
        [-21.0, -28.0],
        [-7.5, -13.5],
        [-10.5, -17.5],
        [-1.0, -9.0],
        [-15.0, -23.0],
        [-10.0, -16.0],
        [-8.0, -13.5],
        [-9.0, -15.5],
        [-11.0, -20.0],
        [-13.0, -21.0],
    ],
    dtype=np.float32,
)
_SAR_GAIN = np.array([1.5, 1.0, 1.0, 4.0, 0.5, 1.5, 1.5, 1.5, 1.5, 1.5], dtype=np.float32)
SAR_RANGES_DB = {"vv": (-25.0, 0.0), "vh": (-31.0, -6.5), "ratio": (-4.0, 14.0)}


@dataclass
class Scene:
    """A synthetic scene: ``rgb`` (H, W, 3) float32 in [0, 1]; ``labels`` (H, W) uint8 class
    codes (``WATER`` ... ``CROP_STUBBLE``); ``vigor`` (H, W) float32, about N(0, 1)."""

    rgb: np.ndarray
    labels: np.ndarray
    vigor: np.ndarray


def _rot(yy: np.ndarray, xx: np.ndarray, ang: float) -> tuple[np.ndarray, np.ndarray]:
    ca, sa = np.float32(np.cos(ang)), np.float32(np.sin(ang))
    return xx * ca + yy * sa, yy * ca - xx * sa


def _parcels(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, ang: float) -> np.ndarray:
    """Parcel ids (H, W) int, 0..n-1: rotated rectangular strips or anisotropic Voronoi cells."""
    s = rng.uniform(16.0, 38.0)
    u, v = _rot(yy, xx, ang)
    if rng.random() < 0.5:
        u0, v0, ulen, vlen = float(u.min()), float(v.min()), float(np.ptp(u)), float(np.ptp(v))
        n_str = int(ulen / (0.6 * s)) + 2
        edges = u0 - rng.uniform(0, s) + np.cumsum(rng.uniform(0.6 * s, 1.6 * s, n_str))
        strip = np.searchsorted(edges, u)
        n_cut = int(vlen / (0.8 * s)) + 3
        cuts = (
            v0
            - rng.uniform(0, 3 * s, (n_str + 1, 1))
            + np.cumsum(rng.uniform(0.8 * s, 3.0 * s, (n_str + 1, n_cut)), axis=1)
        )
        seg = (v[..., None] > cuts[strip].astype(np.float32)).sum(-1)
        ids = strip * (n_cut + 1) + seg
    else:
        a = rng.uniform(1.0, 2.2)
        pts = np.stack([u.ravel(), v.ravel() / a], axis=1)
        lo, hi = pts.min(0) - s, pts.max(0) + s
        gu, gv = np.meshgrid(np.arange(lo[0], hi[0], s), np.arange(lo[1], hi[1], s))
        seeds = np.stack([gu.ravel(), gv.ravel()], 1) + rng.uniform(-0.45 * s, 0.45 * s, (gu.size, 2))
        ids = cKDTree(seeds).query(pts, k=1)[1].reshape(u.shape)
    return np.unique(ids, return_inverse=True)[1].reshape(u.shape)


def _curve_mask(
    shape: tuple[int, int], lines: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise polylines ``(y, x, width)`` and return (inside mask, distance to centreline)."""
    h, w = shape
    feat = np.zeros((h, w), bool)
    wgrid = np.zeros((h, w), np.float32)
    for y, x, wid in lines:
        r, c = np.rint(y).astype(int), np.rint(x).astype(int)
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        feat[r[ok], c[ok]] = True
        wgrid[r[ok], c[ok]] = wid[ok]
    if not feat.any():
        return feat, np.full((h, w), np.inf, np.float32)
    dist, (iy, ix) = ndimage.distance_transform_edt(~feat, return_indices=True)
    return dist <= 0.5 * wgrid[iy, ix], dist.astype(np.float32)


def _meander(
    rng: np.random.Generator,
    h: int,
    w: int,
    ang: float,
    t0: float,
    amp: float,
    width: float,
    through: tuple[float, float] | None = None,
) -> tuple[np.ndarray, ...]:
    """A curve crossing the frame at angle ``ang``: straight line + sum of sines across it."""
    half = 0.5 * float(np.hypot(h, w)) + 10.0
    s = np.arange(-half, half, 0.4, dtype=np.float32)
    t = np.full_like(s, t0)
    for _ in range(3):
        lam = rng.uniform(50.0, 240.0)
        t += (
            amp
            * lam
            / 240.0
            * rng.uniform(0.3, 1.0)
            * np.sin(2 * np.pi * s / lam + rng.uniform(0, 2 * np.pi))
        )
    cy, cx = through if through is not None else (0.5 * h, 0.5 * w)
    y = cy + s * np.sin(ang) + t * np.cos(ang)
    x = cx + s * np.cos(ang) - t * np.sin(ang)
    wid = width * (1.0 + 0.25 * np.sin(2 * np.pi * s / rng.uniform(80, 200) + rng.uniform(0, 6.3)))
    return y, x, wid.astype(np.float32)


def generate_scene(rng: np.random.Generator, size: int = 256) -> Scene:
    """Make one cloud-free scene of ``size`` x ``size`` pixels (see :class:`Scene`)."""
    h = w = int(size)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0.0, np.pi)  # dominant orientation of parcels, streets and some roads

    def noise(beta: float = 3.0, fmin: float = 2.0) -> np.ndarray:
        return fractal_noise(rng, (h, w), beta=beta, fmin=fmin, scale=256.0)

    # Parcels: crop type, vigour and row texture.
    ids = _parcels(rng, yy, xx, ang)
    n = int(ids.max()) + 1
    crop = rng.choice(_FIELD_CLASSES, size=n, p=rng.dirichlet(_FIELD_PRIOR * 12.0))
    labels = crop[ids].astype(np.uint8)
    vigor = (rng.standard_normal(n).astype(np.float32)[ids] + 0.3 * noise(2.5, 4.0)).astype(np.float32)
    row_ang = np.where(rng.random(n) < 0.7, ang, ang + np.pi / 2) + rng.normal(0, 0.05, n)
    row_per = rng.uniform(2.4, 5.0, n)
    ra, rp = row_ang[ids].astype(np.float32), row_per[ids].astype(np.float32)
    rows = np.sin(2 * np.pi * (xx * np.cos(ra) + yy * np.sin(ra)) / rp)
    edge = np.zeros((h, w), bool)
    edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    edge[1:, :] |= ids[1:, :] != ids[:-1, :]

    # Forest patches (irregular) and hedgerows (gappy, on parcel boundaries).
    fn = noise(3.2, 2.0)
    forest = fn > np.quantile(fn, 1.0 - rng.uniform(0.0, 0.4))
    if rng.random() < 0.5:
        forest |= edge & (noise(2.0, 8.0) > rng.uniform(-0.5, 0.8))
    labels[forest] = FOREST

    # Towns and villages with a street grid and houses.
    shape_n = noise(2.6, 3.0)
    urban = np.zeros((h, w), bool)
    towns = [(rng.uniform(25, 60), 0.35)] if rng.random() < 0.6 else []
    towns += [(rng.uniform(6, 16), 0.25) for _ in range(rng.poisson(1.2))]
    centres = []
    for radius, rough in towns:
        cy, cx = rng.uniform(-0.1, 1.1, 2) * (h, w)
        centres.append((cy, cx))
        urban |= np.hypot(yy - cy, xx - cx) / radius + rough * shape_n < 1.0
    bu, bv = _rot(yy, xx, ang + (0.0 if rng.random() < 0.7 else rng.uniform(-0.4, 0.4)))
    block, hs = rng.uniform(9.0, 16.0), rng.uniform(2.8, 4.8)
    street = (np.mod(bu, block) < 1.6) | (np.mod(bv, block) < 1.6)
    key = np.mod(
        np.floor(bu / hs).astype(np.int64) * 92821 + np.floor(bv / hs).astype(np.int64) * 68917, 4096
    )
    roof = rng.choice(len(_ROOFS), size=4096, p=_ROOF_P)[key]
    gap = (np.mod(bu, hs) < 0.7) | (roof == len(_ROOFS) - 1)
    bvig = rng.normal(0.8, 0.8, 4096).astype(np.float32)[key]
    labels[urban] = URBAN
    vigor = np.where(urban, np.where(street, -2.0, np.where(gap, -2.5, bvig)), vigor)

    # Lakes, a meandering river with riparian trees, roads (bridges over rivers, not lakes).
    lake = np.zeros((h, w), bool)
    if rng.random() < 0.35:
        cy, cx, radius = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w, rng.uniform(12, 45)
        lake = np.hypot(yy - cy, xx - cx) / radius + 0.45 * noise(3.0, 3.0) < 1.0
    water = lake.copy()
    if rng.random() < 0.6:
        line = _meander(
            rng,
            h,
            w,
            rng.uniform(0, np.pi),
            rng.uniform(-0.35, 0.35) * h,
            rng.uniform(10.0, 45.0),
            rng.uniform(2.5, 8.0),
        )
        river, rdist = _curve_mask((h, w), [line])
        bank = (rdist < 0.5 * line[2].mean() + rng.uniform(1.0, 4.0)) & ~river & ~urban
        labels[bank & (noise(2.0, 8.0) > 0.0)] = FOREST
        water |= river
    roads = []
    for i in range(int(rng.integers(1, 4)) + (1 if centres else 0)):
        r_ang = ang + rng.choice([0.0, np.pi / 2]) if rng.random() < 0.6 else rng.uniform(0, np.pi)
        through = centres[0] if (i == 0 and centres) else tuple(rng.uniform(0, 1, 2) * (h, w))
        roads.append(_meander(rng, h, w, r_ang, 0.0, rng.uniform(0.0, 8.0), rng.uniform(1.4, 3.0), through))
    road = _curve_mask((h, w), roads)[0] & ~lake
    labels[water] = WATER
    labels[road] = ROAD
    wn = noise(3.0, 2.0)
    vigor = np.where(water, wn, np.where(road, 0.0, vigor))

    # Colours.
    crowns = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 0.8) * 3.0
    lowf = noise(3.0, 2.0)
    conifer = (lowf > 0.3)[..., None]
    fcol = np.where(conifer, np.float32([0.08, 0.12, 0.08]), _RGB[FOREST]) * (1 + 0.22 * crowns)[..., None]
    rgb = (
        _RGB[labels] * (1.0 + 0.07 * vigor + 0.03 * rng.standard_normal(n).astype(np.float32)[ids])[..., None]
    )
    veg = (labels == GRASS) | (labels == CROP_GREEN) | (labels == CROP_DARK)
    sparse = (np.clip(-0.15 * vigor, 0.0, 0.4) * veg)[..., None]  # weak vegetation shows soil
    rgb = rgb * (1 - sparse) + _SOIL * sparse + (_ROW_AMP[labels] * rows)[..., None]
    rgb = np.where((labels == FOREST)[..., None], fcol, rgb)
    ucol = np.where(street[..., None], np.float32([0.42, 0.41, 0.40]), _ROOFS[roof])
    rgb = np.where((labels == URBAN)[..., None], ucol * (1 + 0.06 * np.clip(bvig, -2, 3))[..., None], rgb)
    tint = rng.uniform(0, 1)
    wcol = (1 - tint) * np.float32([0.03, 0.06, 0.11]) + tint * np.float32([0.08, 0.12, 0.10])
    rgb = np.where(water[..., None], wcol * (1 + 0.15 * wn)[..., None], rgb)
    rgb = np.where(road[..., None], _RGB[ROAD] * rng.uniform(0.85, 1.1), rgb)
    rgb *= (1.0 + 0.05 * lowf)[..., None]
    rgb = ndimage.gaussian_filter(rgb, (0.55, 0.55, 0)) + np.float32([0.015, 0.02, 0.035])
    rgb += rng.normal(0.0, 0.006, rgb.shape).astype(np.float32)
    return Scene(np.clip(rgb, 0, 1).astype(np.float32), labels, vigor.astype(np.float32))


def make_scene(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Cloud-free scene: ``(rgb (H, W, 3) float32 in [0, 1], labels (H, W) uint8)``, H = W = size."""
    scene = generate_scene(rng, size)
    return scene.rgb, scene.labels


def make_sar(
    labels: np.ndarray,
    rng: np.random.Generator,
    vigor: np.ndarray | None = None,
    looks: float = 4.0,
    blur: float = 0.7,
) -> np.ndarray:
    """Simulate a dual-pol SAR image of a scene (clouds play no part: SAR sees through them).

    Args:
        labels: (H, W) int land-cover codes from :func:`generate_scene` / :func:`make_scene`.
        rng: random generator (speckle and a smooth soil-moisture modulation).
        vigor: optional (H, W) float vigour anomaly from :class:`Scene`; it shifts the
            backscatter per parcel / building (without it, fields vary only by crop type).
        looks: number of looks of the multiplicative gamma speckle (mean 1, var 1/looks).
        blur: Gaussian sigma (pixels) applied to the backscatter before speckle.

    Returns:
        (H, W, 3) float32 in [0, 1]: VV dB, VH dB, VV/VH ratio dB (ranges in
        ``SAR_RANGES_DB``). Water is dark, built-up bright, vegetation intermediate.
    """
    lab = np.asarray(labels).astype(np.intp)
    if lab.ndim != 2 or lab.min() < 0 or lab.max() >= len(_SAR_DB):
        raise ValueError("labels must be an (H, W) map of class codes 0..9")
    db = _SAR_DB[lab]
    if vigor is not None:
        db = db + (_SAR_GAIN[lab] * np.asarray(vigor, np.float32))[..., None] * np.float32([1.0, 1.2])
    db = db + 0.8 * fractal_noise(rng, lab.shape, beta=3.0, fmin=2.0, scale=256.0)[..., None]
    lin = np.power(np.float32(10.0), db / np.float32(10.0))
    if blur > 0:
        lin = ndimage.gaussian_filter(lin, (blur, blur, 0))
    lin *= rng.gamma(looks, 1.0 / looks, size=lin.shape).astype(np.float32)
    db = np.float32(10.0) * np.log10(np.maximum(lin, np.float32(1e-6)))
    out = np.empty(lab.shape + (3,), np.float32)
    for ch, (key, val) in enumerate(
        (("vv", db[..., 0]), ("vh", db[..., 1]), ("ratio", db[..., 0] - db[..., 1]))
    ):
        lo, hi = SAR_RANGES_DB[key]
        out[..., ch] = (val - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0)
