"""Networks, losses and schedules: shapes, exact sizes, official layout, init, official weights."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

import tests.helpers  # noqa: F401  (the suite's single-thread policy)
from models import networks
from models.networks import GANLoss, SSIMLoss, get_scheduler, ssim
from models.weights import load_weights, safe_load

NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


# ---------------------------------------------------------------- an independent official U-Net
def official_unet(input_nc: int, output_nc: int, num_downs: int = 8, ngf: int = 64) -> nn.Module:
    """The official UnetGenerator as the paper's code ran it: no inner biases, in-place
    activations, InstanceNorm2d(affine=False, track_running_stats=True) used in train mode."""
    norm = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=True)

    class Block(nn.Module):
        def __init__(self, outer, inner, inp=None, sub=None, kind="middle"):
            super().__init__()
            self.kind = kind
            down = nn.Conv2d(outer if inp is None else inp, inner, 4, 2, 1, bias=False)
            if kind == "outer":
                layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
            elif kind == "inner":
                layers = [
                    nn.LeakyReLU(0.2, True),
                    down,
                    nn.ReLU(True),
                    nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False),
                    norm(outer),
                ]
            else:
                layers = [
                    nn.LeakyReLU(0.2, True),
                    down,
                    norm(inner),
                    sub,
                    nn.ReLU(True),
                    nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=False),
                    norm(outer),
                ]
            self.model = nn.Sequential(*layers)

        def forward(self, x):
            return self.model(x) if self.kind == "outer" else torch.cat([x, self.model(x)], 1)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            block = Block(ngf * 8, ngf * 8, kind="inner")
            for _ in range(num_downs - 5):
                block = Block(ngf * 8, ngf * 8, sub=block)
            for mult in (4, 2, 1):
                block = Block(ngf * mult, ngf * mult * 2, sub=block)
            self.model = Block(output_nc, ngf, inp=input_nc, sub=block, kind="outer")

        def forward(self, x):
            return self.model(x)

    return Generator()


class OfficialPatchGAN(nn.Module):
    """The official 3-layer NLayerDiscriminator: biases everywhere, norms with running stats."""

    def __init__(self, input_nc: int, ndf: int = 64):
        super().__init__()
        norm = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=True)
        layers = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for prev, mult, stride in ((1, 2, 2), (2, 4, 2), (4, 8, 1)):
            conv = nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1)
            layers += [conv, norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * 8, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def shapes(net: nn.Module, drop_buffers: bool = False) -> dict[str, tuple]:
    return {
        k: tuple(v.shape)
        for k, v in net.state_dict().items()
        if not (drop_buffers and k.endswith(NORM_BUFFERS))
    }


# ---------------------------------------------------------------- the paper's networks at full size
BUILD = {
    "G": lambda: networks.define_G(6, 3),
    "G2": lambda: networks.define_G(3, 3),
    "A": lambda: networks.define_G(3, 1, attention=True),
    "D": lambda: networks.define_D(6),
}
OFFICIAL = {  # from shared/spec/official_state_dict_keys.txt: parameters, state_dict entries
    "G": (54_407_171, 56),
    "G2": (54_404_099, 56),
    "A": (54_400_001, 56),
    "D": (2_767_809, 19),
}
REFERENCE = {
    "G": lambda: official_unet(6, 3),
    "G2": lambda: official_unet(3, 3),
    "A": lambda: nn.Sequential(official_unet(3, 1)),
    "D": lambda: OfficialPatchGAN(6),
}
SAMPLE_KEYS = {  # a handful of entries copied from the spec file
    "G": {
        "model.model.0.weight": (64, 6, 4, 4),
        "model.model.3.weight": (128, 3, 4, 4),
        "model.model.3.bias": (3,),
        "model.model.1.model.5.weight": (256, 64, 4, 4),
        "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.3.weight": (512, 512, 4, 4),
        "model.model.1.model.3.model.3.model.5.weight": (1024, 256, 4, 4),
    },
    "G2": {"model.model.0.weight": (64, 3, 4, 4), "model.model.3.bias": (3,)},
    "A": {
        "0.model.model.0.weight": (64, 3, 4, 4),
        "0.model.model.3.weight": (128, 1, 4, 4),
        "0.model.model.3.bias": (1,),
    },
    "D": {
        "model.0.weight": (64, 6, 4, 4),
        "model.0.bias": (64,),
        "model.2.weight": (128, 64, 4, 4),
        "model.2.bias": (128,),
        "model.5.weight": (256, 128, 4, 4),
        "model.5.bias": (256,),
        "model.8.weight": (512, 256, 4, 4),
        "model.8.bias": (512,),
        "model.11.weight": (1, 512, 4, 4),
        "model.11.bias": (1,),
    },
}


@pytest.fixture(scope="module")
def full_nets():
    cache: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = BUILD[name]()
        return cache[name]

    yield get
    cache.clear()


@pytest.mark.parametrize("name", ["G", "G2", "A", "D"])
def test_official_sizes_and_layout(full_nets, name):
    net = full_nets(name)
    params, entries = OFFICIAL[name]
    assert sum(p.numel() for p in net.parameters()) == params
    with torch.device("meta"):
        reference = REFERENCE[name]()
    ref = shapes(reference)
    assert len(ref) == entries  # the official file, norm buffers included
    assert shapes(net) == shapes(reference, drop_buffers=True)
    for key, shape in SAMPLE_KEYS[name].items():
        assert ref[key] == shape and shapes(net)[key] == shape
    biases = {k for k in shapes(net) if k.endswith(".bias")}
    if name == "D":  # every PatchGAN convolution has a bias
        assert biases == {k for k in SAMPLE_KEYS["D"] if k.endswith(".bias")}
    else:  # official quirk: only the outermost up-convolution has one
        assert biases == {("0." if name == "A" else "") + "model.model.3.bias"}


def test_xavier_init(full_nets):
    net = full_nets("G")
    inner = net.model.model[1].model[3].model[3].model[1]  # a 512 -> 512 4x4 conv, 4M weights
    w = inner.weight.detach()
    fan_in, fan_out = w.shape[1] * 16, w.shape[0] * 16
    expected = math.sqrt(2.0 / (fan_in + fan_out))
    assert abs(w.std().item() / expected - 1) < 0.01 and abs(w.mean().item()) < expected * 0.01
    d = networks.define_D(6)
    last = d.model[11]  # biases keep PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert last.bias.abs().max().item() <= 1 / math.sqrt(512 * 16)
    w = d.model[8].weight.detach()
    assert abs(w.std().item() / math.sqrt(2.0 / (256 * 16 + 512 * 16)) - 1) < 0.02


# ---------------------------------------------------------------- shapes on small widths
@pytest.mark.parametrize("netG", list(networks.UNET_DEPTHS))
def test_unet_shapes(netG):
    side = networks.unet_min_size(netG)
    g = networks.define_G(6, 3, ngf=2, netG=netG)
    out = g(torch.randn(2, 6, side, side))
    assert out.shape == (2, 3, side, side) and out.abs().max() <= 1
    a = networks.define_G(3, 1, ngf=2, netG=netG, attention=True)
    att = a(torch.randn(2, 3, side, side) * 50)
    assert att.shape == (2, 1, side, side)
    assert att.min() >= 0 and att.max() <= 1


def test_patchgan_shape_and_attention_clamp():
    d = networks.define_D(6, ndf=2)
    assert d(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)
    assert networks.define_D(6, ndf=2, netD="pixel")(torch.randn(1, 6, 8, 8)).shape == (1, 1, 8, 8)
    x = torch.tensor([-3.0, -0.5, 0.0, 0.25, 2.0])
    assert torch.equal(networks.AbsClamp()(x), torch.tensor([1.0, 0.5, 0.0, 0.25, 1.0]))


# ---------------------------------------------------------------- official weight files
@pytest.mark.parametrize("which", ["G", "A", "D"])
def test_official_weights_give_official_outputs(tmp_path, which):
    torch.manual_seed(1)
    if which == "D":
        reference, ours = OfficialPatchGAN(6, ndf=4), networks.define_D(6, ndf=4)
        x = torch.randn(2, 6, 64, 64)
    else:
        nc_in, nc_out = (6, 3) if which == "G" else (3, 1)
        reference = official_unet(nc_in, nc_out, num_downs=8, ngf=4)
        if which == "A":
            reference = nn.Sequential(reference, networks.AbsClamp())
        ours = networks.define_G(nc_in, nc_out, ngf=4, attention=which == "A")
        x = torch.randn(2, nc_in, 256, 256)
    reference.train()
    for _ in range(2):  # the official code's forward passes updated the (unused) running stats
        reference(torch.randn_like(x))
    path = tmp_path / f"latest_net_{which}.pth"
    torch.save(reference.state_dict(), path)
    assert any(k.endswith("num_batches_tracked") for k in safe_load(path))
    load_weights(ours, safe_load(path), path)
    with torch.no_grad():
        expected = reference(x.clone())
        ours.train()
        out_train = ours(x.clone())
        ours.eval()
        out_eval = ours(x.clone())
    assert torch.equal(out_train, expected)
    assert torch.equal(out_eval, expected)


# ---------------------------------------------------------------- losses
def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Direct sums: 11x11 Gaussian (sigma 1.5), zero padding, per channel, mean of the map."""
    k = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(k, k) / np.outer(k, k).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for x, y in zip(a, b):
        xp, yp = np.pad(x, 5), np.pad(y, 5)
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                px, py = xp[i : i + 11, j : j + 11], yp[i : i + 11, j : j + 11]
                mx, my = (w * px).sum(), (w * py).sum()
                vx, vy = (w * px * px).sum() - mx**2, (w * py * py).sum() - my**2
                cxy = (w * px * py).sum() - mx * my
                values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_loss():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 2, 9, 12, generator=g, dtype=torch.float64) * 2 - 1
    b = (a + 0.3 * torch.randn(1, 2, 9, 12, generator=g, dtype=torch.float64)).clamp(-1, 1)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-12)
    assert SSIMLoss()(a.float(), a.float()).item() == pytest.approx(0.0, abs=1e-5)
    assert ssim(a, b).item() == pytest.approx(reference_ssim(a[0].numpy(), b[0].numpy()), abs=1e-10)
    assert SSIMLoss()(a, b).item() == pytest.approx(1 - reference_ssim(a[0].numpy(), b[0].numpy()), abs=1e-10)


def test_gan_losses():
    pred = torch.tensor([[0.5, 2.0], [-1.0, 0.0]])
    lsgan = GANLoss("lsgan")
    assert lsgan(pred, True).item() == pytest.approx((0.25 + 1 + 4 + 1) / 4)
    assert lsgan(pred, False).item() == pytest.approx((0.25 + 4 + 1 + 0) / 4)
    vanilla = GANLoss("vanilla")
    expected = float(np.mean(np.log1p(np.exp(-pred.numpy()))))
    assert vanilla(pred, True).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError):
        GANLoss("wgan")


# ---------------------------------------------------------------- learning-rate schedules
def lrs(policy: str, epochs: int, **kw) -> list[float]:
    """The lr used in each of ``epochs`` epochs, stepping the scheduler at every epoch's end."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_scheduler(opt, lr_policy=policy, **kw)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(1.0) if policy == "plateau" else sched.step()
    return out


def test_schedulers():
    step = lrs("step", 310, lr_decay_iters=100)  # the paper's schedule: 210 + 100 epochs
    assert step[0] == step[99] == 1.0
    assert step[100] == pytest.approx(0.1) and step[199] == pytest.approx(0.1)
    assert step[200] == pytest.approx(0.01) and step[309] == pytest.approx(0.001)
    linear = lrs("linear", 6, n_epochs=2, n_epochs_decay=3)
    assert linear == pytest.approx([1.0, 1.0, 0.75, 0.5, 0.25, 0.0])
    assert lrs("lambda", 6, n_epochs=2, n_epochs_decay=3) == linear
    cosine = lrs("cosine", 5, n_epochs=2, n_epochs_decay=2)
    c = math.cos(math.pi / 4)
    assert cosine == pytest.approx([1.0, (1 + c) / 2, 0.5, (1 - c) / 2, 0.0])
    plateau = lrs("plateau", 8)
    assert plateau[:7] == [1.0] * 7 and plateau[7] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="step"):
        lrs("exponential", 1)
