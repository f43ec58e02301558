"""Building blocks of GLF-CR (Xu, Shi, Ebel, Yu, Xia, Yang, Zhu; ISPRS J. P&RS 192, 268-278, 2022).

- :func:`kernel_conv2d`: per-pixel, per-channel dynamic filtering (the official code's custom CUDA op
  ``KernelConv2D``) in plain PyTorch, CPU-capable, differentiable by autograd.
- :class:`FusedWindowAttention`: Swin window self-attention run on the optical and the SAR stream at
  once; the optical attention logits are moved towards the SAR logits by a learned gate (the paper's
  SAR-guided *global* fusion).
- :class:`DenseSwinLayer`: one layer of a residual dense block: conv 3x3 + ReLU, window attention,
  LayerNorm + MLP, for both streams; its output is concatenated to its input (dense connection).
- :class:`KernelPredictor`: the network predicting the dynamic filters from both streams (the
  *local* fusion, after STFAN's filter-adaptive convolution).

Module and parameter names follow the official code (``xufangchn/GLF-CR``), so its state_dict keys
(less its two buffers) are ours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def kernel_conv2d(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Filter every channel of every pixel with its own ``kernel_size`` x ``kernel_size`` kernel.

    ``x`` (B, C, H, W); ``kernel`` (B, C * k * k, H, W), channel ``c * k * k + i * k + j`` holding
    the weight of the neighbour at offset (i - k // 2, j - k // 2) of channel c (the official
    KernelConv2D layout). Borders are replicate-padded, as in the official layer.
    Returns (B, C, H, W): ``out[b, c, y, x] = sum_ij pad(x)[b, c, y + i, x + j] * kernel[b, c k k + i k + j, y, x]``.
    """
    b, c, h, w = x.shape
    kk = kernel_size * kernel_size
    if kernel.shape != (b, c * kk, h, w):
        raise ValueError(
            f"kernel of shape {tuple(kernel.shape)} does not fit input {tuple(x.shape)}, k={kernel_size}"
        )
    pad = kernel_size // 2
    # unfold orders its output channels (c, i, j) with c slowest: the official kernel layout.
    patches = F.unfold(F.pad(x, (pad, pad, pad, pad), mode="replicate"), kernel_size)
    out = (patches.view(b, c, kk, h * w) * kernel.reshape(b, c, kk, h * w)).sum(2)
    return out.view(b, c, h, w)


class KernelConv2D(nn.Module):
    """:func:`kernel_conv2d` as a module (no parameters)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"the dynamic filter size must be odd and positive, got {kernel_size}")
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        return kernel_conv2d(x, kernel, self.kernel_size)


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero the residual branch of whole samples with probability ``rate``."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class Mlp(nn.Module):
    """Linear -> GELU -> Linear on tokens (B, N, C)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def relative_position_index(window: int) -> torch.Tensor:
    """(N, N) index into the (2w-1)^2 bias table for every pair of the N = w*w tokens of a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shifted_window_mask(h: int, w: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, N, N) additive mask (0 or -100, Swin's value) keeping shifted windows from mixing regions."""
    regions = torch.zeros(h, w, device=device)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for n, (hs, ws) in enumerate((hs, ws) for hs in cuts for ws in cuts):
        regions[hs, ws] = n
    ids = (
        regions.view(h // window, window, w // window, window)
        .permute(0, 2, 1, 3)
        .reshape(-1, window * window)
    )
    diff = ids[:, None, :] - ids[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class FusedWindowAttention(nn.Module):
    """Multi-head self-attention inside windows, on the optical and the SAR tokens together.

    Both streams share the relative position bias. The optical logits A and SAR logits S (bias and
    mask added) are fused as ``A + (S - A) * sigmoid(conv1x1(S - A))`` (a 1x1 convolution across the
    heads), then each is soft-maxed and applied to its own values (official ``WindowAttention``).
    """

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"{heads} attention heads do not divide {dim} channels")
        self.heads = heads
        self.window = window
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.qkv_SAR = nn.Linear(dim, dim * 3)
        self.attn_fuse_1x1conv = nn.Conv2d(heads, heads, kernel_size=1)
        self.proj = nn.Linear(dim, dim)
        self.proj_SAR = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _logits(self, qkv: nn.Linear, x: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None):
        bw, n, c = x.shape
        q, k, v = qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        logits = (q * self.scale) @ k.transpose(-2, -1) + bias
        if mask is not None:
            nw = mask.shape[0]
            logits = (logits.view(bw // nw, nw, self.heads, n, n) + mask[None, :, None]).view(
                bw, self.heads, n, n
            )
        return logits, v

    def forward(
        self, x: torch.Tensor, x_sar: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Window tokens (B * nW, N, C) of both streams and an optional (nW, N, N) mask -> same shapes."""
        bw, n, c = x.shape
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, self.heads).permute(2, 0, 1)
        attn, v = self._logits(self.qkv, x, bias, mask)
        attn_sar, v_sar = self._logits(self.qkv_SAR, x_sar, bias, mask)
        diff = attn_sar - attn
        attn = (attn + diff * torch.sigmoid(self.attn_fuse_1x1conv(diff))).softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(bw, n, c)
        out_sar = (attn_sar.softmax(-1) @ v_sar).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out), self.proj_SAR(out_sar)


def to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window * window, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def from_windows(x: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`to_windows`: (B * nW, window * window, C) -> (B, H, W, C)."""
    c = x.shape[-1]
    x = x.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class DenseSwinLayer(nn.Module):
    """One layer of a residual dense block, both streams (official ``RDB_Conv``).

    Each stream: conv 3x3 (in_ch -> growth) + ReLU gives the tokens t; t + W-MSA(t) (shifted
    windows when ``shifted``); then + MLP(LayerNorm(.)); stochastic depth on both residual
    branches. Returns ``cat(input, output)`` per stream: (B, in_ch + growth, H, W).
    """

    def __init__(
        self,
        *,
        in_ch: int,
        growth: int,
        heads: int,
        window: int,
        shifted: bool,
        mlp_ratio: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_ch, growth, 3, padding=1), nn.ReLU())
        self.conv_SAR = nn.Sequential(nn.Conv2d(in_ch, growth, 3, padding=1), nn.ReLU())
        self.attn = FusedWindowAttention(growth, window, heads)
        self.norm2 = nn.LayerNorm(growth)
        self.norm2_SAR = nn.LayerNorm(growth)
        hidden = int(growth * mlp_ratio)
        self.mlp = Mlp(growth, hidden)
        self.mlp_SAR = Mlp(growth, hidden)
        self.window = window
        self.shifted = shifted
        self.drop_path = drop_path
        self._masks: dict[tuple, torch.Tensor] = {}

    @property
    def draws_random_numbers(self) -> bool:
        """Stochastic depth draws a number per sample and branch while training."""
        return self.training and self.drop_path > 0

    def shift_for(self, h: int, w: int) -> int:
        """Half a window on odd layers; none when one window covers a side (official rule)."""
        return self.window // 2 if self.shifted and min(h, w) > self.window else 0

    def mask_for(self, h: int, w: int, shift: int, device: torch.device) -> torch.Tensor | None:
        if not shift:
            return None
        key = (h, w, shift, device)
        if key not in self._masks:
            self._masks[key] = shifted_window_mask(h, w, self.window, shift, device)
        return self._masks[key]

    def forward(self, x: torch.Tensor, x_sar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, in_ch, H, W) x 2 -> (B, in_ch + growth, H, W) x 2; H and W multiples of ``window``."""
        b, _, h, w = x.shape
        t = self.conv(x).permute(0, 2, 3, 1)
        t_sar = self.conv_SAR(x_sar).permute(0, 2, 3, 1)
        shift = self.shift_for(h, w)
        mask = self.mask_for(h, w, shift, x.device)
        a, a_sar = (torch.roll(v, (-shift, -shift), (1, 2)) if shift else v for v in (t, t_sar))
        a, a_sar = self.attn(to_windows(a, self.window), to_windows(a_sar, self.window), mask)
        a, a_sar = (from_windows(v, self.window, h, w) for v in (a, a_sar))
        if shift:
            a, a_sar = (torch.roll(v, (shift, shift), (1, 2)) for v in (a, a_sar))
        rate, train = self.drop_path, self.training
        t = t + drop_path(a, rate, train)
        t = t + drop_path(self.mlp(self.norm2(t)), rate, train)
        t_sar = t_sar + drop_path(a_sar, rate, train)
        t_sar = t_sar + drop_path(self.mlp_SAR(self.norm2_SAR(t_sar)), rate, train)
        return torch.cat([x, t.permute(0, 3, 1, 2)], 1), torch.cat([x_sar, t_sar.permute(0, 3, 1, 2)], 1)


class ResidualDenseBlock(nn.Module):
    """``layers`` dense Swin layers, then local feature fusion (conv 3x3 back to ``feats``) + skip
    (official ``RDB``)."""

    def __init__(
        self,
        *,
        feats: int,
        growth: int,
        layers: int,
        heads: int,
        window: int,
        mlp_ratio: float,
        drop_paths: list[float],
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            DenseSwinLayer(
                in_ch=feats + i * growth,
                growth=growth,
                heads=heads,
                window=window,
                shifted=i % 2 == 1,
                mlp_ratio=mlp_ratio,
                drop_path=drop_paths[i],
            )
            for i in range(layers)
        )
        self.LFF = nn.Conv2d(feats + layers * growth, feats, 3, padding=1)
        self.LFF_SAR = nn.Conv2d(feats + layers * growth, feats, 3, padding=1)

    def forward(self, x: torch.Tensor, x_sar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, y_sar = x, x_sar
        for layer in self.convs:
            y, y_sar = layer(y, y_sar)
        return self.LFF(y) + x, self.LFF_SAR(y_sar) + x_sar


class _ResBlock(nn.Module):
    """conv 3x3 -> LeakyReLU(0.1) -> conv 3x3, plus the input (STFAN's ``df_resnet_block``)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(ch, ch, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x) + x


class KernelPredictor(nn.Module):
    """cat(optical, SAR) (B, 2F, H, W) -> per-pixel kernels (B, F * k * k, H, W) for the SAR features.

    conv 3x3 (2F -> F) + LeakyReLU(0.1), two residual blocks, conv 1x1 (F -> F k^2) + LeakyReLU(0.1)
    (official ``DFG``, built from STFAN's ``df_conv``/``df_resnet_block``).
    """

    def __init__(self, feats: int, kernel_size: int) -> None:
        super().__init__()
        self.fac_warp = nn.Sequential(
            nn.Sequential(nn.Conv2d(2 * feats, feats, 3, padding=1), nn.LeakyReLU(0.1)),
            _ResBlock(feats),
            _ResBlock(feats),
            nn.Sequential(nn.Conv2d(feats, feats * kernel_size**2, 1), nn.LeakyReLU(0.1)),
        )

    def forward(self, opt_f: torch.Tensor, sar_f: torch.Tensor) -> torch.Tensor:
        return self.fac_warp(torch.cat([opt_f, sar_f], 1))
