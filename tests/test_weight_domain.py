"""What weight sets expect at their input (InputDomain), the registry of published sets, the cache and
--download (never the network), and the scene checks that read the domain."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import predict
import test as test_script
from cloud_removal import CloudRemover
from data.sentinel import S1_CLIP, S2_BANDS
from models.networks.dsen2cr import parameter_count
from models.networks.glf_cr import GLFCRNet
from models.weight_sets import FORMATS, PUBLISHED, domain_from_options, open_weight_set, registry
from scene.domain import png8_forward
from scripts import convert_sen12mscr as convert
from tests.fixtures.make_dsen2cr_keras_reference import FOLDER
from tests.helpers import expect_error, run_main
from tests.scene_fixtures import make_experiment, read, write_scene
from tests.sen12mscr_fixtures import make_tree, tif_path
from util.errors import UserError

KERAS = FOLDER / "sar_model.hdf5"


# ---------------------------------------------------------------------------- 8-bit PNG models
@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of pix2pix_attn weight files alone (the official release's layout), 3-band RGB + 3-channel SAR."""
    root = tmp_path_factory.mktemp("checkpoints")
    make_experiment(root, "trained", "--input_nc", "3", "--output_nc", "3", "--sar_nc", "3", "--no_dropout")
    (root / "official").mkdir()
    for net in ("G", "G2", "A", "D"):
        shutil.copy(root / "trained" / f"latest_net_{net}.pth", root / "official")
    return root


def test_official_weights_see_a_real_scene_as_the_png_conversion_writes_it(official, tmp_path, capfd):
    """predict.py on Sentinel GeoTIFFs = test.py on the PNGs that scripts/convert_sen12mscr.py makes of them."""
    scene = ("ROIs1158_spring", "106")  # a test-split scene
    tree = make_tree(tmp_path / "native", {scene: ("30",)})
    assert (
        convert.main(["--root", str(tree), "--out", str(tmp_path / "png"), "--splits", "test", "--quiet"])
        == 0
    )
    tiny = ["--netG", "unet_32", "--ngf", "4", "--ndf", "4", "--no_dropout", "--gpu_ids", "-1"]
    argv = [
        "--dataroot",
        str(tmp_path / "png" / "test"),
        "--name",
        "official",
        "--checkpoints_dir",
        str(official),
    ]
    argv += [
        "--results_dir",
        str(tmp_path / "results"),
        "--crop_size",
        "32",
        "--cloud_detector",
        "none",
        *tiny,
    ]
    assert run_main(test_script.main, argv) == 0
    with Image.open(
        tmp_path / "results/official/test_latest/images/ROIs1158_spring_106_p30_fake_B.png"
    ) as img:
        png_output = np.asarray(img).astype(int)
    cloudy, sar = tif_path(tree, "s2_cloudy", *scene, "30"), tif_path(tree, "s1", *scene, "30")
    argv = [
        "--cloudy",
        str(cloudy),
        "--sar",
        str(sar),
        "--out",
        str(tmp_path / "clear.tif"),
        "--name",
        "official",
    ]
    argv += ["--checkpoints_dir", str(official), "--gpu_ids", "-1", "--window", "32", "--overlap", "0"]
    capfd.readouterr()
    assert run_main(predict.main, argv) == 0
    err = capfd.readouterr().err
    assert "PNG conversion's mapping" in err and "Zhang et al. never published" in err
    out = read(tmp_path / "clear.tif")
    assert out.shape == (3, 32, 32) and out.max() <= 0.3 + 1e-6  # reflectance [0, 0.3], B4, B3, B2
    levels = np.rint(out / 0.3 * 255).astype(int).transpose(1, 2, 0)
    assert (
        png_output.std() > 5
        and np.abs(levels - png_output).max() <= 1
        and (levels == png_output).mean() > 0.99
    )


def test_the_mapping_is_said_once_and_other_png_experiments_say_whose_mapping_it_is(
    official, tmp_path, capfd
):
    for name in ("a", "b"):  # two scenes in one run
        s2, s1 = write_scene(tmp_path, 40, 40)
        (
            (tmp_path / "s2").mkdir(exist_ok=True),
            (tmp_path / "s1").mkdir(exist_ok=True),
            (tmp_path / "out").mkdir(exist_ok=True),
        )
        s2.rename(tmp_path / "s2" / f"{name}.tif"), s1.rename(tmp_path / "s1" / f"{name}.tif")
    argv = ["--cloudy", str(tmp_path / "s2"), "--sar", str(tmp_path / "s1"), "--out", str(tmp_path / "out")]
    argv += [
        "--name",
        "trained",
        "--checkpoints_dir",
        str(official),
        "--gpu_ids",
        "-1",
        "--window",
        "32",
        "--overlap",
        "8",
    ]
    capfd.readouterr()
    assert run_main(predict.main, argv) == 0
    err = capfd.readouterr().err
    assert (
        err.count("PNG conversion's mapping") == 1
        and "may differ from how the training PNGs were made" in err
    )
    assert read(tmp_path / "out" / "b.tif").shape == (3, 40, 40)


def test_weights_folder_and_the_api_give_the_same_mapped_scene(official, tmp_path):
    s2, s1 = write_scene(tmp_path, 40, 40)
    argv = ["--cloudy", str(s2), "--sar", str(s1), "--out", str(tmp_path / "a.tif"), "--gpu_ids", "-1"]
    argv += ["--weights", str(official / "official"), "--window", "32", "--overlap", "8"]
    assert run_main(predict.main, argv) == 0
    remover = CloudRemover(official / "official", device="cpu")
    assert remover.bands == ("B4", "B3", "B2") and "never published" in remover.notes[0]
    result = remover(read(s2), read(s1), cloudy_nodata=0, window=32, overlap=8)
    assert result.image.shape == (3, 40, 40)
    np.testing.assert_array_equal(result.image, read(tmp_path / "a.tif"))


@pytest.mark.needs_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_png_mapping_on_a_gpu_gives_the_cpu_s_numbers(official, tmp_path):
    s2, s1 = write_scene(tmp_path, 40, 40)
    results = [
        CloudRemover(official / "official", device=device)(read(s2), read(s1), window=32, overlap=8).image
        for device in ("cpu", "cuda")
    ]
    np.testing.assert_allclose(results[1], results[0], atol=1e-5)


def test_the_png_mapping_maps_outputs_back_and_variances_by_the_stretch_squared():
    domain = domain_from_options(options(dataset_mode="triplet", input_nc=3, sar_nc=3))
    seen = {}

    def fake(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        seen["a"], seen["c"] = a, c
        return torch.full((1, 5, 2, 2), 0.5)  # 3 bands, an attention map, a variance

    a = torch.tensor([0.0, 0.15, 0.3, 0.6]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    c = torch.rand(1, 2, 2, 2)
    out = png8_forward(fake, domain, 3, (False, True))(a, c)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.15, 0.15, 0.15, 0.5, 0.5 * 0.09]))
    assert torch.allclose(
        seen["a"][0, 0].flatten(), torch.tensor([0, 128, 255, 255]) / 255
    )  # 0.15/0.3*255 = 127.5 -> 128
    vv, vh = c[0, 0], c[0, 1]
    assert torch.equal(seen["c"][0, 2], ((vv + vh) / 2 * 255).round() / 255)


# ---------------------------------------------------------------------------- domains
def options(**values) -> argparse.Namespace:
    base = {
        "dataset_mode": "sen12mscr",
        "s2_bands": "all",
        "sar_scaling": "standard",
        "input_nc": 13,
        "sar_nc": 2,
    }
    return argparse.Namespace(**{**base, **values})


def test_domains_from_training_options():
    s12 = domain_from_options(options(s2_bands="B2,B3,B4,B8", input_nc=4, sar_scaling="dsen2cr"))
    assert (
        s12.bands == ("B2", "B3", "B4", "B8") and s12.sar_clip == S1_CLIP["dsen2cr"] and s12.scaling == "unit"
    )
    assert s12.s2_level == "L1C" and s12.s2_dn_offset == 0 and s12.sar_units == "dB"
    png = domain_from_options(options(dataset_mode="triplet", input_nc=3, sar_nc=3), official=True)
    assert png.scaling == "png8" and png.bands == ("B4", "B3", "B2") and png.png_stretch == 0.3
    assert "never published" in png.mapping_note
    other = domain_from_options(options(dataset_mode="synthetic", input_nc=4))
    assert other.scaling == "unit" and other.bands == ("band_1", "band_2", "band_3", "band_4")
    assert other.s2_level == "unknown"


def test_every_published_entry_is_complete_and_counts_its_network():
    formats = {f.name for f in FORMATS}
    for entry in PUBLISHED.values():
        assert entry.format in formats and entry.source.startswith("https://github.com/")
        assert entry.url.startswith("https://drive.google.com/") and entry.licence and entry.reported
        assert entry.domain.bands == S2_BANDS and entry.domain.s2_level == "L1C"
        if entry.model == "glf_cr":
            assert entry.parameters == sum(p.numel() for p in GLFCRNet().parameters())
        else:
            assert entry.parameters == parameter_count(use_sar=entry.domain.uses_sar)
            assert entry.variant.startswith(entry.sar)


# ---------------------------------------------------------------------------- the cache, --download
@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setattr(registry, "cache_dir", lambda: folder)
    return folder


def small_entry(monkeypatch, name: str = "dsen2cr_carl_sar") -> None:
    """Make the registry entry ``name`` describe the small fixture network (4,373 parameters)."""
    monkeypatch.setitem(PUBLISHED, name, dataclasses.replace(PUBLISHED[name], parameters=4373))


def test_a_published_name_not_downloaded_says_where_to_get_it(cache):
    with pytest.raises(UserError, match="download dsen2cr_l1_sar.hdf5 from https://drive.google.com/") as err:
        open_weight_set("dsen2cr_l1_sar")
    assert str(cache / "dsen2cr_l1_sar.hdf5") in str(err.value) and "--download" in str(err.value)
    with pytest.raises(UserError, match="not a published weight set"):
        open_weight_set("no_such_set")


def test_a_cached_file_is_checked_against_its_entry(cache, monkeypatch):
    cache.mkdir()
    shutil.copy(KERAS, cache / "dsen2cr_carl_sar.hdf5")
    with pytest.raises(UserError, match="another file or a damaged download"):
        open_weight_set("dsen2cr_carl_sar")  # 4,373 parameters, not the published 18,947,341
    small_entry(monkeypatch)
    ws = open_weight_set("dsen2cr_carl_sar")
    assert ws.name == ws.entry == "dsen2cr_carl_sar" and ws.path == cache / "dsen2cr_carl_sar.hdf5"
    nosar = PUBLISHED["dsen2cr_carl_nosar"]
    monkeypatch.setitem(PUBLISHED, nosar.name, dataclasses.replace(nosar, parameters=4373))
    shutil.copy(KERAS, cache / "dsen2cr_carl_nosar.hdf5")
    with pytest.raises(UserError, match="with SAR, 4,373 parameters.*is without SAR, CARL loss"):
        open_weight_set("dsen2cr_carl_nosar")  # a file with SAR under the name of the no-SAR set


def test_download_fetches_once_into_the_cache_and_keeps_only_checked_files(cache, monkeypatch, capfd):
    fetched = []

    def fake_download(url: str, dest: Path) -> None:
        fetched.append(url)
        shutil.copy(KERAS, dest)

    monkeypatch.setattr(registry, "download_file", fake_download)
    with pytest.raises(UserError, match="holds 4,373 parameters, not 18,947,341"):
        open_weight_set("dsen2cr_carl_sar", download=True)
    assert not any(cache.iterdir())  # a download that fails the check is not kept
    fetched.clear()
    small_entry(monkeypatch)
    for _ in range(2):
        assert open_weight_set("dsen2cr_carl_sar", download=True).path == cache / "dsen2cr_carl_sar.hdf5"
    assert fetched == [PUBLISHED["dsen2cr_carl_sar"].url]  # the second time from the cache


def test_download_without_gdown_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gdown", None)
    with pytest.raises(UserError, match="pip install gdown"):
        registry.download_file(PUBLISHED["glf_cr"].url, tmp_path / "x")


# ---------------------------------------------------------------------------- inputs that do not fit
@pytest.fixture(scope="module")
def ms13(tmp_path_factory: pytest.TempPathFactory) -> Path:
    saved = {"dataset_mode": "sen12mscr", "s2_bands": "all", "sar_scaling": "standard"}
    root = tmp_path_factory.mktemp("checkpoints")
    return make_experiment(root, "ms13", "--input_nc", "13", "--output_nc", "13", saved=saved)


def scene_argv(ckpt: Path, s2: Path, s1: Path, out: Path) -> list[str]:
    argv = ["--cloudy", str(s2), "--sar", str(s1), "--out", str(out), "--name", "ms13"]
    return argv + ["--checkpoints_dir", str(ckpt), "--gpu_ids", "-1", "--window", "32", "--overlap", "8"]


def test_linear_sar_is_converted_or_refused_as_db_and_8_bit_optical_is_warned_about(ms13, tmp_path, capfd):
    import rasterio

    s2, s1 = write_scene(tmp_path, 40, 40)
    assert run_main(predict.main, scene_argv(ms13, s2, s1, tmp_path / "db.tif")) == 0
    with rasterio.open(s1, "r+") as ds:
        ds.write(10 ** (ds.read() / 10))  # dB -> linear power
    expect_error(
        capfd,
        predict.main,
        [*scene_argv(ms13, s2, s1, tmp_path / "o.tif"), "--sar_units", "db"],
        "s1.tif",
        "no value below 0",
        "--sar_units linear",
    )
    assert not (tmp_path / "o.tif").exists()
    capfd.readouterr()
    assert run_main(predict.main, scene_argv(ms13, s2, s1, tmp_path / "o.tif")) == 0  # --sar_units auto
    assert "taken as linear power" in capfd.readouterr().err
    assert np.abs(read(tmp_path / "o.tif") - read(tmp_path / "db.tif")).max() < 1e-4
    (tmp_path / "o.tif").unlink(), (tmp_path / "o.stac.json").unlink()
    s2, s1 = write_scene(tmp_path, 40, 40)
    with rasterio.open(s2, "r+") as ds:
        ds.write((ds.read() // 40).astype("uint16"))  # a picture of 0..150, not digital numbers
    assert run_main(predict.main, scene_argv(ms13, s2, s1, tmp_path / "o.tif")) == 0
    assert "an 8-bit picture, not Sentinel-2 digital numbers" in capfd.readouterr().err


def test_other_files_are_named_and_refused(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(UserError, match="an HDF5 file but not a Keras model"):
        open_weight_set(path)
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        open_weight_set(tmp_path / "folder")


def test_test_py_refuses_png_data_for_sentinel_weights(tmp_path, capfd):
    argv = [
        "--dataroot",
        str(tmp_path),
        "--weights",
        str(KERAS),
        "--dataset_mode",
        "triplet",
        "--gpu_ids",
        "-1",
    ]
    expect_error(capfd, test_script.main, argv, "sar_model.hdf5", "8-bit PNGs", "--dataset_mode sen12mscr")
