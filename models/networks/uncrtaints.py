"""UnCRtainTS, mono-temporal: the network and its initialisation (Ebel, Garnot, Schmitt, Wegner, Zhu,
"UnCRtainTS: Uncertainty Quantification for Cloud Removal in Optical Satellite Time Series",
CVPR EarthVision workshop 2023).

Architecture, as the authors' ``model/src/backbones/uncrtaints.py`` builds it for single images
(``is_mono``: no down-sampling, no temporal attention, full resolution throughout)::

    cat(S1, S2) (B, sar_nc + optical_nc, H, W), both x scale_by
      -> 1x1 conv to W channels + GroupNorm(4) + ReLU            (in_conv)
      -> in_blocks MBConv blocks, normalised with GroupNorm(4)   (in_block.i)
      -> out_blocks MBConv blocks, normalised with BatchNorm     (out_block.i)
      -> 1x1 conv to 2 x out_nc channels (diagonal head) or out_nc (plain head)   (out_conv)
      mean = scale_by * sigmoid(first out_nc channels); variance = softplus(the rest) + eps

One MBConv block (pre-normalised, residual): ``x + pw(se(gelu(norm(dw(gelu(norm(pw(norm(x))))))))``,
with a 1x1 expansion to 2 W channels, a 3x3 depth-wise convolution (reflect padding), a
squeeze-and-excitation gate (W 2 -> W / 4 -> W 2, GELU, sigmoid, no biases) and a 1x1 projection
back to W, each convolution without bias and followed by the block's normalisation. The authors'
setting: W = 128, one GroupNorm block, five BatchNorm blocks, 13 + 2 bands in, 13 out: 520,218
parameters with the diagonal head, 518,541 with the plain one. eps = 1e-3 when scale_by != 1
(else 1e-9). Module and parameter names are the official ones, so the authors' weights load as they
are (``state_dict_G`` of their checkpoints).

:func:`init_uncrtaints_weights` is the authors' ``weight_init`` (``model/src/learning/weight_init.py``,
applied to the generator after it is built): convolutions and linear layers Xavier-normal (gain 1),
biases N(0, 1), batch-norm scales N(0, 1) and shifts 0; group norms keep PyTorch's defaults.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

NORMS = ("group", "batch", "instance")
MEAN_ACTIVATIONS = ("sigmoid", "none")
VAR_ACTIVATIONS = ("softplus", "elu")
HEADS = ("diag", "plain")
GROUPS = 4  # GroupNorm groups everywhere in the official network


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The official choice of normalisation: GroupNorm(4), BatchNorm2d or InstanceNorm2d (no affine)."""
    if kind == "group":
        return nn.GroupNorm(GROUPS, channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


class _Nested(nn.Module):
    """Holds ``inner`` as ``self.conv``: the official nesting ``conv.conv.<i>`` of its conv blocks."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.conv = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PointwiseBlock(nn.Module):
    """A 1x1 convolution with bias, optionally followed by a normalisation and ReLU.

    Parameters are named ``conv.conv.0`` (convolution) and ``conv.conv.1`` (normalisation).
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: str | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 1, padding_mode="reflect")]
        if norm is not None:
            layers += [norm_layer(norm, out_channels), nn.ReLU()]
        self.conv = _Nested(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SqueezeExcite(nn.Module):
    """Channel gate: global average, linear to ``squeeze`` channels, GELU, linear back, sigmoid."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, squeeze, bias=False),
            nn.GELU(),
            nn.Linear(squeeze, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class PreNormed(nn.Module):
    """``fn(norm(x))``: the normalisation before the block's body (names ``norm`` and ``fn``)."""

    def __init__(self, channels: int, fn: nn.Module, norm: str) -> None:
        super().__init__()
        self.norm = norm_layer(norm, channels)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class MBConv(nn.Module):
    """Residual inverted bottleneck at full resolution: ``x + body(norm(x))`` (see the module docstring).

    ``channels`` in and out; the hidden width is ``expansion x channels``; the gate squeezes to
    ``channels / 4``.
    """

    def __init__(self, channels: int, *, norm: str, expansion: int = 2) -> None:
        super().__init__()
        hidden = channels * expansion
        body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            norm_layer(norm, hidden),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="reflect", groups=hidden, bias=False),
            norm_layer(norm, hidden),
            nn.GELU(),
            SqueezeExcite(hidden, channels // 4),
            nn.Conv2d(hidden, channels, 1, bias=False),
            norm_layer(norm, channels),
        )
        self.conv = PreNormed(channels, body, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class UnCRtainTSNet(nn.Module):
    """Mono-temporal UnCRtainTS: ``(B, in_nc, H, W)`` scaled inputs -> (mean, variance or None).

    Args:
        in_nc: input bands (SAR then optical: 15 for Sentinel-1 + Sentinel-2, 13 without SAR).
        out_nc: bands of the mean (13 for Sentinel-2).
        width: channels of every block (paper: 128); a multiple of 4 (GroupNorm(4), gate W / 4).
        in_blocks: MBConv blocks before the (absent) temporal step (paper: 1).
        out_blocks: MBConv blocks after it (paper: 5).
        head: 'diag' (mean and a variance per band) or 'plain' (mean only).
        scale_by: the range the data were scaled to (paper: 10); the sigmoid mean spans [0, scale_by].
        encoder_norm: normalisation of ``in_conv`` and the first blocks (paper: 'group').
        decoder_norm: normalisation of the last blocks (paper: 'batch').
        mean_activation: 'sigmoid' (the paper: ``scale_by * sigmoid``) or 'none'.
        var_activation: 'softplus' (the paper) or 'elu' (``elu + 1``); ``+ eps`` either way.
    """

    def __init__(
        self,
        *,
        in_nc: int = 15,
        out_nc: int = 13,
        width: int = 128,
        in_blocks: int = 1,
        out_blocks: int = 5,
        head: str = "diag",
        scale_by: float = 10.0,
        encoder_norm: str = "group",
        decoder_norm: str = "batch",
        mean_activation: str = "sigmoid",
        var_activation: str = "softplus",
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        if mean_activation not in MEAN_ACTIVATIONS or var_activation not in VAR_ACTIVATIONS:
            raise ValueError(f"unknown activation {mean_activation!r} / {var_activation!r}")
        self.out_nc, self.head, self.scale_by = out_nc, head, float(scale_by)
        self.mean_activation, self.var_activation = mean_activation, var_activation
        self.eps = 1e-9 if self.scale_by == 1.0 else 1e-3
        self.in_conv = PointwiseBlock(in_nc, width, norm=encoder_norm)
        self.in_block = nn.ModuleList(MBConv(width, norm=encoder_norm) for _ in range(in_blocks))
        self.out_block = nn.ModuleList(MBConv(width, norm=decoder_norm) for _ in range(out_blocks))
        self.out_conv = PointwiseBlock(width, out_nc * (2 if head == "diag" else 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, in_nc, H, W) in [0, scale_by] -> mean (B, out_nc, H, W) in [0, scale_by] (sigmoid) and,
        for the diagonal head, the variance (B, out_nc, H, W) > 0, both in the scaled units."""
        out = self.in_conv(x)
        for block in (*self.in_block, *self.out_block):
            out = block(out)
        out = self.out_conv(out)
        mean = out[:, : self.out_nc]
        if self.mean_activation == "sigmoid":
            mean = self.scale_by * torch.sigmoid(mean)
        if self.head == "plain":
            return mean, None
        raw = out[:, self.out_nc :]
        spread = (
            F.softplus(raw, beta=1, threshold=20) if self.var_activation == "softplus" else F.elu(raw) + 1
        )
        return mean, spread + self.eps


def init_uncrtaints_weights(net: nn.Module) -> nn.Module:
    """The authors' ``weight_init`` applied to every module of ``net`` (children first, as
    ``Module.apply``); returns ``net``. Draws in the official order, so the same seed gives the
    official network's initial weights on the same device."""

    def init_one(m: nn.Module) -> None:
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_normal_(m.weight, gain=1.0)
            if m.bias is not None:
                nn.init.normal_(m.bias, mean=0.0, std=1.0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, mean=0.0, std=1.0)
            nn.init.constant_(m.bias, 0.0)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight, gain=1.0)
            if m.bias is not None:
                nn.init.normal_(m.bias, mean=0.0, std=1.0)

    with torch.no_grad():
        net.apply(init_one)
    return net
