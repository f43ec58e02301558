"""Nothing a user has is replaced without --overwrite: predict.py (one scene, its maps, many
scenes), the scene API, scripts.evaluate's --out and compare's --name; and outputs are named as
what they are (GeoTIFFs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import predict
from comparison import make_plan
from comparison.reuse import check_reuse
from scene import ScenePredictor
from scene.batch import folder_pairs, predict_scenes
from scripts import compare, evaluate
from tests.helpers import expect_error, make_triplets, run_main
from tests.scene_fixtures import identity, make_experiment, predict_flags, read, write_scene
from util.errors import UserError

SETTINGS = {"window": 32, "overlap": 8, "progress": False}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    make_experiment(root, "ms13", "--input_nc", "13", "--output_nc", "13")
    return root


def one_scene(ckpt: Path, s2: Path, s1: Path, out: Path, *extra: str) -> list[str]:
    return ["--cloudy", str(s2), "--sar", str(s1), "--out", str(out), *predict_flags(ckpt, "ms13"), *extra]


# ---------------------------------------------------------------------------- predict.py, one scene
def test_an_existing_output_or_map_is_refused_unless_overwrite(ckpt, tmp_path, capfd):
    s2, s1 = write_scene(tmp_path, 40, 40)
    out = tmp_path / "o.tif"
    out.write_bytes(b"a result of the user's")
    expect_error(capfd, predict.main, one_scene(ckpt, s2, s1, out), f"{out} exists", "--overwrite")
    assert out.read_bytes() == b"a result of the user's"

    # The map that --maps writes beside the output is the user's too.
    out.unlink()
    att = tmp_path / "o_att_A.tif"
    att.write_bytes(b"an attention map of the user's")
    expect_error(capfd, predict.main, one_scene(ckpt, s2, s1, out, "--maps"), str(att), "--overwrite")
    assert att.read_bytes() == b"an attention map of the user's" and not out.exists()

    assert run_main(predict.main, one_scene(ckpt, s2, s1, out, "--maps", "--overwrite")) == 0
    assert read(out).shape == (13, 40, 40) and read(att).shape == (1, 40, 40)


@pytest.mark.parametrize(("name", "what"), [("o_clouds.tif", "cloud weight"), ("o.stac.json", "STAC item")])
def test_an_existing_cloud_weight_or_stac_item_is_refused_unless_overwrite(ckpt, tmp_path, capfd, name, what):
    s2, s1 = write_scene(tmp_path, 40, 40)
    out, mine = tmp_path / "o.tif", tmp_path / name
    mine.write_bytes(b"the user's")
    expect_error(
        capfd, predict.main, one_scene(ckpt, s2, s1, out, "--cloud_mask"), str(mine), what, "--overwrite"
    )
    assert mine.read_bytes() == b"the user's" and not out.exists()
    assert run_main(predict.main, one_scene(ckpt, s2, s1, out, "--cloud_mask", "--overwrite")) == 0
    assert read(tmp_path / "o_clouds.tif").shape == (1, 40, 40)
    assert json.loads((tmp_path / "o.stac.json").read_text())["assets"]["clouds"]["href"] == "./o_clouds.tif"


@pytest.mark.parametrize("name", ["o3.png", "o3", "o3.jpg", "o3.tif.bak"])
def test_an_output_not_named_as_a_geotiff_is_refused(ckpt, tmp_path, capfd, name):
    s2, s1 = write_scene(tmp_path, 40, 40)
    expect_error(capfd, predict.main, one_scene(ckpt, s2, s1, tmp_path / name), name, ".tif or .tiff")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1.tif", "s2.tif"]
    assert run_main(predict.main, one_scene(ckpt, s2, s1, tmp_path / "o3.TIFF")) == 0


def test_the_scene_api_refuses_an_existing_output_unless_overwrite(ckpt, tmp_path):
    predictor = ScenePredictor(ckpt, "ms13", gpu_ids="-1")
    s2, s1 = write_scene(tmp_path, 40, 40)
    out = tmp_path / "o.tif"
    out.write_bytes(b"kept")
    with pytest.raises(UserError, match="exists; add --overwrite"):
        predictor.predict(s2, s1, out, forward=identity, **SETTINGS)
    assert out.read_bytes() == b"kept"
    predictor.predict(s2, s1, out, forward=identity, overwrite=True, **SETTINGS)
    assert read(out).shape == (13, 40, 40)


# ---------------------------------------------------------------------------- predict.py, many scenes
def scene_folders(tmp_path: Path, n: int) -> tuple[Path, Path]:
    s2_dir, s1_dir = tmp_path / "s2", tmp_path / "s1"
    s2_dir.mkdir(), s1_dir.mkdir()
    for i in range(n):
        s2, s1 = write_scene(tmp_path, 36, 40, seed=i)
        s2.rename(s2_dir / f"tile{i}.tif"), s1.rename(s1_dir / f"tile{i}.tif")
    return s2_dir, s1_dir


def test_many_scenes_make_a_missing_out_folder(ckpt, tmp_path):
    s2_dir, s1_dir = scene_folders(tmp_path, 2)
    out = tmp_path / "new" / "clear"
    argv = ["--cloudy", str(s2_dir), "--sar", str(s1_dir), "--out", str(out), *predict_flags(ckpt, "ms13")]
    assert run_main(predict.main, argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "tile0.stac.json",
        "tile0.tif",
        "tile1.stac.json",
        "tile1.tif",
    ]


def test_many_scenes_skip_complete_ones_and_refuse_partial_ones(ckpt, tmp_path, capfd):
    s2_dir, s1_dir = scene_folders(tmp_path, 2)
    out = tmp_path / "out"
    argv = ["--cloudy", str(s2_dir), "--sar", str(s1_dir), "--out", str(out), *predict_flags(ckpt, "ms13")]
    assert run_main(predict.main, argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # With --maps every scene lacks its map: running it would replace the outputs there.
    expect_error(capfd, predict.main, [*argv, "--maps"], "2 scene(s)", "tile0_att_A.tif", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert run_main(predict.main, [*argv, "--maps", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "tile0.stac.json",
        "tile0.tif",
        "tile0_att_A.tif",
        "tile1.stac.json",
        "tile1.tif",
        "tile1_att_A.tif",
    ]
    capfd.readouterr()
    assert run_main(predict.main, [*argv, "--maps"]) == 0  # now complete: skipped
    assert "2 of 2 scene(s) already done" in capfd.readouterr().err
    # The cloud weight of --keep_clear is one of a scene's files, and so is the STAC item.
    expect_error(capfd, predict.main, [*argv, "--maps", "--keep_clear"], "2 scene(s)", "tile0_clouds.tif")
    (out / "tile1.stac.json").unlink()
    kept = (out / "tile1.tif").stat().st_mtime_ns
    expect_error(capfd, predict.main, [*argv, "--maps"], "1 scene(s)", "tile1.stac.json", "--overwrite")
    assert (out / "tile1.tif").stat().st_mtime_ns == kept


def test_outputs_of_other_rasters_are_named_as_geotiffs(tmp_path):
    s2_dir, s1_dir = tmp_path / "s2", tmp_path / "s1"
    s2_dir.mkdir(), s1_dir.mkdir()
    for name in ("a.jp2", "b.vrt", "c.tiff"):
        (s2_dir / name).write_bytes(b""), (s1_dir / name).write_bytes(b"")
    pairs = folder_pairs(s2_dir, s1_dir, tmp_path / "out")
    assert [p.out.name for p in pairs] == ["a.tif", "b.tif", "c.tiff"]


def test_two_inputs_with_one_geotiff_name_are_refused(ckpt, tmp_path):
    s2_dir, s1_dir = scene_folders(tmp_path, 1)
    for folder in (s2_dir, s1_dir):
        (folder / "tile0.vrt").write_bytes((folder / "tile0.tif").read_bytes())
    pairs = folder_pairs(s2_dir, s1_dir, tmp_path / "out")
    with pytest.raises(UserError, match="would both be written to"):
        predict_scenes(ScenePredictor(ckpt, "ms13", gpu_ids="-1"), pairs, forward=identity, **SETTINGS)


# ---------------------------------------------------------------------------- scripts.evaluate --out
def test_evaluate_refuses_results_already_in_out_unless_overwrite(tmp_path, capfd):
    rng = np.random.default_rng(0)
    for folder in ("pred", "gt"):
        (tmp_path / folder).mkdir()
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / folder / "a.png")
    out = tmp_path / "eval" / "mine"
    argv = ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out)]
    assert run_main(evaluate.main, argv) == 0  # a missing folder is made
    summary = out / "metrics_summary.json"
    summary.write_text("the user's own summary")
    expect_error(capfd, evaluate.main, argv, "metrics_per_image.csv", "metrics_summary.json", "--overwrite")
    assert summary.read_text() == "the user's own summary"
    assert run_main(evaluate.main, [*argv, "--overwrite"]) == 0
    assert json.loads(summary.read_text())["results"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("kept")  # other files are not in the way
    assert run_main(evaluate.main, [*argv[:-1], str(tmp_path / "other")]) == 0
    assert (tmp_path / "other" / "notes.txt").read_text() == "kept"


# ---------------------------------------------------------------------------- compare --name
@pytest.mark.parametrize("name", ["a/b", "..", "a\\b"])
def test_compare_refuses_a_name_that_is_a_path(tmp_path, capfd, name):
    make_triplets(tmp_path / "data" / "train", "train", n=1, size=32)
    argv = ["--dataroot", str(tmp_path / "data"), "--setting", "smoke", "--name", name]
    argv += ["--results_dir", str(tmp_path / "res"), "--checkpoints_dir", str(tmp_path / "ck")]
    expect_error(capfd, compare.main, argv, "one folder name")
    assert not (tmp_path / "res").exists() and not (tmp_path / "ck").exists()


def plan_of(tmp_path: Path, models: str = "pix2pix_attn", images: int = 4):
    return make_plan(
        name="x",
        dataroot=tmp_path / "data",
        setting="smoke",
        models_text=models,
        images=images,
        train_size=2,
        checkpoints_dir=tmp_path / "ck",
        results_dir=tmp_path / "res",
    )


def leave_comparison(tmp_path: Path, plan_json: dict) -> None:
    """What a run of comparison 'x' leaves: its plan, a record and a model folder."""
    out = tmp_path / "res" / "compare" / "x"
    (out / "runs").mkdir(parents=True)
    (out / "plan.json").write_text(json.dumps(plan_json))
    (out / "runs" / "pix2pix_attn.json").write_text("{}")
    (tmp_path / "ck" / "compare_x" / "pix2pix_attn").mkdir(parents=True)


def test_compare_resumes_the_same_comparison_and_refuses_another(tmp_path):
    plan = plan_of(tmp_path)
    leave_comparison(tmp_path, plan.to_json("-1", 0))
    check_reuse(plan, plan.to_json("0", 0))  # the same comparison (on another device): resumed
    grown = plan_of(tmp_path, "pix2pix,pix2pix_attn")
    check_reuse(grown, grown.to_json("-1", 0))  # a model more: the table only gains a row
    for other, why in (
        (plan.to_json("-1", 1), "--seed 0 -> 1"),
        (plan_of(tmp_path, images=8).to_json("-1", 0), "budget"),
        (plan_of(tmp_path, "pix2pix").to_json("-1", 0), "pix2pix_attn no longer in --models"),
    ):
        with pytest.raises(UserError, match="another budget or other flags") as err:
            check_reuse(plan, other)
        assert why in str(err.value) and "--overwrite" in str(err.value)
    assert (tmp_path / "res" / "compare" / "x" / "runs" / "pix2pix_attn.json").is_file()


def test_compare_overwrite_deletes_the_comparison_and_its_models(tmp_path):
    plan = plan_of(tmp_path)
    leave_comparison(tmp_path, plan.to_json("-1", 0))
    (tmp_path / "ck" / "kept").mkdir()
    check_reuse(plan, plan.to_json("-1", 1), overwrite=True)
    assert not (tmp_path / "res" / "compare" / "x").exists()
    assert not (tmp_path / "ck" / "compare_x").exists() and (tmp_path / "ck" / "kept").is_dir()
