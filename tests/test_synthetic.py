"""Tests of the synthetic SAR / optical cloud-removal data generator (data/synthetic*.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from data.synthetic import add_clouds, make_sar, make_scene, make_triplet, write_dataset
from data.synthetic_scene import CLASS_NAMES, FOREST, URBAN, WATER
from scripts.make_demo_data import main

ROOT = Path(__file__).resolve().parents[1]


def _scene(seed: int = 0, size: int = 64) -> np.ndarray:
    return make_scene(np.random.default_rng(seed), size)[0]


def test_triplet_is_deterministic_by_seed_and_index():
    a, b = make_triplet(3, 5, size=64), make_triplet(3, 5, size=64)
    for key in ("A", "B", "C", "mask", "labels"):
        np.testing.assert_array_equal(a[key], b[key])
    other = make_triplet(3, 6, size=64)
    for key in "ABC":
        assert not np.array_equal(a[key], other[key])
    assert not np.array_equal(a["B"], make_triplet(4, 5, size=64)["B"])


def test_shapes_dtypes_and_ranges():
    trip = make_triplet(0, 1, size=64)
    for key in "ABC":
        assert trip[key].shape == (64, 64, 3) and trip[key].dtype == np.uint8
    assert trip["mask"].shape == (64, 64) and trip["mask"].dtype == np.float32
    assert 0.0 <= trip["mask"].min() and trip["mask"].max() <= 1.0
    assert trip["labels"].shape == (64, 64) and int(trip["labels"].max()) < len(CLASS_NAMES)
    rgb, labels = make_scene(np.random.default_rng(2), 48)
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.float32 and labels.shape == (48, 48)
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    sar = make_sar(labels, np.random.default_rng(0))
    assert sar.shape == (48, 48, 3) and sar.dtype == np.float32 and 0.0 <= sar.min() and sar.max() <= 1.0


def test_full_size_scene_has_structure():
    trip = make_triplet(0, 0, size=256)
    assert trip["A"].shape == trip["B"].shape == trip["C"].shape == (256, 256, 3)
    assert len(np.unique(trip["labels"])) >= 4
    assert trip["B"].std() > 10  # not a flat image
    # Mostly natural, non-saturated colours: mean green above mean blue (vegetation).
    assert trip["B"][..., 1].mean() > trip["B"][..., 2].mean()


@pytest.mark.parametrize("shape", [(37, 91, 3), (64, 64), (80, 50, 4)])
def test_add_clouds_any_shape(shape):
    rng = np.random.default_rng(0)
    img = rng.random(shape, dtype=np.float32)
    cloudy, mask = add_clouds(img, rng)
    assert cloudy.shape == img.shape and cloudy.dtype == np.float32
    assert mask.shape == shape[:2] and 0.0 <= mask.min() and mask.max() <= 1.0
    assert 0.0 <= cloudy.min() and cloudy.max() <= 1.0


def test_add_clouds_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        add_clouds(np.zeros((8, 8, 3), np.uint8), rng)
    with pytest.raises(ValueError):
        add_clouds(np.zeros((8, 8, 3), np.float32), rng, cover=(0.7, 0.2))
    with pytest.raises(ValueError):
        make_triplet(0, 0, size=32, cover=(0.2, 0.4), bogus=1)


def test_cloud_cover_follows_requested_range():
    rng = np.random.default_rng(1)
    img = _scene(1)
    fracs = [
        float((add_clouds(img, rng, cover=(0.3, 0.5), haze=False, shadows=False)[1] >= 0.5).mean())
        for _ in range(25)
    ]
    assert all(0.27 <= f <= 0.53 for f in fracs)
    assert 0.33 <= np.mean(fracs) <= 0.47
    fracs = [float((add_clouds(img, rng, cover=(0.1, 0.2))[1] >= 0.5).mean()) for _ in range(25)]
    assert 0.08 <= np.mean(fracs) <= 0.3
    clear_only = add_clouds(img, rng, cover=(0.0, 0.0), haze=False, shadows=False)
    np.testing.assert_array_equal(clear_only[0], img)
    assert clear_only[1].max() == 0.0


def test_thick_clouds_hide_the_ground_and_clear_pixels_are_untouched():
    img = _scene(2)
    cloudy, mask = add_clouds(img, np.random.default_rng(0), cover=(0.4, 0.6), haze=False, shadows=False)
    thick, free = mask > 0.99, mask == 0.0
    assert thick.mean() > 0.2 and free.mean() > 0.2
    assert np.abs(cloudy - img).mean(-1)[thick].mean() > 0.3
    assert cloudy[thick].mean() > 0.55  # bright white / grey
    np.testing.assert_array_equal(cloudy[free], img[free])
    # Shadows darken some cloud-free ground; haze lifts it.
    shaded, mask2 = add_clouds(img, np.random.default_rng(0), cover=(0.4, 0.6), haze=False, shadows=True)
    free2 = mask2 == 0.0
    assert (shaded[free2] < img[free2] - 0.01).any() and not (shaded[free2] > img[free2] + 1e-6).any()
    hazy, mask3 = add_clouds(img, np.random.default_rng(0), thick=False, shadows=False)
    assert mask3.max() <= 0.35 and hazy.mean() > img.mean()


def test_thickness_scales_opacity():
    img = _scene(3)
    _, mask = add_clouds(img, np.random.default_rng(0), cover=(0.5, 0.5), thickness=0.4, haze=False)
    assert mask.max() <= 0.4 + 1e-6 and mask.max() > 0.35


def test_sar_ignores_clouds_but_not_the_scene():
    light = make_triplet(7, 2, size=64, cover=(0.1, 0.2))
    heavy = make_triplet(7, 2, size=64, cover=(0.7, 0.9), haze=False, shadows=False)
    np.testing.assert_array_equal(light["B"], heavy["B"])
    np.testing.assert_array_equal(light["C"], heavy["C"])
    assert not np.array_equal(light["A"], heavy["A"])
    # Where a pixel is clear, A is exactly B.
    free = heavy["mask"] == 0.0
    np.testing.assert_array_equal(heavy["A"][free], heavy["B"][free])


def test_sar_backscatter_by_land_cover():
    labels = np.zeros((32, 96), np.uint8)
    labels[:, :32], labels[:, 32:64], labels[:, 64:] = WATER, FOREST, URBAN
    sar = make_sar(labels, np.random.default_rng(0))
    vv = [sar[:, k * 32 : (k + 1) * 32, 0].mean() for k in range(3)]
    assert vv[0] + 0.2 < vv[1] < vv[2]  # water dark < vegetation < built-up (double bounce)


def test_sar_shows_land_cover_boundaries():
    etas, water, urban = [], [], []
    for i in range(6):
        trip = make_triplet(0, i, size=96)
        vv = ndimage.uniform_filter(trip["C"][..., 0].astype(np.float64), 5)
        lab = trip["labels"]
        means = np.zeros_like(vv)
        for c in np.unique(lab):
            means[lab == c] = vv[lab == c].mean()
        etas.append(means.var() / vv.var())  # share of SAR variance explained by land cover
        water += list(trip["C"][..., 0][lab == WATER])
        urban += list(trip["C"][..., 0][lab == URBAN])
    assert np.mean(etas) > 0.4
    if water and urban:
        assert np.mean(water) + 50 < np.mean(urban)


def test_write_dataset_layout_and_byte_identical(tmp_path):
    counts = write_dataset(tmp_path / "a", n_train=3, n_test=2, size=32, seed=5, workers=1, progress=False)
    assert counts == {"train": 3, "test": 2}
    write_dataset(tmp_path / "b", n_train=3, n_test=2, size=32, seed=5, workers=2, progress=False)
    for split, stems in (
        ("train", ["demo_00000", "demo_00001", "demo_00002"]),
        ("test", ["demo_00003", "demo_00004"]),
    ):
        for key in "ABC":
            folder = tmp_path / "a" / split / f"{split}{key}"
            assert sorted(p.stem for p in folder.glob("*.png")) == stems
            for stem in stems:
                with Image.open(folder / f"{stem}.png") as im:
                    assert im.mode == "RGB" and im.size == (32, 32)
                other = tmp_path / "b" / split / f"{split}{key}" / f"{stem}.png"
                assert (folder / f"{stem}.png").read_bytes() == other.read_bytes()
    # A single sample can be regenerated on its own.
    trip = make_triplet(5, 3, size=32)
    with Image.open(tmp_path / "a" / "test" / "testC" / "demo_00003.png") as im:
        np.testing.assert_array_equal(np.asarray(im), trip["C"])


def test_write_dataset_refuses_to_overwrite(tmp_path):
    out = tmp_path / "demo"
    write_dataset(out, n_train=2, n_test=1, size=24, workers=1, progress=False)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_dataset(out, n_train=1, n_test=1, size=24, workers=1, progress=False)
    write_dataset(out, n_train=1, n_test=1, size=24, workers=1, progress=False, overwrite=True)
    assert len(list((out / "train" / "trainA").glob("*.png"))) == 1  # stale files removed
    with pytest.raises(ValueError):
        write_dataset(tmp_path / "x", n_train=0, n_test=0, workers=1, progress=False)


def test_script_writes_and_reports_errors(tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(
            [
                "--out",
                str(out),
                "--n_train",
                "2",
                "--n_test",
                "1",
                "--size",
                "24",
                "--workers",
                "1",
                "--quiet",
                "--cloud_cover",
                "0.3",
                "0.4",
            ]
        )
        == 0
    )
    assert len(list((out / "test" / "testB").glob("*.png"))) == 1
    capsys.readouterr()
    for argv in (
        ["--out", str(out), "--n_train", "1", "--size", "24"],  # refuses non-empty folder
        ["--out", str(tmp_path / "x"), "--n_train", "-1"],
        ["--out", str(tmp_path / "x"), "--cloud_cover", "0.9", "0.1"],
        ["--bogus"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_script_runs_from_repo_root(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.make_demo_data", "--size", "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --size") and "Traceback" not in proc.stderr
