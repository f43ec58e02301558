"""UnCRtainTS' published checkpoint layout (``model.pth.tar`` with ``conf.json`` beside it) through
``--weights``, the API and torch.hub, against the official network's outputs.

The fixtures (``tests/fixtures/uncrtaints_checkpoints/``, see ``make_uncrtaints_reference.py``) were
written by the authors' own ``save_model`` after one training step of their ``BaseModel``, with their
``conf.json``; ``uncrtaints_scene_official.pt`` holds, for each, a tiny scene (Sentinel-2 digital
numbers, Sentinel-1 dB) and the official output on it after their test script's own loading
(``get_model`` + ``load_checkpoint``, which gives the older block names the same weights).
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import predict
import test as test_script
from cloud_removal import CloudRemover
from models.networks.uncrtaints import UnCRtainTSNet
from models.weight_sets import FORMATS, open_weight_set
from models.weight_sets.formats import opened, read_state_dicts
from models.weight_sets.registry import uncrtaints_domain
from tests.fixtures.make_uncrtaints_reference import CHECKPOINTS, SCENE_FIXTURE, old_layout
from tests.helpers import expect_error, run_main
from tests.scene_fixtures import read, write_arrays
from tests.sen12mscr_fixtures import make_tree, tif_path, transform_of, write_tif
from util.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SCENES = torch.load(SCENE_FIXTURE, weights_only=True)
VARIANTS = {"diag_sar": True, "plain_nosar": False}  # variant -> takes SAR
LAYOUT = {"epoch", "state_dict", "state_dict_G", "optimizer_G", "scheduler_G"}


def fixture_file(variant: str) -> Path:
    return CHECKPOINTS / variant / "model.pth.tar"


def scene_arrays(variant: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The fixture's scene: S2 digital numbers (13, 16, 16) and S1 dB (2, 16, 16), or None."""
    scene = SCENES[variant]
    return scene["dn"].numpy(), (None if scene["db"] is None else scene["db"].numpy())


def official(variant: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The official output as predict.py gives it: reflectance (13, H, W) (their mean / scale_by) and
    the band-mean variance in reflectance^2 (H, W) (/ scale_by^2), or None for the plain head."""
    out = SCENES[variant]["output"][0].numpy()
    return out[:13] / 10, (out[13:].mean(0) / 100 if out.shape[0] > 13 else None)


def write_scene(folder: Path, variant: str = "diag_sar") -> tuple[Path, Path | None]:
    return write_arrays(folder, *scene_arrays(variant))


def predict_argv(weights: Path, s2: Path, s1: Path | None, out: Path, *extra: str) -> list[str]:
    argv = ["--cloudy", str(s2), "--weights", str(weights), "--out", str(out), "--gpu_ids", "-1"]
    return argv + (["--sar", str(s1)] if s1 else []) + ["--window", "16", "--overlap", "0", *extra]


def copy_checkpoint(folder: Path, checkpoint: dict | None = None, flags: dict | None = None) -> Path:
    """The diag_sar fixture (or ``checkpoint``) in ``folder`` with its conf.json (``flags`` changed)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pth.tar"
    if checkpoint is None:
        shutil.copy(fixture_file("diag_sar"), path)
    else:
        torch.save(checkpoint, path)
    conf = json.loads((CHECKPOINTS / "diag_sar" / "conf.json").read_text())
    (folder / "conf.json").write_text(json.dumps({**conf, **(flags or {})}))
    return path


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_authors_file_is_recognised_with_its_variant_and_domain(variant):
    sar = VARIANTS[variant]
    with opened(fixture_file(variant)) as (container, content):  # torch.load(weights_only=True)
        assert container == "torch" and set(content) == LAYOUT
        assert (
            content["optimizer_G"]["state"] and content["scheduler_G"]
        )  # a real optimiser state rides along
        assert [f.name for f in FORMATS if f.container == "torch" and f.recognise(content)] == [
            "uncrtaints_pth_tar"
        ]
    ws = open_weight_set(fixture_file(variant))
    conf = json.loads((CHECKPOINTS / variant / "conf.json").read_text())
    assert ws.model == "uncrtaints" and ws.variant == ("with SAR" if sar else "without SAR")
    assert ws.parameters == conf["N_params"]  # their own count of the network they saved
    net = UnCRtainTSNet(in_nc=15 if sar else 13, width=8, out_blocks=2, head="diag" if sar else "plain")
    assert ws.parameters == sum(p.numel() for p in net.parameters())
    assert ws.settings["uncrtaints_no_sar"] is (not sar) and ws.settings["uncrtaints_scale_by"] == 10.0
    assert ws.domain == uncrtaints_domain(sar) and ws.domain.uses_sar is sar
    assert ws.domain.s2_level == "L1C" and len(ws.domain.bands) == 13 and ws.domain.s2_dn_offset == 0
    if sar:
        assert ws.domain.sar_clip == ((-25.0, 0.0), (-25.0, 0.0)) and ws.domain.sar_bands == ("VV", "VH")
    assert ws.name == "fixture"  # their experiment_name: results folders and output tags


@pytest.mark.parametrize("variant", VARIANTS)
def test_predict_py_with_the_authors_checkpoint_gives_the_official_output(variant, tmp_path, capfd):
    sar = VARIANTS[variant]
    s2, s1 = write_scene(tmp_path, variant)
    out = tmp_path / "clear.tif"
    extra = ("--maps",) if sar else ()
    assert run_main(predict.main, predict_argv(fixture_file(variant), s2, s1, out, *extra)) == 0
    assert f"loaded {fixture_file(variant)}: UnCRtainTS (the authors' checkpoint" in capfd.readouterr().out
    image, variance = official(variant)
    assert image.std() > 0.01  # the outputs vary: the comparison has teeth
    err = np.abs(read(out) - image).max()
    assert err <= 1e-5, f"largest difference from the official UnCRtainTS output: {err:.3g}"
    if sar:  # --maps: the predicted variance as a georeferenced band
        with rasterio.open(tmp_path / "clear_uncertainty.tif") as src, rasterio.open(out) as ref:
            assert src.transform == ref.transform and src.crs == ref.crs
            got = src.read(1)
        assert variance.std() > 1e-5
        np.testing.assert_allclose(got, variance, rtol=1e-5, atol=1e-9)


def test_the_api_and_torch_hub_give_predict_py_s_numbers(tmp_path):
    s2, s1 = write_scene(tmp_path)
    weights = fixture_file("diag_sar")
    assert run_main(predict.main, predict_argv(weights, s2, s1, tmp_path / "o.tif", "--maps")) == 0
    dn, db = scene_arrays("diag_sar")
    remover = CloudRemover(weights, device="cpu")
    result = remover(dn, db, window=16, overlap=0)
    np.testing.assert_array_equal(result.image, read(tmp_path / "o.tif"))
    np.testing.assert_array_equal(result.uncertainty, read(tmp_path / "o_uncertainty.tif")[0])
    assert remover.domain == uncrtaints_domain(True)
    hub = torch.hub.load(str(ROOT), "uncrtaints", source="local", weights=str(weights), device="cpu")
    np.testing.assert_array_equal(hub(dn, db, window=16, overlap=0).image, result.image)
    no_sar = CloudRemover(fixture_file("plain_nosar"), device="cpu")
    dn13, _ = scene_arrays("plain_nosar")
    got = no_sar(dn13, None, window=16, overlap=0)
    assert np.abs(got.image - official("plain_nosar")[0]).max() <= 1e-5 and got.uncertainty is None
    with pytest.raises(UserError, match="takes no SAR image"):
        no_sar(dn13, db)
    with pytest.raises(UserError, match="a weight file of --model uncrtaints, not glf_cr"):
        torch.hub.load(str(ROOT), "glf_cr", source="local", weights=str(weights))


@pytest.mark.parametrize("variant", VARIANTS)
def test_test_py_with_the_authors_checkpoint_gives_the_official_output(variant, tmp_path, capfd):
    root = make_tree(tmp_path / "sen12mscr", {("ROIs1158_spring", "106"): ("30",)}, size=16)
    s2, s1 = scene_arrays(variant)
    transform = transform_of("106", "30")
    write_tif(tif_path(root, "s2_cloudy", "ROIs1158_spring", "106", "30"), s2.astype(np.uint16), transform)
    if s1 is not None:  # the no-SAR network is given the tree's SAR and leaves it
        write_tif(tif_path(root, "s1", "ROIs1158_spring", "106", "30"), s1, transform)
    weights = fixture_file(variant)
    argv = ["--dataroot", str(root), "--weights", str(weights), "--phase", "test", "--gpu_ids", "-1"]
    argv += ["--results_dir", str(tmp_path / "results"), "--crop_size", "16", "--cloud_detector", "none"]
    assert run_main(test_script.main, argv) == 0
    assert f"loaded {weights}" in capfd.readouterr().out
    images = tmp_path / "results" / "fixture" / "test_latest" / "images"
    image, variance = official(variant)
    (out,) = images.glob("*_fake_B.tif")
    assert np.abs(read(out) - image).max() <= 1e-5
    summary = json.loads((images.parent / "metrics_summary.json").read_text())
    if variance is None:
        assert not list(images.glob("*_uncertainty.npy")) and "uncertainty" not in summary["protocols"]
        return
    (var,) = images.glob("*_uncertainty.npy")
    np.testing.assert_allclose(np.load(var)[0], variance, rtol=1e-5, atol=1e-9)
    assert "uncertainty" in summary["protocols"]


def test_their_experiment_folder_stands_for_its_checkpoint(tmp_path):
    """Their test script loads ``<weight_folder>/<experiment>/model.pth.tar`` with the conf.json beside it:
    the folder, given where a weight file is expected, is that file (not one of our experiments)."""
    folder = CHECKPOINTS / "diag_sar"
    assert open_weight_set(folder).path == fixture_file("diag_sar")
    s2, s1 = write_scene(tmp_path)
    assert run_main(predict.main, predict_argv(folder, s2, s1, tmp_path / "o.tif")) == 0
    assert np.abs(read(tmp_path / "o.tif") - official("diag_sar")[0]).max() <= 1e-5
    dn, db = scene_arrays("diag_sar")
    api = CloudRemover(folder, device="cpu")(dn, db, window=16, overlap=0).image
    np.testing.assert_array_equal(api, read(tmp_path / "o.tif"))
    ours = tmp_path / "ours"  # one of our experiments (train_opt.json) stays an experiment
    shutil.copytree(folder, ours)
    (ours / "train_opt.json").write_text("{}")
    with pytest.raises(UserError, match="is a folder"):
        open_weight_set(ours)


def test_the_older_block_names_load_the_same(tmp_path):
    checkpoint = torch.load(fixture_file("diag_sar"), weights_only=True)
    old = old_layout(checkpoint)
    assert any(k.startswith("netG.in_block1.") for k in old["state_dict"]) and "state_dict_G" not in old
    path = copy_checkpoint(tmp_path / "old", old)
    _, states = read_state_dicts(path)
    _, expected = read_state_dicts(fixture_file("diag_sar"))
    assert list(states["G"]) == list(expected["G"])
    assert all(torch.equal(states["G"][k], expected["G"][k]) for k in expected["G"])
    # state_dict_G alone (no whole-model state_dict) reads the same too
    alone = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    _, states = read_state_dicts(copy_checkpoint(tmp_path / "g", alone))
    assert all(torch.equal(states["G"][k], expected["G"][k]) for k in expected["G"])


def test_a_perturbed_file_misses_the_official_output(tmp_path):
    checkpoint = torch.load(fixture_file("diag_sar"), weights_only=True)
    checkpoint["state_dict"]["netG.out_block.1.conv.fn.3.weight"][0] += 0.5
    path = copy_checkpoint(tmp_path / "changed", checkpoint)
    dn, db = scene_arrays("diag_sar")
    got = CloudRemover(path, device="cpu")(dn, db, window=16, overlap=0).image
    assert np.abs(got - official("diag_sar")[0]).max() > 1e-3


def test_sar_and_its_absence_must_fit_the_variant(tmp_path, capfd):
    out = tmp_path / "o.tif"
    s2, s1 = write_scene(tmp_path)
    expect_error(
        capfd,
        predict.main,
        predict_argv(fixture_file("plain_nosar"), s2, s1, out),
        "model.pth.tar",
        "no SAR",
        "leave it out",
    )
    expect_error(
        capfd,
        predict.main,
        predict_argv(fixture_file("diag_sar"), s2, None, out),
        "model.pth.tar",
        "give it (--sar",
    )
    (tmp_path / "nosar").mkdir()
    s2_13, _ = write_scene(tmp_path / "nosar", "plain_nosar")
    expect_error(  # the mean-only head has no uncertainty to write
        capfd,
        predict.main,
        predict_argv(fixture_file("plain_nosar"), s2_13, None, out, "--maps"),
        "uncertainty",
    )
    # conf.json decides: the SAR file's flags saying no SAR do not fit its first layer
    path = copy_checkpoint(tmp_path / "flipped", flags={"use_sar": False})
    expect_error(
        capfd, predict.main, predict_argv(path, s2, None, out), "model.pth.tar", "do not belong together"
    )
    assert not out.exists()


def test_bad_files_are_refused_in_one_line_and_nothing_is_written(tmp_path, capfd):
    s2, s1 = write_scene(tmp_path)
    out = tmp_path / "o.tif"

    def argv(weights: Path, *extra: str) -> list[str]:
        return predict_argv(weights, s2, s1, out, *extra)

    truncated = copy_checkpoint(tmp_path / "cut")
    truncated.write_bytes(fixture_file("diag_sar").read_bytes()[:5000])
    expect_error(capfd, predict.main, argv(truncated), "cut/model.pth.tar", "truncated", "download it again")
    lonely = tmp_path / "lonely" / "model.pth.tar"
    lonely.parent.mkdir()
    shutil.copy(fixture_file("diag_sar"), lonely)
    expect_error(capfd, predict.main, argv(lonely), "lonely/model.pth.tar", "no conf.json beside it")
    expect_error(
        capfd,
        predict.main,
        argv(fixture_file("diag_sar"), "--model", "glf_cr"),
        "model.pth.tar",
        "--model uncrtaints",
    )
    other = copy_checkpoint(tmp_path / "utae", flags={"model": "utae"})
    expect_error(capfd, predict.main, argv(other), "utae/conf.json", "not uncrtaints")
    multi = copy_checkpoint(tmp_path / "multi", flags={"pretrain": False})
    expect_error(capfd, predict.main, argv(multi), "multi/conf.json", "multi-temporal")
    pickled = tmp_path / "code.pth.tar"
    pickled.write_bytes(pickle.dumps(print, protocol=2))
    expect_error(capfd, predict.main, argv(pickled), "code.pth.tar", "neither a Keras HDF5 file nor")
    test_argv = ["--dataroot", str(tmp_path), "--weights", str(lonely), "--results_dir", str(tmp_path / "r")]
    expect_error(capfd, test_script.main, test_argv, "lonely/model.pth.tar", "no conf.json beside it")
    assert not out.exists() and not (tmp_path / "r").exists()
