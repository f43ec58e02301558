"""The GAN baselines of the paper's comparison: pix2pix, SAR-opt-cGAN, Simulation-Fusion GAN.

Shapes for 3-band PNG and 13-band Sentinel-2 (+ 2-band SAR) data, one optimisation step moves the
weights of every network it trains (and only those), save/load round trips, seeded determinism,
the parameter counts at the papers' settings, the SF-GAN stage schedule, errors, and the CLI.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

import test as test_script
import train
from models import create_model, networks
from options.base_options import saved_options
from options.test_options import TestOptions
from options.train_options import TrainOptions
from tests.helpers import expect_error, make_triplets, run_main, test_argv, train_argv

MODELS = ("pix2pix", "sar_opt_cgan", "sf_gan")
BANDS = {
    3: ["--input_nc", "3", "--output_nc", "3", "--sar_nc", "3"],
    13: ["--input_nc", "13", "--output_nc", "13", "--sar_nc", "2"],
}
SAR_NC = {3: 3, 13: 2}
# Networks each model trains in one step (sf_gan: per stage).
TRAINED = {"pix2pix": {"G", "D"}, "sar_opt_cgan": {"G", "D"}}


def build(tmp_path, name: str, *extra: str, bands: int = 3, quiet: bool = True):
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "m", "--model", name, *BANDS[bands], *extra)
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        opt = TrainOptions().parse(argv, save=False)
        model = create_model(opt)
        model.setup()
    return model


def batch(bands: int = 3, seed: int = 0, n: int = 1, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(seed)
    nc = {"A": bands, "B": bands, "C": SAR_NC[bands]}
    return {k: torch.rand(n, c, size, size, generator=g) * 2 - 1 for k, c in nc.items()} | {
        "A_paths": ["x"] * n
    }


def weights(model) -> dict[str, dict[str, torch.Tensor]]:
    return {n: {k: v.detach().clone() for k, v in net.state_dict().items()} for n, net in model.nets.items()}


def changed(model, before) -> dict[str, bool | str]:
    """Network -> True if every parameter moved, False if none did, 'some' otherwise."""
    out: dict[str, bool | str] = {}
    for name, net in model.nets.items():
        moved = [not torch.equal(p.detach(), before[name][k]) for k, p in net.named_parameters()]
        out[name] = all(moved) or ("some" if any(moved) else False)
    return out


def eval_outputs(model, data: dict) -> dict[str, torch.Tensor]:
    model.eval()
    return {k: v.clone() for k, v in model.predict(data["A"], data["C"]).items()}


# ---------------------------------------------------------------- shapes and conditioning
@pytest.mark.parametrize("bands", [3, 13])
@pytest.mark.parametrize("name", MODELS)
def test_shapes_and_ranges(tmp_path, name, bands):
    model = build(tmp_path, name, bands=bands)
    data = batch(bands, n=2)
    model.set_input(data)
    out = model.test()
    assert out["fake_B"].shape == (2, bands, 32, 32)
    assert out["fake_B"].abs().max() <= 1
    if name == "sf_gan":
        assert out["sim_B"].shape == (2, bands, 32, 32)
    assert set(model.get_current_visuals()) == set(model.visual_names)


@pytest.mark.parametrize(
    ("name", "g_in", "d_in"),
    [
        ("pix2pix", lambda a, c: a, lambda a, c: 2 * a),
        ("sar_opt_cgan", lambda a, c: a + c, lambda a, c: 2 * a + c),
        ("sf_gan", lambda a, c: 2 * a + c, lambda a, c: 3 * a + c),
    ],
)
def test_generator_input_and_discriminator_condition(tmp_path, name, g_in, d_in):
    model = build(tmp_path, name, bands=13)
    first_conv = lambda net: next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))  # noqa: E731
    assert first_conv(model.nets["G"]).in_channels == g_in(13, 2)
    assert first_conv(model.nets["D"]).in_channels == d_in(13, 2)
    if name == "sf_gan":
        assert first_conv(model.nets["S"]).in_channels == 2


def test_pix2pix_ignores_sar_and_sar_opt_cgan_uses_it(tmp_path):
    data = batch()
    for name, uses in (("pix2pix", False), ("sar_opt_cgan", True)):
        model = build(tmp_path, name)
        a = eval_outputs(model, data)["fake_B"]
        b = eval_outputs(model, data | {"C": -data["C"]})["fake_B"]
        assert torch.equal(a, b) != uses, name


# ---------------------------------------------------------------- parameter counts (paper settings)
def paper_counts(name: str, bands: int) -> dict[str, int]:
    """Parameters at the papers' settings (U-Net 256, ngf = ndf = 64, batch norm), built on 'meta'."""
    argv = ["--dataroot", "x", "--model", name, "--gpu_ids", "-1", *BANDS[bands]]
    with contextlib.redirect_stdout(io.StringIO()):
        opt = TrainOptions().parse(argv, save=False)
        opt.device = torch.device("meta")
        with torch.device("meta"):
            model = create_model(opt)
    return {k: sum(p.numel() for p in net.parameters()) for k, net in model.nets.items()}


def test_parameter_counts_at_the_papers_settings():
    # pix2pix's PyTorch code prints 54.414 M (unet_256, batch norm) and 2.769 M (basic D, 6 bands).
    assert paper_counts("pix2pix", 3) == {"G": 54_413_955, "D": 2_768_705}
    # Zhang et al.'s Saroptgan.py (instance norm, the code base's U-Net without biases): G on 6 bands
    # is the official netG's 54,407,171 (the same builder and input width); D on 9 bands is the
    # official netD's 2,767,809 (6 bands) + 3 x 64 x 4 x 4 first-layer weights.
    assert paper_counts("sar_opt_cgan", 3) == {"G": 54_407_171, "D": 2_767_809 + 3 * 64 * 16}
    # 13 + 2 bands in, 13 out: 9 more input bands (9 x 64 x 16), 10 more outputs (10 x (128 x 16 + 1));
    # D: 19 more input bands.
    assert paper_counts("sar_opt_cgan", 13) == {
        "G": 54_407_171 + 9 * 64 * 16 + 10 * (128 * 16 + 1),
        "D": 2_767_809 + (3 + 19) * 64 * 16,
    }
    assert paper_counts("sf_gan", 3) == {"S": 54_413_955, "G": 54_420_099, "D": 2_774_849}
    assert paper_counts("sf_gan", 13) == {"S": 54_433_421, "G": 54_460_045, "D": 2_804_545}


def test_patchgan_without_bias_drops_only_the_normalised_convolutions_bias():
    from models.networks import define_D

    with_bias, without = (define_D(6, ndf=64, norm="batch", use_bias=b) for b in (True, False))
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(with_bias) - count(without) == 128 + 256 + 512
    convs = [m for m in without.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.bias is not None for c in convs] == [True, False, False, False, True]


# ---------------------------------------------------------------- one optimisation step
@pytest.mark.parametrize("bands", [3, 13])
@pytest.mark.parametrize("name", ["pix2pix", "sar_opt_cgan"])
def test_one_step_moves_every_parameter(tmp_path, name, bands):
    model = build(tmp_path, name, bands=bands)
    before = weights(model)
    model.set_input(batch(bands))
    losses = model.optimize_parameters()
    assert set(losses) == set(model.loss_names) == {"G_GAN", "G_L1", "D_real", "D_fake"}
    assert all(torch.isfinite(v) for v in losses.values()) and not model.skipped_step
    assert changed(model, before) == dict.fromkeys(TRAINED[name], True)


def test_pix2pix_ssim_term_of_zhang_et_als_pix2pix_model(tmp_path):
    """Their registry's models/pix2pix_model.py adds 1 x (1 - SSIM(fake_B, real_B)) to G's loss."""
    plain = build(tmp_path, "pix2pix", "--seed", "2")
    with_ssim = build(tmp_path, "pix2pix", "--seed", "2", "--lambda_ssim", "1")
    assert "G_SSIM" not in plain.loss_names and "G_SSIM" in with_ssim.loss_names
    data = batch(3)
    for model in (plain, with_ssim):
        model.set_input(data)
        model.optimize_parameters()
    fake, real = with_ssim.outputs["fake_B"].detach(), with_ssim.real_B
    expected = 1 - networks.ssim(fake, real)
    torch.testing.assert_close(with_ssim.losses["G_SSIM"], expected)
    # The same draws, another objective: G moved elsewhere, D (stepped first) did not.
    assert torch.equal(next(plain.nets["D"].parameters()), next(with_ssim.nets["D"].parameters()))
    assert not torch.equal(next(plain.nets["G"].parameters()), next(with_ssim.nets["G"].parameters()))


@pytest.mark.parametrize("bands", [3, 13])
def test_sf_gan_trains_the_simulation_then_the_fusion_network(tmp_path, bands):
    model = build(tmp_path, "sf_gan", "--n_epochs_decay", "1", "--lambda_sim_gan", "1", bands=bands)
    assert model.sim_epochs == 1 and model.stage == "simulation"
    before = weights(model)
    model.set_input(batch(bands))
    model.optimize_parameters()
    assert set(model.get_current_losses()) == {"S_L1", "S_GAN", "D_S_real", "D_S_fake"}
    assert changed(model, before) == {"S": True, "D_S": True, "G": False, "D": False}

    model.update_learning_rate()  # end of epoch 1: the fusion stage starts
    assert model.stage == "fusion"
    before = weights(model)
    model.set_input(batch(bands, seed=1))
    model.optimize_parameters()
    assert set(model.get_current_losses()) == {"G_GAN", "G_L1", "D_real", "D_fake"}
    assert changed(model, before) == {"S": False, "D_S": False, "G": True, "D": True}


def test_sf_gan_jitters_the_simulation_in_training_only(tmp_path):
    model = build(tmp_path, "sf_gan", "--sim_epochs", "0", "--no_dropout", "--norm", "instance")
    data = batch(seed=3)
    model.set_input(data)
    model.optimize_parameters()
    shown = model.visuals["sim_B"]
    plain = model.nets["S"](model.real_C)
    assert not torch.allclose(shown, plain), "the fusion stage fed G an unaltered simulation"
    # A gain, then contrast about the mean, on [0, 1] reflectance: an affine map of the plain
    # simulation where nothing was clipped, with slope gain x contrast in [0.25, 2.25].
    inside = shown.abs() < 1
    x, y = plain[inside], shown[inside]
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert 0.25 - 1e-4 <= slope <= 2.25 + 1e-4
    torch.testing.assert_close(y, slope * x + (y.mean() - slope * x.mean()), rtol=0, atol=1e-5)
    # Inference: S then G on the plain simulation, the same every call.
    first, second = eval_outputs(model, data), eval_outputs(model, data)
    torch.testing.assert_close(first["sim_B"], model.nets["S"](data["C"]), rtol=0, atol=0)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_sf_gan_stage_survives_a_resume(tmp_path):
    model = build(tmp_path, "sf_gan", "--n_epochs", "2", "--n_epochs_decay", "2")
    assert model.sim_epochs == 2
    for _ in range(2):
        model.update_learning_rate()
    assert model.stage == "fusion"
    model.save_networks("latest")
    model.checkpoints.save(model, "latest", {"epoch": 2, "total_iters": 2}, saved_options(model.opt))
    fresh = build(tmp_path, "sf_gan", "--n_epochs", "2", "--n_epochs_decay", "2", "--continue_train")
    assert fresh.stage == "simulation"
    with contextlib.redirect_stdout(io.StringIO()):
        fresh.checkpoints.load_training_state(fresh, "latest", fresh.opt)
    assert fresh.epochs_done == 2 and fresh.stage == "fusion"


def test_nonfinite_loss_skips_every_step(tmp_path):
    model = build(tmp_path, "sar_opt_cgan", "--pool_size", "2")
    before = weights(model)
    data = batch()
    data["B"][0, 0, 0, 0] = float("nan")
    model.set_input(data)
    model.optimize_parameters()
    assert "G_L1" in model.skipped_step
    assert changed(model, before) == {"G": False, "D": False}
    assert model.fake_pool.images == []


# ---------------------------------------------------------------- save / load, determinism
@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(tmp_path, name):
    model = build(tmp_path, name)
    model.set_input(batch())
    model.optimize_parameters()
    model.save_networks("7")
    data = batch(seed=5)
    expected = eval_outputs(model, data)

    argv = test_argv(
        tmp_path / "data", tmp_path / "ckpt", tmp_path / "res", "m", "--model", name, "--epoch", "7"
    )
    with contextlib.redirect_stdout(io.StringIO()):
        opt = TestOptions().parse([*argv, "--seed", "9"], save=False)
        loaded = create_model(opt)
        loaded.setup()
    assert set(loaded.nets) == set(model.nets) - {"D", "D_S"}
    for key, net in loaded.nets.items():
        for k, v in net.state_dict().items():
            assert torch.equal(v, model.nets[key].state_dict()[k]), f"{key}.{k}"
    got = eval_outputs(loaded, data)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_run(tmp_path, name):
    runs = []
    for _ in range(2):
        model = build(tmp_path, name, "--seed", "3")
        model.set_input(batch())
        losses = model.optimize_parameters()
        runs.append(({k: float(v) for k, v in losses.items()}, weights(model)))
    (losses_a, w_a), (losses_b, w_b) = runs
    assert losses_a == losses_b
    assert all(torch.equal(w_a[n][k], w_b[n][k]) for n in w_a for k in w_a[n])
    other = build(tmp_path, name, "--seed", "4")
    assert not torch.equal(next(iter(weights(other)["G"].values())), next(iter(w_a["G"].values())))


# ---------------------------------------------------------------- options and errors
def test_pix2pix_defaults_are_the_papers(tmp_path):
    opt = build(tmp_path, "pix2pix").opt
    assert (opt.norm, opt.gan_mode, opt.lambda_L1, opt.no_dropout) == ("batch", "vanilla", 100.0, False)
    assert (opt.lr, opt.beta1, opt.pool_size, opt.init_type, opt.netD) == (2e-4, 0.5, 0, "normal", "basic")
    assert (opt.init_bias, opt.lambda_ssim) == ("zero", 0.0)


@pytest.mark.parametrize(
    ("name", "flags", "fragment"),
    [
        ("pix2pix", ["--lambda_L1", "-1"], "--lambda_L1 must be 0 or more"),
        ("sf_gan", ["--sim_epochs", "3"], "--sim_epochs 3 must lie between 0 and the run's 1 epochs"),
        ("sf_gan", ["--sim_contrast", "1.5"], "--sim_contrast must be in [0, 1)"),
        ("sf_gan", ["--sim_brightness", "-0.1"], "--sim_brightness must be in [0, 1)"),
        ("sf_gan", ["--lambda_sim_gan", "-2"], "--lambda_sim_gan must be 0 or more"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, capfd, name, flags, fragment):
    make_triplets(tmp_path / "data", "train", n=1)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "bad", "--model", name, *flags)
    expect_error(capfd, train.main, argv, fragment)


# ---------------------------------------------------------------- the command line
@pytest.mark.parametrize("name", MODELS)
def test_cli_train_then_test(tmp_path, name):
    make_triplets(tmp_path / "data", "train", n=2)
    make_triplets(tmp_path / "data", "test", n=1, seed=1)
    ckpt, res = tmp_path / "ckpt", tmp_path / "res"
    extra = ["--model", name, "--n_epochs_decay", "1", "--print_freq", "1"]
    assert run_main(train.main, train_argv(tmp_path / "data", ckpt, "cli", *extra)) == 0
    nets = {"pix2pix": "DG", "sar_opt_cgan": "DG", "sf_gan": "DGS"}[name]
    assert sorted(p.name for p in (ckpt / "cli").glob("latest_net_*.pth")) == [
        f"latest_net_{n}.pth" for n in nets
    ]
    log = (ckpt / "cli" / "loss_log.txt").read_text()
    if name == "sf_gan":  # two epochs: the simulation stage, then the fusion stage
        assert "(epoch: 1," in log and "S_L1" in log and "G_L1" in log
    assert run_main(test_script.main, test_argv(tmp_path / "data", ckpt, res, "cli", "--model", name)) == 0
    images = {p.name for p in (res / "cli" / "test_latest" / "images").glob("*.png")}
    expected = {"000_real_A.png", "000_fake_B.png", "000_real_B.png"}
    expected |= {"000_real_C.png"} if name != "pix2pix" else set()
    expected |= {"000_sim_B.png"} if name == "sf_gan" else set()
    assert expected <= images, images


@pytest.mark.parametrize("name", MODELS)
def test_light_flags_parse_for_training_and_testing(tmp_path, name):
    from models import find_model_using_name

    light = find_model_using_name(name).light_flags
    assert light and find_model_using_name(name).tiny_flags == ()
    with contextlib.redirect_stdout(io.StringIO()):
        opt = TrainOptions().parse(["--dataroot", "x", "--model", name, *light], save=False)
        TestOptions().parse(["--dataroot", "x", "--model", name, *light], save=False)
    assert (opt.ngf, opt.ndf) == (32, 32)


def test_pix2pix_tests_as_the_paper_unless_eval(tmp_path):
    """Without --eval the networks stay in training mode at test time, as the pix2pix paper tests:
    dropout on (its noise) and batch statistics; --eval makes the output deterministic."""
    model = build(tmp_path, "pix2pix", "--netG", "unet_64", "--load_size", "64", "--crop_size", "64")
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.nets["G"].modules()) == 1
    data = batch(size=64)
    model.set_input(data)
    first, second = model.test()["fake_B"].clone(), model.test()["fake_B"].clone()
    assert not torch.equal(first, second)
    assert torch.equal(eval_outputs(model, data)["fake_B"], eval_outputs(model, data)["fake_B"])
