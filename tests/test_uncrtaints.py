"""--model uncrtaints: the authors' settings, the loss options, training, the SEN12MS-CR split schemes,
their NaN handling, the comparison's plans, torch.hub and the model sizes (its uncertainty through
test.py, evaluate, predict.py and the API: tests/test_uncrtaints_uncertainty.py)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import rasterio
import torch

import hubconf
import train
from data.sen12mscr import list_triplets
from models.networks.uncrtaints_loss import mgnll_loss
from models.uncrtaints_model import UncrtaintsModel
from options.test_options import TestOptions
from options.train_options import TrainOptions
from scripts import model_sizes
from tests.helpers import expect_error, make_triplets, train_argv, train_steps
from tests.sen12mscr_fixtures import make_tree
from util.errors import UserError

TINY = ["--model", "uncrtaints", *UncrtaintsModel.tiny_flags]


def parse(options, argv):
    with contextlib.redirect_stdout(io.StringIO()):
        return options.parse(argv, save=False)


def test_the_authors_training_and_data_settings(tmp_path):
    make_tree(tmp_path)
    base = [
        "--dataroot",
        str(tmp_path),
        "--dataset_mode",
        "sen12mscr",
        "--gpu_ids",
        "-1",
        "--model",
        "uncrtaints",
    ]
    opt = parse(TrainOptions(), base)
    authors = dict(lr=1e-3, beta1=0.9, batch_size=4, n_epochs=20, n_epochs_decay=0, lr_policy="linear")
    assert {k: getattr(opt, k) for k in authors} == authors
    # Whole 256-px patches, no flips or turns; S1 VV and VH both clipped to [-25, 0] dB.
    assert (opt.preprocess, opt.crop_size, opt.no_flip, opt.rot90, opt.sar_scaling) == (
        "crop",
        256,
        True,
        False,
        "standard",
    )
    assert (opt.uncrtaints_width, opt.uncrtaints_in_blocks, opt.uncrtaints_out_blocks) == (128, 1, 5)
    assert (opt.uncrtaints_head, opt.uncrtaints_scale_by, opt.uncrtaints_logdet) == (
        "diag",
        10.0,
        "batch_sum",
    )
    test_opt = parse(TestOptions(), base)
    assert (test_opt.test_mode, test_opt.eval, test_opt.sar_scaling) == ("eval", True, "standard")
    assert opt.split_scheme == "official"


def test_one_step_trains_on_the_authors_mgnll_in_scaled_units(tmp_path):
    make_triplets(tmp_path, "train", n=2)
    model = train_steps(train_argv(tmp_path, tmp_path / "ck", "u", *TINY, "--batch_size", "2"), steps=0)
    net = model.nets["G"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batch = {
        k: torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(i)) * 2 - 1
        for i, k in enumerate("ABC")
    }
    model.set_input(batch)
    losses = model.optimize_parameters()
    assert list(losses) == ["G_MGNLL"] and torch.isfinite(losses["G_MGNLL"])
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())
    # The loss is the MGNLL of the network's scaled mean and variance against the target x 10.
    for key, value in before.items():
        net.state_dict()[key].copy_(value)
    mean, var = net(torch.cat([(batch["C"] + 1) * 5, (batch["A"] + 1) * 5], 1))
    assert torch.allclose(mgnll_loss(mean, (batch["B"] + 1) * 5, var), losses["G_MGNLL"], rtol=1e-5)
    # The visuals are what infer gives: the mean in [-1, 1] and the band-mean variance / 10^2.
    assert model.visuals["uncertainty"].shape == (2, 1, 32, 32) and (model.visuals["uncertainty"] > 0).all()
    torch.testing.assert_close(model.visuals["uncertainty"], (var / 100).mean(1, keepdim=True))


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        (["--uncrtaints_head", "plain"], "G_L2"),
        (["--uncrtaints_head", "plain", "--uncrtaints_loss", "l1"], "G_L1"),
    ],
)
def test_plain_head_trains_with_l2_or_l1_and_has_no_uncertainty(tmp_path, extra, name):
    make_triplets(tmp_path, "train", n=2)
    model = train_steps(train_argv(tmp_path, tmp_path / "ck", "u", *TINY, *extra), steps=1)
    assert list(model.losses) == [name] and "uncertainty" not in model.visuals
    assert model.roles.uncertainty == () and sum(p.numel() for p in model.nets["G"].parameters()) > 0


def test_sar_goes_first_and_the_optical_only_variant_reads_none(tmp_path):
    make_triplets(tmp_path, "train", n=1)
    model = train_steps(train_argv(tmp_path, tmp_path / "ck", "u", *TINY), steps=0)
    first = model.nets["G"].in_conv.conv.conv[0].weight
    assert first.shape[1] == 3 + 3  # sar_nc + input_nc (PNG triplets)
    g = torch.Generator().manual_seed(0)
    a, c = torch.rand(1, 3, 8, 8, generator=g), torch.rand(1, 3, 8, 8, generator=g)
    model.eval()
    with torch.no_grad():
        first[:, :3] = 0  # the SAR channels no longer count
        out = model.predict(a, c)["fake_B"]
        assert torch.equal(out, model.predict(a, c + 1)["fake_B"]) and not torch.equal(
            out, model.predict(a + 1, c)["fake_B"]
        )
    no_sar = train_steps(train_argv(tmp_path, tmp_path / "ck", "n", *TINY, "--uncrtaints_no_sar"), steps=1)
    assert not no_sar.roles.uses_sar and no_sar.nets["G"].in_conv.conv.conv[0].weight.shape[1] == 3


def test_output_bands_follow_output_nc(tmp_path):
    make_triplets(tmp_path, "train", n=1)
    model = train_steps(train_argv(tmp_path, tmp_path / "ck", "u", *TINY, "--output_nc", "2"), steps=0)
    out = model.predict(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    assert out["fake_B"].shape == (1, 2, 8, 8) and out["uncertainty"].shape == (1, 1, 8, 8)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--uncrtaints_width", "6"], "must be a multiple of 4"),
        (["--uncrtaints_loss", "l2"], "add --uncrtaints_head plain"),
        (["--uncrtaints_head", "plain", "--uncrtaints_loss", "mgnll"], "drop --uncrtaints_head plain"),
        (["--uncrtaints_scale_by", "0"], "--uncrtaints_scale_by must be positive"),
        (["--uncrtaints_out_blocks", "0"], "--uncrtaints_out_blocks must be a positive integer"),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path, capfd, extra, fragment):
    make_triplets(tmp_path, "train", n=1)
    expect_error(capfd, train.main, train_argv(tmp_path, tmp_path / "ck", "u", *TINY, *extra), fragment)


def test_split_schemes(tmp_path):
    tree = make_tree(tmp_path)

    def stems(scheme: str, phase: str = "train") -> list[str]:
        return [t.stem for t in list_triplets(tree, phase, scheme=scheme)]

    assert stems("official") == ["ROIs1158_spring_1_p1", "ROIs1158_spring_1_p2", "ROIs2017_winter_5_p3"]
    # UnCRtainTS' lists: winter scene 5 is in none of them.
    assert stems("uncrtaints") == ["ROIs1158_spring_1_p1", "ROIs1158_spring_1_p2"]
    # As their loader matches, spring's "s1_1" also takes the test scene 106 and the val scene 17,
    # and fall's "s1_1" the test scene 139.
    assert stems("uncrtaints_loader") == [
        "ROIs1158_spring_1_p1",
        "ROIs1158_spring_1_p2",
        "ROIs1158_spring_17_p5",
        "ROIs1158_spring_106_p30",
        "ROIs1970_fall_139_p8",
    ]
    for scheme in ("official", "uncrtaints", "uncrtaints_loader"):
        assert stems(scheme, "test") == ["ROIs1158_spring_106_p30", "ROIs1970_fall_139_p8"]
    argv = [
        "--dataroot",
        str(tree),
        "--dataset_mode",
        "sen12mscr",
        "--gpu_ids",
        "-1",
        "--model",
        "uncrtaints",
    ]
    opt = parse(TrainOptions(), [*argv, "--split_scheme", "uncrtaints"])
    from data import create_dataloader

    assert len(create_dataloader(opt).dataset) == 2


def test_hub_entry_and_model_sizes(capsys):
    assert hubconf.uncrtaints.__name__ == "uncrtaints"
    with pytest.raises(UserError, match="no weights are downloaded"):
        hubconf.uncrtaints()
    counts = model_sizes.parameter_counts("uncrtaints", "sen12mscr")
    assert counts == {"G": 520_218}
    # 3-band PNG triplets: 3 + 3 bands in, 3 means and 3 variances out.
    assert model_sizes.parameter_counts("uncrtaints", "png") == {"G": 520_218 - 9 * 128 - 20 * 129}
    assert model_sizes.main(["--models", "uncrtaints"]) == 0
    assert "| UnCRtainTS (our addition) | 1 |" in capsys.readouterr().out


def test_missing_sar_values_become_what_their_loader_makes_of_them(tmp_path):
    """Their process_SAR clips to [-25, 0] dB, rescales to [0, 1], then nan_to_num: NaN -> 0, -inf -> 0."""
    from data import create_dataloader
    from tests.sen12mscr_fixtures import tif_path, transform_of, write_tif

    tree = make_tree(tmp_path, {("ROIs1158_spring", "1"): ("1",)})
    path = tif_path(tree, "s1", "ROIs1158_spring", "1", "1")
    with rasterio.open(path) as src:
        db = src.read()
    db[:, 3, 4], db[0, 5, 6], db[1, 7, 8] = np.nan, -np.inf, 7.0
    write_tif(path, db, transform_of("1", "1"))
    argv = [
        "--dataroot",
        str(tree),
        "--dataset_mode",
        "sen12mscr",
        "--gpu_ids",
        "-1",
        "--model",
        "uncrtaints",
    ]
    opt = parse(TrainOptions(), [*argv, "--crop_size", "32"])
    sar = next(iter(create_dataloader(opt)))["C"][0].numpy()
    theirs = np.nan_to_num((np.clip(db, -25, 0) + 25) / 25)
    np.testing.assert_allclose((sar + 1) / 2, theirs, atol=1e-6)
    assert theirs[0, 3, 4] == theirs[0, 5, 6] == 0 and theirs[1, 7, 8] == 1


def test_comparison_settings_run_it_as_its_authors_did_and_zhang2023_leaves_it_out():
    from comparison import make_plan

    paper = make_plan(
        name="x",
        dataroot="d",
        setting="paper",
        models_text="uncrtaints",
        train_size=10,
        dataset_mode="sen12mscr",
    )
    exp = paper.experiments[0]
    assert (exp.epochs, exp.batch_size, exp.schedule["lr"], exp.schedule["n_epochs_decay"]) == (
        20,
        4,
        1e-3,
        0,
    )
    row = paper.to_json("-1", 0)["rows"][0]
    assert row["our_addition"] and row["label"] == "UnCRtainTS (our addition)" and row["test_mode"] == "eval"
    assert row["train_data"]["no_flip"] and row["train_data"]["sar_scaling"] == "standard"
    light = make_plan(name="x", dataroot="d", setting="light", train_size=160)
    assert "uncrtaints" in [e.model for e in light.experiments]
    light_flags = {e.model: e for e in light.experiments}["uncrtaints"].test_flags
    assert "--uncrtaints_width" in light_flags and "--uncrtaints_loss" not in light_flags
    zhang = make_plan(name="x", dataroot="d", setting="zhang2023", train_size=10)
    assert "uncrtaints" not in [e.model for e in zhang.experiments]
