"""Other papers' evaluation protocols (metrics/authors.py): each equals its authors' code on fixtures
that code computed (tests/fixtures/make_*_protocol_reference.py), and the commands report them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metrics import field_metrics
from metrics.authors import (
    AuthorProtocols,
    allclear_metrics,
    dsen2cr_metrics,
    glf_cr_metrics,
    parse_author_protocols,
)
from metrics.authors_ssim import glf_cr_ssim, tf_ssim
from metrics.cloud_masks import cloud_mask
from metrics.ssim import field_ssim
from metrics.table import MetricsTable
from scripts import evaluate
from tests.fixtures.protocol_scenes import checksum, reflectance, scenes

FIXTURES = Path(__file__).parent / "fixtures"
# The authors' code runs in float32, ours in float64.
TOL = 2e-5


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return scenes()


def scene(data: dict, key: str, i: int) -> np.ndarray:
    return reflectance(data[key][i])


def close(ours: float, theirs: float, tol: float = TOL) -> bool:
    return abs(ours - theirs) <= tol * max(1.0, abs(theirs))


def test_glf_cr_equals_their_test_script(data):
    ref = json.loads((FIXTURES / "glf_cr_protocol.json").read_text())
    assert ref["scenes_checksum"] == checksum(data)
    for i in range(len(data["target"])):
        ours = glf_cr_metrics(scene(data, "output", i), scene(data, "target", i))
        assert close(ours["psnr"], ref["psnr"][i]) and close(ours["ssim"], ref["ssim"][i]), (i, ours)
        # The fixture has teeth: the field's centred window, or the whole image, is another number.
        crop = (slice(None), slice(4, 132), slice(4, 132))
        centred = field_ssim(scene(data, "output", i)[crop], scene(data, "target", i)[crop])
        assert not close(centred, ref["ssim"][i])
        whole = glf_cr_ssim(scene(data, "output", i), scene(data, "target", i))
        assert not close(whole, ref["ssim"][i])
    assert glf_cr_metrics(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))["psnr"] == 100.0  # their mse == 0


def test_dsen2cr_equals_their_metric_functions(data):
    ref = np.load(FIXTURES / "dsen2cr_protocol.npz")
    assert int(ref["scenes_checksum"]) == checksum(data)
    units = 5.0  # their data: DN / 2000 = reflectance x 5; SAM in radians
    for i in range(len(data["target"])):
        official = ref["masks"][i] == 1
        cloudy = scene(data, "cloudy", i)
        ours = dsen2cr_metrics(scene(data, "output", i), scene(data, "target", i), cloudy, official)
        expected = {
            "mae": ref["cloud_mean_absolute_error"][i] / units,
            "rmse": ref["cloud_root_mean_squared_error"][i] / units,
            "psnr": ref["cloud_psnr"][i],
            "sam": math.degrees(ref["cloud_mean_sam"][i]),
            "ssim": ref["cloud_ssim"][i],
            "mae_covered": ref["cloud_mean_absolute_error_covered"][i] / units,
            "mae_clear": ref["cloud_mean_absolute_error_clear"][i] / units,
            "sam_covered": math.degrees(ref["cloud_mean_sam_covered"][i]),
            "sam_clear": math.degrees(ref["cloud_mean_sam_clear"][i]),
        }
        for key, value in expected.items():
            assert close(ours[key], float(value)), (i, key, ours[key], value)
        assert close(ours["rmse"] ** 2 * units**2, float(ref["cloud_mean_squared_error"][i]))
        # Our detector on the window gives their mask (one pixel of scene 1 scores 0.2 within float
        # rounding: theirs 0.19999999, ours 0.20000002).
        ours_mask = cloud_mask(cloudy[:, :128, :128], "cloud_shadow")
        assert (ours_mask != official).sum() <= (1 if i == 1 else 0)
        assert 0 < official.mean() < 1
    # SSIM without padding: the same window with zero padding is another number.
    i = 0
    padded = field_ssim(scene(data, "output", i)[:, :128, :128], scene(data, "target", i)[:, :128, :128])
    assert not close(padded, float(ref["cloud_ssim"][i]))


def test_allclear_equals_their_metrics_class(data):
    ref = json.loads((FIXTURES / "allclear_protocol.json").read_text())
    assert ref["scenes_checksum"] == checksum(data)
    keys = {"mae": "MAE", "rmse": "RMSE", "psnr": "PSNR", "sam": "SAM", "ssim": "SSIM"}
    table = MetricsTable()
    for i in range(len(data["target"])):
        ours = allclear_metrics(scene(data, "output", i), scene(data, "target", i), data["clear"][i])
        if ref["per_image"]["MAE"][i] is None:  # no clear pixel: NaN in their code, no value here
            assert ours == {}
            continue
        for key, theirs in keys.items():
            assert close(ours[key], ref["per_image"][theirs][i]), (i, key)
        # Their SAM normalises along image rows: not the spectral angle, which is reported beside it.
        assert abs(ours["sam"] - ours["sam_true"]) > 1.0
        table.add(f"s{i}", "fake_B", "allclear", ours)
    # The mean over the images that have a value is their NaN-mean.
    summary = table.summary()["results"]["allclear"]["fake_B"]
    for key, theirs in keys.items():
        assert close(summary[key]["mean"], ref["aggregate"][theirs]), key


def test_uncrtaints_is_the_field_protocol(data):
    pred, gt = scene(data, "output", 0), scene(data, "target", 0)
    got = AuthorProtocols(["uncrtaints"], None, 13).measure(pred, gt, None)
    assert got == {"uncrtaints": field_metrics(pred, gt)}


def test_protocols_run_on_the_datas_bands_and_masks(data):
    pred, gt, cloudy = (scene(data, k, 0) for k in ("output", "target", "cloudy"))
    from data.sentinel import S2_BANDS

    replay = AuthorProtocols(["glf_cr", "dsen2cr", "allclear"], S2_BANDS, 13, "cloud_shadow")
    got = replay.measure(pred, gt, cloudy)
    assert set(got) == {"glf_cr", "dsen2cr", "allclear"}
    ref = np.load(FIXTURES / "dsen2cr_protocol.npz")
    assert close(got["dsen2cr"]["mae_clear"], float(ref["cloud_mean_absolute_error_clear"][0]) / 5)
    # AllClear's mask: the pixels the detector, run on the target, leaves clear.
    clear = ~cloud_mask(gt, "cloud_shadow")
    assert 0 < clear.mean() < 1 and got["allclear"] == allclear_metrics(pred, gt, clear)
    with pytest.raises(ValueError, match="needs the cloudy input"):
        replay.measure(pred, gt, None)
    # An all-cloud target (blank) leaves AllClear nothing to measure.
    assert "allclear" not in replay.measure(pred, np.zeros_like(gt), cloudy)
    with pytest.raises(ValueError, match="dsen2cr masks clouds with its own detector"):
        AuthorProtocols(["dsen2cr"], ("B8", "B11"), 2)
    assert parse_author_protocols("glf_cr, allclear,glf_cr") == ("glf_cr", "allclear")
    with pytest.raises(ValueError, match="unknown protocol"):
        parse_author_protocols("glf_cr,psnr")
    # TensorFlow's SSIM needs whole windows.
    with pytest.raises(ValueError, match="at least 11 px"):
        tf_ssim(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)))


def save(folder: Path, name: str, arr: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(folder / name)


def test_evaluate_reports_other_papers_protocols_beside_ours(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for stem in ("a", "b"):
        gt = rng.integers(40, 160, (40, 40, 3)).astype(np.uint8)
        cloudy = gt.copy()
        cloudy[5:25, 5:25] = 250  # a cloud
        save(tmp_path / "gt", f"{stem}.png", gt)
        save(tmp_path / "in", f"{stem}.png", cloudy)
        save(tmp_path / "pred", f"{stem}.png", np.clip(gt.astype(int) + 9, 0, 255).astype(np.uint8))
    base = ["--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--input", tmp_path / "in"]
    argv = [*base, "--protocol", "glf_cr,dsen2cr,allclear,uncrtaints", "--out", tmp_path / "out"]
    assert evaluate.main([str(a) for a in argv]) == 0
    summary = json.loads((tmp_path / "out" / "metrics_summary.json").read_text())
    for protocol in ("paper", "field", "glf_cr", "dsen2cr", "allclear", "uncrtaints"):
        assert protocol in summary["results"] and summary["protocols"][protocol], protocol
    results = summary["results"]
    assert results["uncrtaints"]["pred"]["psnr"] == results["field"]["pred"]["psnr"]
    # The cloudy input changed nothing outside its cloud: DSen2-CR's clear MAE (vs the input) is 0.
    assert results["dsen2cr"]["input"]["mae_clear"]["mean"] == 0.0
    assert results["dsen2cr"]["pred"]["mae_covered"]["mean"] > 0
    assert "glf_cr protocol" in capsys.readouterr().out
    # Only the field protocol of ours, then the replays.
    argv = [*base, "--protocol", "field,glf_cr"]
    assert evaluate.main([str(a) for a in argv]) == 0
    assert "paper protocol" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("protocol", "with_input", "fragment"),
    [
        ("dsen2cr", False, "--protocol dsen2cr needs --input"),
        ("glf_cr,psnr", True, "unknown protocol psnr"),
        ("paper,field", True, "name at most one of auto, paper, field, both"),
    ],
)
def test_evaluate_refuses_bad_protocols(tmp_path, capsys, protocol, with_input, fragment):
    save(tmp_path / "p", "a.png", np.full((12, 12, 3), 9, np.uint8))
    save(tmp_path / "g", "a.png", np.full((12, 12, 3), 10, np.uint8))
    argv = ["--pred", tmp_path / "p", "--gt", tmp_path / "g", "--protocol", protocol, "--out", tmp_path / "o"]
    argv += ["--input", tmp_path / "p"] if with_input else []
    assert evaluate.main([str(a) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert fragment in err and err.count("\n") == 1 and not (tmp_path / "o").exists()


def test_a_nan_of_their_code_is_left_out_of_the_mean():
    """DSen2-CR's SAM has no guard against a zero spectrum (a black pixel): NaN for that image."""
    gt = np.full((3, 16, 16), 0.2)
    pred = gt.copy()
    pred[:, 0, 0] = 0.0
    assert math.isnan(dsen2cr_metrics(pred, gt, gt, np.zeros((16, 16), bool))["sam"])
    got = AuthorProtocols(["dsen2cr"], None, 3).measure(pred, gt, gt)["dsen2cr"]
    assert "sam" not in got and got["mae"] > 0
