"""The ``scene`` package's public API, called in-process: ScenePredictor, predict_scene_file, output types.

A tiny random-weight experiment (unet_32, 4 filters) on tiny GeoTIFF scenes, on the CPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import predict
from data.sentinel import s2_to_unit
from scene import OUT_DTYPES, OutputFormat, ScenePredictor, SceneResult, predict_scene_file
from scene.windows import WindowGrid
from tests.helpers import run_main
from tests.scene_fixtures import identity, make_experiment, read, unit_of, write_scene
from util.errors import UserError

SETTINGS = {"window": 32, "overlap": 8, "batch_size": 3, "progress": False}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    make_experiment(root, "ms4", "--input_nc", "4", "--output_nc", "4")
    return root


@pytest.fixture(scope="module")
def predictor(ckpt: Path) -> ScenePredictor:
    return ScenePredictor(ckpt, "ms4", gpu_ids="-1")


def four_band_scene(folder: Path, h: int = 70, w: int = 90, **kwargs) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return write_scene(folder, h, w, s2_bands=4, smooth=True, **kwargs)


def cli(ckpt: Path, s2: Path, s1: Path, out: Path, *extra: str) -> list[str]:
    return [
        *("--cloudy", str(s2), "--sar", str(s1), "--out", str(out), "--name", "ms4"),
        *("--checkpoints_dir", str(ckpt), "--gpu_ids", "-1", "--window", "32", "--overlap", "8"),
        *("--batch_size", "3", *extra),
    ]


def hide_corner(s2: Path, s1: Path) -> np.ndarray:
    """Both inputs missing in the top-left 40 x 50 px (the output's nodata there); returns that mask."""
    with rasterio.open(s2, "r+") as dst:
        a = dst.read()
        a[:, :40, :50] = 0
        dst.write(a)
    with rasterio.open(s1, "r+") as dst:
        c = dst.read()
        c[:, :40, :50] = np.nan
        dst.write(c)
    mask = np.zeros(read(s2).shape[1:], bool)
    mask[:40, :50] = True
    return mask


# ---------------------------------------------------------------------------- the API
def test_predict_scene_file_equals_the_command_line(ckpt, tmp_path, capsys):
    s2, s1 = four_band_scene(tmp_path)
    result = predict_scene_file(
        s2, s1, tmp_path / "api.tif", checkpoints_dir=ckpt, name="ms4", gpu_ids="-1", **SETTINGS
    )
    assert isinstance(result, SceneResult)
    assert (result.width, result.height, result.bands, result.dtype) == (90, 70, 4, "float32")
    assert result.windows == result.windows_run == len(WindowGrid(70, 90, 32, 8))
    assert result.path == tmp_path / "api.tif" and result.megapixels_per_second > 0
    assert run_main(predict.main, cli(ckpt, s2, s1, tmp_path / "cli.tif")) == 0
    assert f"{result.windows} of {result.windows} windows run" in capsys.readouterr().out
    np.testing.assert_array_equal(read(tmp_path / "api.tif"), read(tmp_path / "cli.tif"))
    with rasterio.open(tmp_path / "api.tif") as dst:
        assert dst.dtypes == ("float32",) * 4 and math.isnan(dst.nodata)
        assert dst.tags()["content"] == "cloud-free reflectance in [0, 1]"
        assert dst.tags()["experiment"] == "ms4"


def test_one_predictor_serves_several_scenes_and_takes_a_forward_function(predictor, tmp_path):
    s2, s1 = four_band_scene(tmp_path / "a")
    first = predictor.predict(s2, s1, tmp_path / "model.tif", **SETTINGS)
    model = predictor.model
    second = predictor.predict(s2, s1, tmp_path / "identity.tif", forward=identity, **SETTINGS)
    assert predictor.model is model  # built once
    assert (first.windows_run, second.windows_run) == (first.windows, second.windows)
    np.testing.assert_allclose(read(tmp_path / "identity.tif"), unit_of(s2), atol=2e-6)
    assert not np.allclose(read(tmp_path / "model.tif"), unit_of(s2), atol=1e-3)
    assert predictor.bands == 4 and predictor.window_multiple == 32
    assert "8-bit PNGs (triplet)" in predictor.warning  # the tiny experiment trained on the default data
    batch = torch.rand(2, 4, 32, 32), torch.rand(2, 2, 32, 32)
    out = predictor.forward(*batch)
    assert out.shape == (2, 4, 32, 32) and 0 <= float(out.min()) and float(out.max()) <= 1


def test_a_writer_thread_on_the_cpu_changes_nothing(predictor, tmp_path):
    s2, s1 = four_band_scene(tmp_path)
    for thread in (False, True):
        predictor.predict(
            s2, s1, tmp_path / f"{thread}.tif", write_thread=thread, out_dtype="uint16", **SETTINGS
        )
    np.testing.assert_array_equal(read(tmp_path / "True.tif"), read(tmp_path / "False.tif"))


# ---------------------------------------------------------------------------- uint16 output
def test_uint16_output_is_the_float_output_in_digital_numbers(predictor, tmp_path):
    s2, s1 = four_band_scene(tmp_path)
    missing = hide_corner(s2, s1)
    predictor.predict(s2, s1, tmp_path / "f.tif", **SETTINGS)
    result = predictor.predict(s2, s1, tmp_path / "dn.tif", out_dtype="uint16", **SETTINGS)
    assert result.dtype == "uint16"
    unit, dn = read(tmp_path / "f.tif"), read(tmp_path / "dn.tif")
    assert dn.dtype == np.uint16
    assert np.isnan(unit[:, missing]).all() and (dn[:, missing] == 0).all()
    expected = np.round(unit[:, ~missing].astype(np.float64) * 10000)
    assert np.abs(dn[:, ~missing].astype(np.int64) - expected).max() <= 1
    assert dn[:, ~missing].min() >= 1 and dn.max() <= 10000  # no reflectance reads as nodata 0
    with rasterio.open(tmp_path / "dn.tif") as dst:
        assert dst.nodata == 0 and dst.dtypes == ("uint16",) * 4
        assert dst.descriptions[0] == "band_1 (reflectance x 10000)"  # a 4-band input names no bands
        assert dst.scales == (0.0001,) * 4
        tags = dst.tags()
        assert "reflectance x 10000" in tags["content"] and float(tags["scale_factor"]) == 0.0001
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_uint16_nodata_can_be_above_the_reflectance_range(predictor, tmp_path):
    s2, s1 = four_band_scene(tmp_path, 64, 64)
    missing = hide_corner(s2, s1)
    predictor.predict(
        s2, s1, tmp_path / "dn.tif", out_dtype="uint16", nodata="65535", compress="deflate", **SETTINGS
    )
    dn = read(tmp_path / "dn.tif")
    assert (dn[:, missing] == 65535).all() and dn[:, ~missing].max() <= 10000
    with rasterio.open(tmp_path / "dn.tif") as dst:
        assert dst.nodata == 65535 and dst.compression is not None


def test_uint16_from_the_command_line(ckpt, tmp_path, capsys):
    s2, s1 = four_band_scene(tmp_path, 40, 40)
    out = tmp_path / "dn.tif"
    assert run_main(predict.main, cli(ckpt, s2, s1, out, "--out_dtype", "uint16", "--compress", "zstd")) == 0
    assert "band(s) of uint16 digital numbers" in capsys.readouterr().out
    assert read(out).dtype == np.uint16


def test_encoding_rounds_clips_and_marks_nodata():
    unit = torch.tensor([[[math.nan, -0.2, 0.0, 0.00004, 0.00006, 0.12345, 0.99996, 1.0, 1.7]]])
    zero = OutputFormat.parse("uint16", None).encode(unit).numpy().view(np.uint16)
    high = OutputFormat.parse("uint16", 65535).encode(unit).numpy().view(np.uint16)
    assert zero.tolist() == [[[0, 1, 1, 1, 1, 1234, 10000, 10000, 10000]]]
    assert high.tolist() == [[[65535, 0, 0, 0, 1, 1234, 10000, 10000, 10000]]]
    assert OutputFormat.parse("float32", None).encode(unit) is unit


def test_digital_numbers_invert_data_sentinel():
    """The device conversion is numpy's rint(clip(x, 0, 1) * 10000) (nodata above the range), and
    data.sentinel.s2_to_unit maps its numbers back to within half a DN."""
    unit = torch.from_numpy(np.random.default_rng(0).uniform(-0.1, 1.1, (3, 17, 19)).astype(np.float32))
    unit[0, 0, :4] = torch.tensor([0.00005, 0.00015, 0.49995, 0.99995])  # halves: round to even
    dn = OutputFormat.parse("uint16", 10001).encode(unit).numpy().view(np.uint16)
    expected = np.rint(np.clip(unit.numpy(), 0, 1) * np.float32(10000))
    np.testing.assert_array_equal(dn, expected)
    assert np.abs(s2_to_unit(dn) - np.clip(unit.numpy(), 0, 1)).max() <= 0.5e-4 + 1e-7


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"out_dtype": "uint8"}, ("--out_dtype 'uint8'", "float32, uint16")),
        ({"out_dtype": "uint16", "nodata": "nan"}, ("--nodata nan", "uint16", "10001")),
        ({"out_dtype": "uint16", "nodata": 5000}, ("--nodata 5000", "1..10000")),
        ({"out_dtype": "uint16", "nodata": "70000"}, ("--nodata 70000",)),
        ({"out_dtype": "uint16", "nodata": "10000.5"}, ("--nodata 10000.5",)),
        ({"nodata": "none"}, ("--nodata must be a number or 'nan'",)),
        ({"compress": "jpeg"}, ("--compress 'jpeg'",)),
        ({"window": 48}, ("multiple of 32",)),
        ({"overlap": 32}, ("--overlap 32",)),
        ({"batch_size": 0}, ("--batch_size 0",)),
        ({"num_threads": -1}, ("--num_threads -1",)),
    ],
)
def test_bad_settings_are_refused_in_one_line_before_any_work(predictor, tmp_path, kwargs, words):
    s2, s1 = four_band_scene(tmp_path, 40, 40)
    out = tmp_path / "o.tif"
    out.write_bytes(b"previous")
    with pytest.raises(UserError) as err:
        predictor.predict(s2, s1, out, **{**SETTINGS, **kwargs})
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    assert out.read_bytes() == b"previous"


def test_bad_output_values_on_the_command_line(ckpt, tmp_path, capsys):
    s2, s1 = four_band_scene(tmp_path, 40, 40)
    out = tmp_path / "o.tif"
    assert run_main(predict.main, cli(ckpt, s2, s1, out, "--out_dtype", "uint16", "--nodata", "7")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: --nodata 7")
    assert run_main(predict.main, cli(ckpt, s2, s1, out, "--out_dtype", "float64")) == 2
    assert "--out_dtype" in capsys.readouterr().err
    assert not out.exists()


def test_the_api_refuses_a_missing_experiment_and_a_wrong_scene(ckpt, predictor, tmp_path):
    with pytest.raises(UserError, match="no experiment"):
        ScenePredictor(ckpt, "nope")
    s2, s1 = write_scene(tmp_path, 40, 40)  # 13 bands for a 4-band model
    with pytest.raises(UserError, match="13 band"):
        predictor.predict(s2, s1, tmp_path / "o.tif", **SETTINGS)
    with pytest.raises(UserError, match="is the --cloudy input"):
        predictor.predict(s2, s1, s2, **SETTINGS)
    assert set(OUT_DTYPES) == {"float32", "uint16"}


# ---------------------------------------------------------------------------- the benchmarks
def test_benchmarks_run_as_modules(tmp_path, capsys):
    """A tiny smoke run of the throughput benchmark through the public API, and both --help texts."""
    from scripts import benchmark_memory, benchmark_predict

    for script in (benchmark_predict, benchmark_memory):
        with pytest.raises(SystemExit) as done:
            script.main(["--help"])
        assert done.value.code == 0
        assert f"python -m scripts.{script.__name__.split('.')[-1]}" in capsys.readouterr().out
    tiny = ["--size", "48", "--bands", "3", "--ngf", "4", "--netG", "unet_32", "--window", "32"]
    assert (
        benchmark_predict.main(
            [*tiny, "--overlap", "8", "--repeat", "1", "--stages", "--out_dtype", "uint16"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "network only:" in out and "predict.py:" in out and "writing (uint16, none)" in out


@pytest.mark.slow
def test_the_scene_report_runs_on_tiny_sizes(capsys):
    """benchmark_predict --report: every table, on tiny sizes (the figures are measured elsewhere)."""
    from scripts import benchmark_predict

    tiny = [
        "--size",
        "64",
        "--window",
        "32",
        "--overlap",
        "8",
        "--ngf",
        "4",
        "--netG",
        "unet_32",
        "--repeat",
        "1",
    ]
    more = ["--crop", "96", "--memory_sizes", "64", "96", "--shard_scenes", "2", "--shard_size", "64"]
    assert benchmark_predict.main(["--report", "--models", "pix2pix_attn", *tiny, *more]) == 0
    out = capsys.readouterr().out
    assert "| pix2pix_attn | 9 |" in out and "full tile 10980x10980 (209764 windows)" in out
    assert "scene 96x96: peak RSS" in out and "2 worker(s)" in out and "speed-up of 2 workers" in out


@pytest.mark.needs_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_uint16_on_the_gpu_is_its_float_output_in_digital_numbers(ckpt, tmp_path):
    """Conversion on the device, int16 transport through page-locked buffers, the writer thread."""
    gpu = ScenePredictor(ckpt, "ms4", gpu_ids="0")
    s2, s1 = four_band_scene(tmp_path, 200, 150)
    missing = hide_corner(s2, s1)
    gpu.predict(s2, s1, tmp_path / "f.tif", **SETTINGS)
    gpu.predict(s2, s1, tmp_path / "dn.tif", out_dtype="uint16", **SETTINGS)
    unit, dn = read(tmp_path / "f.tif"), read(tmp_path / "dn.tif")
    assert (dn[:, missing] == 0).all() and np.isnan(unit[:, missing]).all()
    expected = np.round(unit[:, ~missing].astype(np.float64) * 10000)
    assert np.abs(dn[:, ~missing].astype(np.int64) - expected).max() <= 1
