"""Tests of the on-the-fly simulated-cloud data set (data/simcloud_dataset.py). CPU only, a few seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import test as test_script
import train as train_script
from data import create_dataloader, find_dataset_using_name
from data.simcloud_dataset import SimcloudDataset
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import UserError

SIZE = 48  # image side on disk; the samples are 32x32 crops


def _write_pairs(root: Path, phase: str, stems: list[str], size: int = SIZE, bands: int = 3) -> None:
    """Dark, smooth cloud-free images (clouds brighten them) and a SAR that is their negative."""
    (root / f"{phase}B").mkdir(parents=True, exist_ok=True)
    (root / f"{phase}C").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for k, stem in enumerate(stems):
        rgb = np.stack([(xx * 2 + k * 7) % 90, (yy * 3 + k) % 90, (xx + yy + 5 * k) % 90], -1).astype(
            np.uint8
        )
        img = rgb if bands == 3 else rgb[..., 0]
        Image.fromarray(img).save(root / f"{phase}B" / f"{stem}.png")
        Image.fromarray(255 - img).save(root / f"{phase}C" / f"{stem}.png")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    _write_pairs(data, "train", ["a", "b", "c"])
    _write_pairs(data, "test", ["t1", "t2"])
    # A <phase>A folder is ignored, even one that would not pair up.
    (data / "trainA").mkdir()
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(data / "trainA" / "unrelated.png")
    return data


def _opt(root: Path, *extra: str, train: bool = True):
    argv = [
        "--dataroot",
        str(root),
        "--dataset_mode",
        "simcloud",
        "--gpu_ids",
        "-1",
        "--netG",
        "unet_32",
        "--crop_size",
        "32",
        "--load_size",
        "32",
        *extra,
    ]
    return (TrainOptions() if train else TestOptions()).parse(argv, save=False)


def _u8(t: torch.Tensor) -> np.ndarray:
    return np.rint((t.numpy() + 1.0) * 127.5).astype(np.int64)


def test_registered_and_defaults(root):
    assert find_dataset_using_name("simcloud") is SimcloudDataset
    opt = _opt(root)
    assert opt.cloud_cover == [0.2, 0.7] and opt.cloud_thickness == 1.0
    assert opt.cloud_seed is None and not opt.no_haze and not opt.no_shadows
    opt = _opt(
        root,
        "--cloud_cover",
        "0",
        "1",
        "--cloud_thickness",
        "0.5",
        "--no_haze",
        "--no_shadows",
        "--cloud_seed",
        "7",
    )
    assert opt.cloud_cover == [0.0, 1.0] and opt.cloud_thickness == 0.5
    assert opt.no_haze and opt.no_shadows and opt.cloud_seed == 7


def test_options_are_saved_as_json(root, tmp_path):
    TrainOptions().parse(
        [
            "--dataroot",
            str(root),
            "--dataset_mode",
            "simcloud",
            "--gpu_ids",
            "-1",
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--name",
            "n",
            "--cloud_cover",
            "0.1",
            "0.3",
        ]
    )
    saved = json.loads((tmp_path / "ck" / "n" / "train_opt.json").read_text())
    assert (
        saved["cloud_cover"] == [0.1, 0.3] and saved["cloud_thickness"] == 1.0 and saved["cloud_seed"] is None
    )


def test_item_shapes_ranges_and_paths(root):
    ds = SimcloudDataset(_opt(root))
    assert len(ds) == 3
    item = ds[1]
    for key in "ABC":
        assert item[key].shape == (3, 32, 32) and item[key].dtype == torch.float32
        assert -1.0 <= float(item[key].min()) and float(item[key].max()) <= 1.0
    mask = item["cloud_mask"]
    assert mask.shape == (1, 32, 32) and mask.dtype == torch.float32
    assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0
    assert item["stem"] == "b"
    assert item["A_paths"] == item["B_paths"] == str(root / "trainB" / "b.png")
    assert item["C_paths"] == str(root / "trainC" / "b.png")


def test_clouds_only_where_the_mask_is(root):
    opt = _opt(
        root, "--no_haze", "--no_shadows", "--cloud_cover", "0.4", "0.4", "--preprocess", "crop", "--no_flip"
    )
    ds = SimcloudDataset(opt)
    for index in range(len(ds)):
        item = ds[index]
        a, b, mask = _u8(item["A"]), _u8(item["B"]), item["cloud_mask"][0].numpy()
        clear, cloudy = mask == 0, mask > 0.9
        assert clear.mean() > 0.2 and cloudy.mean() > 0.05
        np.testing.assert_array_equal(a[:, clear], b[:, clear])
        # Dark ground under bright cloud tops.
        assert (a[:, cloudy] - b[:, cloudy]).min() > 40


def test_haze_touches_everything_and_b_c_stay_aligned(root):
    ds = SimcloudDataset(_opt(root, "--preprocess", "crop"))  # random crop position and flip
    for index in range(len(ds)):
        torch.manual_seed(index)
        item = ds[index]
        assert float((item["cloud_mask"] > 0).float().mean()) > 0.6  # haze almost everywhere
        b, c = _u8(item["B"]), _u8(item["C"])
        np.testing.assert_array_equal(c, 255 - b)  # same crop and flip for B and C
        # B is an unchanged crop of the file (possibly mirrored).
        full = (
            np.asarray(Image.open(root / "trainB" / f"{item['stem']}.png"))
            .transpose(2, 0, 1)
            .astype(np.int64)
        )
        windows = [full[:, y : y + 32, x : x + 32] for y in range(SIZE - 31) for x in range(SIZE - 31)]
        assert any(np.array_equal(b, w) or np.array_equal(b, w[:, :, ::-1]) for w in windows)


def test_test_phase_clouds_are_fixed_per_sample(root):
    first = SimcloudDataset(_opt(root, "--phase", "test", train=False))
    second = SimcloudDataset(_opt(root, "--phase", "test", train=False))
    for index in range(len(first)):
        torch.manual_seed(index)  # torch's state must not matter in testing
        x = first[index]
        torch.manual_seed(100 + index)
        y = second[index]
        for key in ("A", "B", "C", "cloud_mask"):
            assert torch.equal(x[key], y[key]), key
        assert torch.equal(x["A"], first[index]["A"])  # re-reading gives the same clouds
    assert not torch.equal(first[0]["cloud_mask"], first[1]["cloud_mask"])
    # --cloud_seed defaults to --seed and changes the clouds, not the clear image or the SAR.
    same = SimcloudDataset(_opt(root, "--phase", "test", "--cloud_seed", "0", train=False))[0]
    other = SimcloudDataset(_opt(root, "--phase", "test", "--cloud_seed", "1", train=False))[0]
    other_seed = SimcloudDataset(_opt(root, "--phase", "test", "--seed", "1", train=False))[0]
    assert torch.equal(same["A"], first[0]["A"])
    assert not torch.equal(other["A"], first[0]["A"]) and torch.equal(other["A"], other_seed["A"])
    assert torch.equal(other["B"], first[0]["B"]) and torch.equal(other["C"], first[0]["C"])


def test_train_phase_clouds_are_random_but_reproducible(root):
    ds = SimcloudDataset(_opt(root))
    torch.manual_seed(3)
    one = [ds[i] for i in range(len(ds))]
    again = ds[0]
    torch.manual_seed(3)
    two = [ds[i] for i in range(len(ds))]
    for x, y in zip(one, two):
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["cloud_mask"], y["cloud_mask"])
    assert not torch.equal(one[0]["cloud_mask"], again["cloud_mask"])  # new clouds at every read


def test_loader_workers_reproducible_under_seed(root):
    opt = _opt(root, "--num_threads", "2", "--batch_size", "3")

    def batch():
        torch.manual_seed(11)
        return next(iter(create_dataloader(opt)))

    x, y = batch(), batch()
    assert x["cloud_mask"].shape == (3, 1, 32, 32) and list(x["A_paths"]) == list(y["A_paths"])
    assert torch.equal(x["A"], y["A"]) and torch.equal(x["cloud_mask"], y["cloud_mask"])


def test_single_band_images(tmp_path):
    data = tmp_path / "grey"
    _write_pairs(data, "train", ["g1", "g2"], bands=1)
    opt = _opt(data, "--input_nc", "1", "--output_nc", "1", "--sar_nc", "1", "--no_haze", "--no_shadows")
    item = SimcloudDataset(opt)[0]
    for key in "ABC":
        assert item[key].shape == (1, 32, 32)
    mask = item["cloud_mask"][0].numpy()
    assert item["cloud_mask"].shape == (1, 32, 32)
    np.testing.assert_array_equal(_u8(item["A"])[0][mask == 0], _u8(item["B"])[0][mask == 0])
    assert not torch.equal(item["A"], item["B"])


def test_missing_folders_and_unpaired_files(root, tmp_path):
    with pytest.raises(UserError, match="testC"):
        only_b = tmp_path / "onlyb"
        _write_pairs(only_b, "test", ["x"])
        (only_b / "testC" / "x.png").unlink()
        (only_b / "testC").rmdir()
        SimcloudDataset(_opt(only_b, "--phase", "test", train=False))
    (root / "trainC" / "c.png").unlink()
    with pytest.raises(UserError, match="lacks 1"):
        SimcloudDataset(_opt(root))


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--cloud_cover", "0.8", "0.2"], "--cloud_cover"),
        (["--cloud_cover", "0.1", "1.5"], "--cloud_cover"),
        (["--cloud_cover", "-0.1", "0.5"], "--cloud_cover"),
        (["--cloud_cover", "nan", "0.5"], "--cloud_cover"),
        (["--cloud_thickness", "0"], "--cloud_thickness"),
        (["--cloud_thickness", "1.5"], "--cloud_thickness"),
    ],
)
def test_bad_cloud_options_are_user_errors(root, args, option):
    with pytest.raises(UserError) as err:
        _opt(root, *args)
    message = str(err.value)
    assert option in message and "\n" not in message


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--cloud_cover", "0.5"], "--cloud_cover"),
        (["--cloud_thickness", "thick"], "--cloud_thickness"),
        (["--cloud_seed", "x"], "--cloud_seed"),
    ],
)
def test_malformed_cloud_options_exit(root, args, option, capsys):
    with pytest.raises(SystemExit) as err:
        _opt(root, *args)
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and option in lines[0]


def test_bad_options_via_train_main(root, tmp_path, capsys):
    code = train_script.main(
        [
            "--dataroot",
            str(root),
            "--dataset_mode",
            "simcloud",
            "--gpu_ids",
            "-1",
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--cloud_cover",
            "0.9",
            "0.1",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --cloud_cover MIN MAX needs 0 <= MIN <= MAX <= 1, got 0.9 0.1"]
    assert not (tmp_path / "ck").exists()  # refused before anything was written


def test_train_then_test_end_to_end(root, tmp_path):
    ck, results = tmp_path / "checkpoints", tmp_path / "results"
    common = [
        "--dataroot",
        str(root),
        "--name",
        "sim",
        "--dataset_mode",
        "simcloud",
        "--netG",
        "unet_32",
        "--crop_size",
        "32",
        "--load_size",
        "32",
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--num_threads",
        "0",
        "--gpu_ids",
        "-1",
        "--checkpoints_dir",
        str(ck),
        "--cloud_cover",
        "0.3",
        "0.6",
    ]
    assert (
        train_script.main(
            [
                *common,
                "--n_epochs",
                "1",
                "--n_epochs_decay",
                "0",
                "--display_id",
                "0",
                "--print_freq",
                "1",
                "--no_html",
                "--max_dataset_size",
                "1",
            ]
        )
        == 0
    )
    assert (ck / "sim" / "latest_net_G.pth").is_file()
    assert test_script.main([*common, "--results_dir", str(results)]) == 0
    out = results / "sim" / "test_latest"
    for stem in ("t1", "t2"):
        for visual in ("real_A", "real_B", "real_C", "fake_B"):
            assert (out / "images" / f"{stem}_{visual}.png").is_file()
    summary = json.loads((out / "metrics_summary.json").read_text())
    assert summary["results"]
    # The saved cloudy input is the data set's fixed test-phase cloudy image.
    item = SimcloudDataset(_opt(root, "--phase", "test", "--cloud_cover", "0.3", "0.6", train=False))[0]
    saved = np.asarray(Image.open(out / "images" / "t1_real_A.png").convert("RGB")).transpose(2, 0, 1)
    assert np.abs(saved.astype(np.int64) - _u8(item["A"])).max() <= 1
