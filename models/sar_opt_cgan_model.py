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
Defaults: Zhang et al.'s own implementation, the only public one (their repository's
``models/Saroptgan.py`` with the defaults of its code base, ``options/base_options.py``,
``models/networks.py`` and the Attention-GAN train options it derives from): least-squares GAN
(``--no_lsgan`` not given), loss_G = GAN + 10 x lambda_A x L1 with lambda_A = 10, i.e. an L1 weight of
100; instance norm without affine parameters, Xavier-normal init (gain 1), the U-Net without
convolution biases but the outermost (the code base's networks), an image pool of 50, Adam 2e-4 /
0.5, 100 epochs + 100 of linear decay, batch 1; their scripts' ``--no_dropout`` and ``--no_flip``;
``--loadSize 256 --fineSize 256`` (no resizing). Tested as the code base tests: networks in
training mode (instance norm is per image either way, and there is no dropout).
"""

from __future__ import annotations

import argparse

import torch

from .base_model import Roles
from .pix2pix_model import Pix2PixModel, add_pix2pix_defaults


class SarOptCganModel(Pix2PixModel):
    # Its defaults are Zhang et al.'s already.
    zhang_flags: tuple[str, ...] = ()
    zhang_variants: dict[str, tuple[str, ...]] = {}
    roles = Roles(
        uses_sar=True,
        output="fake_B",
        sar=("real_C",),
        page_order=("real_C", "real_A", "fake_B", "real_B"),
    )

    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        parser = add_pix2pix_defaults(parser, is_train)
        parser.set_defaults(
            norm="instance", init_type="xavier", init_gain=1.0, init_bias="default", no_dropout=True
        )
        if is_train:
            parser.set_defaults(gan_mode="lsgan", pool_size=50, lambda_L1=100.0)
        return parser

    @classmethod
    def data_defaults(cls, is_train: bool) -> dict:
        return {"load_size": 256, "no_flip": True} if is_train else {}

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.visual_names = ["real_C", "real_A", "fake_B", "real_B"]

    @staticmethod
    def condition_nc(opt: argparse.Namespace) -> int:
        return opt.input_nc + opt.sar_nc

    def condition(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> torch.Tensor:
        """The band-wise stack of the cloudy optical image and the SAR image."""
        return torch.cat([cloudy, sar], 1)
