"""The paper's model: SAR-guided cloud removal with an attention GAN (Zhang et al., PRL 2023).

Networks (names and files as in the official code):
    G2: U-Net, SAR real_C -> optical-looking fake_C                (``*_net_G2.pth``)
    G : U-Net, cat(real_A, fake_C) -> content g_B                  (``*_net_G.pth``)
    A : U-Net + clamp(|x|, 0, 1), real_A -> attention att_A        (``*_net_A.pth``)
    D : PatchGAN on cat(real_C, optical)                           (``*_net_D.pth``)
Output: fake_B = g_B * att_A + real_A * (1 - att_A): the attention map decides where to
replace the cloudy input by generated content.

Distributed training (``torchrun``): each process keeps its own image pool (``--pool_size``
fakes of its own shard; D's fake batch on each rank mixes that rank's current and past fakes),
drawn with its own random generator; a checkpoint stores every rank's pool and generator and a
resume with the same number of processes gives each its own back. The pool is not shared over
ranks: N processes hold N x pool_size past fakes in all. With ``--pool_size 0`` (no history) N
processes of batch b train as one process of batch N x b (up to float rounding).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from util.errors import UserError

from . import networks
from .base_model import BaseModel, Roles
from .image_pool import ImagePool


class _LambdaA(argparse.Action):
    """``--lambda_A x`` (official) means an L1 weight of 100 x; set it at parse time so that the
    saved options show the weight actually used."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.lambda_L1 = 100.0 * values


class Pix2PixAttnModel(BaseModel):
    roles = Roles(
        uses_sar=True,
        output="fake_B",
        sar=("real_C",),
        attention=("att_A",),
        # The paper's figure: SAR | attention | cloudy | output | ground truth, then G2's translation.
        page_order=("real_C", "att_A", "att_overlay", "real_A", "fake_B", "real_B", "fake_C", "g_B"),
    )

    # The official scripts/train.sh (beside its display and GPU flags): 210 epochs at the initial
    # rate then 100 more, lr x 0.1 every 100 epochs; pool 50, no dropout, batch 1, no flips.
    script_flags = (
        "--n_epochs", "210", "--n_epochs_decay", "100", "--lr_policy", "step", "--pool_size", "50",
        "--no_dropout", "--batch_size", "1", "--no_flip",
    )  # fmt: skip

    @classmethod
    def data_defaults(cls, is_train: bool) -> dict:
        """The official options/base_options.py: --loadSize 256 = --fineSize 256, i.e. no resizing."""
        return {"load_size": 256} if is_train else {}

    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        # The paper's schedule: lr x 0.1 every 100 epochs when --lr_policy step.
        parser.set_defaults(norm="instance", netG="unet_256", netD="basic", lr_decay_iters=100)
        if is_train:
            g = parser.add_argument_group("pix2pix_attn losses")
            g.add_argument(
                "--lambda_L1",
                type=float,
                default=1000.0,
                help="weight of L1(fake_B, real_B); the official code used 100 x lambda_A = 1000",
            )
            g.add_argument(
                "--lambda_A",
                type=float,
                default=None,
                action=_LambdaA,
                help="official spelling: sets --lambda_L1 to 100 x lambda_A",
            )
            g.add_argument(
                "--lambda_ssim", type=float, default=10.0, help="weight of 1 - SSIM(fake_B, real_B)"
            )
            g.add_argument(
                "--lambda_attn",
                "--loss_attn_A",
                dest="lambda_attn",
                type=float,
                default=1.0,
                help="weight of mean(|att_A|), which keeps the attention sparse",
            )
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        unet = dict(
            ngf=opt.ngf,
            netG=opt.netG,
            norm=opt.norm,
            use_dropout=not opt.no_dropout,
            use_bias=opt.conv_bias,
            init_type=opt.init_type,
            init_gain=opt.init_gain,
            init_bias=opt.init_bias,
        )
        self.nets = {
            "G": networks.define_G(opt.input_nc + opt.output_nc, opt.output_nc, **unet),
            "G2": networks.define_G(opt.sar_nc, opt.output_nc, **unet),
            "A": networks.define_G(opt.input_nc, 1, attention=True, **unet),
        }
        self.visual_names = ["real_A", "fake_B", "real_B", "real_C", "fake_C", "g_B", "att_A"]
        if self.is_train:
            self.nets["D"] = networks.define_D(
                opt.sar_nc + opt.output_nc,
                ndf=opt.ndf,
                netD=opt.netD,
                n_layers_D=opt.n_layers_D,
                norm=opt.norm,
                init_type=opt.init_type,
                init_gain=opt.init_gain,
                init_bias=opt.init_bias,
            )
            self.loss_names = ["G_GAN", "G_L1", "G_SSIM", "G_attn", "G2_L1", "G2_SSIM", "D_real", "D_fake"]
            self.criterion_gan = networks.GANLoss(opt.gan_mode).to(opt.device)
            self.criterion_ssim = networks.SSIMLoss()
            self.fake_pool = ImagePool(opt.pool_size)
            self.optimizers = {
                name: self.make_optimizer(self.nets[name].parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
                for name in ("G", "G2", "A", "D")
            }
        if opt.input_nc != opt.output_nc:
            raise UserError(
                f"--input_nc {opt.input_nc} and --output_nc {opt.output_nc} differ, but fake_B mixes "
                "the cloudy input into the output band by band; give both the same band count"
            )
        for name, net in self.nets.items():
            self.nets[name] = net.to(self.device)

    # ------------------------------------------------------------------ inference
    @classmethod
    def size_multiple(cls, opt: argparse.Namespace) -> int:
        return networks.unet_min_size(opt.netG)

    def infer(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """att_A (B,1,H,W) in [0,1]; fake_C, g_B, fake_B (B,output_nc,H,W) in [-1,1]."""
        with self.autocast():
            att_A = self.nets["A"](cloudy)
            fake_C = self.nets["G2"](sar)
            g_B = self.nets["G"](torch.cat([cloudy, fake_C], 1))
            fake_B = g_B * att_A + cloudy * (1 - att_A)
        return {"fake_B": fake_B, "fake_C": fake_C, "g_B": g_B, "att_A": att_A}

    # The outputs of the last forward pass, by their official names.
    fake_B = property(lambda self: self.outputs["fake_B"])
    fake_C = property(lambda self: self.outputs["fake_C"])
    g_B = property(lambda self: self.outputs["g_B"])
    att_A = property(lambda self: self.outputs["att_A"])

    # ------------------------------------------------------------------ losses
    def generator_losses(self) -> dict[str, torch.Tensor]:
        """Losses of G2 (translation) and of G + A (reconstruction), in the official order (steps 2-3 of one iteration)."""
        opt = self.opt
        with self.autocast():
            pred_fake = self.nets["D"](torch.cat([self.real_C, self.fake_B], 1))
        fake_B, real_B = self.fake_B.float(), self.real_B
        return {
            "G2_L1": F.l1_loss(self.fake_C.float(), real_B),
            "G2_SSIM": self.criterion_ssim(self.fake_C.float(), real_B),
            "G_GAN": self.criterion_gan(pred_fake.float(), True),
            "G_SSIM": opt.lambda_ssim * self.criterion_ssim(fake_B, real_B),
            # The official target was meant to be zeros (it used uninitialised memory).
            "G_attn": opt.lambda_attn * self.att_A.float().abs().mean(),
            "G_L1": opt.lambda_L1 * F.l1_loss(fake_B, real_B),
        }

    def discriminator_losses(self, pool: bool = True) -> dict[str, torch.Tensor]:
        """LSGAN loss of D on a pooled fake and on the real pair, each halved (step 5).

        ``pool=False`` uses this iteration's fake and leaves the image pool untouched.
        """
        fake_pair = torch.cat([self.real_C, self.fake_B], 1)
        if pool:
            fake_pair = self.fake_pool.query(fake_pair)
        real_pair = torch.cat([self.real_C, self.real_B], 1)
        with self.autocast():
            pred_fake, pred_real = self.nets["D"](fake_pair.detach()), self.nets["D"](real_pair)
        return {
            "D_fake": 0.5 * self.criterion_gan(pred_fake.float(), False),
            "D_real": 0.5 * self.criterion_gan(pred_real.float(), True),
        }

    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        """One iteration in the official order: G2's loss, then G+A's (through G2 too), step, then D.

        Every loss is computed before any optimiser steps (D's values do not depend on the
        generators' step: D sees this pass's detached fake), so a non-finite loss skips all the
        steps of the iteration and ``self.skipped_step`` names it; the image pool then receives
        no non-finite fake. Otherwise the updates are exactly the official ones.
        """
        self.forward()
        # D's gradients from the generator loss would be discarded anyway; skip computing them.
        self.set_requires_grad(self.nets["D"], False)
        g_losses = self.generator_losses()
        self.set_requires_grad(self.nets["D"], True)
        if self.nonfinite_losses(g_losses):
            with torch.no_grad():
                d_losses = self.discriminator_losses(pool=False)
        else:
            d_losses = self.discriminator_losses()
        self.losses = {**g_losses, **d_losses}
        self.skipped_step = self.nonfinite_losses(self.losses)
        if self.skipped_step:
            for optimizer in self.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            self.losses = {k: v.detach() for k, v in self.losses.items()}
            return self.losses

        loss_G2 = g_losses["G2_L1"] + g_losses["G2_SSIM"]
        loss_G = g_losses["G_GAN"] + g_losses["G_SSIM"] + g_losses["G_attn"] + g_losses["G_L1"]
        generators = ("G", "G2", "A")
        if self.opt.train_step == "official" and self.grad_scaler is None and not self.is_distributed:
            # The official code: loss_G2's gradient reaches G2, then loss_G's is added (through
            # fake_C) in a second pass; then the three optimisers step.
            for name in generators:
                self.optimizers[name].zero_grad(set_to_none=True)
            loss_G2.backward(retain_graph=True)
            loss_G.backward()
            for name in generators:
                self.optimizers[name].step()
        else:
            # One pass over the sum: the same gradients (G and A see loss_G alone, G2 the sum),
            # computed once through G2 instead of twice (float rounding may differ in the last bits);
            # DistributedDataParallel, which reduces each network's gradients once per forward
            # pass, needs it too (it then averages all of them over the processes).
            self.backward_and_step(loss_G2 + loss_G, generators)
        self.backward_and_step(d_losses["D_fake"] + d_losses["D_real"], ("D",))
        self.finish_iteration()
        return self.losses

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict:
        return {"fake_pool": self.fake_pool.state_dict()} if self.is_train else {}

    def load_extra_state(self, state: dict) -> None:
        if self.is_train and "fake_pool" in state:
            self.fake_pool.load_state_dict(state["fake_pool"], self.device)
