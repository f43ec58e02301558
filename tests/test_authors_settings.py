"""Each model's declared test mode and data settings, and how test.py, options and SF-GAN follow them."""

from __future__ import annotations

import argparse
import contextlib
import io

import numpy as np
import pytest
import torch

import test as test_script
import train
from data.base_dataset import PairedTransform
from models.glf_cr_model import GLFCRModel
from models.sf_gan_model import SfGanModel
from options.test_options import TestOptions
from options.train_options import TrainOptions
from tests.helpers import make_triplets, read_rgb, test_argv, train_argv, train_steps
from tests.sen12mscr_fixtures import make_tree

TINY_GLF = ["--model", "glf_cr", *GLFCRModel.tiny_flags]


def parse(options, argv):
    with contextlib.redirect_stdout(io.StringIO()):
        return options.parse(argv, save=False)


def test_glf_cr_is_tested_in_eval_mode_and_gives_the_same_outputs_twice(tmp_path):
    data, ckpt = tmp_path / "data", tmp_path / "ckpt"
    make_triplets(data, "train", n=1)
    stems = make_triplets(data, "test", n=1, seed=1)
    assert train.main(train_argv(data, ckpt, "glf", *TINY_GLF, "--glf_drop_path", "0.5")) == 0
    outputs = []
    for run in ("a", "b"):
        results = tmp_path / run
        assert (
            test_script.main(test_argv(data, ckpt, results, "glf", *TINY_GLF, "--glf_drop_path", "0.5")) == 0
        )
        outputs.append(read_rgb(results / "glf" / "test_latest" / "images" / f"{stems[0]}_fake_B.png"))
    assert np.array_equal(*outputs)
    # The declaration decides; --test_mode (or --eval) overrides it, and says so.
    opt = parse(TestOptions(), test_argv(data, ckpt, tmp_path, "glf", *TINY_GLF))
    assert (opt.test_mode, opt.eval) == ("eval", True)
    opt = parse(TestOptions(), test_argv(data, ckpt, tmp_path, "glf", *TINY_GLF, "--test_mode", "train"))
    assert (opt.test_mode, opt.eval) == ("train", False)
    assert (
        parse(TestOptions(), test_argv(data, ckpt, tmp_path, "p", "--model", "pix2pix")).test_mode == "train"
    )


def test_models_set_their_data_defaults_and_user_flags_win(tmp_path):
    make_tree(tmp_path)
    base = ["--dataroot", str(tmp_path), "--dataset_mode", "sen12mscr", "--gpu_ids", "-1"]
    glf = parse(TrainOptions(), [*base, "--model", "glf_cr"])
    assert (glf.sar_scaling, glf.crop_size, glf.preprocess, glf.no_flip, glf.rot90) == (
        "dsen2cr",
        128,
        "crop",
        True,
        False,
    )
    dsen = parse(TrainOptions(), [*base, "--model", "dsen2cr"])
    assert (dsen.sar_scaling, dsen.crop_size, dsen.no_flip, dsen.rot90) == ("dsen2cr", 128, False, True)
    assert parse(TestOptions(), [*base, "--model", "glf_cr"]).sar_scaling == "dsen2cr"
    assert parse(TrainOptions(), [*base, "--model", "pix2pix"]).sar_scaling == "standard"
    mine = parse(
        TrainOptions(),
        [*base, "--model", "glf_cr", "--sar_scaling", "standard", "--crop_size", "64", "--flip"],
    )
    assert (mine.sar_scaling, mine.crop_size, mine.no_flip) == ("standard", 64, False)
    # Zhang et al.'s code base: no resizing before the crop (--loadSize 256 = --fineSize 256).
    png = ["--dataroot", str(tmp_path), "--gpu_ids", "-1"]
    assert parse(TrainOptions(), [*png, "--model", "pix2pix_attn"]).load_size == 256
    sar = parse(TrainOptions(), [*png, "--model", "sar_opt_cgan"])
    assert (
        sar.load_size,
        sar.no_flip,
        sar.gan_mode,
        sar.norm,
        sar.init_type,
        sar.pool_size,
        sar.lambda_L1,
    ) == (256, True, "lsgan", "instance", "xavier", 50, 100.0)
    assert parse(TrainOptions(), [*png, "--model", "pix2pix"]).load_size == 286


def test_rot90_turns_every_image_of_a_sample_alike():
    opt = argparse.Namespace(
        preprocess="crop", load_size=4, crop_size=4, is_train=True, no_flip=True, rot90=True
    )
    transform = PairedTransform(opt)
    torch.manual_seed(3)
    turns = {transform.draw((4, 4), "x")["turns"] for _ in range(40)}
    assert turns == {0, 1, 2, 3}
    arr = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    params = {"size": (4, 4), "crop": (0, 0), "flip": False, "turns": 1}
    assert np.array_equal(transform.apply_array(arr, params), np.rot90(arr, 1, axes=(1, 2)))
    wide = argparse.Namespace(**{**vars(opt), "preprocess": "none"})
    with pytest.raises(Exception, match="--rot90 needs square images"):
        PairedTransform(wide).draw((8, 4), "img.png")


def test_sf_gan_stages_each_get_their_schedule_and_the_frozen_one_is_in_eval_mode(tmp_path):
    make_triplets(tmp_path, "train", n=2)
    argv = train_argv(tmp_path, tmp_path / "ck", "sf", "--model", "sf_gan", "--dropout")
    argv += ["--n_epochs", "2", "--n_epochs_decay", "2"]
    model = train_steps(argv, steps=1)
    assert isinstance(model, SfGanModel) and model.sim_epochs == 2 and model.last_stage == "simulation"
    assert model.nets["S"].training and not model.nets["G"].training
    lrs = []
    for _ in range(4):
        lrs.append(model.current_lrs())
        model.update_learning_rate()
    # S: constant then decaying over its 2 epochs; G and D start at the full rate in epoch 3.
    assert lrs[0]["S"] == 2e-4 and lrs[1]["S"] < 2e-4
    assert lrs[2]["G"] == lrs[2]["D"] == 2e-4 and lrs[3]["G"] < 2e-4
    model.optimize_parameters()
    assert model.last_stage == "fusion" and not model.nets["S"].training and model.nets["G"].training
