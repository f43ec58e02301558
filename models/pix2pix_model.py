"""pix2pix (Isola, Zhu, Zhou, Efros, CVPR 2017) as the cloud-removal baseline of Zhang et al. (2023).

Inputs: the cloudy optical image only. Zhang et al. list pix2pix beside the SAR-guided methods
(SAR-opt-cGAN, Simulation-Fusion GAN, GLF-CR) as the image-to-image baseline that translates
the cloudy image into the clear one; giving it the SAR stack as well would make it
SAR-opt-cGAN (``--model sar_opt_cgan``). So pix2pix here is "what a cGAN does without SAR".

Networks (files ``<label>_net_{G,D}.pth``):
    G: U-Net 256 (8 down-samplings, skips), real_A (input_nc) -> fake_B (output_nc) in [-1, 1]
    D: 70x70 PatchGAN on cat(real_A, optical) (input_nc + output_nc): conditioned on the input
Defaults (pix2pix paper, section 3 and 4, and its PyTorch code for what the paper leaves open):
    - objective: the original GAN loss (``--gan_mode vanilla``, binary cross-entropy on logits)
      + 100 x L1; D's loss halved; one D step then one G step per iteration;
    - batch norm (the paper's; at test time ``test.py`` keeps the networks in training mode unless
      ``--eval``, i.e. batch statistics, as the paper does) and Dropout(0.5) in the three
      innermost decoder blocks (the paper's source of noise z); no convolution bias in front of a
      batch norm (PyTorch code);
    - weights from N(0, 0.02), every convolution bias zero (its code's ``init_weights``); Adam, lr 2e-4, betas (0.5, 0.999); no image pool (``--pool_size 0``).
Zhang et al. ran it otherwise for their table: ``Pix2PixModel.zhang_flags`` (``compare --setting
zhang2023``) gives their settings, and ``zhang_variants`` their two pix2pix files (``--lambda_ssim``:
their registry's ``pix2pix_model.py`` adds 1 x (1 - SSIM), their ``pix2pix_model3.py`` does not).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from util.errors import UserError

from . import networks
from .base_model import BaseModel, Roles
from .image_pool import ImagePool


def add_pix2pix_defaults(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
    """pix2pix's defaults and ``--lambda_L1``; shared by the models that build on pix2pix."""
    parser.set_defaults(
        norm="batch",
        netG="unet_256",
        netD="basic",
        no_dropout=False,
        init_type="normal",
        init_gain=1.0,
        init_bias="zero",
    )
    if is_train:
        # pix2pix: the original (non-saturating) GAN loss and no history of fakes.
        parser.set_defaults(gan_mode="vanilla", pool_size=0)
        g = parser.add_argument_group("pix2pix losses")
        g.add_argument(
            "--lambda_L1", type=float, default=100.0, help="weight of L1(fake_B, real_B) (pix2pix: 100)"
        )
    return parser


def check_weights(opt: argparse.Namespace, *names: str) -> None:
    """One-line error for a negative loss weight."""
    for name in names:
        value = getattr(opt, name, 0.0)
        if not value >= 0:
            raise UserError(f"--{name} must be 0 or more, got {value}")


class Pix2PixModel(BaseModel):
    """A conditional GAN: G maps the condition to the clear image, D judges cat(condition, image).

    Subclasses change the condition (:meth:`condition`, :meth:`condition_nc`).
    """

    roles = Roles(uses_sar=False, output="fake_B", sar=("real_C",), page_order=("real_A", "fake_B", "real_B"))
    tiny_flags: tuple[str, ...] = ()
    light_flags: tuple[str, ...] = ("--ngf", "32", "--ndf", "32")
    # Zhang et al.'s pix2pix (their code base's defaults): least-squares GAN + lambda_A (10) x L1,
    # instance norm, Xavier init with PyTorch's default biases, pool 50, and their scripts'
    # --no_dropout, --no_flip, no resizing (--loadSize 256).
    zhang_flags: tuple[str, ...] = (
        "--gan_mode", "lsgan", "--lambda_L1", "10", "--pool_size", "50", "--norm", "instance",
        "--init_type", "xavier", "--init_gain", "1.0", "--init_bias", "default", "--no_dropout",
        "--no_flip", "--load_size", "256",
    )  # fmt: skip
    # Their repository holds two pix2pix files and their scripts do not say which made the table:
    # their model registry runs models/pix2pix_model.py for --model pix2pix (+ 1 x (1 - SSIM)), the
    # default here; models/pix2pix_model3.py is pix2pix's plain objective.
    zhang_variants: dict[str, tuple[str, ...]] = {
        "pix2pix_model": ("--lambda_ssim", "1"),
        "pix2pix_model3": ("--lambda_ssim", "0"),
    }

    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        parser = add_pix2pix_defaults(parser, is_train)
        if is_train:
            parser.add_argument(
                "--lambda_ssim",
                type=float,
                default=0.0,
                help="weight of 1 - SSIM(fake_B, real_B) in G's loss (pix2pix: 0; Zhang et al.'s "
                "models/pix2pix_model.py: 1)",
            )
        return parser

    @classmethod
    def data_defaults(cls, is_train: bool) -> dict:
        """pix2pix's training data on every dataset: resize to 286, random 256 crop, flips (its
        code's --preprocess resize_and_crop; SEN12MS-CR's own default is a plain crop)."""
        return {"preprocess": "resize_and_crop", "load_size": 286, "crop_size": 256} if is_train else {}

    @classmethod
    def size_multiple(cls, opt: argparse.Namespace) -> int:
        return networks.unet_min_size(opt.netG)

    @staticmethod
    def condition_nc(opt: argparse.Namespace) -> int:
        """Bands of the condition: the generator's input, which D sees beside the optical image."""
        return opt.input_nc

    def condition(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> torch.Tensor:
        """(B, condition_nc, H, W): what G translates and D is conditioned on."""
        return cloudy

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.nets = {"G": networks.define_G(self.condition_nc(opt), opt.output_nc, **self.unet_kwargs())}
        self.visual_names = ["real_A", "fake_B", "real_B"]
        if self.is_train:
            check_weights(opt, "lambda_L1", "lambda_ssim")
            self.nets["D"] = self.define_patchgan(self.condition_nc(opt) + opt.output_nc)
            self.loss_names = ["G_GAN", "G_L1", "D_real", "D_fake"]
            # Subclasses without the option (SAR-opt-cGAN, SF-GAN) have no SSIM term.
            self.lambda_ssim = float(getattr(opt, "lambda_ssim", 0.0))
            if self.lambda_ssim > 0:
                self.loss_names.insert(2, "G_SSIM")
                self.criterion_ssim = networks.SSIMLoss()
            self.criterion_gan = networks.GANLoss(opt.gan_mode).to(self.device)
            self.fake_pool = ImagePool(opt.pool_size)
            self.optimizers = {name: self.adam(name) for name in ("G", "D")}
        for name, net in self.nets.items():
            self.nets[name] = net.to(self.device)

    # ------------------------------------------------------------------ building blocks
    def unet_kwargs(self) -> dict:
        opt = self.opt
        return dict(
            ngf=opt.ngf,
            netG=opt.netG,
            norm=opt.norm,
            use_dropout=not opt.no_dropout,
            use_bias=opt.conv_bias,
            init_type=opt.init_type,
            init_gain=opt.init_gain,
            init_bias=opt.init_bias,
        )

    def define_patchgan(self, input_nc: int) -> torch.nn.Module:
        opt = self.opt
        return networks.define_D(
            input_nc,
            ndf=opt.ndf,
            netD=opt.netD,
            n_layers_D=opt.n_layers_D,
            norm=opt.norm,
            use_bias=opt.norm != "batch",
            init_type=opt.init_type,
            init_gain=opt.init_gain,
            init_bias=opt.init_bias,
        )

    def adam(self, name: str) -> torch.optim.Optimizer:
        return self.make_optimizer(
            self.nets[name].parameters(), lr=self.opt.lr, betas=(self.opt.beta1, 0.999)
        )

    # ------------------------------------------------------------------ inference
    def infer(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """fake_B (B, output_nc, H, W) in [-1, 1]."""
        with self.autocast():
            return {"fake_B": self.nets["G"](self.condition(cloudy, sar))}

    # ------------------------------------------------------------------ training
    def discriminator_losses(self, cond: torch.Tensor, fake_B: torch.Tensor, pool: bool = True) -> dict:
        """D's loss on the (pooled, detached) fake pair and on the real pair, each halved (pix2pix)."""
        fake_pair = torch.cat([cond, fake_B], 1)
        fake_pair = self.fake_pool.query(fake_pair) if pool else fake_pair.detach()
        real_pair = torch.cat([cond, self.real_B], 1)
        with self.autocast():
            pred_fake, pred_real = self.nets["D"](fake_pair.detach()), self.nets["D"](real_pair)
        return {
            "D_fake": 0.5 * self.criterion_gan(pred_fake.float(), False),
            "D_real": 0.5 * self.criterion_gan(pred_real.float(), True),
        }

    def adversarial_loss(self, cond: torch.Tensor, fake_B: torch.Tensor) -> torch.Tensor:
        """G's GAN term: D should call cat(cond, fake_B) real. D's own gradients are not computed."""
        self.set_requires_grad(self.nets["D"], False)
        with self.autocast():
            pred_fake = self.nets["D"](torch.cat([cond, fake_B], 1))
        self.set_requires_grad(self.nets["D"], True)
        return self.criterion_gan(pred_fake.float(), True)

    def cgan_step(self, cond: torch.Tensor, fake_B: torch.Tensor, g_names: tuple[str, ...]) -> dict:
        """One pix2pix iteration on ``fake_B = G(cond)``: step D, then the generators ``g_names``.

        As in pix2pix, G's adversarial term is computed with the discriminator just updated.
        The L1 term and D's losses are checked before anything steps: a non-finite one skips the
        whole iteration (``self.skipped_step``), and a non-finite fake never enters the image pool.
        A non-finite adversarial term after D's step (only D's update can cause it) skips G's step.
        """
        content = {"G_L1": self.opt.lambda_L1 * F.l1_loss(fake_B.float(), self.real_B)}
        if getattr(self, "lambda_ssim", 0.0) > 0:  # Zhang et al.'s pix2pix_model.py
            content["G_SSIM"] = self.lambda_ssim * self.criterion_ssim(fake_B.float(), self.real_B)
        if self.nonfinite_losses(content):
            with torch.no_grad():
                d_losses = self.discriminator_losses(cond, fake_B, pool=False)
        else:
            d_losses = self.discriminator_losses(cond, fake_B)
        self.skipped_step = self.nonfinite_losses({**content, **d_losses})
        for name in ("D", *g_names):
            self.optimizers[name].zero_grad(set_to_none=True)
        if self.skipped_step:
            with torch.no_grad():
                g_gan = self.adversarial_loss(cond, fake_B)
            self.losses = {k: v.detach() for k, v in {"G_GAN": g_gan, **content, **d_losses}.items()}
            return self.losses
        (d_losses["D_fake"] + d_losses["D_real"]).backward()
        self.optimizers["D"].step()

        g_gan = self.adversarial_loss(cond, fake_B)
        self.losses = {
            "G_GAN": g_gan.detach(),
            **{k: v.detach() for k, v in content.items()},
            **{k: v.detach() for k, v in d_losses.items()},
        }
        self.skipped_step = self.nonfinite_losses({"G_GAN": g_gan})
        if not self.skipped_step:
            (g_gan + sum(content.values())).backward()
            for name in g_names:
                self.optimizers[name].step()
        return self.losses

    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        self.forward()
        return self.cgan_step(self.condition(self.real_A, self.real_C), self.outputs["fake_B"], ("G",))

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict:
        return {"fake_pool": self.fake_pool.state_dict()} if self.is_train else {}

    def load_extra_state(self, state: dict) -> None:
        if self.is_train and "fake_pool" in state:
            self.fake_pool.load_state_dict(state["fake_pool"], self.device)
