"""DSen2-CR's cloud and shadow mask: synthetic scenes, the RGB fallback on PNG values, a SciPy reading
of the official detectors, and the threshold and band-order options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage, signal

from models.networks.cloud_mask import BandLayout, cloud_shadow_mask
from tests.test_dsen2cr import S2, build

S2_LAYOUT = BandLayout(blue=1, green=2, red=3, aerosol=0, cirrus=10, nir=7, swir1=11)
RGB_LAYOUT = BandLayout(blue=2, green=1, red=0)


# ----------------------------------------------------------------------------- cloud mask
def scene(size: int = 32) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(1, 13, size, size) reflectance of vegetated ground with a bright cloud disc and a dark shadow,
    and the (size, size) bool masks of the cloud and of the shadow."""
    rng = np.random.default_rng(0)
    ground = np.array([0.12, 0.05, 0.08, 0.06, 0.12, 0.25, 0.3, 0.32, 0.33, 0.1, 0.005, 0.2, 0.1])
    img = ground[:, None, None] * (1 + 0.1 * rng.standard_normal((13, size, size)))
    yy, xx = np.mgrid[0:size, 0:size]
    cloud = (yy - 10) ** 2 + (xx - 10) ** 2 < 7**2
    cloud_refl = np.array([0.5, 0.55, 0.55, 0.56, 0.57, 0.58, 0.58, 0.6, 0.6, 0.3, 0.05, 0.35, 0.25])
    img[:, cloud] = cloud_refl[:, None]
    shadow = (yy >= 22) & (yy < 30) & (xx >= 20) & (xx < 30)
    img[:, shadow] *= 0.2
    return torch.from_numpy(img[None].astype(np.float32)), cloud, shadow


def test_cloud_mask_finds_bright_clouds_and_dark_shadows():
    img, cloud, shadow = scene()
    mask = cloud_shadow_mask(img, S2_LAYOUT)[0, 0].numpy().astype(bool)
    # The 5x5 median rounds the shadow's corners off; its inside is all found.
    assert mask[cloud].all() and mask[ndimage.binary_erosion(shadow, iterations=2)].all()
    assert mask[shadow].mean() > 0.8
    clear = ~ndimage.binary_dilation(cloud | shadow, iterations=4)
    assert mask[clear].mean() < 0.02
    # Snow is bright too, but its snow index (B3 high, B11 low) keeps it out of the cloud mask.
    snow = img.clone()
    snow[0, :, cloud] = torch.tensor(
        [0.6, 0.8, 0.8, 0.8, 0.8, 0.78, 0.78, 0.75, 0.75, 0.3, 0.01, 0.05, 0.04]
    )[:, None]
    assert cloud_shadow_mask(snow, S2_LAYOUT)[0, 0].numpy()[cloud].mean() < 0.05


def test_rgb_fallback_on_png_values():
    """3-band PNG values ([0, 1] = reflectance [0, 0.3]): white clouds are found with the visible tests."""
    img, cloud, shadow = scene()
    refl = img[:, [3, 2, 1]]
    png = (refl / 0.3).clamp(0, 1)
    layout = BandLayout(blue=2, green=1, red=0, reflectance_scale=0.3)
    mask = cloud_shadow_mask(png, layout)[0, 0].numpy().astype(bool)
    # Saturated at reflectance 0.3, the clouds score lower than in 13 bands: their rim can be missed.
    assert mask[ndimage.binary_erosion(cloud)].all() and mask[cloud].mean() > 0.85
    assert mask[ndimage.binary_erosion(shadow, iterations=2)].all()
    clear = ~ndimage.binary_dilation(cloud | shadow, iterations=4)
    assert mask[clear].mean() < 0.05
    # Read as reflectance (scale 1), the same white clouds would be only 0..1 of reflectance 1: too bright a
    # scene is all cloud, so the scale matters.
    assert cloud_shadow_mask(png, RGB_LAYOUT)[0, 0].mean() > mask.mean()


def reference_masks(refl: np.ndarray, threshold: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """An independent NumPy/SciPy reading of the official detectors (feature_detectors.py) for one
    (13, H, W) reflectance image, with scipy's grey closing, 2-D convolution and median filter:
    the (cloud, shadow) masks as bool arrays."""

    def ramp(x, lo, hi):
        return (x - lo) / (hi - lo)

    def nd(a, b):
        s = a + b
        s[s == 0] = 0.001
        return (a - b) / s

    score = np.ones(refl.shape[1:])
    score = np.minimum(score, ramp(refl[1], 0.1, 0.5))
    score = np.minimum(score, ramp(refl[0], 0.1, 0.3))
    score = np.minimum(score, ramp(refl[0] + refl[10], 0.15, 0.2))
    score = np.minimum(score, ramp(refl[3] + refl[2] + refl[1], 0.2, 0.8))
    score = np.minimum(score, ramp(nd(refl[2], refl[11]), 0.8, 0.6))
    score = ndimage.grey_closing(score, size=(5, 5))
    score = signal.convolve2d(score, np.ones((7, 7)) / 49, mode="same")
    cloud = np.clip(score, 1e-5, 1.0) >= threshold
    csi = (refl[7] + refl[11]) / 2
    t3 = csi.min() + 0.75 * (csi.mean() - csi.min())
    t4 = refl[1].min() + 5 / 6 * (refl[1].mean() - refl[1].min())
    shadow = np.where((csi < t3) & (refl[1] < t4), -1.0, 0.0)
    shadow = signal.medfilt2d(shadow, 5)
    return cloud, shadow < 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cloud_mask_matches_a_scipy_reading_of_the_official_detectors(seed):
    rng = np.random.default_rng(seed)
    # Ground, smooth cloud blobs of varying thickness and dark patches, with pixel noise: a mixed
    # scene in which every rule (ramps, snow index, closing, box, shadow thresholds, median) acts.
    ground = rng.uniform(0.02, 0.1, (13, 1, 1)) + 0.2 * (np.arange(13) >= 4)[:, None, None]
    cloud_spectrum = rng.uniform(0.3, 0.7, (13, 1, 1))
    thickness = ndimage.gaussian_filter(rng.standard_normal((48, 48)), 4)
    thickness = np.clip((thickness - thickness.mean()) / thickness.std() - 0.3, 0, 1)
    darkness = ndimage.gaussian_filter(rng.standard_normal((48, 48)), 3)
    darkness = np.where(darkness < -0.5 * darkness.std(), 0.3, 1.0)
    refl = ((1 - thickness) * ground + thickness * cloud_spectrum) * darkness
    refl = np.clip(refl * (1 + 0.1 * rng.standard_normal(refl.shape)), 0, 1)
    cloud, shadow = reference_masks(refl)
    assert 0.1 < cloud.mean() < 0.6 and 0.05 < shadow.mean() < 0.5  # a mixed scene
    want = (cloud | shadow).astype(np.float32)
    got = cloud_shadow_mask(torch.from_numpy(refl[None]), S2_LAYOUT)[0, 0].numpy()
    assert np.array_equal(got, want), f"{(got != want).sum()} pixels differ"


def test_mask_follows_the_threshold_and_band_order(tmp_path):
    img, cloud, _ = scene()
    loose = cloud_shadow_mask(img, S2_LAYOUT, threshold=0.05).sum()
    strict = cloud_shadow_mask(img, S2_LAYOUT, threshold=0.9).sum()
    assert loose > strict
    # --s2_bands picks the positions: B2,B3,B4 in another order give the same RGB-fallback mask.
    model = build(tmp_path, "--dataset_mode", "sen12mscr", "--s2_bands", "B2,B3,B4")
    assert (model.layout.blue, model.layout.green, model.layout.red) == (0, 1, 2) and not model.layout.full
    model = build(tmp_path / "b", "--dataset_mode", "sen12mscr")
    assert model.layout.full and model.layout.cirrus == 10 and model.layout.swir1 == 11
    assert model.layout.reflectance_scale == 1.0
    # PNG triplets are R, G, B display values; --dsen2cr_png_stretch says what white means.
    png = build(tmp_path / "c").layout
    assert (png.red, png.green, png.blue, png.full, png.reflectance_scale) == (0, 1, 2, False, 0.3)
    assert build(tmp_path / "d", "--dsen2cr_png_stretch", "0.5").layout.reflectance_scale == 0.5
    s2 = build(tmp_path / "e", *S2).layout
    assert s2 == S2_LAYOUT


def test_model_mask_uses_the_threshold_option(tmp_path):
    img, cloud, _ = scene()
    cloudy = img * 2 - 1  # reflectance -> [-1, 1]
    default = build(tmp_path, *S2).cloud_mask(cloudy)
    torch.testing.assert_close(default, cloud_shadow_mask(img, S2_LAYOUT))
    strict = build(tmp_path / "b", *S2, "--dsen2cr_cloud_threshold", "0.9").cloud_mask(cloudy)
    torch.testing.assert_close(strict, cloud_shadow_mask(img, S2_LAYOUT, threshold=0.9))
    assert strict.sum() < default.sum()
