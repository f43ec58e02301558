"""What a scene run gives besides the image: maps, COGs, SAR on another grid, many scenes per run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.warp import transform

import predict
from scene import COMPRESSIONS, ScenePredictor
from scene.batch import Pair, folder_pairs, listed_pairs, predict_scenes
from tests.helpers import run_main
from tests.scene_fixtures import identity, make_experiment, predict_flags, read, write_scene
from util.errors import UserError

SETTINGS = {"window": 32, "overlap": 8, "progress": False}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    make_experiment(root, "ms13", "--input_nc", "13", "--output_nc", "13")
    return root


@pytest.fixture(scope="module")
def predictor(ckpt: Path) -> ScenePredictor:
    return ScenePredictor(ckpt, "ms13", gpu_ids="-1")


def sar_as_output(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """A stand-in network whose output is the scaled VV band (to see how the SAR was read)."""
    return c[:, :1].expand(-1, a.shape[1], -1, -1)


def test_maps_are_geotiffs_on_the_output_grid(ckpt, tmp_path):
    s2, s1 = write_scene(tmp_path, 40, 40)
    argv = ["--cloudy", str(s2), "--sar", str(s1), "--out", str(tmp_path / "c.tif"), "--name", "ms13"]
    argv += ["--checkpoints_dir", str(ckpt), "--gpu_ids", "-1", "--window", "32", "--overlap", "8", "--maps"]
    assert run_main(predict.main, argv) == 0
    with rasterio.open(tmp_path / "c_att_A.tif") as att, rasterio.open(s2) as src:
        assert (att.count, att.dtypes[0], att.crs, att.transform) == (1, "float32", src.crs, src.transform)
        assert att.descriptions == ("att_A",)
        values = att.read(1)
    assert 0 <= values.min() <= values.max() <= 1


def test_maps_of_a_model_without_any_are_refused(tmp_path, capsys):
    root = make_experiment(
        tmp_path / "ck", "p2p", "--model", "pix2pix", "--input_nc", "13", "--output_nc", "13"
    )
    s2, s1 = write_scene(tmp_path, 40, 40)
    argv = ["--cloudy", str(s2), "--sar", str(s1), "--out", str(tmp_path / "c.tif"), "--name", "p2p"]
    argv += ["--checkpoints_dir", str(root), "--gpu_ids", "-1", "--window", "32", "--overlap", "8", "--maps"]
    assert run_main(predict.main, argv) == 2
    assert "has no attention map" in capsys.readouterr().err
    assert not (tmp_path / "c.tif").exists()


def assert_valid_cog(path: Path) -> None:
    """A cloud-optimised GeoTIFF by rio-cogeo's validator, laid out by GDAL's COG driver (its header
    says LAYOUT=COG: a file copied without the COG layout can pass the validator without it)."""
    from rio_cogeo.cogeo import cog_validate

    valid, errors, warnings = cog_validate(str(path), strict=True)
    assert valid and not errors and not warnings, (errors, warnings)
    with rasterio.open(path) as cog:
        assert cog.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG", cog.tags(ns="IMAGE_STRUCTURE")


@pytest.mark.parametrize(
    ("compress", "dtype"), [*((c, "float32") for c in COMPRESSIONS), ("none", "uint16"), ("zstd", "uint16")]
)
def test_cog_output_is_a_valid_cog_with_overviews_and_the_same_values(predictor, tmp_path, compress, dtype):
    s2, s1 = write_scene(tmp_path, 600, 530, s2_bands=13)
    kind = {"out_dtype": dtype, **SETTINGS, "window": 128, "overlap": 16}
    predictor.predict(s2, s1, tmp_path / "plain.tif", forward=identity, **kind)
    predictor.predict(s2, s1, tmp_path / "cog.tif", forward=identity, cog=True, compress=compress, **kind)
    assert_valid_cog(tmp_path / "cog.tif")
    with rasterio.open(tmp_path / "cog.tif") as cog:
        assert cog.profile["blockxsize"] == 512 and cog.profile["tiled"] and cog.overviews(1) == [2]
        assert (cog.compression.name.lower() if cog.compression else "none") == compress
        assert cog.descriptions[0].startswith("B1")
    np.testing.assert_array_equal(read(tmp_path / "cog.tif"), read(tmp_path / "plain.tif"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cog_maps_from_the_command_line_are_valid_cogs(ckpt, tmp_path):
    s2, s1 = write_scene(tmp_path, 40, 40)
    argv = ["--cloudy", str(s2), "--sar", str(s1), "--out", str(tmp_path / "c.tif"), "--cog", "--maps"]
    assert run_main(predict.main, [*argv, *predict_flags(ckpt, "ms13")]) == 0
    assert_valid_cog(tmp_path / "c.tif")
    assert_valid_cog(tmp_path / "c_att_A.tif")


def test_sar_on_another_grid_is_resampled_onto_the_optical_grid(predictor, tmp_path, capsys):
    aligned, shifted = tmp_path / "aligned", tmp_path / "shifted"
    aligned.mkdir(), shifted.mkdir()
    s2, s1 = write_scene(aligned, 40, 40, smooth=True)
    # The same SAR values, 3 pixels up and to the left on a larger grid: only the grid differs.
    with rasterio.open(s1) as src:
        big = np.full((2, 46, 46), np.nan, np.float32)
        big[:, 3:43, 3:43] = src.read()
        profile = {
            **src.profile,
            "width": 46,
            "height": 46,
            "transform": src.transform @ Affine.translation(-3, -3),
        }
    with rasterio.open(shifted / "s1.tif", "w", **profile) as dst:
        dst.write(big)
    predictor.predict(s2, s1, tmp_path / "a.tif", forward=sar_as_output, **SETTINGS)
    predictor.predict(s2, shifted / "s1.tif", tmp_path / "b.tif", forward=sar_as_output, **SETTINGS)
    assert "resampled onto the grid" in capsys.readouterr().err
    np.testing.assert_allclose(read(tmp_path / "b.tif"), read(tmp_path / "a.tif"), atol=1e-6)


def test_sar_in_another_crs_is_resampled_and_disjoint_sar_is_refused(predictor, tmp_path):
    (x,), (y,) = transform("EPSG:32632", "EPSG:32633", [600000.0], [5100000.0])
    utm33 = Affine(10.0, 0.0, x - 50, 0.0, -10.0, y + 50)
    s2, s1 = write_scene(tmp_path, 40, 40, sar_crs="EPSG:32633", sar_transform=utm33)
    predictor.predict(s2, s1, tmp_path / "a.tif", forward=sar_as_output, **SETTINGS)
    assert np.isfinite(read(tmp_path / "a.tif")).any()
    far = Affine(10.0, 0.0, 900000.0, 0.0, -10.0, 5100000.0)
    s2, s1 = write_scene(tmp_path, 40, 40, sar_transform=far)
    with pytest.raises(UserError, match="does not overlap"):
        predictor.predict(s2, s1, tmp_path / "b.tif", forward=sar_as_output, **SETTINGS)
    assert not (tmp_path / "b.tif").exists()


def scenes(tmp_path: Path, n: int) -> tuple[Path, Path, Path]:
    folders = [tmp_path / name for name in ("s2", "s1", "out", "tmp")]
    for folder in folders:
        folder.mkdir()
    for i in range(n):
        s2, s1 = write_scene(folders[3], 36, 40, seed=i)
        s2.rename(folders[0] / f"tile{i}.tif"), s1.rename(folders[1] / f"tile{i}.tif")
    return folders[0], folders[1], folders[2]


def test_many_scenes_skip_what_is_done_and_restart_after_a_failure(predictor, tmp_path, capsys):
    s2_dir, s1_dir, out = scenes(tmp_path, 3)
    pairs = folder_pairs(s2_dir, s1_dir, out)
    assert [p.out.name for p in pairs] == ["tile0.tif", "tile1.tif", "tile2.tif"]

    calls = []

    def fails_on_third(a, c):  # a run killed during the third scene
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return a

    with pytest.raises(KeyboardInterrupt):
        predict_scenes(predictor, pairs, forward=fails_on_third, **SETTINGS)
    done = ["tile0.stac.json", "tile0.tif", "tile1.stac.json", "tile1.tif"]
    assert sorted(p.name for p in out.iterdir()) == done  # no partial file, an item per output
    stamp = os.stat(out / "tile0.tif").st_mtime_ns
    results = predict_scenes(predictor, pairs, forward=identity, **SETTINGS)
    assert [r.path.name for r in results] == ["tile2.tif"] and os.stat(out / "tile0.tif").st_mtime_ns == stamp
    assert "2 of 3 scene(s) already done" in capsys.readouterr().err
    assert len(predict_scenes(predictor, pairs, forward=identity, overwrite=True, **SETTINGS)) == 3


def test_predict_py_runs_folders_and_pair_lists(ckpt, tmp_path, capsys):
    s2_dir, s1_dir, out = scenes(tmp_path, 2)
    common = [*predict_flags(ckpt, "ms13"), "--maps"]
    assert (
        run_main(predict.main, ["--cloudy", str(s2_dir), "--sar", str(s1_dir), "--out", str(out), *common])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "tile0.stac.json",
        "tile0.tif",
        "tile0_att_A.tif",
        "tile1.stac.json",
        "tile1.tif",
        "tile1_att_A.tif",
    ]
    listed = tmp_path / "pairs.txt"
    listed.write_text("# cloudy sar\ns2/tile1.tif s1/tile1.tif\n")
    (tmp_path / "out2").mkdir()
    assert run_main(predict.main, ["--pairs", str(listed), "--out", str(tmp_path / "out2"), *common]) == 0
    np.testing.assert_array_equal(read(tmp_path / "out2" / "tile1.tif"), read(out / "tile1.tif"))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a.tif\n", "line 1: expected"),
        ("", "lists no pair"),
        ("missing.tif s1/tile0.tif\n", "does not exist"),
    ],
)
def test_bad_pair_lists_are_refused(predictor, tmp_path, text, words):
    scenes(tmp_path, 1)
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(UserError, match=words):
        predict_scenes(predictor, listed_pairs(tmp_path / "pairs.txt", tmp_path / "out"), **SETTINGS)


def test_unpaired_folders_and_shared_outputs_are_refused(predictor, tmp_path):
    s2_dir, s1_dir, out = scenes(tmp_path, 2)
    (s1_dir / "tile1.tif").unlink()
    with pytest.raises(UserError, match="no SAR image of the same name"):
        folder_pairs(s2_dir, s1_dir, out)
    twice = [Pair(s2_dir / "tile0.tif", s1_dir / "tile0.tif", out / "x.tif")] * 2
    with pytest.raises(UserError, match="would both be written"):
        predict_scenes(predictor, twice, **SETTINGS)


@pytest.mark.slow
def test_the_demo_scene_is_georeferenced_and_predicts(tmp_path):
    from scripts.demo import SCENE_SIZE, write_demo_scene

    write_demo_scene(tmp_path / "scene", seed=0)
    root = make_experiment(tmp_path / "ck", "demo3", "--sar_nc", "3")
    cloudy, sar = tmp_path / "scene" / "s2_cloudy.tif", tmp_path / "scene" / "s1.tif"
    with rasterio.open(cloudy) as a, rasterio.open(sar) as c:
        assert (a.count, a.dtypes[0], c.count, c.dtypes[0]) == (3, "uint16", 3, "float32")
        assert a.crs == c.crs and a.transform == c.transform and a.width == SCENE_SIZE
    result = ScenePredictor(root, "demo3", gpu_ids="-1").predict(
        cloudy, sar, tmp_path / "clear.tif", forward=identity, **SETTINGS
    )
    assert (result.width, result.height, result.bands) == (SCENE_SIZE, SCENE_SIZE, 3)
