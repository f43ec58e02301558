"""UnCRtainTS against numbers computed once by the authors' own code (tests/fixtures/uncrtaints_*;
the generator, tests/fixtures/make_uncrtaints_reference.py, says what ran): the network with both
heads, its initialisation, the MGNLL loss, the calibration scores, and their checkpoint files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics.uncertainty import calibration, uncertainty_metrics
from models.networks.uncrtaints import UnCRtainTSNet, init_uncrtaints_weights
from models.networks.uncrtaints_loss import mgnll_loss
from models.weight_sets.uncrtaints_file import read_uncrtaints_checkpoint
from models.weight_sets.uncrtaints_flags import network_from_options
from tests.fixtures.make_uncrtaints_reference import (
    CHECKPOINTS,
    FIXTURE,
    INIT_SEED,
    checkpoint_input,
    old_layout,
    seeded_calibration,
    seeded_inputs,
    seeded_loss_batch,
    seeded_network_state,
)
from tests.fixtures.seeded import state_checksum
from util.errors import UserError


@pytest.fixture(scope="module")
def ref() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def seeded_net(ref: dict, head: str) -> UnCRtainTSNet:
    net = UnCRtainTSNet(head=head)
    state = seeded_network_state({k: v.shape for k, v in net.state_dict().items()}, ref["weights_seed"])
    checksum = state_checksum({k: v for k, v in state.items() if "out_conv" not in k})
    assert abs(checksum - ref["weights_checksum"]) < 1e-6 * ref["weights_checksum"]
    net.load_state_dict(state, strict=True)
    return net


@pytest.mark.parametrize("head", ["diag", "plain"])
def test_network_matches_the_official_one_to_1e_5(ref, head):
    net = seeded_net(ref, head)
    assert sum(p.numel() for p in net.parameters()) == ref[f"parameters_{head}"]
    assert torch.equal(seeded_inputs(), ref["input"])
    with torch.no_grad():
        mean, var = net.eval()(ref["input"])
    got = mean if var is None else torch.cat([mean, var], 1)
    expected = ref[f"output_{head}"]
    assert expected.std() > 0.5  # the outputs vary: the comparison has teeth
    err = (got - expected).abs().max().item()
    assert err <= 1e-5, f"largest difference from the official UnCRtainTS output: {err:.3g}"
    if head == "diag":  # training mode: batch norm with the batch's statistics (of 2 x 8 x 8 values,
        # which amplify float rounding: 1e-5 relative to the outputs' range)
        with torch.no_grad():
            mean, var = net.train()(ref["input"])
        train = ref["output_diag_train"]
        assert (train - expected).abs().max() > 0.1
        assert (torch.cat([mean, var], 1) - train).abs().max() <= 1e-5 * train.abs().max()


def test_parameter_counts_are_the_authors():
    assert sum(p.numel() for p in UnCRtainTSNet(head="diag").parameters()) == 520_218
    assert sum(p.numel() for p in UnCRtainTSNet(head="plain").parameters()) == 518_541
    assert sum(p.numel() for p in UnCRtainTSNet(in_nc=13).parameters()) == 520_218 - 2 * 128


def test_a_changed_network_misses_the_fixture(ref):
    """One depth-wise kernel changed moves the output past 1e-5: the check can fail."""
    net = seeded_net(ref, "diag")
    with torch.no_grad():
        net.out_block[2].conv.fn[3].weight[0] += 0.5
        mean, var = net.eval()(ref["input"])
    assert (torch.cat([mean, var], 1) - ref["output_diag"]).abs().max() > 1e-3


def test_initialisation_draws_what_weight_init_draws(ref):
    torch.manual_seed(INIT_SEED)
    net = init_uncrtaints_weights(UnCRtainTSNet(head="diag"))
    state = net.state_dict()
    assert list(state) == list(ref["init_sums"])
    for key, (total, absolute) in ref["init_sums"].items():
        assert abs(float(state[key].double().sum()) - total) <= 1e-6 * max(1.0, abs(absolute)), key
        assert abs(float(state[key].double().abs().sum()) - absolute) <= 1e-6 * max(1.0, absolute), key
    # Batch-norm scales are N(0, 1) and convolution biases N(0, 1), as their weight_init draws them.
    assert state["out_block.0.conv.norm.weight"].std() > 0.5 and state["in_conv.conv.conv.0.bias"].std() > 0.5


def test_mgnll_equals_the_official_loss_and_gradients(ref):
    mean, target, var = seeded_loss_batch()
    mean.requires_grad_(True), var.requires_grad_(True)
    loss = mgnll_loss(mean, target, var)
    grad_mean, grad_var = torch.autograd.grad(loss, (mean, var))
    official = ref["mgnll"]
    assert abs(loss.item() - official["loss"].item()) <= 1e-5 * abs(official["loss"].item())
    torch.testing.assert_close(grad_mean, official["grad_mean"], rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(grad_var, official["grad_var"], rtol=1e-4, atol=1e-7)
    # The textbook log-determinant (one per image) is another number for a batch of 3: the flag matters.
    per_sample = mgnll_loss(mean, target, var, logdet="per_sample")
    assert abs(per_sample.item() - official["loss"].item()) > 1.0


def test_batch_sum_logdet_weighs_the_logdet_by_the_batch_size():
    """The authors' loss is the textbook one with the log-determinant term multiplied by B; its
    minimum over a constant variance is at the squared error / B."""
    g = torch.Generator().manual_seed(0)
    mean, target = torch.rand(4, 3, 5, 5, generator=g), torch.rand(4, 3, 5, 5, generator=g)
    var = torch.rand(4, 3, 5, 5, generator=g) + 0.1
    half_logdet = 0.5 * var.log().sum(1).mean()
    textbook = mgnll_loss(mean, target, var, logdet="per_sample")
    theirs = mgnll_loss(mean, target, var)
    torch.testing.assert_close(theirs - textbook, 3 * half_logdet)  # (B - 1) x the log-det term
    err2 = ((mean - target) ** 2).mean()
    scales = torch.linspace(0.01, 1, 400)
    best = [
        scales[
            torch.stack(
                [mgnll_loss(mean, target, torch.full_like(mean, float(s)), logdet=m) for s in scales]
            ).argmin()
        ]
        for m in ("per_sample", "batch_sum")
    ]
    assert abs(best[0] - err2) < 0.01 and abs(best[1] - err2 / 4) < 0.01
    assert torch.equal(
        mgnll_loss(mean[:1], target[:1], var[:1]),
        mgnll_loss(mean[:1], target[:1], var[:1], logdet="per_sample"),
    )


def test_calibration_and_per_image_statistics_match_their_code(ref):
    data = seeded_calibration()
    scores = calibration(data["vars"].numpy(), data["errors"].numpy())
    official = ref["calibration"]
    assert scores["uce"] == pytest.approx(official["uce"], rel=1e-5)
    assert scores["auce"] == pytest.approx(official["auce"], rel=1e-5)
    assert official["uce"] > 1e-4  # not calibrated by construction: the numbers have teeth
    stats = uncertainty_metrics(data["pred"].numpy(), data["target"].numpy(), data["var"].numpy())
    for ours, theirs in (
        ("error", "error"),
        ("mean_se", "mean se"),
        ("mean_ae", "mean ae"),
        ("mean_var", "mean var"),
    ):
        assert stats[ours] == pytest.approx(official["img_metrics"][theirs], rel=1e-5, abs=1e-9), ours
    # A different binning (10 bins) gives other numbers: the bins are the authors'.
    assert calibration(data["vars"].numpy(), data["errors"].numpy(), n_bins=10)["uce"] != pytest.approx(
        scores["uce"]
    )


def checkpoint_output(read, channels: int) -> torch.Tensor:
    net = network_from_options(read.options)
    net.load_state_dict(read.state_dict, strict=True)
    with torch.no_grad():
        mean, var = net.eval()(10 * checkpoint_input(channels))
    return mean if var is None else torch.cat([mean, var], 1)


@pytest.mark.parametrize(
    ("variant", "sar", "head", "channels"),
    [("diag_sar", True, "diag", 15), ("plain_nosar", False, "plain", 13)],
)
def test_their_checkpoints_load_exactly_and_say_their_variant(ref, tmp_path, variant, sar, head, channels):
    folder = CHECKPOINTS / variant
    read = read_uncrtaints_checkpoint(folder / "model.pth.tar")
    assert read.variant["sar"] is sar and read.variant["head"] == head and read.epoch == 1
    assert read.options["uncrtaints_no_sar"] is (not sar) and read.options["uncrtaints_width"] == 8
    assert (read.options["uncrtaints_in_blocks"], read.options["uncrtaints_out_blocks"]) == (1, 2)
    assert read.options["uncrtaints_scale_by"] == 10.0 and read.input_domain.sar_scaling == "standard"
    expected = ref["checkpoint_outputs"][variant]
    assert (checkpoint_output(read, channels) - expected).abs().max() <= 1e-5
    # The older layout (in_block1, out_block1, out_block2; no state_dict_G) reads the same.
    shutil.copy(folder / "conf.json", tmp_path / "conf.json")
    torch.save(old_layout(torch.load(folder / "model.pth.tar", weights_only=True)), tmp_path / "old.pth.tar")
    old = read_uncrtaints_checkpoint(tmp_path / "old.pth.tar")
    assert all(torch.equal(old.state_dict[k], read.state_dict[k]) for k in read.state_dict)


def test_a_perturbed_checkpoint_gives_other_outputs(ref, tmp_path):
    folder = CHECKPOINTS / "diag_sar"
    checkpoint = torch.load(folder / "model.pth.tar", weights_only=True)
    checkpoint["state_dict"]["netG.out_conv.conv.conv.0.bias"] += 0.5
    shutil.copy(folder / "conf.json", tmp_path / "conf.json")
    torch.save(checkpoint, tmp_path / "model.pth.tar")
    read = read_uncrtaints_checkpoint(tmp_path / "model.pth.tar")
    assert (checkpoint_output(read, 15) - ref["checkpoint_outputs"]["diag_sar"]).abs().max() > 1e-2


def _write(
    folder: Path, checkpoint: dict | None = None, flags: dict | None = None, raw: bytes | None = None
) -> Path:
    base = CHECKPOINTS / "diag_sar"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pth.tar"
    if raw is not None:
        path.write_bytes(raw)
    else:
        torch.save(checkpoint or torch.load(base / "model.pth.tar", weights_only=True), path)
    conf = json.loads((base / "conf.json").read_text())
    (folder / "conf.json").write_text(json.dumps({**conf, **(flags or {})}))
    return path


def test_bad_checkpoints_give_one_line_errors(tmp_path):
    base = torch.load(CHECKPOINTS / "diag_sar" / "model.pth.tar", weights_only=True)
    cases = {
        "multi": ({"pretrain": False}, None, "multi-temporal"),
        "nosar": ({"use_sar": False}, None, "in_conv.conv.conv.0.weight has shape (8, 15, 1, 1)"),
        "iso": ({"covmode": "iso", "out_conv": [14]}, None, "only diag"),
        "plain": ({"out_conv": [13]}, None, "out_conv.conv.conv.0.weight has shape"),
        "wide": ({"encoder_widths": [16], "decoder_widths": [16, 16]}, None, "do not belong together"),
        "residual": ({"block_type": "residual"}, None, "only mbconv"),
        "other": ({"model": "utae"}, None, "not uncrtaints"),
        "missing": ({}, {**base, "state_dict": {k: v for k, v in base["state_dict"].items() if "out_conv" not in k}}, "2 weight(s) missing"),
        "empty": ({}, {"epoch": 1}, "no state_dict or state_dict_G"),
        "nan": ({}, {**base, "state_dict": {**base["state_dict"], "netG.in_conv.conv.conv.0.bias": torch.full((8,), float("nan"))}}, "NaN"),
    }  # fmt: skip
    for name, (flags, checkpoint, fragment) in cases.items():
        path = _write(tmp_path / name, checkpoint, flags)
        with pytest.raises(UserError, match=None) as info:
            read_uncrtaints_checkpoint(path)
        assert fragment in str(info.value) and "\n" not in str(info.value), (name, str(info.value))
    truncated = _write(tmp_path / "cut", raw=(CHECKPOINTS / "diag_sar" / "model.pth.tar").read_bytes()[:5000])
    with pytest.raises(UserError, match="cannot read .* as a PyTorch checkpoint"):
        read_uncrtaints_checkpoint(truncated)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(CHECKPOINTS / "diag_sar" / "model.pth.tar", lonely / "model.pth.tar")
    with pytest.raises(UserError, match="no conf.json beside it"):
        read_uncrtaints_checkpoint(lonely / "model.pth.tar")


def test_checkpoint_weights_drive_the_model_as_our_batch_sees_it(ref, tmp_path):
    """The file's network behind --model uncrtaints: [-1, 1] batch in, the official mean and variance out."""
    from models import create_model
    from options.test_options import TestOptions

    read = read_uncrtaints_checkpoint(CHECKPOINTS / "diag_sar" / "model.pth.tar")
    flags = [
        f"--{k}" if isinstance(v, bool) else f"--{k}={v}"
        for k, v in read.options.items()
        if k.startswith("uncrtaints_") and v is not False
    ]
    argv = [
        "--dataroot",
        str(tmp_path),
        "--checkpoints_dir",
        str(tmp_path),
        "--gpu_ids",
        "-1",
        "--model",
        "uncrtaints",
    ]
    argv += ["--input_nc", "13", "--output_nc", "13", "--sar_nc", "2", *flags]
    opt = TestOptions().parse(argv, save=False)
    model = create_model(opt)
    model.nets["G"].load_state_dict(read.state_dict)
    model.eval()
    unit = checkpoint_input(15)
    out = model.predict(unit[:, 2:] * 2 - 1, unit[:, :2] * 2 - 1)
    official = ref["checkpoint_outputs"]["diag_sar"]
    torch.testing.assert_close(out["fake_B"], official[:, :13] / 5 - 1, atol=2e-6, rtol=0)
    torch.testing.assert_close(
        out["uncertainty"], official[:, 13:].mean(1, keepdim=True) / 100, atol=1e-8, rtol=1e-5
    )
    assert np.isfinite(out["uncertainty"].numpy()).all()
