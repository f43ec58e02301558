"""PatchGAN discriminator (pix2pix), laid out like the official code's ``NLayerDiscriminator``."""

from __future__ import annotations

import torch
from torch import nn

from .normalization import get_norm_layer


class NLayerDiscriminator(nn.Module):
    """PatchGAN with ``n_layers`` strided blocks: (B, input_nc, H, W) -> (B, 1, h, w) logits.

    With ``n_layers=3`` (the ``basic`` discriminator) each output sees a 70x70 patch, and a 256x256
    input gives 30x30 logits. By default every convolution has a bias (as in the official code);
    ``use_bias=False`` drops it from the convolutions followed by a norm layer (pix2pix's PyTorch
    code does so under batch norm, whose shift makes such a bias redundant).
    ``self.model`` indices: conv 0, LeakyReLU 1, then (conv, norm, LeakyReLU) triples, final conv.
    """

    def __init__(
        self,
        input_nc: int,
        *,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        use_bias: bool = True,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        norm_layer = get_norm_layer(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=stride, padding=1, bias=use_bias),
                norm_layer(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN (``--netD pixel``): classifies every pixel, (B, C, H, W) -> (B, 1, H, W)."""

    def __init__(self, input_nc: int, *, ndf: int = 64, norm: str = "instance") -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
