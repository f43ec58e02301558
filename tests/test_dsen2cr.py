"""DSen2-CR (``--model dsen2cr``): the network (shapes, parameter counts, long skip, units, init) and CARL.

Tiny networks (F = 8, B = 2) and 16-32 px images on the CPU, except the parameter counts at the
paper's setting, which build the full network once.
"""

from __future__ import annotations

import pytest
import torch

from models import create_model
from models.dsen2cr_model import Dsen2crModel
from models.networks.dsen2cr import DSen2CR, carl_loss, parameter_count
from options.train_options import TrainOptions
from tests.helpers import train_argv

MODEL = ["--model", "dsen2cr", *Dsen2crModel.tiny_flags]
S2 = ["--input_nc", "13", "--output_nc", "13", "--sar_nc", "2"]


def build(tmp_path, *extra: str):
    opt = TrainOptions().parse(
        train_argv(tmp_path / "data", tmp_path / "ckpt", "d", *MODEL, *extra), save=False
    )
    model = create_model(opt)
    model.setup()
    return model


def batch(seed: int = 0, n: int = 2, size: int = 16, bands: tuple[int, int, int] = (3, 3, 3)) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.rand(n, c, size, size, generator=g) * 2 - 1 for k, c in zip("ABC", bands)}
    return out | {"A_paths": ["x.png"] * n}


# ----------------------------------------------------------------------------- network
@pytest.mark.parametrize(
    "extra, bands",
    [((), (3, 3, 3)), (tuple(S2), (13, 13, 2)), (("--dsen2cr_no_sar",), (3, 3, 3))],
    ids=["png-3-bands", "sentinel-13-bands", "no-sar"],
)
def test_shapes_and_ranges(tmp_path, extra, bands):
    model = build(tmp_path, *extra)
    data = batch(bands=bands, size=24)
    sar = None if "--dsen2cr_no_sar" in extra else data["C"]
    assert model.roles.uses_sar is (sar is not None)
    out = model.predict(data["A"], sar)
    assert set(out) == {"fake_B", "cloud_mask"}
    assert out["fake_B"].shape == (2, bands[1], 24, 24) and out["cloud_mask"].shape == (2, 1, 24, 24)
    assert out["fake_B"].min() >= -1 and out["fake_B"].max() <= 1
    assert set(out["cloud_mask"].unique().tolist()) <= {0.0, 1.0}
    first_conv = model.nets["G"].head.weight
    assert first_conv.shape[1] == bands[0] + (bands[2] if sar is not None else 0)


def test_parameter_counts_at_the_papers_settings(tmp_path, capsys):
    """F = 256, B = 16: 13 S2 + 2 S1 bands in, 13 out. No count is printed in the paper; this is the
    count of its architecture (the official Keras layers: 3x3 convolutions, all with biases)."""
    by_hand = (9 * 15 * 256 + 256) + 16 * 2 * (9 * 256 * 256 + 256) + (9 * 256 * 13 + 13)
    assert by_hand == parameter_count() == 18_947_341
    model = build(tmp_path, *S2, "--dsen2cr_feature_sizes", "256", "--dsen2cr_num_layers", "16")
    assert sum(p.numel() for p in model.nets["G"].parameters()) == 18_947_341
    assert "[Network G] Total number of parameters : 18.947 M (18,947,341)" in capsys.readouterr().out
    counts = {
        "13-band S2 + 2-band S1": parameter_count(),
        "13-band S2, no SAR": parameter_count(use_sar=False),
        "3-band PNG + 3-band SAR PNG": parameter_count(optical_nc=3, sar_nc=3),
    }
    assert counts["13-band S2, no SAR"] == 18_942_733
    assert counts["3-band PNG + 3-band SAR PNG"] == 18_903_555
    png = DSen2CR(optical_nc=3, sar_nc=3)
    assert sum(p.numel() for p in png.parameters()) == 18_903_555
    print("DSen2-CR parameters (F=256, B=16): " + "; ".join(f"{k}: {v:,}" for k, v in counts.items()))


def test_tiny_network_count_matches_the_closed_form():
    net = DSen2CR(optical_nc=4, sar_nc=2, feature_sizes=8, num_layers=3, use_sar=False)
    assert sum(p.numel() for p in net.parameters()) == parameter_count(
        optical_nc=4, sar_nc=2, feature_sizes=8, num_layers=3, use_sar=False
    )


def test_long_skip_adds_the_cloudy_input(tmp_path):
    torch.manual_seed(0)
    net = DSen2CR(optical_nc=13, sar_nc=2, feature_sizes=8, num_layers=2)
    optical, sar = torch.rand(2, 13, 8, 8) * 5, torch.rand(2, 2, 8, 8) * 2
    assert not torch.equal(net(optical, sar), optical)
    with torch.no_grad():
        net.tail.weight.zero_()
        net.tail.bias.zero_()
    assert torch.equal(net(optical, sar), optical)

    model = build(tmp_path)
    with torch.no_grad():
        model.nets["G"].tail.weight.zero_()
        model.nets["G"].tail.bias.zero_()
    data = batch()
    torch.testing.assert_close(model.predict(data["A"], data["C"])["fake_B"], data["A"], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "extra, bands, white",
    [((), (3, 3, 3), 0.3), (("--dsen2cr_png_stretch", "0.5"), (3, 3, 3), 0.5), (tuple(S2), (13, 13, 2), 1.0)],
    ids=["png", "png-stretch-0.5", "sentinel"],
)
def test_the_network_sees_the_papers_units(tmp_path, extra, bands, white):
    """Optical: reflectance x 5 (the paper's DN / 2000), white of a PNG being reflectance ``white``;
    SAR: [0, 2]. The output maps back through the same scale (the long skip stays exact)."""
    model = build(tmp_path, *extra)
    seen = {}
    model.nets["G"].register_forward_pre_hook(lambda _, args: seen.update(optical=args[0], sar=args[1]))
    data = batch(bands=bands)
    model.predict(data["A"], data["C"])
    torch.testing.assert_close(seen["optical"], (data["A"] + 1) / 2 * white * 5)
    torch.testing.assert_close(seen["sar"], data["C"] + 1)


def test_residual_blocks_are_scaled(tmp_path):
    """Each block adds 0.1 x its branch (the paper's residual scaling)."""
    net = DSen2CR(optical_nc=3, sar_nc=3, feature_sizes=4, num_layers=1, res_scale=0.1)
    block = net.body[0]
    x = torch.randn(1, 4, 5, 5)
    branch = block.conv2(torch.relu(block.conv1(x)))
    torch.testing.assert_close(block(x), x + 0.1 * branch)


def test_he_uniform_init_and_zero_biases():
    torch.manual_seed(0)
    net = DSen2CR(feature_sizes=64, num_layers=1)
    conv = net.body[0].conv1
    bound = (6 / (9 * 64)) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.95 * bound
    assert all(torch.count_nonzero(m.bias) == 0 for m in net.modules() if isinstance(m, torch.nn.Conv2d))


# ----------------------------------------------------------------------------- CARL
def test_carl_against_a_hand_computation():
    # One band, 2 x 2 pixels; the left column is cloud.
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    cloudy = torch.tensor([[[[5.0, 2.5], [5.0, 3.0]]]])
    target = torch.tensor([[[[1.5, 1.0], [2.0, 4.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    # cloud pixels vs target: |1-1.5| = 0.5, |3-2| = 1; clear pixels vs input: |2-2.5| = 0.5, |4-3| = 1
    adaptive = (0.5 + 0.5 + 1.0 + 1.0) / 4
    whole = (0.5 + 1.0 + 1.0 + 0.0) / 4  # |P - T| everywhere
    terms = carl_loss(pred, cloudy, target, mask)
    assert terms["adaptive"].item() == pytest.approx(adaptive)
    assert terms["target"].item() == pytest.approx(whole)
    assert carl_loss(pred, cloudy, target, mask, lambda_target=0.5)["target"].item() == pytest.approx(
        whole / 2
    )
    # The mask is broadcast over the bands: N_tot counts every band.
    two = carl_loss(pred.repeat(1, 2, 1, 1), cloudy.repeat(1, 2, 1, 1), target.repeat(1, 2, 1, 1), mask)
    assert two["adaptive"].item() == pytest.approx(adaptive)


def test_model_loss_is_carl_in_the_papers_units(tmp_path):
    model = build(tmp_path, "--dsen2cr_lambda", "0.5")
    model.set_input(batch())
    losses = model.optimize_parameters()
    assert list(model.loss_names) == ["G_CARL", "G_adaptive", "G_target"]
    assert losses["G_CARL"].item() == pytest.approx(losses["G_adaptive"].item() + losses["G_target"].item())
    data = batch(1)
    model.set_input(data)
    with torch.no_grad():
        pred = model.predict_paper_units(model.real_A, model.real_C)
        model.outputs = model.outputs_from(pred, model.real_A)
        got = model.losses_from(pred)
    # [-1, 1] -> PNG value [0, 1] -> reflectance (white = 0.3) -> the paper's units (x 5)
    to_paper = lambda t: (t + 1) / 2 * 0.3 * 5  # noqa: E731
    mask = model.cloud_mask(data["A"])
    want = carl_loss(pred, to_paper(data["A"]), to_paper(data["B"]), mask, lambda_target=0.5)
    assert got["G_target"].item() == pytest.approx(want["target"].item())
    assert got["G_adaptive"].item() == pytest.approx(want["adaptive"].item())


def test_plain_l1_variant(tmp_path):
    model = build(tmp_path, "--dsen2cr_loss", "l1")
    data = batch()
    model.set_input(data)
    with torch.no_grad():
        pred = model.predict_paper_units(model.real_A, model.real_C)
    losses = model.optimize_parameters()
    assert model.loss_names == ["G_L1"] and set(losses) == {"G_L1"}
    assert losses["G_L1"].item() == pytest.approx(
        (pred - (data["B"] + 1) / 2 * 1.5).abs().mean().item(), rel=1e-5
    )
