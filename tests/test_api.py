"""The Python API (cloud_removal.CloudRemover), torch.hub entry points, and weight files alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import predict
from cloud_removal import CloudRemover
from tests.helpers import run_main
from tests.scene_fixtures import make_experiment, read, write_scene
from util.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    make_experiment(root, "ms13", "--input_nc", "13", "--output_nc", "13")
    weights = root / "weights_only"
    weights.mkdir()
    for net in ("G", "G2", "A", "D"):
        shutil.copy(root / "ms13" / f"latest_net_{net}.pth", weights)
    return root


def predict_file(ckpt: Path, s2: Path, s1: Path, out: Path, name: str = "ms13", *extra: str) -> None:
    argv = ["--cloudy", str(s2), "--sar", str(s1), "--out", str(out), "--name", name]
    argv += ["--checkpoints_dir", str(ckpt), "--gpu_ids", "-1", "--window", "32", "--overlap", "8", *extra]
    assert run_main(predict.main, argv) == 0


def test_api_on_arrays_gives_the_numbers_of_predict_py_on_geotiffs(ckpt, tmp_path):
    s2, s1 = write_scene(tmp_path, 70, 45)
    predict_file(ckpt, s2, s1, tmp_path / "clear.tif", "ms13", "--maps")
    remover = CloudRemover(ckpt / "ms13", device="cpu")
    result = remover(read(s2), read(s1), cloudy_nodata=0, window=32, overlap=8)
    np.testing.assert_array_equal(result.image, read(tmp_path / "clear.tif"))
    np.testing.assert_array_equal(result.attention, read(tmp_path / "clear_att_A.tif")[0])
    assert result.image.shape == (13, 70, 45) and result.attention.shape == (70, 45)
    assert np.isfinite(result.image).all() and 0 <= result.attention.min() <= result.attention.max() <= 1


def test_api_takes_tensors_and_reflectance_and_returns_tensors(ckpt, tmp_path):
    s2, s1 = write_scene(tmp_path, 40, 40)
    remover = CloudRemover(ckpt / "ms13", device="cpu")
    dn = remover(read(s2), read(s1), window=32, overlap=8)
    refl = remover(
        torch.from_numpy(read(s2).astype(np.float32) / 10000)[None],
        torch.from_numpy(read(s1)),
        cloudy_units="reflectance",
        window=32,
        overlap=8,
    )
    assert isinstance(refl.image, torch.Tensor) and refl.image.shape == (13, 40, 40)
    np.testing.assert_allclose(refl.image.numpy(), dn.image, atol=1e-5)


def test_api_marks_nan_pixels_missing(ckpt, tmp_path):
    s2, s1 = write_scene(tmp_path, 40, 40)
    a, c = read(s2).astype(np.float32), read(s1)
    a[:, :5], c[:, :5] = np.nan, np.nan
    out = CloudRemover(ckpt / "ms13", device="cpu")(a, c, window=32, overlap=8).image
    assert np.isnan(out[:, :5]).all() and np.isfinite(out[:, 5:]).all()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda a, c: (a.transpose(1, 2, 0), c), ("(height, width, bands)", "moveaxis")),
        (lambda a, c: (a[:4], c), ("4 band(s)", "takes 13")),
        (lambda a, c: (a, c[:1]), ("1 band(s)", "dB")),
        (lambda a, c: (a, c[:, :30]), ("same pixels",)),
        (lambda a, c: (a.astype(np.float32) / 10000, c), ("reflectance", "cloudy_units='reflectance'")),
        (lambda a, c: (a, 10 ** (c / 10)), ("linear", "log10", "sar_units='linear'")),
    ],
)
def test_api_refuses_wrong_conventions_in_one_line(ckpt, tmp_path, change, words):
    s2, s1 = write_scene(tmp_path, 40, 40, s2_nodata=None)
    remover = CloudRemover(ckpt / "ms13", device="cpu")
    with pytest.raises(UserError) as err:
        remover(*change(read(s2), read(s1)), window=32, overlap=8)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_api_takes_linear_power_with_sar_units_as_predict_py_does(ckpt, tmp_path):
    s2, s1 = write_scene(tmp_path, 40, 40)
    remover = CloudRemover(ckpt / "ms13", device="cpu")
    db = remover(read(s2), read(s1), window=32, overlap=8).image
    linear = remover(read(s2), 10 ** (read(s1) / 10), sar_units="linear", window=32, overlap=8).image
    assert np.abs(linear - db).max() < 1e-4
    with pytest.raises(UserError, match="sar_units='kelvin'"):
        remover(read(s2), read(s1), sar_units="kelvin")


def test_api_refuses_dn_given_as_reflectance(ckpt, tmp_path):
    s2, s1 = write_scene(tmp_path, 40, 40)
    with pytest.raises(UserError, match="cloudy_units='dn'"):
        CloudRemover(ckpt / "ms13", device="cpu")(read(s2), read(s1), cloudy_units="reflectance")


def test_weight_files_alone_load_with_their_shapes_in_the_api_and_predict_py(ckpt, tmp_path, capsys):
    s2, s1 = write_scene(tmp_path, 40, 40)
    predict_file(ckpt, s2, s1, tmp_path / "a.tif", "ms13")
    predict_file(ckpt, s2, s1, tmp_path / "b.tif", "weights_only")
    np.testing.assert_array_equal(read(tmp_path / "a.tif"), read(tmp_path / "b.tif"))
    remover = CloudRemover(ckpt / "weights_only", device="cpu")
    assert (remover.opt.netG, remover.opt.ngf, remover.opt.input_nc, remover.opt.sar_nc) == (
        "unet_32",
        4,
        13,
        2,
    )


def test_a_folder_without_options_or_weights_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither train_opt.json"):
        CloudRemover(tmp_path / "empty")


def test_torch_hub_local_entry_points(ckpt, tmp_path):
    for name in ("pix2pix_attn", "pix2pix", "sar_opt_cgan", "sf_gan", "glf_cr", "dsen2cr"):
        with pytest.raises(UserError, match=f"trained {name} model"):
            torch.hub.load(str(ROOT), name, source="local")
    remover = torch.hub.load(
        str(ROOT), "pix2pix_attn", source="local", checkpoint=str(ckpt / "ms13"), device="cpu"
    )
    assert isinstance(remover, CloudRemover) and remover.map_names == ("att_A",)
    s2, s1 = write_scene(tmp_path, 33, 47)
    assert remover(read(s2), read(s1), window=32, overlap=8).image.shape == (13, 33, 47)
    with pytest.raises(UserError, match="holds a pix2pix_attn model, not dsen2cr"):
        torch.hub.load(str(ROOT), "dsen2cr", source="local", checkpoint=str(ckpt / "ms13"))


def test_hub_entry_of_a_comparison_model(tmp_path):
    root = make_experiment(
        tmp_path, "ds", "--model", "dsen2cr", "--dsen2cr_feature_sizes", "8", "--dsen2cr_num_layers", "2"
    )
    remover = torch.hub.load(str(ROOT), "dsen2cr", source="local", checkpoint=str(root / "ds"), device="cpu")
    s2, s1 = write_scene(tmp_path, 40, 40, s2_bands=3)
    result = remover(read(s2), read(s1), window=32, overlap=8)
    assert result.image.shape == (3, 40, 40) and set(result.maps) == {"cloud_mask"}


def test_api_errors_name_arguments_not_command_line_flags(ckpt, tmp_path, monkeypatch):
    s2, s1 = write_scene(tmp_path, 40, 40)
    remover = CloudRemover(ckpt / "ms13", device="cpu")
    for kwargs, words in (
        ({"window": 48, "overlap": 8}, ("window=48", "multiple of 32")),
        ({"window": 32, "overlap": 40}, ("overlap=40", "window=32")),
        ({"batch_size": 0}, ("batch_size=0",)),
    ):
        with pytest.raises(UserError) as err:
            remover(read(s2), read(s1), **kwargs)
        assert all(w in str(err.value) for w in words) and "--" not in str(err.value), str(err.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1", 0):
        with pytest.raises(UserError, match="no CUDA device") as err:
            CloudRemover(ckpt / "ms13", device=device)
        assert f"device={device!r}" in str(err.value) and "--" not in str(err.value)
    with pytest.raises(UserError, match="checkpoint='nowhere': no such folder"):
        CloudRemover("nowhere")
    with pytest.raises(UserError, match="epoch='last'"):
        CloudRemover(ckpt / "ms13", epoch="last")


def test_api_says_what_the_third_sar_band_of_a_png_model_is(tmp_path):
    root = make_experiment(tmp_path / "ck", "sar3", "--input_nc", "13", "--output_nc", "13", "--sar_nc", "3")
    s2, s1 = write_scene(tmp_path, 40, 40)
    with pytest.raises(UserError, match=r"sar has 2 band\(s\) but the model takes 3 \(VV, VH and their mean"):
        CloudRemover(root / "sar3", device="cpu")(read(s2), read(s1), window=32, overlap=8)
