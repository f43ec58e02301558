"""SAR-opt-cGAN (Grohnfeldt, Schmitt, Zhu, IGARSS 2018: "A conditional generative adversarial network
to fuse SAR and multispectral optical data for cloud removal from Sentinel-2 images").

The paper adapts pix2pix to SAR-optical fusion: the cloudy multispectral image and the SAR image
are stacked band-wise into one input (13 Sentinel-2 + 2 Sentinel-1 bands, VV and VH, in the paper),
a U-Net generator maps the stack to the cloud-free multispectral image, and a PatchGAN
discriminator judges the output concatenated with the same stack. The objective is pix2pix's,
cGAN + lambda * L1 with lambda = 100.

Networks (files ``<label>_net_{G,D}.pth``):
    G: U-Net 256, cat(real_A, real_C) (input_nc + sar_nc) -> fake_B (output_nc) in [-1, 1]
    D: 70x70 PatchGAN on cat(real_A, real_C, optical) (input_nc + sar_nc + output_nc)
What the paper leaves open (norm, dropout, initialisation, optimiser) follows pix2pix, on which
it builds; see :mod:`models.pix2pix_model`.
"""

from __future__ import annotations

import argparse

import torch

from .base_model import Roles
from .pix2pix_model import Pix2PixModel


class SarOptCganModel(Pix2PixModel):
    roles = Roles(
        uses_sar=True,
        output="fake_B",
        sar=("real_C",),
        page_order=("real_C", "real_A", "fake_B", "real_B"),
    )

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.visual_names = ["real_C", "real_A", "fake_B", "real_B"]

    @staticmethod
    def condition_nc(opt: argparse.Namespace) -> int:
        return opt.input_nc + opt.sar_nc

    def condition(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> torch.Tensor:
        """The band-wise stack of the cloudy optical image and the SAR image."""
        return torch.cat([cloudy, sar], 1)
