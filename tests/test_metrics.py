"""Metrics (util/metrics.py, util/metrics_io.py), cross-checked against scikit-image and
hand-computed values.  CPU only, no network, a few seconds."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from util.metrics import (
    MetricsTable,
    field_metrics,
    gaussian_ssim,
    paper_metrics,
    spectral_angle,
    to_unit_chw,
)
from util.metrics_io import to_uint8


def sk_ssim(a: np.ndarray, b: np.ndarray, data_range: float, channel_axis: int) -> float:
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=channel_axis,
    )


def noisy_pair_u8(rng: np.random.Generator, h: int, w: int, noise: int = 25) -> tuple[np.ndarray, np.ndarray]:
    # smooth-ish ground truth plus noise, so SSIM is neither ~0 nor ~1
    base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:h, :w]
    gt = base.astype(np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-noise, noise + 1, gt.shape), 0, 255).astype(np.uint8)
    return pred, gt


# ----------------------------------------------------------------------------- paper protocol


@pytest.mark.parametrize("shape", [(11, 11), (32, 32), (40, 57), (64, 48)])
def test_paper_metrics_match_skimage(shape):
    rng = np.random.default_rng(sum(shape))
    pred, gt = noisy_pair_u8(rng, *shape)
    m = paper_metrics(pred, gt)
    assert set(m) == {"psnr", "ssim", "rmse"}
    assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=255), rel=1e-12)
    assert m["ssim"] == pytest.approx(sk_ssim(pred, gt, 255, channel_axis=2), rel=1e-9, abs=1e-12)
    diff = pred.astype(np.float64) - gt
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean(diff**2)), rel=1e-12)
    assert all(isinstance(v, float) for v in m.values())


def test_paper_metrics_known_values():
    gt = np.full((16, 16, 3), 100, np.uint8)
    pred = gt + np.uint8(3)
    m = paper_metrics(pred, gt)
    assert m["rmse"] == pytest.approx(3.0)
    assert m["psnr"] == pytest.approx(20 * math.log10(255 / 3))
    # constant images: SSIM reduces to the luminance term (2*103*100 + C1) / (103^2 + 100^2 + C1)
    c1 = (0.01 * 255) ** 2
    assert m["ssim"] == pytest.approx((2 * 103 * 100 + c1) / (103**2 + 100**2 + c1), rel=1e-12)


def test_identical_images_give_inf_psnr():
    rng = np.random.default_rng(1)
    img, _ = noisy_pair_u8(rng, 20, 20)
    m = paper_metrics(img, img)
    assert m["psnr"] == math.inf and m["rmse"] == 0.0 and m["ssim"] == pytest.approx(1.0)
    f = field_metrics(to_unit_chw(img), to_unit_chw(img))
    assert f["psnr"] == math.inf and f["rmse"] == 0.0 and f["mae"] == 0.0
    assert f["sam"] == pytest.approx(0.0, abs=1e-6) and f["ssim"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- field protocol


@pytest.mark.parametrize("bands", [1, 3, 13])
def test_field_ssim_psnr_match_skimage(bands):
    rng = np.random.default_rng(bands)
    gt = rng.uniform(0.0, 0.6, (bands, 24, 30))
    pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    m = field_metrics(pred, gt)
    assert list(m) == ["rmse", "psnr", "mae", "sam", "ssim"]
    assert m["ssim"] == pytest.approx(sk_ssim(pred, gt, 1.0, channel_axis=0), rel=1e-9)
    assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=1.0), rel=1e-12)
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean((gt - pred) ** 2)), rel=1e-12)
    assert m["psnr"] == pytest.approx(20 * math.log10(1 / m["rmse"]), rel=1e-12)
    assert m["mae"] == pytest.approx(np.mean(np.abs(gt - pred)), rel=1e-12)


def test_field_metrics_float32_input_computed_in_float64():
    rng = np.random.default_rng(7)
    gt = rng.uniform(0, 1, (4, 16, 16))
    pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    m32 = field_metrics(pred.astype(np.float32), gt.astype(np.float32))
    ref = sk_ssim(
        pred.astype(np.float32).astype(np.float64), gt.astype(np.float32).astype(np.float64), 1.0, 0
    )
    assert m32["ssim"] == pytest.approx(ref, rel=1e-9)


def test_field_metrics_known_values():
    gt = np.full((2, 12, 12), 0.3)
    pred = gt + 0.1
    m = field_metrics(pred, gt)
    assert m["rmse"] == pytest.approx(0.1) and m["mae"] == pytest.approx(0.1)
    assert m["psnr"] == pytest.approx(20.0)
    # parallel spectra: 0 up to arccos' resolution near 1 (float64: ~1e-6 degrees)
    assert m["sam"] == pytest.approx(0.0, abs=1e-5)


def test_gaussian_ssim_per_band_and_2d():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, (3, 20, 20))
    b = rng.uniform(0, 1, (3, 20, 20))
    per_band = gaussian_ssim(a, b, data_range=1.0)
    assert per_band.shape == (3,)
    for i in range(3):
        assert float(gaussian_ssim(a[i], b[i], 1.0)) == pytest.approx(
            sk_ssim(a[i], b[i], 1.0, None), rel=1e-9
        )


def test_sam_known_angles():
    t = np.zeros((2, 1, 6))
    p = np.zeros((2, 1, 6))
    t[:, 0, 0], p[:, 0, 0] = (1, 0), (0, 1)  # orthogonal: 90
    t[:, 0, 1], p[:, 0, 1] = (0.2, 0.4), (0.2, 0.4)  # identical: 0
    t[:, 0, 2], p[:, 0, 2] = (0.2, 0.4), (0.1, 0.2)  # parallel, other brightness: 0
    t[:, 0, 3], p[:, 0, 3] = (1, 0), (0.5, 0.5)  # 45
    t[:, 0, 4], p[:, 0, 4] = (0, 0), (0, 0)  # both zero: defined as 0
    t[:, 0, 5], p[:, 0, 5] = (0.3, 0.1), (0, 0)  # one zero: 90
    angles = spectral_angle(p, t)
    assert angles.shape == (1, 6)
    np.testing.assert_allclose(angles[0], [90, 0, 0, 45, 0, 90], atol=1e-5)  # arccos near 1: ~1e-6 deg
    gt = np.pad(t, ((0, 0), (5, 5), (3, 2)), constant_values=0.5)  # 11x11 so field_metrics accepts it
    pr = np.pad(p, ((0, 0), (5, 5), (3, 2)), constant_values=0.5)
    assert field_metrics(pr, gt)["sam"] == pytest.approx(225 / 121, abs=1e-5)


def test_sam_three_bands_by_hand():
    t = np.array([0.1, 0.2, 0.3]).reshape(3, 1, 1)
    p = np.array([0.3, 0.2, 0.1]).reshape(3, 1, 1)
    expected = math.degrees(math.acos(0.1 / 0.14))  # <t,p> = 0.1, |t||p| = 0.14
    assert spectral_angle(p, t)[0, 0] == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("pred", "gt", "match"),
    [
        (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 17, 3), np.uint8), "shape mismatch"),
        (np.zeros((16, 16, 3), np.float32), np.zeros((16, 16, 3), np.float32), "must be uint8"),
        (np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((16, 16, 4), np.uint8), np.zeros((16, 16, 4), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), "at least 11x11"),
        ([[1]], np.zeros((16, 16, 3), np.uint8), "numpy array"),
    ],
)
def test_paper_metrics_validation(pred, gt, match):
    with pytest.raises(ValueError, match=match):
        paper_metrics(pred, gt)


@pytest.mark.parametrize(
    ("pred", "gt", "match"),
    [
        (np.zeros((3, 16, 16)), np.zeros((3, 16, 15)), "shape mismatch"),
        (np.zeros((3, 16, 16), np.uint8), np.zeros((3, 16, 16), np.uint8), "to_unit_chw"),
        (np.zeros((16, 16)), np.zeros((16, 16)), r"\(C, H, W\)"),
        (np.zeros((16, 16, 3)), np.zeros((16, 16, 3)), "channels-last"),
        (np.full((3, 16, 16), -0.5), np.zeros((3, 16, 16)), r"\[0, 1\]"),
        (np.zeros((3, 16, 16)), np.full((3, 16, 16), 255.0), r"\[0, 1\]"),
        (np.full((3, 16, 16), np.nan), np.zeros((3, 16, 16)), "NaN"),
        (np.zeros((3, 10, 16)), np.zeros((3, 10, 16)), "at least 11x11"),
    ],
)
def test_field_metrics_validation(pred, gt, match):
    with pytest.raises(ValueError, match=match):
        field_metrics(pred, gt)


def test_conversions():
    u8 = np.array([[[0, 128, 255]]], np.uint8)
    np.testing.assert_allclose(to_unit_chw(u8)[:, 0, 0], [0, 128 / 255, 1])
    assert to_unit_chw(u8).shape == (3, 1, 1)
    u16 = np.array([[[0, 128, 129, 257, 65535]]], np.uint16)
    np.testing.assert_array_equal(to_uint8(u16), [[[0, 0, 1, 1, 255]]])
    assert to_uint8(u8) is u8
    np.testing.assert_allclose(to_unit_chw(u8.astype(np.uint16) * 257), to_unit_chw(u8), rtol=1e-15)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        to_unit_chw(u8.astype(np.float32))


# ----------------------------------------------------------------------------- MetricsTable


def _filled_table() -> MetricsTable:
    t = MetricsTable(reference="real_B")
    t.add("a", "fake_B", "paper", {"psnr": 30.0, "ssim": 0.9, "rmse": 5.0})
    t.add("a", "real_A", "paper", {"psnr": 10.0, "ssim": 0.5, "rmse": 50.0})
    t.add("b", "fake_B", "paper", {"psnr": 20.0, "ssim": 0.7, "rmse": 7.0})
    t.add("b", "real_A", "paper", {"psnr": math.inf, "ssim": 1.0, "rmse": 0.0})
    t.add("a", "fake_B", "field", {"rmse": 0.02, "psnr": 33.9, "mae": 0.01, "sam": 3.0, "ssim": 0.95})
    return t


def test_table_summary_statistics():
    s = _filled_table().summary()
    assert s["comparisons"] == {"fake_B": "fake_B vs real_B", "real_A": "real_A vs real_B (cloudy input)"}
    assert set(s["protocols"]) == {"paper", "field"}
    psnr = s["results"]["paper"]["fake_B"]["psnr"]
    assert psnr == {"mean": 25.0, "std": 5.0, "count": 2, "n_inf": 0, "mean_finite": 25.0, "std_finite": 5.0}
    inf_psnr = s["results"]["paper"]["real_A"]["psnr"]
    assert inf_psnr["mean"] == math.inf and math.isnan(inf_psnr["std"])
    assert inf_psnr["n_inf"] == 1 and inf_psnr["mean_finite"] == 10.0 and inf_psnr["count"] == 2
    assert s["results"]["field"]["fake_B"]["sam"]["count"] == 1
    assert "real_A" not in s["results"]["field"]


def test_table_json_is_strict_and_nulls_inf(tmp_path):
    path = tmp_path / "sub" / "metrics_summary.json"
    _filled_table().write_summary_json(path)

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(path.read_text(), parse_constant=no_constants)
    inf_psnr = data["results"]["paper"]["real_A"]["psnr"]
    assert inf_psnr["mean"] is None and inf_psnr["std"] is None
    assert inf_psnr["n_inf"] == 1 and inf_psnr["mean_finite"] == 10.0
    assert data["results"]["paper"]["fake_B"]["rmse"]["mean"] == 6.0
    assert "null" in data["nonfinite"] and data["reference"] == "real_B"
    assert not list(tmp_path.rglob("*.tmp*"))


def test_table_csv(tmp_path):
    path = tmp_path / "metrics_per_image.csv"
    _filled_table().write_csv(path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "stem",
        "comparison",
        "reference",
        "paper_psnr",
        "paper_ssim",
        "paper_rmse",
        "field_rmse",
        "field_psnr",
        "field_mae",
        "field_sam",
        "field_ssim",
    ]
    assert [(r["stem"], r["comparison"]) for r in rows] == [
        ("a", "fake_B"),
        ("a", "real_A"),
        ("b", "fake_B"),
        ("b", "real_A"),
    ]
    assert rows[0]["reference"] == "real_B" and float(rows[0]["field_sam"]) == 3.0
    assert rows[3]["paper_psnr"] == "inf" and float(rows[3]["paper_psnr"]) == math.inf
    assert rows[1]["field_psnr"] == ""  # protocol not computed for that comparison


def test_table_csv_full_precision(tmp_path):
    t = MetricsTable()
    t.add("x", "fake_B", "paper", {"psnr": 1 / 3})
    t.write_csv(tmp_path / "m.csv")
    assert float(next(csv.DictReader(open(tmp_path / "m.csv")))["paper_psnr"]) == 1 / 3


def test_table_rejects_duplicates_and_empty():
    t = _filled_table()
    with pytest.raises(ValueError, match="duplicate"):
        t.add("a", "fake_B", "paper", {"psnr": 1.0})
    with pytest.raises(ValueError, match="empty"):
        t.add("c", "fake_B", "paper", {})
    assert len(t) == 2


def test_format_table():
    text = _filled_table().format_table()
    lines = text.splitlines()
    assert "paper protocol" in lines[0] and "field protocol" in lines[0]
    assert any(line.startswith("fake_B vs real_B ") and "25.000" in line for line in lines)
    assert any(line.startswith("real_A vs real_B (cloudy input)") and " inf " in line for line in lines)
    assert "1 of 2 images identical" in text and "10.000" in text
    assert MetricsTable().format_table() == "(no metrics)"
