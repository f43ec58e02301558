"""Tests of the native SEN12MS-CR reader (data/sen12mscr*.py, util/geotiff.py) and its end-to-end use.

Tiny GeoTIFF trees are made in tmp_path (tests/sen12mscr_fixtures.py); nothing outside the
repository is read. CPU only, a few seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sen12mscr_fixtures import (
    CRS,
    SIZE,
    TEST,
    TRAIN,
    VAL,
    make_tree,
    s1_db,
    s2_dn,
    tif_path,
    transform_of,
    write_tif,
)

import test as test_script
import train as train_script
from data import create_dataloader
from data.sen12mscr import list_triplets, split_of
from data.sen12mscr_dataset import SEN12MSCRDataset
from data.sentinel import s1_preview, s1_to_unit, s2_preview
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import UserError
from util.geotiff import read_geotiff, same_crs

torch.set_num_threads(1)
TINY = [
    "--netG",
    "unet_32",
    "--crop_size",
    "32",
    "--ngf",
    "4",
    "--ndf",
    "4",
    "--num_threads",
    "0",
    "--display_id",
    "0",
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("sen12mscr"))


def options(root: Path, *extra: str, train: bool = False, phase: str = "test") -> argparse.Namespace:
    argv = [
        "--dataroot",
        str(root),
        "--dataset_mode",
        "sen12mscr",
        "--phase",
        phase,
        "--num_threads",
        "0",
        "--checkpoints_dir",
        str(root / "_ck"),
        "--crop_size",
        "32",
        "--netG",
        "unet_32",
        *extra,
    ]
    return (TrainOptions() if train else TestOptions()).parse(argv, save=False)


def dataset(root: Path, *extra: str, **kw) -> SEN12MSCRDataset:
    return SEN12MSCRDataset(options(root, *extra, **kw))


def one_line_error(exc: pytest.ExceptionInfo, *needles: str) -> None:
    text = str(exc.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, text


# ----------------------------------------------------------------------------- split and listing
def test_split_matches_scene_numbers_exactly():
    assert split_of("ROIs1158_spring", "106") == "test"
    assert split_of("ROIs1158_spring", "1") == "train"  # a prefix of 106, 123, 140 ... but not a test scene
    assert split_of("ROIs1158_spring", "10") == "train"
    assert split_of("ROIs1158_spring", "17") == "val"
    assert split_of("ROIs1868_summer", "17") == "val"
    assert split_of("ROIs1970_fall", "17") == "train"
    assert split_of("ROIs2017_winter", "63") == "test"
    assert split_of("ROIs1970_fall", "65") == "val"


@pytest.mark.parametrize("phase, stems", [("train", TRAIN), ("test", TEST), ("val", VAL)])
def test_listing_by_split(tree, phase, stems):
    assert [t.stem for t in list_triplets(tree, phase)] == stems
    winter = [s for s in stems if "winter" in s]
    if winter:
        assert [t.stem for t in list_triplets(tree, phase, ("ROIs2017_winter",))] == winter
    else:
        with pytest.raises(UserError, match="no complete test triplets"):
            list_triplets(tree, phase, ("ROIs2017_winter",))


def test_item_contents_and_default_collate(tree):
    opt = options(tree)
    assert (opt.input_nc, opt.output_nc, opt.sar_nc, opt.preprocess) == (13, 13, 2, "crop")
    loader = create_dataloader(opt)
    batch = next(iter(loader))
    assert batch["A"].shape == (1, 13, SIZE, SIZE) and batch["B"].shape == (1, 13, SIZE, SIZE)
    assert batch["C"].shape == (1, 2, SIZE, SIZE)
    for key in "ABC":
        assert batch[key].dtype == torch.float32 and -1 <= batch[key].min() and batch[key].max() <= 1
    assert batch["stem"] == ["ROIs1158_spring_106_p30"]
    assert batch["A_paths"][0].endswith(
        "ROIs1158_spring_s2_cloudy/s2_cloudy_106/ROIs1158_spring_s2_cloudy_106_p30.tif"
    )
    assert batch["C_paths"][0].endswith("ROIs1158_spring_s1/s1_106/ROIs1158_spring_s1_106_p30.tif")
    assert isinstance(batch["crs"], list) and same_crs(batch["crs"][0], _wkt(CRS))
    assert batch["transform"].shape == (1, 6)
    assert batch["transform"][0].tolist() == list(transform_of("106", "30"))
    assert int(batch["nonfinite"][0]) == 0


def _wkt(crs: str) -> str:
    from rasterio.crs import CRS as RCRS

    return RCRS.from_user_input(crs).to_wkt()


def test_preprocessing_values(tmp_path):
    root = make_tree(tmp_path, {("ROIs1970_fall", "139"): ("1",)})
    dn = np.zeros((13, SIZE, SIZE), np.uint16)
    dn[:, 0, :5] = np.array([0, 2500, 5000, 10000, 12000], np.uint16)
    db = np.full((2, SIZE, SIZE), -12.5, np.float32)
    db[:, 1, :4] = np.array([-40.0, -30.0, 0.0, 3.0], np.float32)
    db[0, 2, 0] = np.nan
    write_tif(tif_path(root, "s2", "ROIs1970_fall", "139", "1"), dn, transform_of("139", "1"))
    write_tif(tif_path(root, "s1", "ROIs1970_fall", "139", "1"), db, transform_of("139", "1"))
    item = dataset(root)[0]
    np.testing.assert_allclose(
        item["B"][:, 0, :5].numpy(), np.tile([-1.0, -0.5, 0.0, 1.0, 1.0], (13, 1)), atol=1e-6
    )
    np.testing.assert_allclose(item["C"][:, 1, :4].numpy(), [[-1, -1, 1, 1], [-1, -1, 1, 1]], atol=1e-6)
    np.testing.assert_allclose(item["C"][:, 0, 0].numpy(), [0.0, 0.0], atol=1e-6)  # -12.5 dB is mid-range
    assert item["C"][0, 2, 0] == -1.0 and item["nonfinite"] == 1  # NaN -> 0 (reflectance) -> -1
    dsen = dataset(root, "--sar_scaling", "dsen2cr")[0]["C"]
    # VV keeps [-25, 0]; VH is clipped to [-32.5, 0]: -30 dB -> 2.5 / 32.5, -12.5 dB -> 20 / 32.5
    np.testing.assert_allclose(
        dsen[:, 1, :4].numpy(), [[-1, -1, 1, 1], [-1, 2 * 2.5 / 32.5 - 1, 1, 1]], atol=1e-6
    )
    np.testing.assert_allclose(dsen[1, 0, 0].item(), 2 * 20 / 32.5 - 1, atol=1e-6)


def test_band_selection_sets_channel_counts(tree):
    full = dataset(tree)[0]
    opt = options(tree, "--s2_bands", "rgb")
    assert (opt.input_nc, opt.output_nc, opt.sar_nc) == (3, 3, 2)
    ds = SEN12MSCRDataset(opt)
    assert torch.equal(ds[0]["A"], full["A"][[3, 2, 1]]) and ds.rgb_bands == (0, 1, 2)
    ds = dataset(tree, "--s2_bands", "B2,B3,B4,B8")
    assert ds[0]["B"].shape[0] == 4 and ds.rgb_bands == (2, 1, 0) and ds.opt.input_nc == 4
    with pytest.raises(UserError) as exc:
        options(tree, "--input_nc", "3")
    one_line_error(exc, "--input_nc 3", "13")
    with pytest.raises(UserError) as exc:
        options(tree, "--sar_nc", "3")
    one_line_error(exc, "--sar_nc 3")
    with pytest.raises(UserError) as exc:
        options(tree, "--s2_bands", "B4,B13")
    one_line_error(exc, "B13")


def test_seasons_filter(tree):
    assert [t.stem for t in dataset(tree, "--seasons", "fall").triplets] == ["ROIs1970_fall_139_p8"]
    assert len(dataset(tree, "--seasons", "spring,ROIs1970_fall")) == 2
    with pytest.raises(UserError) as exc:
        dataset(tree, "--seasons", "summer")
    one_line_error(exc, "ROIs1868_summer")
    with pytest.raises(UserError) as exc:
        dataset(tree, "--seasons", "autumn")
    one_line_error(exc, "autumn")


def test_missing_partner_is_reported(tmp_path, capsys):
    root = make_tree(tmp_path)
    lost = tif_path(root, "s2_cloudy", "ROIs1158_spring", "1", "2")
    lost.unlink()
    with pytest.raises(UserError) as exc:
        dataset(root, phase="train")
    one_line_error(exc, "1 train patch(es)", str(lost), "--skip_incomplete")
    ds = dataset(root, "--skip_incomplete", phase="train")
    assert [t.stem for t in ds.triplets] == ["ROIs1158_spring_1_p1", "ROIs2017_winter_5_p3"]
    assert "left out 1 incomplete train patch(es)" in capsys.readouterr().out
    assert len(dataset(root)) == 2  # the test split is complete


def test_bad_trees(tmp_path):
    (tmp_path / "trainA").mkdir()
    with pytest.raises(UserError) as exc:
        dataset(tmp_path)
    one_line_error(exc, str(tmp_path), "not a SEN12MS-CR tree")
    with pytest.raises(UserError) as exc:
        dataset(tmp_path / "nowhere")
    one_line_error(exc, "does not exist")
    make_tree(tmp_path, {("ROIs1158_spring", "1"): ("1",)})
    with pytest.raises(UserError) as exc:
        dataset(tmp_path)  # only train scenes: no test triplets
    one_line_error(exc, "no complete test triplets")


T = transform_of("139", "8")
BAD_FILES = {
    "s2 bands": ("s2", lambda r: s2_dn(r)[:4], T, CRS, "has 4 band(s)"),
    "s1 bands": ("s1", lambda r: np.concatenate([s1_db(r), s1_db(r)[:1]]), T, CRS, "has 3 band(s)"),
    "s2 dtype": ("s2_cloudy", lambda r: s2_dn(r).astype(np.float32), T, CRS, "holds float32"),
    "s1 dtype": ("s1", lambda r: s1_db(r).astype(np.int16), T, CRS, "holds int16"),
    "size": ("s1", lambda r: s1_db(r, 16), T, CRS, "16x16"),
    "transform": ("s1", s1_db, (10.0, 0.0, 1.0, 0.0, -10.0, 2.0), CRS, "not georeferenced like"),
    "crs": ("s2_cloudy", s2_dn, T, "EPSG:32632", "not georeferenced like"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_give_one_line_errors(tmp_path, case):
    modality, make, transform, crs, needle = BAD_FILES[case]
    root = make_tree(tmp_path, {("ROIs1970_fall", "139"): ("8",)})
    path = tif_path(root, modality, "ROIs1970_fall", "139", "8")
    write_tif(path, make(np.random.default_rng(1)), transform, crs)
    with pytest.raises(UserError) as exc:
        dataset(root)[0]
    one_line_error(exc, str(path), needle)


def test_training_crops_are_paired_and_georeferenced(tmp_path):
    root = make_tree(tmp_path, {("ROIs1158_spring", "1"): ("1",)}, size=64)
    ds = dataset(root, train=True, phase="train")  # random 32-px crops of 64-px patches, random flips
    ref, _ = read_geotiff(ds.triplets[0].s2)
    sar = s1_to_unit(read_geotiff(ds.triplets[0].s1)[0])
    base = transform_of("1", "1")
    seen_flip = seen_plain = False
    for _ in range(12):
        item = ds[0]
        a, _, c, _, e, f = item["transform"].tolist()
        x0, y0 = round((c - base[2]) / 10.0), round((f - base[5]) / -10.0)
        if a < 0:  # flipped: the transform's origin is the right edge of the crop
            x0 -= 32
            seen_flip = True
        else:
            seen_plain = True
        window = np.clip(ref[:, y0 : y0 + 32, x0 : x0 + 32].astype(np.float32), 0, 10000) / 10000
        sar_window = sar[:, y0 : y0 + 32, x0 : x0 + 32]
        if a < 0:
            window, sar_window = window[:, :, ::-1], sar_window[:, :, ::-1]
        np.testing.assert_allclose(item["B"].numpy(), window * 2 - 1, atol=1e-6)
        np.testing.assert_allclose(item["C"].numpy(), sar_window * 2 - 1, atol=1e-6)
        assert e == -10.0 and item["A"].shape[-1] == item["C"].shape[-1] == 32
    assert seen_flip and seen_plain


def test_previews_use_the_selected_bands(tree):
    ds = dataset(tree)
    item = ds[0]
    unit = (item["B"].numpy().astype(np.float64) + 1) / 2
    assert np.array_equal(ds.preview("real_B", item["B"][None]), s2_preview(unit, (3, 2, 1)))
    sar = (item["C"].numpy().astype(np.float64) + 1) / 2
    assert np.array_equal(ds.preview("real_C", item["C"][None]), s1_preview(sar))
    assert ds.preview("att_A", torch.zeros(1, 1, SIZE, SIZE)) is None
    false_colour = dataset(tree, "--s2_bands", "B8,B4,B3")
    assert false_colour.preview_bands == (0, 1, 2) and false_colour.rgb_bands is None
    grey = dataset(tree, "--s2_bands", "B8")
    img = grey.preview("real_A", grey[0]["A"][None])
    assert img.shape == (SIZE, SIZE, 3) and np.array_equal(img[..., 0], img[..., 2])


def test_train_and_test_13_bands_end_to_end(tree, tmp_path):
    ck, res = tmp_path / "ck", tmp_path / "res"
    common = [
        "--dataroot",
        str(tree),
        "--dataset_mode",
        "sen12mscr",
        "--name",
        "ms",
        "--checkpoints_dir",
        str(ck),
        *TINY,
    ]
    assert (
        train_script.main(
            [
                *common,
                "--n_epochs",
                "1",
                "--n_epochs_decay",
                "0",
                "--display_freq",
                "1",
                "--update_html_freq",
                "1",
                "--print_freq",
                "1",
            ]
        )
        == 0
    )
    saved = json.loads((ck / "ms" / "train_opt.json").read_text())
    assert (saved["input_nc"], saved["output_nc"], saved["sar_nc"]) == (13, 13, 2)
    assert (ck / "ms" / "web" / "images" / "epoch001_real_B.png").is_file()
    assert test_script.main([*common, "--results_dir", str(res)]) == 0
    out = res / "ms" / "test_latest"
    for stem, (scene, patch) in zip(TEST, [("106", "30"), ("139", "8")]):
        geo, info = read_geotiff(out / "images" / f"{stem}_fake_B.tif")
        assert geo.shape == (13, SIZE, SIZE) and info.dtype == "float32" and 0 <= geo.min() and geo.max() <= 1
        assert same_crs(info.crs, _wkt(CRS)) and info.transform == transform_of(scene, patch)
        from PIL import Image

        png = np.asarray(Image.open(out / "images" / f"{stem}_real_B.png").convert("RGB"))
        season = "ROIs1158_spring" if scene == "106" else "ROIs1970_fall"
        dn, _ = read_geotiff(tif_path(tree, "s2", season, scene, patch))
        expected = s2_preview(np.clip(dn.astype(np.float32), 0, 10000) / 10000)
        assert np.abs(png.astype(int) - expected).max() <= 1  # float32 round trip through [-1, 1]
    summary = json.loads((out / "metrics_summary.json").read_text())
    # Whole images (and RGB bands), then cloudy/clear pixels of the 13-band cloud mask (s2cloudless if installed).
    split = {f"{p}_{c}" for p in ("paper", "field") for c in ("cloudy", "clear")}
    assert (
        {"paper", "field", "field_rgb"}
        <= set(summary["protocols"])
        <= {"paper", "field", "field_rgb"} | split
    )
    assert summary["coverage"]["detector"] in ("s2cloudless", "cloud_shadow")
    for protocol in ("paper", "field", "field_rgb"):
        assert set(summary["results"][protocol]) == {"fake_B", "real_A"}
    with open(out / "metrics_per_image.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {"field_rgb_psnr", "field_sam", "paper_psnr"} <= set(rows[0])


def test_nan_fill_mean_uses_the_files_mean_before_scaling(tmp_path):
    """GLF-CR's and DSen2-CR's loaders: ``image[np.isnan(image)] = np.nanmean(image)``, then the clip."""
    root = make_tree(tmp_path, {("ROIs1970_fall", "139"): ("1",)})
    db = np.full((2, SIZE, SIZE), -10.0, np.float32)
    db[1] = -30.0
    db[0, 2, 0] = np.nan
    write_tif(tif_path(root, "s1", "ROIs1970_fall", "139", "1"), db, transform_of("139", "1"))
    mean = float(np.nanmean(db))  # about -20 dB: both bands
    item = dataset(root, "--nan_fill", "mean")[0]
    assert item["nonfinite"] == 1
    np.testing.assert_allclose(item["C"][0, 2, 0].item(), 2 * (mean + 25) / 25 - 1, atol=1e-6)
    assert dataset(root)[0]["C"][0, 2, 0] == -1.0  # the default: 0 after scaling
