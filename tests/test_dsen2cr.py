"""DSen2-CR (``--model dsen2cr``): network, CARL, the cloud mask, one step, save/load, seeds, CLI.

Tiny networks (F = 8, B = 2) and 16-32 px images on the CPU, except the parameter counts at the
paper's setting, which build the full network once.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage, signal
from sen12mscr_fixtures import make_tree, tif_path

import predict
import test as test_script
import train as train_script
from data import create_dataloader
from models import create_model
from models.dsen2cr_model import Dsen2crModel
from models.networks.cloud_mask import BandLayout, cloud_shadow_mask
from models.networks.dsen2cr import DSen2CR, carl_loss, parameter_count
from options.train_options import TrainOptions
from tests.helpers import expect_error, make_triplets, test_argv, train_argv
from util.errors import UserError
from util.geotiff import read_geotiff

MODEL = ["--model", "dsen2cr", *Dsen2crModel.tiny_flags]
S2 = ["--input_nc", "13", "--output_nc", "13", "--sar_nc", "2"]
S2_LAYOUT = BandLayout(blue=1, green=2, red=3, aerosol=0, cirrus=10, nir=7, swir1=11)
RGB_LAYOUT = BandLayout(blue=2, green=1, red=0)


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


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.nets["G"].state_dict().items()}


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


# ----------------------------------------------------------------------------- cloud mask
def scene(size: int = 32) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(1, 13, size, size) reflectance of vegetated ground with a bright cloud disc and a dark shadow,
    and the (size, size) bool masks of the cloud and of the shadow."""
    rng = np.random.default_rng(0)
    ground = np.array([0.12, 0.05, 0.08, 0.06, 0.12, 0.25, 0.3, 0.32, 0.33, 0.1, 0.005, 0.2, 0.1])
    img = ground[:, None, None] * (1 + 0.1 * rng.standard_normal((13, size, size)))
    yy, xx = np.mgrid[0:size, 0:size]
    cloud = (yy - 10) ** 2 + (xx - 10) ** 2 < 7**2
    cloud_refl = np.array([0.5, 0.55, 0.55, 0.56, 0.57, 0.58, 0.58, 0.6, 0.6, 0.3, 0.05, 0.35, 0.25])
    img[:, cloud] = cloud_refl[:, None]
    shadow = (yy >= 22) & (yy < 30) & (xx >= 20) & (xx < 30)
    img[:, shadow] *= 0.2
    return torch.from_numpy(img[None].astype(np.float32)), cloud, shadow


def test_cloud_mask_finds_bright_clouds_and_dark_shadows():
    img, cloud, shadow = scene()
    mask = cloud_shadow_mask(img, S2_LAYOUT)[0, 0].numpy().astype(bool)
    # The 5x5 median rounds the shadow's corners off; its inside is all found.
    assert mask[cloud].all() and mask[ndimage.binary_erosion(shadow, iterations=2)].all()
    assert mask[shadow].mean() > 0.8
    clear = ~ndimage.binary_dilation(cloud | shadow, iterations=4)
    assert mask[clear].mean() < 0.02
    # Snow is bright too, but its snow index (B3 high, B11 low) keeps it out of the cloud mask.
    snow = img.clone()
    snow[0, :, cloud] = torch.tensor(
        [0.6, 0.8, 0.8, 0.8, 0.8, 0.78, 0.78, 0.75, 0.75, 0.3, 0.01, 0.05, 0.04]
    )[:, None]
    assert cloud_shadow_mask(snow, S2_LAYOUT)[0, 0].numpy()[cloud].mean() < 0.05


def test_rgb_fallback_on_png_values():
    """3-band PNG values ([0, 1] = reflectance [0, 0.3]): white clouds are found with the visible tests."""
    img, cloud, shadow = scene()
    refl = img[:, [3, 2, 1]]
    png = (refl / 0.3).clamp(0, 1)
    layout = BandLayout(blue=2, green=1, red=0, reflectance_scale=0.3)
    mask = cloud_shadow_mask(png, layout)[0, 0].numpy().astype(bool)
    # Saturated at reflectance 0.3, the clouds score lower than in 13 bands: their rim can be missed.
    assert mask[ndimage.binary_erosion(cloud)].all() and mask[cloud].mean() > 0.85
    assert mask[ndimage.binary_erosion(shadow, iterations=2)].all()
    clear = ~ndimage.binary_dilation(cloud | shadow, iterations=4)
    assert mask[clear].mean() < 0.05
    # Read as reflectance (scale 1), the same white clouds would be only 0..1 of reflectance 1: too bright a
    # scene is all cloud, so the scale matters.
    assert cloud_shadow_mask(png, RGB_LAYOUT)[0, 0].mean() > mask.mean()


def reference_masks(refl: np.ndarray, threshold: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """An independent NumPy/SciPy reading of the official detectors (feature_detectors.py) for one
    (13, H, W) reflectance image, with scipy's grey closing, 2-D convolution and median filter:
    the (cloud, shadow) masks as bool arrays."""

    def ramp(x, lo, hi):
        return (x - lo) / (hi - lo)

    def nd(a, b):
        s = a + b
        s[s == 0] = 0.001
        return (a - b) / s

    score = np.ones(refl.shape[1:])
    score = np.minimum(score, ramp(refl[1], 0.1, 0.5))
    score = np.minimum(score, ramp(refl[0], 0.1, 0.3))
    score = np.minimum(score, ramp(refl[0] + refl[10], 0.15, 0.2))
    score = np.minimum(score, ramp(refl[3] + refl[2] + refl[1], 0.2, 0.8))
    score = np.minimum(score, ramp(nd(refl[2], refl[11]), 0.8, 0.6))
    score = ndimage.grey_closing(score, size=(5, 5))
    score = signal.convolve2d(score, np.ones((7, 7)) / 49, mode="same")
    cloud = np.clip(score, 1e-5, 1.0) >= threshold
    csi = (refl[7] + refl[11]) / 2
    t3 = csi.min() + 0.75 * (csi.mean() - csi.min())
    t4 = refl[1].min() + 5 / 6 * (refl[1].mean() - refl[1].min())
    shadow = np.where((csi < t3) & (refl[1] < t4), -1.0, 0.0)
    shadow = signal.medfilt2d(shadow, 5)
    return cloud, shadow < 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cloud_mask_matches_a_scipy_reading_of_the_official_detectors(seed):
    rng = np.random.default_rng(seed)
    # Ground, smooth cloud blobs of varying thickness and dark patches, with pixel noise: a mixed
    # scene in which every rule (ramps, snow index, closing, box, shadow thresholds, median) acts.
    ground = rng.uniform(0.02, 0.1, (13, 1, 1)) + 0.2 * (np.arange(13) >= 4)[:, None, None]
    cloud_spectrum = rng.uniform(0.3, 0.7, (13, 1, 1))
    thickness = ndimage.gaussian_filter(rng.standard_normal((48, 48)), 4)
    thickness = np.clip((thickness - thickness.mean()) / thickness.std() - 0.3, 0, 1)
    darkness = ndimage.gaussian_filter(rng.standard_normal((48, 48)), 3)
    darkness = np.where(darkness < -0.5 * darkness.std(), 0.3, 1.0)
    refl = ((1 - thickness) * ground + thickness * cloud_spectrum) * darkness
    refl = np.clip(refl * (1 + 0.1 * rng.standard_normal(refl.shape)), 0, 1)
    cloud, shadow = reference_masks(refl)
    assert 0.1 < cloud.mean() < 0.6 and 0.05 < shadow.mean() < 0.5  # a mixed scene
    want = (cloud | shadow).astype(np.float32)
    got = cloud_shadow_mask(torch.from_numpy(refl[None]), S2_LAYOUT)[0, 0].numpy()
    assert np.array_equal(got, want), f"{(got != want).sum()} pixels differ"


def test_mask_follows_the_threshold_and_band_order(tmp_path):
    img, cloud, _ = scene()
    loose = cloud_shadow_mask(img, S2_LAYOUT, threshold=0.05).sum()
    strict = cloud_shadow_mask(img, S2_LAYOUT, threshold=0.9).sum()
    assert loose > strict
    # --s2_bands picks the positions: B2,B3,B4 in another order give the same RGB-fallback mask.
    model = build(tmp_path, "--dataset_mode", "sen12mscr", "--s2_bands", "B2,B3,B4")
    assert (model.layout.blue, model.layout.green, model.layout.red) == (0, 1, 2) and not model.layout.full
    model = build(tmp_path / "b", "--dataset_mode", "sen12mscr")
    assert model.layout.full and model.layout.cirrus == 10 and model.layout.swir1 == 11
    assert model.layout.reflectance_scale == 1.0
    # PNG triplets are R, G, B display values; --dsen2cr_png_stretch says what white means.
    png = build(tmp_path / "c").layout
    assert (png.red, png.green, png.blue, png.full, png.reflectance_scale) == (0, 1, 2, False, 0.3)
    assert build(tmp_path / "d", "--dsen2cr_png_stretch", "0.5").layout.reflectance_scale == 0.5
    s2 = build(tmp_path / "e", *S2).layout
    assert s2 == S2_LAYOUT


def test_model_mask_uses_the_threshold_option(tmp_path):
    img, cloud, _ = scene()
    cloudy = img * 2 - 1  # reflectance -> [-1, 1]
    default = build(tmp_path, *S2).cloud_mask(cloudy)
    torch.testing.assert_close(default, cloud_shadow_mask(img, S2_LAYOUT))
    strict = build(tmp_path / "b", *S2, "--dsen2cr_cloud_threshold", "0.9").cloud_mask(cloudy)
    torch.testing.assert_close(strict, cloud_shadow_mask(img, S2_LAYOUT, threshold=0.9))
    assert strict.sum() < default.sum()


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
    opt = TrainOptions().parse([*argv, "--batch_size", "2"], save=False)  # seeds every generator
    loader = create_dataloader(opt)
    model = create_model(opt)
    model.setup()
    for _, data in zip(range(2), loader):
        model.set_input(data)
        model.optimize_parameters()
    return weights(model)


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
