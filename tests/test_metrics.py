"""Metrics (metrics/): each protocol checked against its reference implementation (scikit-image's
default SSIM for the paper protocol; an independent re-implementation of UnCRtainTS' SSIM for the
field protocol) on realistic data, and against hand-computed values.  CPU only, a few seconds."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from data.sentinel import s2_to_unit
from metrics import (
    PROTOCOL_DESCRIPTIONS,
    MetricsTable,
    field_metrics,
    field_ssim,
    paper_metrics,
    paper_ssim,
    spectral_angle,
    to_uint8,
    to_unit_chw,
)
from tests.sen12mscr_fixtures import s2_dn


def skimage_default_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """What the official metrics.py computed: scikit-image's SSIM with its defaults on 8-bit RGB."""
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def uncrtaints_ssim_numpy(a: np.ndarray, b: np.ndarray) -> float:
    """UnCRtainTS' SSIM re-implemented from its definition, differently from metrics.ssim: the full
    11x11 window (outer product) slid over the zero-padded (C, H, W) image, sums over each window."""
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / 4.5)
    window = np.outer(g, g) / np.outer(g, g).sum()

    def local_mean(img):
        padded = np.pad(img, ((0, 0), (5, 5), (5, 5)))
        return np.einsum("chwij,ij->chw", sliding_window_view(padded, (11, 11), axis=(1, 2)), window)

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a**2
    var_b = local_mean(b * b) - mu_b**2
    cov = local_mean(a * b) - mu_a * mu_b
    c1, c2 = 1e-4, 9e-4
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    return float(np.mean(num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))))


def uncrtaints_ssim_torch(a: np.ndarray, b: np.ndarray) -> float:
    """The field's reference as it runs: float32 tensors (1, C, H, W), one grouped conv2d with the
    11x11 Gaussian window per band, padding 5, mean of the whole map."""
    c = a.shape[0]
    g = torch.exp(-((torch.arange(11, dtype=torch.float32) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    win = (g[:, None] @ g[None, :]).expand(c, 1, 11, 11).contiguous()
    t1 = torch.from_numpy(a.astype(np.float32))[None]
    t2 = torch.from_numpy(b.astype(np.float32))[None]

    def conv(t):
        return torch.nn.functional.conv2d(t, win, padding=5, groups=c)

    m1, m2 = conv(t1), conv(t2)
    s1, s2, s12 = conv(t1 * t1) - m1**2, conv(t2 * t2) - m2**2, conv(t1 * t2) - m1 * m2
    ssim = ((2 * m1 * m2 + 1e-4) * (2 * s12 + 9e-4)) / ((m1**2 + m2**2 + 1e-4) * (s1 + s2 + 9e-4))
    return float(ssim.mean())


def realistic_s2_pairs(n: int = 3, size: int = 48) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """13-band reflectance pairs like SEN12MS-CR's: (name, prediction, ground truth) with predictions
    that are the cloudy patch, a blurred noisy estimate, and a dark-biased one."""
    rng = np.random.default_rng(11)
    out = []
    for i in range(n):
        gt = s2_to_unit(s2_dn(rng, size)).astype(np.float64)
        cloudy = s2_to_unit(s2_dn(rng, size, cloudy=True)).astype(np.float64)
        blurred = (gt + np.roll(gt, 1, axis=1) + np.roll(gt, 1, axis=2)) / 3
        noisy = np.clip(blurred + rng.normal(0, 0.02, gt.shape), 0, 1)
        out += [(f"cloudy{i}", cloudy, gt), (f"noisy{i}", noisy, gt), (f"dark{i}", 0.7 * gt, gt)]
    return out


def natural_rgb_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """8-bit RGB previews of realistic S2 patches (B4, B3, B2, reflectance 0-0.3) and degraded outputs."""
    from data.sentinel import s2_preview

    pairs = []
    for _, pred, gt in realistic_s2_pairs(2, 40):
        pairs.append((s2_preview(pred.astype(np.float32)), s2_preview(gt.astype(np.float32))))
    return pairs


def noisy_pair_u8(rng: np.random.Generator, h: int, w: int, noise: int = 25) -> tuple[np.ndarray, np.ndarray]:
    # smooth-ish ground truth plus noise, so SSIM is neither ~0 nor ~1
    base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:h, :w]
    gt = base.astype(np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-noise, noise + 1, gt.shape), 0, 255).astype(np.uint8)
    return pred, gt


# ----------------------------------------------------------------------------- paper protocol


@pytest.mark.parametrize("shape", [(7, 7), (11, 11), (32, 32), (40, 57), (64, 48)])
def test_paper_metrics_match_skimage_defaults(shape):
    rng = np.random.default_rng(sum(shape))
    pred, gt = noisy_pair_u8(rng, *shape)
    m = paper_metrics(pred, gt)
    assert set(m) == {"psnr", "ssim", "rmse"}
    assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=255), rel=1e-12)
    assert m["ssim"] == pytest.approx(skimage_default_ssim(pred, gt), abs=1e-6)
    diff = pred.astype(np.float64) - gt
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean(diff**2)), rel=1e-12)
    assert all(isinstance(v, float) for v in m.values())


def test_paper_ssim_is_skimage_default_on_realistic_pairs():
    """The official metrics.py's number (uniform 7x7, sample covariance), not a Gaussian SSIM."""
    pairs = natural_rgb_pairs()
    for pred, gt in pairs:
        assert paper_metrics(pred, gt)["ssim"] == pytest.approx(skimage_default_ssim(pred, gt), abs=1e-6)
        assert paper_ssim(gt, pred) == pytest.approx(skimage_default_ssim(gt, pred), abs=1e-6)
    pred, gt = pairs[0]
    gaussian = structural_similarity(pred, gt, channel_axis=-1, data_range=255, gaussian_weights=True)
    assert abs(paper_metrics(pred, gt)["ssim"] - gaussian) > 1e-3  # the window matters


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
def test_field_metrics_match_definitions(bands):
    rng = np.random.default_rng(bands)
    gt = rng.uniform(0.0, 0.6, (bands, 24, 30))
    pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    m = field_metrics(pred, gt)
    assert list(m) == ["rmse", "psnr", "mae", "sam", "ssim"]
    assert m["ssim"] == pytest.approx(uncrtaints_ssim_numpy(pred, gt), abs=1e-10)
    assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=1.0), rel=1e-12)
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean((gt - pred) ** 2)), rel=1e-12)
    assert m["psnr"] == pytest.approx(20 * math.log10(1 / m["rmse"]), rel=1e-12)
    assert m["mae"] == pytest.approx(np.mean(np.abs(gt - pred)), rel=1e-12)


def test_field_ssim_reproduces_uncrtaints_on_realistic_patches():
    """Whole zero-padded map, all 13 bands: equal to the field's float32 torch computation to 1e-4
    and to a float64 re-implementation to 1e-10; scikit-image's border-cropped Gaussian SSIM is not it."""
    differs = []
    for name, pred, gt in realistic_s2_pairs():
        ours = field_metrics(pred, gt)["ssim"]
        assert ours == pytest.approx(uncrtaints_ssim_numpy(pred, gt), abs=1e-10), name
        assert ours == pytest.approx(uncrtaints_ssim_numpy(gt, pred), abs=1e-10), name  # symmetric
        assert ours == pytest.approx(uncrtaints_ssim_torch(gt, pred), abs=1e-4), name
        cropped = structural_similarity(
            pred, gt, channel_axis=0, data_range=1.0, gaussian_weights=True, use_sample_covariance=False
        )
        differs.append(abs(ours - cropped))
    assert max(differs) > 1e-3


def test_field_ssim_bands_and_small_images():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, (3, 20, 20))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    per_band = [field_ssim(a[i : i + 1], b[i : i + 1]) for i in range(3)]
    assert field_ssim(a, b) == pytest.approx(np.mean(per_band), rel=1e-12)  # same-size map per band
    small = field_metrics(a[:, :5, :6], b[:, :5, :6])  # zero padding: any size works
    assert small["ssim"] == pytest.approx(uncrtaints_ssim_numpy(a[:, :5, :6], b[:, :5, :6]), abs=1e-10)
    assert field_ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_field_metrics_float32_input_computed_in_float64():
    rng = np.random.default_rng(7)
    gt = rng.uniform(0, 1, (4, 16, 16))
    pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    m32 = field_metrics(pred.astype(np.float32), gt.astype(np.float32))
    ref = uncrtaints_ssim_numpy(
        pred.astype(np.float32).astype(np.float64), gt.astype(np.float32).astype(np.float64)
    )
    assert m32["ssim"] == pytest.approx(ref, abs=1e-10)


def test_field_metrics_known_values():
    gt = np.full((2, 12, 12), 0.3)
    pred = gt + 0.1
    m = field_metrics(pred, gt)
    assert m["rmse"] == pytest.approx(0.1) and m["mae"] == pytest.approx(0.1)
    assert m["psnr"] == pytest.approx(20.0)
    # parallel spectra: 0 up to arccos' resolution near 1 (float64: ~1e-6 degrees)
    assert m["sam"] == pytest.approx(0.0, abs=1e-5)


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
        (np.zeros((6, 8, 3), np.uint8), np.zeros((6, 8, 3), np.uint8), "at least 7x7"),
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


def test_protocol_labels_name_each_reference():
    """Every summary says which computation its numbers are (every number is labelled)."""
    summary = _filled_table().summary()["protocols"]
    assert summary == {p: PROTOCOL_DESCRIPTIONS[p] for p in ("paper", "field")}
    assert (
        "scikit-image structural_similarity defaults (7x7 uniform window, sample covariance"
        in summary["paper"]
    )
    assert "UnCRtainTS" in summary["field"] and "zero padding 5" in summary["field"]
    assert "mean of the whole map" in summary["field"]
