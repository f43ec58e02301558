"""DSen2-CR training and command lines: paper defaults, one step, save/load, seeds, train/test/predict
end to end, option errors and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sen12mscr_fixtures import make_tree, tif_path

import predict
import test as test_script
import train as train_script
from models.dsen2cr_model import Dsen2crModel
from options.train_options import TrainOptions
from tests.helpers import expect_error, make_triplets, test_argv, train_argv, train_steps
from tests.test_dsen2cr import MODEL, batch, build
from util.errors import UserError
from util.geotiff import read_geotiff


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.nets["G"].state_dict().items()}


# ----------------------------------------------------------------------------- training
def test_paper_defaults(tmp_path):
    model = build(tmp_path)
    opt = model.opt
    assert (opt.dsen2cr_feature_sizes, opt.dsen2cr_num_layers, opt.dsen2cr_res_scale) == (
        8,
        2,
        0.1,
    )  # tiny flags
    defaults = TrainOptions().parse(["--dataroot", str(tmp_path), "--model", "dsen2cr"], save=False)
    assert (defaults.dsen2cr_feature_sizes, defaults.dsen2cr_num_layers) == (256, 16)
    assert (defaults.lr, defaults.beta1, defaults.batch_size) == (7e-5, 0.9, 16)
    assert (defaults.n_epochs, defaults.n_epochs_decay, defaults.dsen2cr_loss) == (8, 0, "carl")
    assert defaults.dsen2cr_cloud_threshold == 0.2 and defaults.dsen2cr_lambda == 1.0
    nadam = model.optimizers["G"]
    assert isinstance(nadam, torch.optim.NAdam)
    group = nadam.param_groups[0]
    assert (group["lr"], group["betas"], group["momentum_decay"]) == (7e-5, (0.9, 0.999), 4e-3)


def test_one_step_changes_every_weight(tmp_path):
    model = build(tmp_path)
    assert list(model.nets) == ["G"]
    before = weights(model)
    model.set_input(batch())
    losses = model.optimize_parameters()
    assert set(losses) == {"G_CARL", "G_adaptive", "G_target"} and model.skipped_step == []
    assert all(np.isfinite(v) for v in model.get_current_losses().values())
    for key, param in model.nets["G"].named_parameters():
        assert not torch.equal(param.detach(), before[key]), f"{key} did not change"
    visuals = model.get_current_visuals()
    assert set(visuals) == {"real_A", "fake_B", "real_B", "real_C", "cloud_mask"}


def test_training_outputs_equal_inference_outputs(tmp_path):
    model = build(tmp_path)
    data = batch()
    expected = model.predict(data["A"], data["C"])
    model.set_input(data)
    model.optimize_parameters()  # outputs are of the weights before the step
    for name, tensor in expected.items():
        torch.testing.assert_close(model.outputs[name], tensor)


def test_nonfinite_loss_skips_the_step(tmp_path):
    model = build(tmp_path)
    before = weights(model)
    data = batch()
    data["B"][0, 0, 0, 0] = float("nan")
    model.set_input(data)
    model.optimize_parameters()
    assert model.skipped_step == ["G_CARL", "G_adaptive", "G_target"]
    assert all(torch.equal(v, before[k]) for k, v in model.nets["G"].state_dict().items())


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build(tmp_path)
    model.set_input(batch())
    model.optimize_parameters()
    model.save_networks("latest")
    assert sorted(p.name for p in model.save_dir.glob("*.pth")) == ["latest_net_G.pth"]
    data = batch(5)
    expected = model.predict(data["A"], data["C"])["fake_B"]

    torch.manual_seed(123)
    other = build(tmp_path)
    assert not torch.equal(other.predict(data["A"], data["C"])["fake_B"], expected)
    other.load_networks("latest")
    assert torch.equal(other.predict(data["A"], data["C"])["fake_B"], expected)


def run_two_steps(root, seed: int) -> dict:
    argv = train_argv(root / "data", root / "ckpt", "det", *MODEL, "--seed", str(seed), "--load_size", "40")
    return weights(train_steps([*argv, "--batch_size", "2"]))


def test_seeded_runs_are_reproducible(tmp_path):
    make_triplets(tmp_path / "data", "train", n=4, size=40)  # shuffling, random crops and flips
    a, b, c = (run_two_steps(tmp_path, s) for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


# ----------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("variant", [(), ("--dsen2cr_no_sar",)], ids=["sar", "no-sar"])
def test_train_then_test_on_png_triplets(tmp_path, variant):
    root, ck, res = tmp_path / "data", tmp_path / "ck", tmp_path / "res"
    make_triplets(root, "train", n=3)
    make_triplets(root, "test", n=2, seed=1)
    flags = [*MODEL, *variant]
    assert train_script.main(train_argv(root, ck, "d", *flags, "--batch_size", "2")) == 0
    assert (ck / "d" / "latest_net_G.pth").is_file()
    assert test_script.main(test_argv(root, ck, res, "d", *flags)) == 0
    out = res / "d" / "test_latest"
    for visual in ("real_A", "real_B", "real_C", "fake_B", "cloud_mask", "att_overlay"):
        assert (out / "images" / f"000_{visual}.png").is_file(), visual
    summary = json.loads((out / "metrics_summary.json").read_text())
    assert set(summary["results"]["paper"]) == {"fake_B", "real_A"}


def test_train_then_test_on_sen12mscr(tmp_path):
    tree, ck, res = make_tree(tmp_path / "sen12mscr"), tmp_path / "ck", tmp_path / "res"
    common = ["--dataset_mode", "sen12mscr", "--sar_scaling", "dsen2cr", *MODEL]
    assert train_script.main(train_argv(tree, ck, "ms", *common, "--batch_size", "2")) == 0
    assert test_script.main(test_argv(tree, ck, res, "ms", *common)) == 0
    out = res / "ms" / "test_latest" / "images"
    geo, info = read_geotiff(out / "ROIs1158_spring_106_p30_fake_B.tif")
    assert geo.shape == (13, 32, 32) and 0 <= geo.min() and geo.max() <= 1
    assert (out / "ROIs1158_spring_106_p30_cloud_mask.png").is_file()
    # Whole-scene inference reads the saved options and goes through the same infer.
    s2, s1 = (
        tif_path(tree, "s2_cloudy", "ROIs1158_spring", "106", "30"),
        tif_path(tree, "s1", "ROIs1158_spring", "106", "30"),
    )
    scene_out = tmp_path / "scene.tif"
    argv = ["--cloudy", str(s2), "--sar", str(s1), "--out", str(scene_out), "--name", "ms"]
    assert (
        predict.main(
            [*argv, "--checkpoints_dir", str(ck), "--gpu_ids", "-1", "--window", "32", "--overlap", "8"]
        )
        == 0
    )
    whole, _ = read_geotiff(scene_out)
    np.testing.assert_allclose(whole, geo, atol=1e-5)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "extra, fragment",
    [
        (("--output_nc", "4"), "--input_nc 3 and --output_nc 4 differ"),
        (("--input_nc", "4", "--output_nc", "4"), "--input_nc 4 does not say which bands"),
        (("--dataset_mode", "sen12mscr", "--s2_bands", "B8,B4,B3"), "lacks B2"),
        (("--dsen2cr_feature_sizes", "0"), "--dsen2cr_feature_sizes must be a positive integer"),
        (("--dsen2cr_num_layers", "-1"), "--dsen2cr_num_layers must be a positive integer"),
        (("--dsen2cr_res_scale", "0"), "--dsen2cr_res_scale must be positive"),
        (("--dsen2cr_cloud_threshold", "1.5"), "--dsen2cr_cloud_threshold must be in (0, 1]"),
        (("--dsen2cr_png_stretch", "0"), "--dsen2cr_png_stretch must be positive"),
        (("--dsen2cr_lambda", "-1"), "--dsen2cr_lambda must be 0 or more"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, extra, fragment):
    with pytest.raises(UserError) as err:
        build(tmp_path, *extra)
    assert fragment in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_bad_option_on_the_command_line(tmp_path, capfd):
    make_triplets(tmp_path / "data", "train", n=1)
    argv = train_argv(tmp_path / "data", tmp_path / "ck", "e", *MODEL, "--dsen2cr_cloud_threshold", "0")
    expect_error(capfd, train_script.main, argv, "--dsen2cr_cloud_threshold must be in (0, 1]")


def test_bad_loss_name_lists_the_choices(tmp_path, capfd):
    argv = train_argv(tmp_path / "data", tmp_path / "ck", "e", *MODEL, "--dsen2cr_loss", "l2")
    expect_error(capfd, train_script.main, argv, "invalid choice", "carl", "l1")


def test_tiny_and_light_flags_are_command_line_flags():
    for flags, size in ((Dsen2crModel.tiny_flags, (8, 2)), (Dsen2crModel.light_flags, (32, 8))):
        opt = TrainOptions().parse(["--dataroot", "x", "--model", "dsen2cr", *flags], save=False)
        assert (opt.dsen2cr_feature_sizes, opt.dsen2cr_num_layers) == size


def test_resume_restores_the_nadam_state(tmp_path):
    root, ck = tmp_path / "data", tmp_path / "ck"
    make_triplets(root, "train", n=2)
    argv = train_argv(root, ck, "r", *MODEL, "--batch_size", "2")
    assert train_script.main(argv) == 0
    assert train_script.main([*argv, "--continue_train", "--n_epochs", "2"]) == 0
    nadam = torch.load(ck / "r" / "latest_train_state.pth", weights_only=True)["optimizers"]["G"]
    assert all(int(s["step"]) == 2 for s in nadam["state"].values())  # one step per epoch, both kept
