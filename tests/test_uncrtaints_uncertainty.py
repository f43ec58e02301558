"""UnCRtainTS' uncertainty, first-class: test.py's variance files, per-image statistics and
calibration, scripts.evaluate --var, predict.py --maps, the API's result.uncertainty, the comparison."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio

import predict
import test as test_script
import train
from cloud_removal import CloudRemover
from models.uncrtaints_model import UncrtaintsModel
from scripts import evaluate
from tests.helpers import expect_error, make_triplets, run_main, test_argv, train_argv
from tests.scene_fixtures import make_experiment, predict_flags, write_scene

TINY = ["--model", "uncrtaints", *UncrtaintsModel.tiny_flags]


@pytest.fixture(scope="module")
def tested(tmp_path_factory):
    """A tiny UnCRtainTS trained on PNG triplets and tested: results folder and commands."""
    root = tmp_path_factory.mktemp("uncrtaints")
    make_triplets(root, "train", n=2)
    make_triplets(root, "test", n=3, seed=1)
    ckpt, results = root / "ck", root / "res"
    assert run_main(train.main, train_argv(root, ckpt, "u", *TINY)) == 0
    assert run_main(test_script.main, test_argv(root, ckpt, results, "u", *TINY)) == 0
    return root, ckpt, results / "u" / "test_latest"


def test_test_py_writes_variances_per_image_metrics_and_calibration(tested):
    _, _, out = tested
    images = out / "images"
    var = np.load(images / "000_uncertainty.npy")
    assert var.shape == (1, 32, 32) and var.dtype == np.float32 and (var > 0).all()
    assert (images / "000_uncertainty.png").is_file()
    with open(out / "metrics_per_image.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["comparison"] == "fake_B"]
    assert len(rows) == 3 and float(rows[0]["uncertainty_mean_var"]) == pytest.approx(
        float(var.mean()), rel=1e-6
    )
    summary = json.loads((out / "metrics_summary.json").read_text())
    scores = summary["calibration"]["fake_B"]
    assert scores["images"] == 3 and scores["uce"] >= 0 and scores["auce"] >= scores["uce"] * 0
    assert "real_A" not in summary["calibration"] and "uncertainty" in summary["protocols"]
    page = (out / "index.html").read_text()
    assert "000_uncertainty.png" in page and "uncertainty (std)" in page


def test_evaluate_reads_the_variance_files(tested, capfd, tmp_path):
    _, _, out = tested
    im = out / "images"
    argv = ["--pred", str(im), "--pred_suffix", "_fake_B", "--gt", str(im), "--gt_suffix", "_real_B"]
    assert (
        evaluate.main([*argv, "--var", str(im), "--var_suffix", "_uncertainty", "--out", str(tmp_path / "e")])
        == 0
    )
    said = capfd.readouterr().out
    assert "calibration of fake_B" in said and "UCE" in said
    got = json.loads((tmp_path / "e" / "metrics_summary.json").read_text())
    ref = json.loads((out / "metrics_summary.json").read_text())
    mean_var = ("results", "uncertainty", "fake_B", "mean_var", "mean")
    pick = lambda d: d[mean_var[0]][mean_var[1]][mean_var[2]][mean_var[3]][mean_var[4]]  # noqa: E731
    assert pick(got) == pytest.approx(pick(ref), rel=1e-6)
    # The errors come from 8-bit PNGs here, from the tensors in test.py: close, not equal.
    assert abs(got["calibration"]["fake_B"]["uce"] - ref["calibration"]["fake_B"]["uce"]) < 5e-3
    # A variance file of the wrong size, negative values, or a missing one: one line, exit 2.
    bad = tmp_path / "bad"
    bad.mkdir()
    for stem in ("000", "001", "002"):
        np.save(bad / f"{stem}_uncertainty.npy", np.zeros((1, 8, 8), np.float32))
    expect_error(
        capfd,
        evaluate.main,
        [*argv, "--var", str(bad), "--var_suffix", "_uncertainty"],
        "size mismatch",
        "variance",
    )
    np.save(bad / "000_uncertainty.npy", -np.ones((1, 32, 32), np.float32))
    expect_error(
        capfd, evaluate.main, [*argv, "--var", str(bad), "--var_suffix", "_uncertainty"], "negative values"
    )
    (bad / "000_uncertainty.npy").unlink()
    expect_error(
        capfd, evaluate.main, [*argv, "--var", str(bad), "--var_suffix", "_uncertainty"], "have no var"
    )


def test_predict_maps_writes_the_uncertainty_as_a_georeferenced_band(tmp_path):
    ckpt = make_experiment(tmp_path / "ck", "u", *TINY, "--input_nc", "13", "--output_nc", "13")
    s2, s1 = write_scene(tmp_path, 40, 48, smooth=True)
    out = tmp_path / "clear.tif"
    argv = ["--cloudy", str(s2), "--sar", str(s1), "--out", str(out), *predict_flags(ckpt, "u"), "--maps"]
    assert run_main(predict.main, argv) == 0
    uncertainty = tmp_path / "clear_uncertainty.tif"
    with rasterio.open(out) as ref, rasterio.open(uncertainty) as src:
        var = src.read()
        assert (src.crs, src.transform, src.count, src.dtypes[0]) == (ref.crs, ref.transform, 1, "float32")
        assert "predicted variance" in src.tags()["content"] and src.descriptions == ("uncertainty",)
    assert var.shape == (1, 40, 48) and np.isfinite(var).all() and (var > 0).all()
    # --cog: a cloud-optimised uncertainty band, the same values.
    cog = tmp_path / "cog" / "clear.tif"
    cog.parent.mkdir()
    assert run_main(predict.main, [*argv[:5], str(cog), *argv[6:], "--cog"]) == 0
    with rasterio.open(cog.with_name("clear_uncertainty.tif")) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        np.testing.assert_array_equal(src.read(), var)
    # The Python API returns the same band as result.uncertainty; the maps hold no attention.
    remover = CloudRemover(ckpt / "u", device="cpu")
    with rasterio.open(s2) as a, rasterio.open(s1) as c:
        result = remover(a.read(), c.read(), window=32, overlap=8)
    assert result.maps == {} and result.attention is None
    np.testing.assert_allclose(result.uncertainty, var[0], rtol=1e-5, atol=1e-9)


def test_plain_head_has_no_map_to_write(tmp_path, capfd):
    ckpt = make_experiment(
        tmp_path / "ck",
        "p",
        *TINY,
        "--input_nc",
        "13",
        "--output_nc",
        "13",
        "--uncrtaints_head",
        "plain",
        saved={"dataset_mode": "sen12mscr"},
    )
    s2, s1 = write_scene(tmp_path, 32, 32, smooth=True)
    argv = [
        "--cloudy",
        str(s2),
        "--sar",
        str(s1),
        "--out",
        str(tmp_path / "o.tif"),
        *predict_flags(ckpt, "p"),
        "--maps",
    ]
    expect_error(capfd, predict.main, argv, "has no attention map, cloud mask or uncertainty")
    result = CloudRemover(ckpt / "p", device="cpu")(
        np.full((13, 32, 32), 900, np.uint16), -10 * np.ones((2, 32, 32)), window=32, overlap=8
    )
    assert result.uncertainty is None


@pytest.mark.slow  # trains and tests two tiny models through scripts.compare: ~10 s idle, ~30 s on a busy machine
def test_comparison_shows_its_uncertainty_and_calibration(tmp_path):
    from PIL import Image

    from comparison.report import read_table
    from scripts import compare

    make_triplets(tmp_path / "data" / "train", "train", n=2, size=32)
    make_triplets(tmp_path / "data" / "test", "test", n=2, size=32, seed=1)
    argv = ["--dataroot", str(tmp_path / "data"), "--setting", "smoke", "--models", "uncrtaints,template"]
    argv += ["--rows", "2", "--checkpoints_dir", str(tmp_path / "ck"), "--results_dir", str(tmp_path / "res")]
    assert run_main(compare.main, argv) == 0
    out = tmp_path / "res" / "compare" / "smoke"
    rows = {r["model"]: r for r in read_table(out)}
    assert float(rows["UnCRtainTS (our addition)"]["UCE (calibration)"]) >= 0
    assert (
        rows["template"]["UCE (calibration)"] == ""
        and rows["cloudy input (no model)"]["UCE (calibration)"] == ""
    )
    with Image.open(out / "figure.png") as fig:
        # SAR, cloudy, UnCRtainTS, its uncertainty, template, ground truth.
        assert fig.size[0] == 6 * (160 + 4) + 4
    assert "UnCRtainTS uncertainty" in (out / "index.html").read_text()


def test_calibration_is_zero_when_errors_match_the_predicted_spread():
    from metrics.uncertainty import calibration

    var = np.linspace(1e-4, 1e-2, 50)
    assert calibration(var, np.sqrt(var))["uce"] == pytest.approx(0, abs=1e-12)
    assert calibration(var, -np.sqrt(var))["auce"] == pytest.approx(0, abs=1e-12)  # signed errors, squared
    doubled = calibration(var, 2 * np.sqrt(var))
    # Twice the spread in every bin: UCE is the weighted mean of the bins' root mean variances.
    assert doubled["uce"] == pytest.approx(np.mean(np.sqrt(var)), rel=0.05) and doubled["images"] == 50
    with_nan = calibration(np.append(var, np.nan), np.append(np.sqrt(var), 0.1))
    assert with_nan["uce"] == pytest.approx(0, abs=1e-12) and with_nan["images"] == 51
    assert np.isnan(calibration(np.array([]), np.array([]))["uce"])
