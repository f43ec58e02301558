"""Metrics over cloudy and clear pixels, coverage bins, and their files from test.py and
scripts.evaluate (metrics.coverage, the mask argument of metrics.protocols)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import test as test_script
from metrics import MetricsTable, field_metrics, paper_metrics
from metrics.coverage import bin_index, measure_split, parse_bins
from metrics.protocols import spectral_angle
from metrics.ssim import field_ssim_map, paper_ssim_map
from scripts import evaluate
from tests.helpers import expect_error, make_triplets, run_main, test_argv, train_argv


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(3)
    gt = rng.uniform(0, 1, (4, 20, 24))
    pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    mask = np.zeros((20, 24), bool)
    mask[4:12, 6:20] = True
    return pred, gt, mask


def test_full_mask_gives_the_whole_image_numbers(pair):
    pred, gt, _ = pair
    full = np.ones(gt.shape[1:], bool)
    for key, value in field_metrics(pred, gt).items():
        assert field_metrics(pred, gt, mask=full)[key] == pytest.approx(value, rel=1e-12)
    p8 = (np.moveaxis(pred[:3], 0, -1) * 255).round().astype(np.uint8)
    g8 = (np.moveaxis(gt[:3], 0, -1) * 255).round().astype(np.uint8)
    for key, value in paper_metrics(p8, g8).items():
        assert paper_metrics(p8, g8, mask=full)[key] == pytest.approx(value, rel=1e-12)


def test_masked_field_metrics_are_over_the_pixels(pair):
    pred, gt, mask = pair
    got = field_metrics(pred, gt, mask=mask)
    diff = (gt - pred)[:, mask]  # (C, N): every band of the selected pixels
    rmse = np.sqrt(np.mean(diff**2))
    assert got["rmse"] == pytest.approx(rmse, rel=1e-12)
    assert got["psnr"] == pytest.approx(20 * np.log10(1 / rmse), rel=1e-12)
    assert got["mae"] == pytest.approx(np.abs(diff).mean(), rel=1e-12)
    assert got["sam"] == pytest.approx(spectral_angle(pred, gt)[mask].mean(), rel=1e-12)
    assert got["ssim"] == pytest.approx(field_ssim_map(pred, gt)[:, mask].mean(), rel=1e-12)
    # Cloudy and clear differ (the prediction is worse where the noise was made larger).
    worse = pred.copy()
    worse[:, mask] = np.clip(gt[:, mask] + 0.3, 0, 1)
    assert field_metrics(worse, gt, mask=mask)["psnr"] < field_metrics(worse, gt, mask=~mask)["psnr"] - 5


def test_masked_paper_ssim_uses_the_inner_region(pair):
    pred, gt, _ = pair
    p8 = (np.moveaxis(pred[:3], 0, -1) * 255).round().astype(np.uint8)
    g8 = (np.moveaxis(gt[:3], 0, -1) * 255).round().astype(np.uint8)
    border = np.zeros((20, 24), bool)
    border[:3] = True  # only the rows scikit-image leaves out of its SSIM mean
    assert "ssim" not in paper_metrics(p8, g8, mask=border)
    inner = np.zeros((20, 24), bool)
    inner[5:9, 5:15] = True
    expected = paper_ssim_map(p8.astype(float), g8.astype(float))[:, 2:6, 2:12].mean()
    assert paper_metrics(p8, g8, mask=inner)["ssim"] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="selects no pixel"):
        paper_metrics(p8, g8, mask=np.zeros((20, 24), bool))


def test_bins():
    edges = parse_bins("0,10,30,50,70,100")
    assert [bin_index(c, edges) for c in (0.0, 0.0999, 0.1, 0.5, 0.6999, 0.7, 1.0)] == [0, 0, 1, 3, 3, 4, 4]
    for bad in ("0,50", "10,100", "0,50,40,100", "0,a,100", "0"):
        with pytest.raises(ValueError, match="coverage bins"):
            parse_bins(bad)


def test_table_summarises_by_bin(pair):
    pred, gt, _ = pair
    table = MetricsTable()
    masks = {"a": np.zeros((20, 24), bool), "b": np.ones((20, 24), bool), "c": np.zeros((20, 24), bool)}
    masks["c"][:5] = True  # 25 % cloud
    for stem, mask in masks.items():
        table.set_coverage(stem, float(mask.mean()), "rgb")
        table.add(stem, "fake_B", "field", field_metrics(pred, gt))
        measure_split(table, stem, "fake_B", "field", field_metrics, pred, gt, mask)
    bins = table.summary()["coverage"]["bins"]
    assert [b["count"] for b in bins] == [1, 1, 0, 0, 1]
    # No cloudy pixel in "a", no clear pixel in "b": those classes are not recorded for them.
    assert table.summary()["results"]["field_cloudy"]["fake_B"]["psnr"]["count"] == 2
    assert bins[1]["results"]["field_cloudy"]["fake_B"]["psnr"]["mean"] == pytest.approx(
        field_metrics(pred, gt, mask=masks["c"])["psnr"]
    )
    with pytest.raises(ValueError, match="two detectors"):
        table.set_coverage("d", 0.5, "s2cloudless")


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_test_py_writes_coverage_and_split_metrics(tmp_path, capsys):
    make_triplets(tmp_path / "data", "train", n=2, size=32)
    make_triplets(tmp_path / "data", "test", n=3, size=32, seed=1)
    import train as train_script

    assert run_main(train_script.main, train_argv(tmp_path / "data", tmp_path / "ck")) == 0
    argv = test_argv(
        tmp_path / "data", tmp_path / "ck", tmp_path / "res", "tiny", "--coverage_bins", "0,50,100"
    )
    assert run_main(test_script.main, argv) == 0
    out = tmp_path / "res" / "tiny" / "test_latest"
    summary = json.loads((out / "metrics_summary.json").read_text())
    assert summary["coverage"]["detector"] == "rgb"
    assert [b["label"] for b in summary["coverage"]["bins"]] == ["0-50%", "50-100%"]
    assert sum(b["count"] for b in summary["coverage"]["bins"]) == 3
    assert {"paper", "field", "field_cloudy", "field_clear"} <= set(summary["results"])
    assert "SSIM map averaged over those pixels" in summary["protocols"]["field_clear"]
    rows = _read(out / "metrics_per_image.csv")
    assert all(0 <= float(r["cloud_coverage"]) <= 1 for r in rows) and "paper_clear_psnr" in rows[0]
    assert len(_read(out / "metrics_by_coverage.csv")) == 2 * 2  # bins x (output, cloudy input)
    page = (out / "index.html").read_text()
    assert "By cloud coverage (cloud mask: rgb" in page and "cloud coverage " in page
    assert "over cloudy / clear pixels (cloud mask: rgb)" in capsys.readouterr().out
    # A detector that cannot run on the data, and bad bins: one line each, nothing measured.
    expect_error(
        capsys, test_script.main, [*argv, "--cloud_detector", "s2cloudless"], "--cloud_detector s2cloudless"
    )
    expect_error(capsys, test_script.main, [*argv, "--coverage_bins", "0,80,40,100"], "--coverage_bins")


def test_evaluate_scores_external_outputs_with_the_inputs_masks(tmp_path, capsys):
    for role, seed in (("pred", 0), ("gt", 1), ("input", 2)):
        make_triplets(tmp_path, role, n=3, size=24, seed=seed, roles=("A",))
    argv = ["--pred", tmp_path / "predA", "--gt", tmp_path / "gtA", "--input", tmp_path / "inputA"]
    argv = [str(a) for a in [*argv, "--out", tmp_path / "o"]]
    assert run_main(evaluate.main, argv) == 0
    summary = json.loads((tmp_path / "o" / "metrics_summary.json").read_text())
    assert summary["coverage"]["detector"] == "rgb" and (tmp_path / "o" / "metrics_by_coverage.csv").is_file()
    assert sum(b["count"] for b in summary["coverage"]["bins"]) == 3
    assert "over cloudy / clear pixels (cloud mask: rgb)" in capsys.readouterr().out
    assert run_main(evaluate.main, [*argv[:-2], "--cloud_detector", "none"]) == 0
    assert "cloud mask" not in capsys.readouterr().out
    expect_error(
        capsys,
        evaluate.main,
        [*argv, "--overwrite", "--cloud_detector", "s2cloudless"],
        "--cloud_detector s2cloudless",
    )
