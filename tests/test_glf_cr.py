"""GLF-CR (``--model glf_cr``): dynamic filtering, window attention, shapes, training, save/load, CLI."""

from __future__ import annotations

import pytest
import torch

import test as test_script
import train
from comparison.report import read_table
from models import create_model
from models.glf_cr_model import GLFCRModel
from models.networks.glf_cr import GLFCRNet
from models.networks.glf_cr_blocks import DenseSwinLayer, kernel_conv2d, shifted_window_mask
from options.train_options import TrainOptions
from scripts import compare
from tests.helpers import expect_error, make_triplets, read_rgb, test_argv, train_argv, train_steps
from tests.sen12mscr_fixtures import make_tree
from util.errors import UserError
from util.geotiff import read_geotiff

TINY_GLF = ["--model", "glf_cr", *GLFCRModel.tiny_flags]
# Parameter counts at the official settings (F 96, growth 48, 6 blocks x 5 layers, 8 heads, window 8,
# 5x5 filters, 64 upsampling channels). 14,827,373 is also what the official net_CR_RDN.py builds
# for 13 S2 + 2 S1 bands (counted once from its source, with its CUDA op and timm stubbed).
PAPER_PARAMS = {(13, 2): 14_827_373, (3, 3): 14_735_203}


def naive_kernel_conv(x: torch.Tensor, kernel: torch.Tensor, k: int) -> torch.Tensor:
    """The official KernelConv2D's definition, one output value at a time (replicate borders)."""
    b, c, h, w = x.shape
    out = torch.zeros_like(x)
    r = k // 2
    for n in range(b):
        for ch in range(c):
            for y in range(h):
                for xx in range(w):
                    total = x.new_zeros(())
                    for i in range(k):
                        for j in range(k):
                            yy, xj = min(max(y + i - r, 0), h - 1), min(max(xx + j - r, 0), w - 1)
                            total = total + x[n, ch, yy, xj] * kernel[n, ch * k * k + i * k + j, y, xx]
                    out[n, ch, y, xx] = total
    return out


@pytest.mark.parametrize("k", [1, 3, 5])
def test_dynamic_filter_matches_the_naive_loop_values_and_gradients(k):
    g = torch.Generator().manual_seed(k)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(2, 3 * k * k, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    fast, slow = kernel_conv2d(x, kernel, k), naive_kernel_conv(x, kernel, k)
    assert torch.allclose(fast, slow, atol=1e-12)
    weights = torch.randn(fast.shape, generator=g, dtype=torch.float64)
    grads_fast = torch.autograd.grad((fast * weights).sum(), (x, kernel))
    grads_slow = torch.autograd.grad((slow * weights).sum(), (x, kernel))
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(grads_fast, grads_slow))


def test_shifted_window_mask_separates_the_rolled_regions():
    mask = shifted_window_mask(8, 8, 4, 2, torch.device("cpu"))
    assert mask.shape == (4, 16, 16)
    assert not mask[0].any()  # the top-left window holds one region only
    assert set(mask.unique().tolist()) == {0.0, -100.0}
    # The bottom-right window mixes four regions of 4 tokens each: each token sees its 4 (itself included).
    assert ((mask[3] == 0).sum(1) == 4).all()


def test_window_attention_stays_inside_windows():
    """A non-shifted layer mixes tokens within a 4x4 window only; a shifted one reaches the next window."""
    torch.manual_seed(0)
    x, x_sar = torch.randn(1, 2, 8, 8), torch.randn(1, 2, 8, 8)
    x2 = x.clone()
    x2[0, :, 2, 2] += 1.0  # its 3x3 neighbourhood (the conv's reach) lies inside the top-left window
    for shifted in (False, True):
        layer = DenseSwinLayer(
            in_ch=2, growth=4, heads=2, window=4, shifted=shifted, mlp_ratio=2.0, drop_path=0.0
        )
        with torch.no_grad():
            changed = (layer(x, x_sar)[0] - layer(x2, x_sar)[0]).abs().sum(1)[0] > 0
        outside = changed.clone()
        outside[:4, :4] = False
        assert changed[:4, :4].any() and bool(outside.any()) == shifted


@pytest.mark.parametrize("bands,sar", [(3, 3), (13, 2)])
def test_shapes_for_png_and_sentinel_bands(bands, sar):
    net = GLFCRNet(
        in_nc=bands, sar_nc=sar, feats=4, growth=4, blocks=1, layers=2, heads=2, window=4, up_feats=2
    )
    for h, w in ((16, 16), (32, 24)):
        out = net(torch.rand(2, bands, h, w), torch.rand(2, sar, h, w))
        assert out.shape == (2, bands, h, w) and torch.isfinite(out).all()


def test_window_attention_on_256_pixels():
    net = GLFCRNet(
        in_nc=3, sar_nc=2, feats=4, growth=4, blocks=1, layers=2, heads=2, window=8, up_feats=2
    ).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 256, 256), torch.rand(1, 2, 256, 256)).shape == (1, 3, 256, 256)


def test_activation_checkpointing_gives_the_same_gradients():
    kw = dict(in_nc=3, sar_nc=2, feats=4, growth=4, blocks=2, layers=2, heads=2, window=4, up_feats=2)
    torch.manual_seed(0)
    plain = GLFCRNet(**kw, drop_path=0.5)
    saving = GLFCRNet(**kw, drop_path=0.5, checkpoint=True)
    saving.load_state_dict(plain.state_dict())
    cloudy, sar = torch.rand(2, 3, 16, 16), torch.rand(2, 2, 16, 16)
    grads, calls = [], []
    for net in (plain, saving):
        calls.append(0)
        net.RDBs[0].register_forward_hook(lambda *_: calls.__setitem__(-1, calls[-1] + 1))
        torch.manual_seed(1)  # the same stochastic-depth draws, also when a block is recomputed
        net(cloudy, sar).square().mean().backward()
        grads.append({k: p.grad for k, p in net.named_parameters() if p.grad is not None})
    assert calls == [1, 2]  # checkpointing recomputes the block in the backward pass
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][k], grads[1][k], atol=1e-7) for k in grads[0])


@pytest.mark.parametrize("bands,sar", list(PAPER_PARAMS))
def test_parameter_count_at_the_paper_settings(bands, sar, capsys):
    count = sum(p.numel() for p in GLFCRNet(in_nc=bands, sar_nc=sar).parameters())
    with capsys.disabled():
        print(f"\nGLF-CR parameters, {bands} optical + {sar} SAR bands: {count:,}")
    assert count == PAPER_PARAMS[(bands, sar)]


def build(tmp_path, *extra: str):
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "glf", *TINY_GLF, *extra)
    opt = TrainOptions().parse(argv, save=False)
    model = create_model(opt)
    model.setup()
    return model


def batch(seed: int = 0, bands: int = 3, sar: int = 3, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(seed)
    data = {
        k: torch.rand(1, n, size, size, generator=g) * 2 - 1
        for k, n in (("A", bands), ("B", bands), ("C", sar))
    }
    return data | {"A_paths": ["x.png"]}


def test_tiny_flags_make_a_few_thousand_parameters(tmp_path):
    model = build(tmp_path)
    assert 1000 < sum(p.numel() for p in model.nets["G"].parameters()) < 10_000


def test_official_training_defaults(tmp_path):
    argv = ["--dataroot", str(tmp_path), "--model", "glf_cr", "--gpu_ids", "-1", "--display_id", "0"]
    opt = TrainOptions().parse(argv, save=False)
    official = dict(lr=1e-4, beta1=0.9, lr_policy="step", lr_decay_iters=5, lr_decay_gamma=0.5, n_epochs=30)
    assert {k: getattr(opt, k) for k in official} == official
    assert (opt.n_epochs_decay, opt.crop_size, opt.batch_size) == (0, 128, 1)
    assert (opt.glf_feats, opt.glf_growth, opt.glf_blocks, opt.glf_layers, opt.glf_heads) == (96, 48, 6, 5, 8)
    assert (opt.glf_window, opt.glf_kernel, opt.glf_up_feats, opt.glf_drop_path) == (8, 5, 64, 0.2)


def test_schedule_halves_every_five_epochs(tmp_path):
    model = build(tmp_path, "--lr_decay_iters", "5")
    lrs = []
    for _ in range(11):
        lrs.append(model.current_lrs()["G"])
        model.update_learning_rate()
    assert lrs == pytest.approx([1e-4] * 5 + [5e-5] * 5 + [2.5e-5])


def test_one_step_changes_the_weights_and_loss_is_official_l1(tmp_path):
    model = build(tmp_path, "--glf_drop_path", "0")
    assert list(model.nets) == ["G"] and model.loss_names == ["G_L1"]
    before = {k: v.detach().clone() for k, v in model.nets["G"].named_parameters()}
    data = batch()
    model.set_input(data)
    losses = model.optimize_parameters()
    expected = (model.outputs["fake_B"].detach() - data["B"]).abs().mean() / 2  # L1 on [0, 1]
    assert torch.allclose(losses["G_L1"].detach(), expected) and torch.isfinite(losses["G_L1"])
    moved = {k: not torch.equal(p.detach(), before[k]) for k, p in model.nets["G"].named_parameters()}
    # The last block's SAR update feeds nothing (as in the official network): only its gate stays.
    idle = {k for k in moved if k.startswith("opt_distribute_1x1conv.0.")}
    assert all(v for k, v in moved.items() if k not in idle), [k for k, v in moved.items() if not v]
    assert not any(moved[k] for k in idle)


def test_residual_output_maps_the_unit_range_back(tmp_path):
    model = build(tmp_path)
    net = model.nets["G"]
    for p in net.UPNet[-1].parameters():
        torch.nn.init.zeros_(p)  # no residual: the output is the cloudy input itself
    data = batch(2)
    out = model.predict(data["A"], data["C"])["fake_B"]
    assert torch.allclose(out, data["A"], atol=1e-6)


def test_nonfinite_loss_skips_the_step(tmp_path):
    model = build(tmp_path)
    before = {k: v.detach().clone() for k, v in model.nets["G"].state_dict().items()}
    data = batch()
    data["B"][0, 0, 0, 0] = float("nan")
    model.set_input(data)
    model.optimize_parameters()
    assert model.skipped_step == ["G_L1"]
    assert all(torch.equal(v, before[k]) for k, v in model.nets["G"].state_dict().items())


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build(tmp_path)
    model.set_input(batch())
    model.optimize_parameters()
    model.save_networks("latest")
    assert sorted(p.name for p in model.save_dir.glob("*.pth")) == ["latest_net_G.pth"]
    model.set_input(batch(5))
    expected = model.test()["fake_B"].clone()
    torch.manual_seed(123)
    other = build(tmp_path)
    other.set_input(batch(5))
    assert not torch.equal(other.test()["fake_B"], expected)
    other.load_networks("latest")
    assert torch.equal(other.test()["fake_B"], expected)


def two_steps(root, seed: int) -> dict[str, torch.Tensor]:
    argv = train_argv(
        root / "data", root / "ckpt", "det", *TINY_GLF, "--seed", str(seed), "--load_size", "40"
    )
    model = train_steps(argv)  # stochastic depth draws from the seeded generator too
    return {k: v.clone() for k, v in model.nets["G"].state_dict().items()}


def test_seeded_runs_are_reproducible(tmp_path):
    make_triplets(tmp_path / "data", "train", n=3, size=40)
    a, b, c = (two_steps(tmp_path, s) for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_thirteen_bands_one_step(tmp_path):
    model = build(tmp_path, "--input_nc", "13", "--output_nc", "13", "--sar_nc", "2")
    model.set_input(batch(bands=13, sar=2))
    assert torch.isfinite(model.optimize_parameters()["G_L1"])
    assert model.outputs["fake_B"].shape == (1, 13, 32, 32)


def test_train_then_test_on_png_triplets(tmp_path):
    data, ckpt, results = tmp_path / "data", tmp_path / "ckpt", tmp_path / "results"
    make_triplets(data, "train", n=2)
    stems = make_triplets(data, "test", n=2, seed=1)
    assert train.main(train_argv(data, ckpt, "glf", *TINY_GLF)) == 0
    assert (ckpt / "glf" / "latest_net_G.pth").is_file()
    assert test_script.main(test_argv(data, ckpt, results, "glf", *TINY_GLF)) == 0
    web = results / "glf" / "test_latest"
    for stem in stems:
        for visual in ("real_A", "fake_B", "real_B", "real_C"):
            assert read_rgb(web / "images" / f"{stem}_{visual}.png").shape == (32, 32, 3)
    assert (web / "metrics_per_image.csv").is_file()


@pytest.mark.parametrize(
    "extra,fragments",
    [
        (["--glf_heads", "3"], ("--glf_heads 3 must divide --glf_growth 4",)),
        (["--glf_kernel", "4"], ("--glf_kernel must be odd",)),
        (["--glf_blocks", "0"], ("--glf_blocks must be a positive integer",)),
        (["--glf_drop_path", "1"], ("--glf_drop_path must be in [0, 1)",)),
        (["--glf_mlp_ratio", "0"], ("--glf_mlp_ratio must be positive",)),
        (["--output_nc", "4"], ("--input_nc 3 and --output_nc 4 differ",)),
        (
            ["--crop_size", "20", "--preprocess", "crop"],
            ("--glf_window 4 (x2", "divisible by 8", "--glf_window"),
        ),
        (["--lr_decay_gamma", "0"], ("--lr_decay_gamma must be in (0, 1]",)),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path, capfd, extra, fragments):
    make_triplets(tmp_path / "data", "train", n=1)
    expect_error(
        capfd,
        train.main,
        train_argv(tmp_path / "data", tmp_path / "ckpt", "bad", *TINY_GLF, *extra),
        *fragments,
    )


def test_comparison_smoke_setting_runs_glf_cr(tmp_path, capsys):
    make_triplets(tmp_path / "data" / "train", "train", n=2, size=32)
    make_triplets(tmp_path / "data" / "test", "test", n=2, size=32, seed=1)
    argv = ["--dataroot", str(tmp_path / "data"), "--setting", "smoke", "--models", "glf_cr", "--rows", "1"]
    argv += ["--checkpoints_dir", str(tmp_path / "ck"), "--results_dir", str(tmp_path / "res")]
    assert compare.main(argv) == 0
    rows = read_table(tmp_path / "res" / "compare" / "smoke")
    assert [r["model"] for r in rows] == ["GLF-CR", "cloudy input (no model)"]
    assert float(rows[0]["parameters, inference (M)"]) > 0 and float(rows[0]["field PSNR (dB)"]) > 0


def test_images_off_the_window_grid_are_refused(tmp_path):
    model = build(tmp_path)
    with pytest.raises(UserError, match=r"sides must be multiples of 8; .*a smaller --glf_window"):
        model.set_input(batch(size=20))


def test_train_then_test_on_sen12mscr_13_bands(tmp_path):
    """The paper's setting: 13 S2 bands, 2 S1 bands, the official SAR scaling; GeoTIFF outputs."""
    tree = make_tree(tmp_path / "sen12mscr")
    common = ["--dataroot", str(tree), "--dataset_mode", "sen12mscr", "--name", "ms"]
    common += ["--checkpoints_dir", str(tmp_path / "ck"), "--sar_scaling", "dsen2cr", "--crop_size", "32"]
    common += ["--num_threads", "0", "--display_id", "0", "--gpu_ids", "-1", *TINY_GLF]
    assert train.main([*common, "--n_epochs", "1", "--no_flip"]) == 0
    assert test_script.main([*common, "--results_dir", str(tmp_path / "res")]) == 0
    out = tmp_path / "res" / "ms" / "test_latest" / "images"
    outputs = sorted(out.glob("*_fake_B.tif"))
    assert outputs
    geo, _ = read_geotiff(outputs[0])
    assert geo.shape == (13, 32, 32) and 0 <= geo.min() and geo.max() <= 1
