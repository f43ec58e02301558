"""Template for a new model: copy to ``models/<name>_model.py`` and rename the class ``<Name>Model``.

``--model <name>`` then finds it; nothing else needs editing. This template is a working
model: a U-Net from the cloudy image to the cloud-free one, trained with an L1 loss.

The contract (see :class:`models.base_model.BaseModel`):
- ``modify_commandline_options(parser, is_train)``: add options, change defaults.
- ``__init__``: fill ``self.nets`` (files ``<label>_net_<key>.pth``), ``self.optimizers`` (same keys),
  ``self.loss_names`` and ``self.visual_names``; move the networks to ``self.device``.
- ``set_input(batch)``: tensors 'A' (cloudy), 'B' (cloud-free), 'C' (SAR), each (B, C, H, W) in [-1, 1].
- ``forward()``: compute and return the visuals dict (also kept in ``self.visuals``).
- ``optimize_parameters()``: one step; return the losses dict (also kept in ``self.losses``).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from . import networks
from .base_model import BaseModel


class TemplateModel(BaseModel):
    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        if is_train:
            parser.add_argument("--lambda_regression", type=float, default=1.0, help="weight of the L1 loss")
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.nets = {
            "G": networks.define_G(
                opt.input_nc,
                opt.output_nc,
                ngf=opt.ngf,
                netG=opt.netG,
                norm=opt.norm,
                use_dropout=not opt.no_dropout,
                init_type=opt.init_type,
                init_gain=opt.init_gain,
            ).to(self.device)
        }
        self.visual_names = ["real_A", "fake_B", "real_B"]
        if self.is_train:
            self.loss_names = ["G_L1"]
            self.optimizers = {
                "G": torch.optim.Adam(self.nets["G"].parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
            }

    def set_input(self, batch: dict) -> None:
        self.real_A = batch["A"].to(self.device)
        self.real_B = batch["B"].to(self.device)
        self.image_paths = list(batch.get("A_paths", []))

    def forward(self) -> dict[str, torch.Tensor]:
        with self.autocast():
            self.fake_B = self.nets["G"](self.real_A)
        self.visuals = {"real_A": self.real_A, "fake_B": self.fake_B, "real_B": self.real_B}
        return self.visuals

    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        self.forward()
        self.optimizers["G"].zero_grad(set_to_none=True)
        self.losses = {"G_L1": self.opt.lambda_regression * F.l1_loss(self.fake_B.float(), self.real_B)}
        self.losses["G_L1"].backward()
        self.optimizers["G"].step()
        return self.losses
