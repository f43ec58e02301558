"""The pix2pix_attn model: one optimisation step, gradient flow, pool, save/load, resume, seeds."""

from __future__ import annotations

import pytest
import torch

from models import create_model
from models.image_pool import ImagePool
from models.networks import ssim
from options.base_options import saved_options
from options.train_options import TrainOptions
from tests.helpers import make_triplets, train_argv, train_steps

LOSS_NAMES = {"G_GAN", "G_L1", "G_SSIM", "G_attn", "G2_L1", "G2_SSIM", "D_real", "D_fake"}
NETS = ("G", "G2", "A", "D")


def build(tmp_path, *extra: str):
    opt = TrainOptions().parse(train_argv(tmp_path / "data", tmp_path / "ckpt", "m", *extra), save=False)
    model = create_model(opt)
    model.setup()
    return model


def batch(seed: int = 0, n: int = 1, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(n, 3, size, size, generator=g) * 2 - 1 for k in "ABC"} | {"A_paths": ["x.png"] * n}


def weights(model) -> dict[str, dict[str, torch.Tensor]]:
    return {n: {k: v.detach().clone() for k, v in net.state_dict().items()} for n, net in model.nets.items()}


def outputs(model, data: dict) -> dict[str, torch.Tensor]:
    model.set_input(data)
    return {k: v.clone() for k, v in model.test().items()}


def test_one_step_finite_losses_and_all_parameters_move(tmp_path):
    model = build(tmp_path)
    assert set(model.nets) == set(NETS) and set(model.loss_names) == LOSS_NAMES
    before = weights(model)
    model.set_input(batch())
    losses = model.optimize_parameters()
    assert set(losses) == LOSS_NAMES
    values = model.get_current_losses()
    assert all(torch.isfinite(torch.tensor(v)) for v in values.values()), values
    for name, net in model.nets.items():
        for key, param in net.named_parameters():
            assert not torch.equal(param.detach(), before[name][key]), f"{name}.{key} did not change"


def test_adversarial_term_alone_trains_G_and_A(tmp_path):
    model = build(tmp_path, "--lambda_L1", "0", "--lambda_ssim", "0", "--loss_attn_A", "0")
    before = weights(model)
    model.set_input(batch())
    model.optimize_parameters()
    for name in ("G", "A"):
        params = model.nets[name].named_parameters()
        assert all(not torch.equal(p.detach(), before[name][k]) for k, p in params)


def test_fake_C_is_not_detached_G2_learns_from_loss_G(tmp_path):
    # The official step keeps the gradients for inspection ('fast' frees each once used: the same
    # update, checked in tests/test_speed.py).
    model = build(tmp_path, "--train_step", "official")
    data = batch(1)
    start = weights(model)
    model.set_input(data)
    model.optimize_parameters()
    used = {k: p.grad.clone() for k, p in model.nets["G2"].named_parameters()}

    def g2_grads(with_loss_G: bool) -> dict[str, torch.Tensor]:
        for name, net in model.nets.items():
            net.load_state_dict(start[name])
            net.zero_grad(set_to_none=True)
        model.set_input(data)
        model.forward()
        losses = model.generator_losses()
        total = losses["G2_L1"] + losses["G2_SSIM"]
        if with_loss_G:
            total = total + losses["G_GAN"] + losses["G_SSIM"] + losses["G_attn"] + losses["G_L1"]
        total.backward()
        return {k: p.grad.clone() for k, p in model.nets["G2"].named_parameters()}

    alone, both = g2_grads(False), g2_grads(True)
    for key, grad in used.items():
        torch.testing.assert_close(grad, both[key], rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(alone[k], both[k], rtol=1e-3, atol=1e-7) for k in used)


def test_attention_mix(tmp_path):
    model = build(tmp_path)
    model.set_input(batch(2, n=2))
    v = model.forward()
    assert v["att_A"].shape == (2, 1, 32, 32) and 0 <= v["att_A"].min() and v["att_A"].max() <= 1
    expected = v["g_B"] * v["att_A"] + v["real_A"] * (1 - v["att_A"])
    torch.testing.assert_close(v["fake_B"], expected, rtol=0, atol=0)
    visuals = {"real_A", "fake_B", "real_B", "real_C", "fake_C", "g_B", "att_A"}
    assert set(model.get_current_visuals()) == visuals


def test_what_each_network_sees(tmp_path):
    model = build(tmp_path, "--pool_size", "0")
    seen = []
    model.nets["D"].register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].detach().clone()))
    data = batch(3)
    model.set_input(data)
    model.optimize_parameters()
    # D judges (SAR, optical) pairs: G's fake pair, then the (pooled) fake and the real pair.
    assert len(seen) == 3 and all(torch.equal(x[:, :3], data["C"]) for x in seen)
    assert torch.equal(seen[2][:, 3:], data["B"])
    first = outputs(model, data)
    other_sar = outputs(model, {**data, "C": -data["C"]})
    assert torch.equal(first["att_A"], other_sar["att_A"])  # attention: the cloudy image only
    assert not torch.equal(first["fake_C"], other_sar["fake_C"])
    other_cloudy = outputs(model, {**data, "A": -data["A"]})
    assert torch.equal(first["fake_C"], other_cloudy["fake_C"])  # G2: SAR only
    assert not torch.equal(first["att_A"], other_cloudy["att_A"])


def test_losses_follow_the_paper(tmp_path):
    model = build(tmp_path, "--pool_size", "0", "--lambda_A", "2", "--loss_attn_A", "0.5")
    model.set_input(batch(4))
    model.forward()
    g, d = model.generator_losses(), model.discriminator_losses()
    B, C = model.real_B, model.real_C
    fake_B, fake_C, att = model.fake_B, model.fake_C, model.att_A

    def D(x):
        return model.nets["D"](torch.cat([C, x], 1))

    expected = {
        "G2_L1": (fake_C - B).abs().mean(),
        "G2_SSIM": 1 - ssim(fake_C, B),
        "G_GAN": ((D(fake_B) - 1) ** 2).mean(),
        "G_SSIM": 10 * (1 - ssim(fake_B, B)),
        "G_attn": 0.5 * att.abs().mean(),
        "G_L1": 200 * (fake_B - B).abs().mean(),
        "D_fake": 0.5 * (D(fake_B) ** 2).mean(),
        "D_real": 0.5 * ((D(B) - 1) ** 2).mean(),
    }
    for name, value in expected.items():
        torch.testing.assert_close((g | d)[name], value, msg=name)


def test_image_pool():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(ImagePool(0).query(x), x)
    pool = ImagePool(2)
    first = torch.randn(2, 3, 4, 4, requires_grad=True)
    out = pool.query(first)
    assert torch.equal(out, first.detach()) and not out.requires_grad and len(pool.images) == 2
    swapped = 0
    for _ in range(20):
        new = torch.randn(1, 3, 4, 4)
        old_pool = [im.clone() for im in pool.images]
        got = pool.query(new)
        assert len(pool.images) == 2
        if torch.equal(got, new):
            assert all(torch.equal(a, b) for a, b in zip(old_pool, pool.images))
        else:  # an older image came back and the new one took its place
            swapped += 1
            assert any(torch.equal(got, im) for im in old_pool)
            assert any(torch.equal(new, im) for im in pool.images)
    assert 0 < swapped < 20
    state = pool.state_dict()
    other = ImagePool(5)
    other.load_state_dict(state)
    assert other.pool_size == 2 and all(torch.equal(a, b) for a, b in zip(other.images, pool.images))


def test_model_pool_gets_the_fake_pairs(tmp_path):
    model = build(tmp_path, "--pool_size", "3")
    for i in range(2):
        model.set_input(batch(i))
        model.optimize_parameters()
    assert len(model.fake_pool.images) == 2 and model.fake_pool.images[0].shape == (1, 6, 32, 32)
    assert torch.equal(model.fake_pool.images[1][:, :3], model.real_C)


def test_save_and_load_networks_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build(tmp_path)
    model.set_input(batch())
    model.optimize_parameters()
    model.save_networks("latest")
    model.save_networks(3)
    files = sorted(p.name for p in model.save_dir.glob("*.pth"))
    assert files == sorted(f"{label}_net_{n}.pth" for label in ("3", "latest") for n in NETS)
    for name, net in model.nets.items():
        state = torch.load(model.save_dir / f"latest_net_{name}.pth", weights_only=True)
        assert list(state) == list(net.state_dict())
        assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    expected = outputs(model, batch(5))

    torch.manual_seed(123)
    other = build(tmp_path)
    assert not torch.equal(outputs(other, batch(5))["fake_B"], expected["fake_B"])
    other.load_networks("latest")
    got = outputs(other, batch(5))
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_training_state_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build(tmp_path, "--pool_size", "4", "--lr_policy", "step", "--lr_decay_iters", "1")
    for i in range(2):
        model.set_input(batch(i))
        model.optimize_parameters()
    model.update_learning_rate()
    progress = {"epoch": 1, "total_iters": 2}
    path = model.checkpoints.save(model, "latest", progress, saved_options(model.opt))
    assert path == model.checkpoints.state_path("latest") and path.is_file()
    rng_after_save = torch.rand(3)

    torch.manual_seed(99)
    other = build(tmp_path, "--pool_size", "4", "--lr_policy", "step", "--lr_decay_iters", "1")
    assert other.checkpoints.load_training_state(other, "latest", other.opt) == progress
    assert torch.equal(torch.rand(3), rng_after_save)
    for name in NETS:
        a, b = model.nets[name].state_dict(), other.nets[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
        sa, sb = model.optimizers[name].state_dict(), other.optimizers[name].state_dict()
        assert sa["param_groups"] == sb["param_groups"]
        for i, moments in sa["state"].items():
            assert torch.equal(moments["exp_avg_sq"], sb["state"][i]["exp_avg_sq"])
    assert other.current_lrs() == model.current_lrs() == pytest.approx({n: 2e-5 for n in NETS})
    assert len(other.fake_pool.images) == 2
    assert all(torch.equal(a, b) for a, b in zip(model.fake_pool.images, other.fake_pool.images))
    # Resumed and original runs continue identically.
    for m in (model, other):
        torch.manual_seed(7)
        m.set_input(batch(3))
        m.optimize_parameters()
    final = model.nets["G"].state_dict()
    assert all(torch.equal(final[k], v) for k, v in other.nets["G"].state_dict().items())


def run_two_steps(root, seed: int) -> dict:
    argv = train_argv(root / "data", root / "ckpt", "det", "--seed", str(seed), "--load_size", "40")
    return weights(train_steps(argv))


def test_seeded_runs_are_reproducible(tmp_path):
    make_triplets(tmp_path / "data", "train", n=4, size=40)  # shuffling, random crops and flips
    a, b, c = (run_two_steps(tmp_path, s) for s in (3, 3, 4))
    for name in NETS:
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name]), name
    assert any(not torch.equal(a["G"][k], c["G"][k]) for k in a["G"])
