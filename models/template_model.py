"""Template for a new model: copy to ``models/<name>_model.py`` and rename the class ``<Name>Model``.

``--model <name>`` then finds it; nothing else needs editing. This template is a working
model: a U-Net from the cloudy image to the cloud-free one, trained with an L1 loss.

The contract (see :class:`models.base_model.BaseModel`):
- ``modify_commandline_options(parser, is_train)``: add options, change defaults.
- ``__init__``: fill ``self.nets`` (files ``<label>_net_<key>.pth``), ``self.optimizers`` (same keys),
  ``self.loss_names`` and ``self.visual_names``; move the networks to ``self.device``.
- ``roles``: which inputs :meth:`infer` needs (``uses_sar``), its output, which visuals are SAR
  or attention maps, and the page order (see :class:`models.base_model.Roles`).
- ``infer(cloudy, sar)``: the mapping alone, (B, C, H, W) tensors in [-1, 1] -> ``{"fake_B": ...,
  extras}``; training (``forward``), ``test.py`` and whole-scene inference all call it.
- ``optimize_parameters()``: one step; return the losses dict (also kept in ``self.losses``);
  ``self.outputs`` holds what ``infer`` returned, ``self.real_A/real_B/real_C`` the batch.
- optional: ``size_multiple(opt)`` (image sides must be multiples of it) and ``size_rule(opt)`` (the
  option that sets it, for error messages), ``extra_state()``.
- distributed training (torchrun) wraps ``self.nets`` in DistributedDataParallel: one backward
  pass per iteration and network (sum the losses first), networks reached through ``self.nets``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from . import networks
from .base_model import BaseModel, Roles


class TemplateModel(BaseModel):
    # Cloudy image only: no SAR input, no attention map.
    roles = Roles(uses_sar=False, output="fake_B", page_order=("real_C", "real_A", "fake_B", "real_B"))

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
                init_bias=opt.init_bias,
            ).to(self.device)
        }
        self.visual_names = ["real_A", "fake_B", "real_B"]
        if self.is_train:
            self.loss_names = ["G_L1"]
            self.optimizers = {
                "G": self.make_optimizer(self.nets["G"].parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
            }

    @classmethod
    def size_multiple(cls, opt: argparse.Namespace) -> int:
        return networks.unet_min_size(opt.netG)

    def infer(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> dict[str, torch.Tensor]:
        # A model that draws random numbers here (noise inputs) overrides infer_draws_random_numbers.
        with self.autocast():
            return {"fake_B": self.nets["G"](cloudy)}

    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        self.forward()
        self.optimizers["G"].zero_grad(set_to_none=True)
        fake_B = self.outputs["fake_B"]
        self.losses = {"G_L1": self.opt.lambda_regression * F.l1_loss(fake_B.float(), self.real_B)}
        self.losses["G_L1"].backward()
        self.optimizers["G"].step()
        return self.losses
