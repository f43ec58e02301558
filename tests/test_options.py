"""Options: official aliases, printing and saving, bad names, contradictory values, --gpu_ids."""

from __future__ import annotations

import json

import pytest
import torch

import train
from options.test_options import TestOptions
from options.train_options import TrainOptions
from tests.helpers import run_main

OFFICIAL_TRAIN = (
    "--model pix2pix_attn --niter 210 --lr_policy step --pool_size 50 --display_freq 2000 "
    "--no_dropout --display_id 0 --batchSize 1 --gpu_ids -1 --dataset_mode unaligned_sar "
    "--no_flip --display_freq 500 --save_epoch_freq 40"
).split()


def parse_train(tmp_path, *args: str, save: bool = False):
    argv = ["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path / "ckpt"), "--name", "o", *args]
    return TrainOptions().parse(argv, save=save)


def test_official_spellings_map_to_modern_options(tmp_path):
    opt = parse_train(
        tmp_path,
        "--batchSize",
        "3",
        "--loadSize",
        "64",
        "--fineSize",
        "32",
        "--niter",
        "7",
        "--niter_decay",
        "5",
        "--which_epoch",
        "4",
        "--which_model_netG",
        "unet_32",
        "--nThreads",
        "0",
        "--lambda_A",
        "2",
        "--loss_attn_A",
        "0.5",
    )
    got = {
        k: getattr(opt, k)
        for k in (
            "batch_size",
            "load_size",
            "crop_size",
            "n_epochs",
            "n_epochs_decay",
            "epoch",
            "netG",
            "num_threads",
            "lambda_L1",
            "lambda_attn",
        )
    }
    assert got == {
        "batch_size": 3,
        "load_size": 64,
        "crop_size": 32,
        "n_epochs": 7,
        "n_epochs_decay": 5,
        "epoch": "4",
        "netG": "unet_32",
        "num_threads": 0,
        "lambda_L1": 200.0,
        "lambda_attn": 0.5,
    }
    test_opt = TestOptions().parse(
        ["--dataroot", str(tmp_path), "--how_many", "5", "--which_epoch", "9"], save=False
    )
    assert test_opt.num_test == 5 and test_opt.epoch == "9"
    assert test_opt.serial_batches and test_opt.no_flip and test_opt.load_size == test_opt.crop_size == 256


def test_official_train_command_gives_the_paper_setting(tmp_path):
    opt = parse_train(tmp_path, *OFFICIAL_TRAIN)
    assert opt.dataset_mode == "triplet"  # unaligned_sar is the official name of the triplet dataset
    assert (opt.n_epochs, opt.n_epochs_decay, opt.lr_policy, opt.lr_decay_iters) == (210, 100, "step", 100)
    assert (opt.lr, opt.beta1, opt.gan_mode, opt.pool_size, opt.batch_size) == (2e-4, 0.5, "lsgan", 50, 1)
    assert (opt.netG, opt.netD, opt.norm, opt.no_dropout, opt.no_flip) == (
        "unet_256",
        "basic",
        "instance",
        True,
        True,
    )
    assert (opt.lambda_L1, opt.lambda_attn, opt.lambda_ssim) == (1000.0, 1.0, 10.0)
    assert (opt.display_freq, opt.save_epoch_freq, opt.crop_size) == (500, 40, 256)


def test_options_are_printed_with_non_defaults_marked_and_saved(tmp_path, capsys):
    opt = parse_train(tmp_path, "--niter", "7", "--lambda_A", "3", save=True)
    out = capsys.readouterr().out
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if ":" in line}
    assert "[default: 100]" in lines["n_epochs"] and "7" in lines["n_epochs"]
    assert "[default: 1000.0]" in lines["lambda_L1"] and "300.0" in lines["lambda_L1"]
    assert "[default" not in lines["beta1"] and "[default" not in lines["netG"]
    folder = tmp_path / "ckpt" / "o"
    text = (folder / "train_opt.txt").read_text()
    assert "n_epochs: 7" in " ".join(text.split()) and "[default: 100]" in text
    saved = json.loads((folder / "train_opt.json").read_text())
    assert saved["n_epochs"] == 7 and saved["lambda_L1"] == 300.0 and saved["name"] == "o"
    assert saved["max_dataset_size"] == "inf" and "device" not in saved and opt.lambda_L1 == 300.0


BAD_NAMES = {
    "--model": ["pix2pix_attn"],
    "--dataset_mode": ["triplet", "unaligned_sar"],
    "--netG": ["unet_256", "unet_128", "unet_64", "unet_32"],
    "--netD": ["basic", "n_layers", "pixel"],
    "--lr_policy": ["linear", "step", "plateau", "cosine"],
    "--norm": ["instance", "batch", "none"],
}


@pytest.mark.parametrize("flag", list(BAD_NAMES))
def test_bad_names_exit_2_listing_the_valid_ones(tmp_path, capsys, flag):
    assert (
        run_main(
            train.main, ["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path), flag, "nonsense"]
        )
        == 2
    )
    out, err = capsys.readouterr()
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    assert flag in err and "nonsense" in err
    assert all(name in err for name in BAD_NAMES[flag]), err
    assert not (tmp_path / "experiment_name").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--load_size", "32", "--crop_size", "64", "--netG", "unet_32"],
            "--crop_size 64 is larger than --load_size 32",
        ),
        (["--load_size", "300", "--crop_size", "200"], "needs image sides divisible by 256"),
        (["--preprocess", "crop", "--crop_size", "40", "--netG", "unet_32"], "divisible by 32"),
        (["--epoch", "best"], "expected 'latest' or an epoch number"),
    ],
)
def test_contradictory_sizes_are_one_line_errors(tmp_path, capsys, args, message):
    assert run_main(train.main, ["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_gpu_ids_without_cuda_warns_once_and_uses_the_cpu(tmp_path, capsys):
    opt = parse_train(tmp_path, "--gpu_ids", "0")
    err = capsys.readouterr().err
    assert opt.device == torch.device("cpu") and opt.gpu_list == []
    assert err.count("\n") == 1 and err.startswith("warning:") and "CPU" in err
    assert parse_train(tmp_path, "--gpu_ids", "-1").device == torch.device("cpu")
    argv = ["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path), "--gpu_ids", "zero"]
    assert run_main(train.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --gpu_ids: 'zero'") and err.count("\n") == 1
