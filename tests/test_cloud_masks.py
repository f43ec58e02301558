"""Cloud masks for evaluation (metrics.cloud_masks): the field's s2cloudless call reproduced bit for
bit, blank patches, detector choice and its errors, and a sanity check on synthetic clouds whose
positions are known."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from data.sentinel import S2_BANDS, s2_to_unit
from data.synthetic_clouds import add_clouds
from metrics.cloud_masks import MissingDependency, cloud_mask, resolve_detector
from metrics.protocols import field_metrics
from tests.helpers import smooth_image
from tests.sen12mscr_fixtures import s2_dn


def field_loader_s2cloudless(dn: np.ndarray) -> np.ndarray:
    """UnCRtainTS' get_cloud_map(img, 's2cloudless_mask', detector) re-written from its facts:
    clip the DNs to [0, 10000]; a blank patch (mean and std below 1e-5) is all cloud; otherwise
    S2PixelCloudDetector(threshold=0.4, all_bands=True, average_over=4, dilation_size=2)
    .get_cloud_masks of img / 10000, bands last, as a batch of one; float32."""
    from s2cloudless import S2PixelCloudDetector

    img = np.clip(dn, 0, 10000)
    mask = np.ones((img.shape[-1], img.shape[-1]))
    if not (img.mean() < 1e-5 and img.std() < 1e-5):
        detector = S2PixelCloudDetector(threshold=0.4, all_bands=True, average_over=4, dilation_size=2)
        mask = detector.get_cloud_masks(np.moveaxis(img / 10000, 0, -1)[None, ...])[0, ...]
    return mask.astype(np.float32)


@pytest.fixture(scope="module")
def cloudy_dn() -> np.ndarray:
    """(13, 48, 48) uint16 DNs: smooth ground with a bright cloud in the middle, one pixel > 10000."""
    return s2_dn(np.random.default_rng(0), 48, cloudy=True)


def test_s2cloudless_equals_the_field_loader(cloudy_dn):
    pytest.importorskip("s2cloudless")
    reference = field_loader_s2cloudless(cloudy_dn)
    assert 0.05 < reference.mean() < 0.95  # the fixture has cloud and clear ground
    ours = cloud_mask(s2_to_unit(cloudy_dn), "s2cloudless")
    np.testing.assert_array_equal(ours.astype(np.float32), reference)
    # The same after the [-1, 1] round trip test.py's tensors take.
    tensor = torch.from_numpy(s2_to_unit(cloudy_dn)) * 2 - 1
    np.testing.assert_array_equal(cloud_mask(((tensor + 1) / 2).numpy(), "s2cloudless"), reference > 0)


@pytest.mark.parametrize("detector", ["s2cloudless", "cloud_shadow", "rgb"])
def test_blank_patch_is_all_cloud(detector):
    if detector == "s2cloudless":
        pytest.importorskip("s2cloudless")
        np.testing.assert_array_equal(field_loader_s2cloudless(np.zeros((13, 16, 16), np.uint16)), 1)
    bands = 3 if detector == "rgb" else 13
    assert cloud_mask(np.zeros((bands, 16, 16), np.float32), detector).all()


def test_rule_based_detector_is_dsen2crs(cloudy_dn):
    """cloud_shadow is the DSen2-CR model's detector on the same reflectance, not a second one."""
    from models.networks.cloud_mask import BandLayout, cloud_shadow_mask

    unit = s2_to_unit(cloudy_dn)
    expected = cloud_shadow_mask(torch.from_numpy(unit)[None], BandLayout.from_names(S2_BANDS))[0, 0]
    mask = cloud_mask(unit, "cloud_shadow")
    assert 0 < mask.mean() < 1
    np.testing.assert_array_equal(mask, expected.numpy() > 0.5)


def test_detector_choice():
    rgb = ("B4", "B3", "B2")
    auto_13 = resolve_detector("auto", S2_BANDS)
    assert auto_13 in ("s2cloudless", "cloud_shadow")
    assert resolve_detector("auto", rgb) == "rgb"
    # Without B1, B8, B10, B11 only the visible bands' rule can run: that is what auto names.
    assert resolve_detector("auto", ("B2", "B3", "B4", "B8")) == "rgb"
    assert (
        resolve_detector("rgb", S2_BANDS) == "rgb"
        and resolve_detector("cloud_shadow", S2_BANDS) == "cloud_shadow"
    )
    assert resolve_detector("auto", None) == "none" and resolve_detector("none", S2_BANDS) == "none"
    with pytest.raises(ValueError, match="needs the 13 Sentinel-2 bands"):
        resolve_detector("s2cloudless", rgb)
    with pytest.raises(ValueError, match="needs the bands B2, B3 and B4"):
        resolve_detector("cloud_shadow", ("B8", "B11"))
    with pytest.raises(
        ValueError, match="needs the bands B1, B2, B3, B4, B8, B10, B11.*use --cloud_detector rgb"
    ):
        resolve_detector("cloud_shadow", ("B2", "B3", "B4", "B8"))
    with pytest.raises(ValueError, match="needs the bands B2, B3 and B4"):
        cloud_mask(np.zeros((2, 8, 8)), "rgb", ("B8", "B11"))


def test_rgb_detector_reads_only_the_visible_bands_of_13_band_data(cloudy_dn):
    """rgb on 13 bands is the rule on B4, B3, B2 alone: the other bands change nothing, and the mask
    is not the full cloud/shadow rule's (which reads B1, B8, B10, B11 too)."""
    unit = s2_to_unit(cloudy_dn)
    visible = unit[[S2_BANDS.index(b) for b in ("B4", "B3", "B2")]]
    mask = cloud_mask(unit, "rgb", S2_BANDS)
    assert np.array_equal(mask, cloud_mask(visible, "rgb", ("B4", "B3", "B2")))
    assert not np.array_equal(mask, cloud_mask(unit, "cloud_shadow", S2_BANDS))
    others = unit.copy()
    others[[S2_BANDS.index(b) for b in ("B1", "B8", "B10", "B11")]] = 0.0
    assert np.array_equal(cloud_mask(others, "rgb", S2_BANDS), mask)
    # In any band order: a 4-band B2, B3, B4, B8 image.
    four = unit[[S2_BANDS.index(b) for b in ("B2", "B3", "B4", "B8")]]
    assert np.array_equal(cloud_mask(four, "rgb", ("B2", "B3", "B4", "B8")), mask)


def test_missing_s2cloudless_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "s2cloudless", None)  # import fails as if not installed
    assert resolve_detector("auto", S2_BANDS) == "cloud_shadow"
    with pytest.raises(MissingDependency, match="pip install s2cloudless"):
        resolve_detector("s2cloudless", S2_BANDS)


def test_coverage_tracks_known_synthetic_clouds():
    """Clouds of known position (the simcloud generator's opacity > 0.5) from 0 to 80 % cover: the
    RGB rule's coverage rises with the true one, finds most cloud pixels, and the cloudy input
    is far closer to the ground truth, in the median image, on the pixels it calls clear than on those it calls cloudy."""
    rng = np.random.default_rng(0)
    true, found, recall, gaps = [], [], [], []
    for k, cover in enumerate(np.linspace(0.0, 0.8, 9)):
        clear = smooth_image(rng, 96).astype(np.float32) / 255 * 0.5  # darker than clouds, as land is
        cloudy, opacity = add_clouds(clear, np.random.default_rng(k), cover=(cover, cover), haze=False)
        mask = cloud_mask(np.moveaxis(cloudy, -1, 0), "rgb", is_preview=True)
        clouds = opacity > 0.5
        true.append(clouds.mean())
        found.append(mask.mean())
        recall.append((mask & clouds).sum() / max(clouds.sum(), 1))
        if mask.any() and (~mask).any():
            a, b = np.moveaxis(cloudy, -1, 0).astype(np.float64), np.moveaxis(clear, -1, 0).astype(np.float64)
            gaps.append(field_metrics(a, b, mask=~mask)["psnr"] - field_metrics(a, b, mask=mask)["psnr"])
    assert np.corrcoef(true, found)[0, 1] > 0.9
    assert found[-1] - found[0] > 0.4 and np.median(recall[1:]) > 0.8, (found, recall)
    gaps = gaps[1:]  # the cloud-free image: both classes untouched (inf - inf)
    assert len(gaps) == 8 and min(gaps) > 3 and np.median(gaps) > 6, gaps  # dB
