"""Every registered ``--model`` (the template included) through the whole contract, on tiny data:
one training step, save, load, ``test.py`` with and without ground truth, whole-scene inference on a
tiny GeoTIFF, and the purity of ``infer`` (what ``test.py`` shows is what ``predict`` returns)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import models
import predict
import test as test_script
import train
from tests.helpers import make_triplets, run_main, test_argv, train_argv
from tests.scene_fixtures import write_scene

MODEL_NAMES = models.MODEL_NAMES


def flags(name: str) -> list[str]:
    return ["--model", name, *models.find_model_using_name(name).tiny_flags]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("data")
    make_triplets(root, "train", n=2, size=32)
    make_triplets(root, "test", n=2, size=32, seed=1)
    no_truth = tmp_path_factory.mktemp("cloudy_only")
    make_triplets(no_truth, "test", n=2, size=32, seed=2, roles=("A", "C"))
    return root, no_truth


def test_the_registry_finds_every_model_file():
    files = sorted(p.stem[: -len("_model")] for p in Path(models.__path__[0]).glob("*_model.py"))
    assert sorted(MODEL_NAMES) == [f for f in files if f != "base"]
    for name in MODEL_NAMES:
        cls = models.find_model_using_name(name)
        roles = cls.roles
        assert roles.output in roles.page_order and "real_A" in roles.page_order, name


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_train_save_load_test_and_predict(name, data_root, tmp_path, capsys, monkeypatch):
    root, no_truth = data_root
    ckpt, results = tmp_path / "checkpoints", tmp_path / "results"
    assert run_main(train.main, train_argv(root, ckpt, "run", *flags(name))) == 0
    saved = sorted(p.name for p in (ckpt / "run").glob("latest_net_*.pth"))
    assert saved and (ckpt / "run" / "latest_train_state.pth").is_file()

    # test.py loads the saved weights, writes every declared visual and measures the output.
    assert run_main(test_script.main, test_argv(root, ckpt, results, "run", *flags(name))) == 0
    out = results / "run" / "test_latest"
    model_cls = models.find_model_using_name(name)
    images = {p.name for p in (out / "images").glob("*.png")}
    assert f"000_{model_cls.roles.output}.png" in images and "000_real_B.png" in images
    summary = json.loads((out / "metrics_summary.json").read_text())
    assert summary["results"]["paper"]
    page = (out / "index.html").read_text()
    assert "000_fake_B.png" in page

    # Real cloudy scenes have no ground truth: outputs and page, no metrics, one line saying so.
    capsys.readouterr()
    results2 = tmp_path / "results_no_truth"
    assert run_main(test_script.main, test_argv(no_truth, ckpt, results2, "run", *flags(name))) == 0
    said = capsys.readouterr().out
    assert "nothing measured" in said
    out2 = results2 / "run" / "test_latest"
    assert (out2 / "images" / f"000_{model_cls.roles.output}.png").is_file()
    assert not (out2 / "metrics_summary.json").exists() and (out2 / "index.html").is_file()

    # Whole-scene inference on a tiny GeoTIFF with the same weights.
    s2, s1 = write_scene(tmp_path, 40, 48, s2_bands=3, sar_bands=3, smooth=True)
    tif = tmp_path / "clear.tif"
    argv = ["--cloudy", str(s2), "--sar", str(s1), "--out", str(tif), "--name", "run"]
    argv += ["--checkpoints_dir", str(ckpt), "--gpu_ids", "-1", "--window", "32", "--overlap", "8"]
    assert run_main(predict.main, argv) == 0
    with rasterio.open(tif) as src:
        pred = src.read()
    assert pred.shape == (3, 40, 48) and np.isfinite(pred).all() and 0 <= pred.min() and pred.max() <= 1

    # test.py and predict.py build without random initialisation (the weights are loaded over
    # it), except where the networks draw random numbers as they run (dropout without --eval):
    # the same bytes as a build that initialises first, with --eval and without (GLF-CR's
    # stochastic depth then draws; the tiny U-Nets have no dropout blocks, see test_networks).
    modes = {"eval": ["--eval"], "train_mode": []}

    def outputs(tag: str) -> dict:
        got = {}
        for mode, extra in modes.items():
            folder = tmp_path / f"results_{tag}_{mode}"
            argv_test = test_argv(root, ckpt, folder, "run", *flags(name), *extra)
            assert run_main(test_script.main, argv_test) == 0
            for p in (folder / "run" / "test_latest" / "images").glob("*.png"):
                got[f"{mode}/{p.name}"] = p.read_bytes()
        out_tif = tmp_path / f"clear_{tag}.tif"
        assert run_main(predict.main, [*argv[:5], str(out_tif), *argv[6:]]) == 0
        with rasterio.open(out_tif) as src:
            return {**got, "scene": src.read().tobytes()}

    skipped = outputs("skipped")
    with monkeypatch.context() as patch:
        build = models.create_model
        initialising = lambda opt, weights_follow=False: build(opt)  # noqa: E731
        patch.setattr(models, "create_model", initialising)
        patch.setattr(test_script, "create_model", initialising)
        initialised = outputs("initialised")
    assert skipped.keys() == initialised.keys() and len(skipped) > 4
    assert all(skipped[k] == initialised[k] for k in skipped), [
        k for k in skipped if skipped[k] != initialised[k]
    ]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_infer_is_pure_and_is_what_forward_shows(name, tmp_path):
    from options.test_options import TestOptions
    from tests.helpers import TINY

    argv = [
        "--dataroot",
        str(tmp_path),
        "--name",
        "x",
        "--checkpoints_dir",
        str(tmp_path),
        *TINY,
        *flags(name),
    ]
    opt = TestOptions().parse(argv, save=False)
    torch.manual_seed(0)
    model = models.create_model(opt)
    model.eval()
    g = torch.Generator().manual_seed(1)
    batch = {k: torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for k in "ABC"}
    model.set_input(batch)
    shown = model.test()
    before = {k: v.clone() for k, v in model.outputs.items()}
    got = model.predict(batch["A"], batch["C"])
    assert set(got) == set(before)
    for key, value in got.items():
        torch.testing.assert_close(value, shown[key], rtol=0, atol=0, msg=key)
    # predict keeps nothing on the model.
    assert all(torch.equal(before[k], model.outputs[k]) for k in before)
    if not model.roles.uses_sar:
        torch.testing.assert_close(model.predict(batch["A"], -batch["C"])["fake_B"], got["fake_B"])
