"""predict.py: whole-scene inference on tiny GeoTIFF scenes with a tiny random-weight experiment (CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
import torch
from affine import Affine
from PIL import Image

import predict
from data.sentinel import s1_to_unit
from scene import predictor as scene_predictor
from scene.io import open_scene
from scene.model import load_model, load_options, model_forward
from scene.output import OutputFormat, atomic_geotiff
from scene.pipeline import predict_scene
from scene.reader import read_box
from scene.scaling import as_float, s1_unit, s2_unit
from scene.windows import WindowGrid
from tests.helpers import run_main
from tests.scene_fixtures import (
    identity,
    make_experiment,
    numpy_unit,
    predict_flags,
    read,
    unit_of,
    write_scene,
)
from util.errors import UserError


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    make_experiment(root, "ms13", "--input_nc", "13", "--output_nc", "13")
    make_experiment(root, "rgb", "--input_nc", "3", "--output_nc", "3", saved={"s2_bands": "rgb"})
    return root


def argv(ckpt: Path, s2: Path, s1: Path, out: Path, *extra: str, name: str = "ms13") -> list[str]:
    return [
        "--cloudy",
        str(s2),
        "--sar",
        str(s1),
        "--out",
        str(out),
        *predict_flags(ckpt, name),
        *extra,
    ]


def run_scene(
    s2: Path,
    s1: Path,
    forward,
    *,
    window: int = 32,
    overlap: int = 8,
    batch_size: int = 4,
    bands: int = 13,
    out: Path,
    workers: int | None = None,
) -> tuple[np.ndarray, int]:
    """predict_scene with a given forward function; returns the output array and the windows run."""
    scene = open_scene(s2, s1, input_nc=bands, sar_nc=2)
    grid = WindowGrid(scene.height, scene.width, window, overlap)
    reader = scene.batch_reader(grid, batch_size)
    with atomic_geotiff(out, OutputFormat().profile(scene.grid, bands, grid.stride)) as dst:
        ran = predict_scene(
            reader, forward, bands, dst, torch.device("cpu"), batch_size, progress=False, workers=workers
        )
    reader.close()
    scene.close()
    return read(out), ran


# ---------------------------------------------------------------------------- scaling
@pytest.mark.parametrize("dtype", ["uint16", "int16", "uint32"])
def test_device_scaling_equals_data_sentinel(dtype):
    """predict.py scales on the device; it must give data.sentinel's numbers exactly."""
    rng = np.random.default_rng(0)
    low = -500 if dtype == "int16" else 0
    raw = rng.integers(low, 32767 if dtype == "int16" else 65535, (3, 17, 19)).astype(dtype)
    raw[:, 0, 0] = 0
    unsigned = raw.dtype.kind == "u"
    tensor = torch.from_numpy(raw.view(raw.dtype.str.replace("u", "i")) if unsigned else raw)
    unit, missing = s2_unit(as_float(tensor, unsigned), 0)
    np.testing.assert_array_equal(unit.numpy(), numpy_unit(raw, "s2", 0))
    assert missing.numpy().sum() == 1 and missing[0, 0]


@pytest.mark.parametrize("variant", ["standard", "dsen2cr"])
def test_device_sar_scaling_equals_data_sentinel(variant):
    rng = np.random.default_rng(1)
    db = rng.uniform(-40, 5, (2, 13, 11)).astype("float32")
    db[0, 0, 0], db[1, 0, 0], db[0, 1, 1] = np.nan, np.inf, -np.inf
    unit, missing = s1_unit(torch.from_numpy(db), None, variant)
    expected = s1_to_unit(db, variant)
    expected[~np.isfinite(db)] = 0
    np.testing.assert_array_equal(unit.numpy(), expected)
    assert missing.numpy().sum() == 1 and missing[0, 0]


# ---------------------------------------------------------------------------- the output file
def test_georeference_and_format_kept_for_a_scene_not_a_multiple_of_the_window(ckpt, tmp_path, capsys):
    s2, s1 = write_scene(tmp_path, 70, 90)
    out = tmp_path / "clear.tif"
    assert run_main(predict.main, argv(ckpt, s2, s1, out, "--batch_size", "3")) == 0
    assert "wrote" in capsys.readouterr().out
    with rasterio.open(out) as dst, rasterio.open(s2) as src:
        assert (dst.crs, dst.transform, dst.width, dst.height) == (src.crs, src.transform, 90, 70)
        assert dst.count == 13 and dst.dtypes == ("float32",) * 13
        assert np.isnan(dst.nodata)
        assert dst.descriptions[:4] == ("B1", "B2", "B3", "B4")
        data = dst.read()
    assert np.isfinite(data).all() and data.min() >= 0 and data.max() <= 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_bands_named_in_the_training_options_are_selected(ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(scene_predictor, "model_forward", lambda model: identity)
    s2, s1 = write_scene(tmp_path, 40, 40)
    out = tmp_path / "rgb.tif"
    assert run_main(predict.main, argv(ckpt, s2, s1, out, name="rgb")) == 0
    with rasterio.open(out) as dst:
        assert dst.count == 3 and dst.descriptions == ("B4", "B3", "B2")
        np.testing.assert_allclose(dst.read(), unit_of(s2)[[3, 2, 1]], atol=1e-6)


# ---------------------------------------------------------------------------- blending
@pytest.mark.parametrize(
    ("h", "w", "window", "overlap"), [(70, 90, 32, 8), (64, 64, 32, 0), (20, 45, 32, 16), (97, 33, 64, 40)]
)
def test_blending_reconstructs_an_identity_model_exactly(tmp_path, h, w, window, overlap):
    """Weights are normalised everywhere (borders, corners, overhanging windows, small scenes)."""
    s2, s1 = write_scene(tmp_path, h, w, s2_nodata=None)
    out, _ = run_scene(s2, s1, identity, window=window, overlap=overlap, out=tmp_path / "o.tif")
    np.testing.assert_allclose(out, unit_of(s2), atol=2e-6)


def reference(s2: Path, s1: Path, forward, grid: WindowGrid, bands: int = 13) -> np.ndarray:
    """The same windows and weights accumulated over the whole scene in memory, one window at a time."""
    w = grid.window
    total = np.zeros((bands + 1, grid.rows[-1] + w, grid.padded_width))
    with rasterio.open(s2) as a_src, rasterio.open(s1) as c_src:
        for k, j in grid.windows():
            y, x = grid.rows[k], grid.cols[j]
            a = numpy_unit(read_box(a_src, list(range(1, bands + 1)), y, x, w, w)[0], "s2", a_src.nodata)
            c = numpy_unit(read_box(c_src, [1, 2], y, x, w, w)[0], "s1")
            pred = forward(torch.from_numpy(a)[None], torch.from_numpy(c)[None])[0].numpy()
            weight = np.outer(grid.ramp(k, len(grid.rows)), grid.ramp(j, len(grid.cols)))
            total[:bands, y : y + w, x : x + w] += pred * weight
            total[bands, y : y + w, x : x + w] += weight
    return (total[:bands] / total[bands])[:, : grid.height, : grid.width]


@pytest.mark.parametrize(("batch_size", "workers"), [(1, None), (3, None), (64, None), (3, 2)])
def test_streaming_strips_equal_whole_scene_accumulation_for_any_batch_size(
    ckpt, tmp_path, batch_size, workers
):
    """Strips, carried rows, emitted column pieces, batches spanning strips and the reader and
    writer threads (used on GPUs) change nothing."""
    opt = load_options(str(ckpt), "ms13")
    forward = model_forward(load_model(opt, str(ckpt), "latest", "-1"))
    s2, s1 = write_scene(tmp_path, 75, 100, smooth=True)
    out, ran = run_scene(s2, s1, forward, batch_size=batch_size, out=tmp_path / "o.tif", workers=workers)
    expected = reference(s2, s1, forward, WindowGrid(75, 100, 32, 8))
    assert ran == len(WindowGrid(75, 100, 32, 8)) == 3 * 4
    np.testing.assert_allclose(out, expected, atol=2e-5)


def seam_ratio(img: np.ndarray, grid: WindowGrid) -> float:
    """Mean |step| between neighbouring pixels across window borders / the same away from them.

    Borders: the hard cuts a naive tiling would show (middle of each overlap, or the window edge).
    """
    cuts = [x + grid.window - grid.overlap // 2 for x in grid.cols[:-1]]
    dx = np.abs(np.diff(img, axis=-1)).mean(axis=(0, 1))  # step between column i and i+1
    dy = np.abs(np.diff(img, axis=-2)).mean(axis=(0, 2))
    at = np.concatenate([dx[[c - 1 for c in cuts]], dy[[c - 1 for c in cuts]]])
    away = np.concatenate(
        [
            np.delete(dx, [c - 1 + d for c in cuts for d in range(-3, 4)]),
            np.delete(dy, [c - 1 + d for c in cuts for d in range(-3, 4)]),
        ]
    )
    return float(at.mean() / away.mean())


def test_no_seams_across_window_borders(tmp_path):
    """A model whose output shifts with each window's content (as instance norm does) shows hard
    seams without overlap; with the cross-fade, steps across borders are like those inside.

    (A random-weight U-Net is no probe for seams: its output is as rough inside a window as across
    a hard cut. That the real network's windows are blended as designed is checked against the
    whole-scene reference above.)"""

    def per_window_offset(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (
            a + 0.5 * (a.mean(dim=(1, 2, 3), keepdim=True) - 0.5) + 0.05 * c.mean(dim=(1, 2, 3), keepdim=True)
        )

    s2, s1 = write_scene(tmp_path, 96, 96, smooth=True, seed=0)
    hard, _ = run_scene(s2, s1, per_window_offset, window=32, overlap=0, out=tmp_path / "hard.tif")
    soft, _ = run_scene(s2, s1, per_window_offset, window=32, overlap=16, out=tmp_path / "soft.tif")
    assert seam_ratio(hard, WindowGrid(96, 96, 32, 0)) > 4  # the criterion does see seams (5.4 here)
    assert seam_ratio(soft, WindowGrid(96, 96, 32, 16)) < 1.25  # 1.08 here


# ---------------------------------------------------------------------------- nodata
def test_nodata_where_both_inputs_are_nodata(tmp_path):
    s2, s1 = write_scene(tmp_path, 96, 96, s2_nodata=0)
    with rasterio.open(s2, "r+") as dst:
        a = dst.read()
        a[:, :40, :] = 0  # optical missing in the top 40 rows
        dst.write(a)
    with rasterio.open(s1, "r+") as dst:
        c = dst.read()
        c[:, :, :50] = np.nan  # SAR missing in the left 50 columns
        dst.write(c)
    out, ran = run_scene(s2, s1, identity, window=32, overlap=8, out=tmp_path / "o.tif")
    both = np.zeros((96, 96), bool)
    both[:40, :50] = True
    assert np.isnan(out[:, both]).all()
    assert np.isfinite(out[:, ~both]).all()
    assert ran < len(WindowGrid(96, 96, 32, 8))  # windows with no data at all are skipped
    with rasterio.open(tmp_path / "o.tif") as dst:
        assert np.isnan(dst.nodata)


def test_nodata_value_can_be_a_number(ckpt, tmp_path):
    s2, s1 = write_scene(tmp_path, 40, 40)
    with rasterio.open(s2, "r+") as dst:
        dst.write(np.zeros((13, 40, 40), "uint16"))
    with rasterio.open(s1, "r+") as dst:
        dst.nodata = -9999
        dst.write(np.full((2, 40, 40), -9999, "float32"))
    out = tmp_path / "o.tif"
    assert run_main(predict.main, argv(ckpt, s2, s1, out, "--nodata", "-1")) == 0
    with rasterio.open(out) as dst:
        assert dst.nodata == -1 and (dst.read() == -1).all()


# ---------------------------------------------------------------------------- errors
def expect_error(capsys, argv_: list[str], *words: str) -> str:
    assert run_main(predict.main, argv_) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: "), err
    for word in words:
        assert word in err[-1], err[-1]
    return err[-1]


@pytest.mark.parametrize("what", ["size", "transform", "crs"])
def test_sar_on_a_different_grid_is_resampled_with_a_note(ckpt, tmp_path, capsys, what):
    kwargs = {
        "size": {"sar_size": (40, 41)},
        "transform": {"sar_transform": Affine(10.0, 0.0, 600010.0, 0.0, -10.0, 5100000.0)},
        "crs": {"sar_crs": "EPSG:32633"},
    }[what]
    s2, s1 = write_scene(tmp_path, 40, 40, **kwargs)
    (x,), (y,) = rasterio.warp.transform("EPSG:32632", "EPSG:32633", [600000.0], [5100000.0])
    if what == "crs":  # the same place in the neighbouring UTM zone
        s2, s1 = write_scene(tmp_path, 40, 40, **kwargs, sar_transform=Affine(10.0, 0, x, 0, -10.0, y))
    assert run_main(predict.main, argv(ckpt, s2, s1, tmp_path / "o.tif")) == 0
    assert "resampled onto the grid" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"s2_bands": 4}, ("4 band(s)", "takes 13")),
        ({"sar_bands": 3}, ("3 band(s)", "2 SAR", "(VV, VH in dB)")),
        ({"s2_dtype": "float32"}, ("float32", "digital numbers")),
    ],
)
def test_wrong_bands_and_dtypes_are_refused(ckpt, tmp_path, capsys, kwargs, words):
    s2, s1 = write_scene(tmp_path, 40, 40, **kwargs)
    expect_error(capsys, argv(ckpt, s2, s1, tmp_path / "o.tif"), *words)


def test_a_sar_image_short_of_a_png_models_third_band_says_what_it_is(tmp_path, capsys):
    root = make_experiment(tmp_path / "ck", "sar3", "--input_nc", "13", "--output_nc", "13", "--sar_nc", "3")
    s2, s1 = write_scene(tmp_path, 40, 40)
    expect_error(
        capsys,
        argv(root, s2, s1, tmp_path / "o.tif", name="sar3"),
        "2 band(s)",
        "3 SAR",
        "VV, VH and their mean",
    )


def test_a_png_scene_is_refused_as_no_geotiff_without_a_rasterio_warning(ckpt, tmp_path, capsys):
    s2, s1 = write_scene(tmp_path, 40, 40)
    png = tmp_path / "cloudy.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(png)
    assert run_main(predict.main, argv(ckpt, png, s1, tmp_path / "o.tif")) == 2
    err = capsys.readouterr().err
    assert "Warning" not in err and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(png) in last and "PNG file, not a GeoTIFF" in last, last
    assert not (tmp_path / "o.tif").exists()


def test_a_13_band_scene_for_a_3_band_model_without_band_choice_says_how(tmp_path, capsys):
    root = make_experiment(tmp_path / "ck", "plain3", "--input_nc", "3", "--output_nc", "3")
    s2, s1 = write_scene(tmp_path, 40, 40)
    expect_error(capsys, argv(root, s2, s1, tmp_path / "o.tif", name="plain3"), "--s2_bands")
    assert (
        run_main(
            predict.main, argv(root, s2, s1, tmp_path / "o.tif", "--s2_bands", "B4,B3,B2", name="plain3")
        )
        == 0
    )


def test_missing_experiment_unreadable_file_and_bad_window(ckpt, tmp_path, capsys):
    s2, s1 = write_scene(tmp_path, 40, 40)
    out = tmp_path / "o.tif"
    expect_error(capsys, argv(ckpt, s2, s1, out, name="nope"), "no experiment")
    (ckpt / "empty").mkdir(exist_ok=True)
    expect_error(capsys, argv(ckpt, s2, s1, out, name="empty"), "train_opt.json")
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a tiff at all" * 10)
    expect_error(capsys, argv(ckpt, garbage, s1, out), "cannot read cloudy image")
    expect_error(capsys, argv(ckpt, s2, tmp_path / "missing.tif", out), "does not exist")
    expect_error(capsys, argv(ckpt, s2, s1, out, "--window", "48"), "multiple of 32")
    expect_error(capsys, argv(ckpt, s2, s1, out, "--overlap", "32"), "--overlap")
    expect_error(capsys, argv(ckpt, s2, s1, out, "--epoch", "7"), "7_net_")
    assert not out.exists()
    expect_error(capsys, argv(ckpt, s2, s1, garbage / "o.tif"), "is a file, not a folder")


def test_missing_output_folders_are_made(ckpt, tmp_path):
    s2, s1 = write_scene(tmp_path, 40, 40)
    out = tmp_path / "results" / "scene" / "clear.tif"
    assert run_main(predict.main, argv(ckpt, s2, s1, out)) == 0
    assert out.is_file()


def test_an_existing_output_is_untouched_when_the_run_fails(ckpt, tmp_path, capsys, monkeypatch):
    s2, s1 = write_scene(tmp_path, 96, 96)
    out = tmp_path / "o.tif"
    out.write_bytes(b"previous result")
    calls = []

    def failing_forward(model):
        def forward(a, c):
            calls.append(1)
            if len(calls) == 2:
                raise UserError("simulated failure in the middle of the scene")
            return a

        return forward

    monkeypatch.setattr(scene_predictor, "model_forward", failing_forward)
    expect_error(capsys, argv(ckpt, s2, s1, out, "--batch_size", "2", "--overwrite"), "simulated failure")
    (tmp_path / "bad").mkdir()
    s2_bad, _ = write_scene(tmp_path / "bad", 96, 96, s2_bands=5)
    expect_error(capsys, argv(ckpt, s2_bad, s1, out, "--overwrite"), "band(s)")
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.needs_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_pipeline_matches_the_cpu(ckpt, tmp_path):
    """Pinned copies, the reader/writer threads and device blending give the CPU's result."""
    s2, s1 = write_scene(tmp_path, 300, 200, smooth=True)
    with rasterio.open(s1, "r+") as dst:
        c = dst.read()
        c[:, :100, :70] = np.nan
        dst.write(c)
    with rasterio.open(s2, "r+") as dst:
        a = dst.read()
        a[:, :130, :] = 0
        dst.write(a)
    outs = []
    for gpu, batch in (("-1", "4"), ("0", "3")):
        out = tmp_path / f"o{gpu}.tif"
        assert run_main(predict.main, argv(ckpt, s2, s1, out, "--gpu_ids", gpu, "--batch_size", batch)) == 0
        outs.append(read(out))
    assert (np.isnan(outs[0]) == np.isnan(outs[1])).all() and np.isnan(outs[0]).any()
    np.testing.assert_allclose(outs[1], outs[0], atol=2e-3)  # TF32 convolutions on the GPU


@pytest.mark.parametrize("value", ["16", "32MB"])
def test_gdal_cachemax_from_the_environment_is_honoured(ckpt, tmp_path, monkeypatch, value):
    # A GDAL_CACHEMAX set by the user (GDAL's own variable, possibly with a unit) must not crash.
    monkeypatch.setenv("GDAL_CACHEMAX", value)
    s2, s1 = write_scene(tmp_path, 40, 40)
    assert run_main(predict.main, argv(ckpt, s2, s1, tmp_path / "out.tif")) == 0
    assert (tmp_path / "out.tif").is_file()
