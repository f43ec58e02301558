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
from scene.model import load_model, load_options, model_forward
from tests.helpers import make_triplets, read_rgb, test_argv, train_argv, train_steps
from tests.scene_fixtures import make_experiment
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
    # Their loaders fill NaN with the image's mean before scaling.
    assert glf.nan_fill == dsen.nan_fill == "mean"
    assert parse(TestOptions(), [*base, "--model", "dsen2cr"]).nan_fill == "mean"
    assert parse(TestOptions(), [*base, "--model", "glf_cr"]).sar_scaling == "dsen2cr"
    assert parse(TrainOptions(), [*base, "--model", "pix2pix"]).sar_scaling == "standard"
    assert parse(TrainOptions(), [*base, "--model", "pix2pix"]).nan_fill == "zero"
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


def test_sf_gan_generator_sees_at_test_the_simulation_it_was_trained_on(tmp_path):
    make_triplets(tmp_path, "train", n=2)
    # One epoch of simulation, then the fusion stage; no jitter, so that G's input is S's output.
    argv = train_argv(tmp_path, tmp_path / "ck", "sf", "--model", "sf_gan", "--n_epochs", "2")
    argv += ["--sim_epochs", "1", "--sim_brightness", "0", "--sim_contrast", "0", "--batch_size", "2"]
    model = train_steps(argv, steps=1)
    model.update_learning_rate()  # the simulation stage is over: S is frozen from now on
    seen = []
    model.nets["G"].register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    g = torch.Generator().manual_seed(3)
    data = {k: torch.rand(2, c, 32, 32, generator=g) * 2 - 1 for k, c in (("A", 3), ("B", 3), ("C", 3))}
    model.set_input(data)
    model.optimize_parameters()
    assert model.last_stage == "fusion"
    trained_on = seen.pop()
    # At test (pix2pix's train mode for G) S runs as it ran in the fusion stage: in eval mode.
    model.apply_test_mode(SfGanModel.test_mode)
    assert model.nets["G"].training and not model.nets["S"].training
    model.predict(data["A"], data["C"])
    torch.testing.assert_close(seen.pop(), trained_on, rtol=0, atol=1e-6)


def test_predict_puts_sf_gans_simulation_in_eval_mode(tmp_path):
    make_experiment(tmp_path, "sf", "--model", "sf_gan", "--dropout")
    model = load_model(load_options(tmp_path, "sf"), tmp_path, "latest", "-1")
    assert model.nets["G"].training and not model.nets["S"].training


def test_whole_scene_windows_get_their_own_statistics_in_train_mode(tmp_path):
    """pix2pix is tested in training mode (batch norm, dropout): in a batch of windows each window is
    normalised on its own, as in a batch of one, whatever its batch-mates are."""
    make_experiment(tmp_path, "p2p", "--model", "pix2pix", "--dropout")
    make_experiment(tmp_path, "still", "--model", "pix2pix", "--no_dropout")
    g = torch.Generator().manual_seed(0)
    a, c = torch.rand(3, 3, 32, 32, generator=g), torch.rand(3, 2, 32, 32, generator=g)

    def run(name: str, windows: list[int]) -> torch.Tensor:
        model = load_model(load_options(tmp_path, name), tmp_path, "latest", "-1")
        assert model.nets["G"].training  # the authors' test mode: dropout on
        torch.manual_seed(5)  # the same dropout draws
        return model_forward(model)(a[windows], c[windows])

    with_1, with_2 = run("p2p", [0, 1]), run("p2p", [0, 2])
    torch.testing.assert_close(with_1[0], with_2[0], rtol=0, atol=1e-6)
    assert not torch.allclose(with_1[1], with_2[1], atol=1e-3)
    # Without dropout: exactly what a batch of one gives.
    torch.testing.assert_close(run("still", [0, 1])[0], run("still", [0])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("model", "zeroed"),
    [("pix2pix", True), ("sf_gan", True), ("sar_opt_cgan", False), ("pix2pix_attn", False)],
)
def test_init_zeroes_biases_as_each_models_authors_do(tmp_path, model, zeroed):
    """pix2pix's init_weights zeroes every conv bias; Zhang et al.'s code base leaves PyTorch's."""
    make_triplets(tmp_path, "train", n=1)
    built = train_steps(train_argv(tmp_path, tmp_path / "ck", "m", "--model", model), steps=0)
    biases = [
        m.bias
        for net in built.nets.values()
        for m in net.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.bias is not None
    ]
    assert biases and all(bool((b == 0).all()) == zeroed for b in biases)


def test_pix2pix_trains_on_resized_crops_on_sen12mscr_too(tmp_path):
    make_tree(tmp_path)
    base = ["--dataroot", str(tmp_path), "--dataset_mode", "sen12mscr", "--gpu_ids", "-1"]
    opt = parse(TrainOptions(), [*base, "--model", "pix2pix"])
    assert (opt.preprocess, opt.load_size, opt.crop_size) == ("resize_and_crop", 286, 256)
    assert PairedTransform(opt).scaled_size((256, 256)) == (286, 286)
    # The comparison's plan records what the run does.
    from comparison import make_plan

    plan = make_plan(
        name="x",
        dataroot=tmp_path,
        setting="paper",
        models_text="pix2pix",
        train_size=3,
        dataset_mode="sen12mscr",
    )
    row = plan.to_json("-1", 0)["rows"][0]
    assert (row["train_data"]["preprocess"], row["train_data"]["load_size"]) == ("resize_and_crop", 286)
    assert (
        parse(TrainOptions(), [*base, "--name", "x", *row["train_argv"][2:]]).preprocess == "resize_and_crop"
    )
    # Tested on the whole patch, as pix2pix tests (load size = crop size).
    test = parse(TestOptions(), [*base, "--model", "pix2pix", "--phase", "test"])
    assert (test.preprocess, test.load_size) == ("crop", test.crop_size)
