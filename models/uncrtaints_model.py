"""UnCRtainTS, mono-temporal (Ebel, Garnot, Schmitt, Wegner, Zhu, CVPR EarthVision 2023) as
``--model uncrtaints``: a cloud-free estimate and, per pixel, how sure the model is of it.

One network, ``G`` (``*_net_G.pth``): :class:`models.networks.uncrtaints.UnCRtainTSNet`, SAR then
the cloudy image -> the mean of each band and (diagonal head, the default) its variance; the
names of its parameters are the official ones. Trained with the multivariate Gaussian NLL
(:mod:`models.networks.uncrtaints_loss`; ``--uncrtaints_loss l1|l2`` with the plain head).

Units. Our batch is in [-1, 1]; the authors' network sees the data in [0, 1] (S2 reflectance
clipped to [0, 10000] / 10000, S1 clipped to [-25, 0] dB on both bands, mapped to [0, 1]) times
``scale_by`` (10), inputs and targets alike, and its losses are computed in those units (loss
values comparable to theirs). :meth:`UncrtaintsModel.infer` maps the mean back to [-1, 1] and
returns the variance in the data's [0, 1] units squared (the authors divide by scale_by^2), averaged
over the bands, as ``uncertainty`` (B, 1, H, W): what their code reports as each image's mean
variance, shows as its variance map, and bins for its calibration scores (``metrics.uncertainty``).

The authors' training (``model/train_reconstruct.py`` with their README's command and
``--pretrain``, the mono-temporal case): Adam, lr 1e-3 (their README; the parser's default is
1e-2), betas (0.9, 0.999), constant rate (``--gamma 1.0``), 20 epochs, batch 4, whole 256 x 256
patches, no flips or crops, weights drawn by their ``weight_init`` (:func:`init_uncrtaints_weights`);
tested in eval mode. NaN input values become 0 after scaling, as their loader's ``nan_to_num``
(``--dataset_mode sen12mscr`` does the same). Their split (``--split_scheme uncrtaints``) is not the default.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from util.errors import UserError

from .base_model import BaseModel, Roles
from .networks.uncrtaints import (
    HEADS,
    MEAN_ACTIVATIONS,
    NORMS,
    VAR_ACTIVATIONS,
    UnCRtainTSNet,
    init_uncrtaints_weights,
)
from .networks.uncrtaints_loss import LOGDET_MODES, LOSSES, uncrtaints_loss

# Option -> (UnCRtainTSNet keyword, type, official default, choices, help).
ARCH_OPTIONS = {
    "uncrtaints_width": ("width", int, 128, None, "channels of every block (a multiple of 4)"),
    "uncrtaints_in_blocks": ("in_blocks", int, 1, None, "MBConv blocks with the encoder's normalisation"),
    "uncrtaints_out_blocks": ("out_blocks", int, 5, None, "MBConv blocks with the decoder's normalisation"),
    "uncrtaints_head": ("head", str, "diag", HEADS, "'diag': mean and variance per band; 'plain': mean only"),
    "uncrtaints_scale_by": ("scale_by", float, 10.0, None, "factor on inputs and targets (the mean spans it)"),
    "uncrtaints_encoder_norm": ("encoder_norm", str, "group", NORMS, "normalisation of the first blocks"),
    "uncrtaints_decoder_norm": ("decoder_norm", str, "batch", NORMS, "normalisation of the last blocks"),
    "uncrtaints_mean_activation": ("mean_activation", str, "sigmoid", MEAN_ACTIVATIONS, "'sigmoid': scale_by x sigmoid"),
    "uncrtaints_var_activation": ("var_activation", str, "softplus", VAR_ACTIVATIONS, "variance: softplus (+ eps)"),
}  # fmt: skip
DEFAULT_LOSS = {"diag": "mgnll", "plain": "l2"}


class UncrtaintsModel(BaseModel):
    roles = Roles(
        uses_sar=True,
        output="fake_B",
        sar=("real_C",),
        uncertainty=("uncertainty",),
        page_order=("real_C", "real_A", "fake_B", "uncertainty", "real_B"),
    )
    tiny_flags = ("--uncrtaints_width", "8", "--uncrtaints_out_blocks", "1")
    light_flags = ("--uncrtaints_width", "64")
    # model/test_reconstruct.py calls model.eval(): batch norm's running statistics.
    test_mode = "eval"
    architecture_options = (*ARCH_OPTIONS, "uncrtaints_no_sar")

    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        g = parser.add_argument_group("uncrtaints network (defaults: the authors' settings)")
        for name, (_key, kind, default, choices, text) in ARCH_OPTIONS.items():
            g.add_argument(f"--{name}", type=kind, default=default, choices=choices, help=text)
        g.add_argument(
            "--uncrtaints_no_sar", action="store_true", help="the optical-only variant (no SAR input)"
        )
        if is_train:
            g.add_argument(
                "--uncrtaints_loss",
                default=None,
                choices=LOSSES,
                help="'mgnll' (the diagonal head's default), 'l2' (the plain head's default) or 'l1'",
            )
            g.add_argument(
                "--uncrtaints_logdet",
                default="batch_sum",
                choices=LOGDET_MODES,
                help="MGNLL's log-determinant: 'batch_sum' as the authors' code (summed over the batch: "
                "variances about batch-size times smaller than the squared errors), 'per_sample' the textbook one",
            )
            # Their README's command: Adam(1e-3), --gamma 1.0 (constant), 20 epochs, batch 4.
            parser.set_defaults(lr=1e-3, beta1=0.9, batch_size=4, n_epochs=20, n_epochs_decay=0)
        return parser

    @classmethod
    def data_defaults(cls, is_train: bool) -> dict:
        """data/dataLoader.py (``SEN12MSCR``, ``rescale_method='default'``): S1 VV and VH clipped to
        [-25, 0] dB; training on whole 256 x 256 patches, no crops, flips or rotations."""
        whole = {"preprocess": "crop", "crop_size": 256, "no_flip": True, "rot90": False} if is_train else {}
        return {"sar_scaling": "standard", **whole}

    @classmethod
    def roles_for(cls, opt: argparse.Namespace) -> Roles:
        roles = cls.roles
        if getattr(opt, "uncrtaints_no_sar", False):
            roles = dataclasses.replace(roles, uses_sar=False)
        if getattr(opt, "uncrtaints_head", "diag") == "plain":
            roles = dataclasses.replace(roles, uncertainty=())
        return roles

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        kwargs = network_kwargs(opt)
        self.roles = type(self).roles_for(opt)
        self.use_sar = self.roles.uses_sar
        self.scale = float(opt.uncrtaints_scale_by)
        in_nc = opt.input_nc + (opt.sar_nc if self.use_sar else 0)
        net = UnCRtainTSNet(in_nc=in_nc, out_nc=opt.output_nc, **kwargs)
        self.nets = {"G": init_uncrtaints_weights(net).to(self.device)}
        self.visual_names = ["real_A", "fake_B", "real_B", "real_C", *self.roles.uncertainty]
        if self.is_train:
            self.loss_name = opt.uncrtaints_loss or DEFAULT_LOSS[opt.uncrtaints_head]
            check_loss(self.loss_name, opt.uncrtaints_head)
            self.loss_names = [f"G_{self.loss_name.upper()}"]
            self.optimizers = {
                "G": self.make_optimizer(net.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
            }

    # ------------------------------------------------------------------ inference
    def predict_scaled(
        self, cloudy: torch.Tensor, sar: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network's mean and variance (or None) in the scaled units, from [-1, 1] inputs."""
        half = self.scale / 2
        x = (cloudy + 1) * half
        if self.use_sar:
            x = torch.cat([(sar + 1) * half, x], 1)  # S1 before S2, as the authors stack them
        with self.autocast():
            return self.nets["G"](x)

    def outputs_from(self, mean: torch.Tensor, var: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """fake_B in [-1, 1]; uncertainty: the band-mean variance in [0, 1] units squared (B, 1, H, W)."""
        out = {"fake_B": (mean.float() * (2 / self.scale) - 1).clamp(-1.0, 1.0)}
        if var is not None:
            out["uncertainty"] = (var.float() / self.scale**2).mean(dim=1, keepdim=True)
        return out

    def infer(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """fake_B (B, output_nc, H, W) in [-1, 1] and, with the diagonal head, uncertainty (B, 1, H, W) >= 0."""
        return self.outputs_from(*self.predict_scaled(cloudy, sar))

    # ------------------------------------------------------------------ training
    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        """One Adam step on the loss of the scaled prediction (the outputs are made from it, the
        same values :meth:`infer` gives)."""
        mean, var = self.predict_scaled(self.real_A, self.real_C if self.use_sar else None)
        self.outputs = self.outputs_from(mean, var)
        inputs = {"real_A": self.real_A, "real_B": self.real_B, "real_C": self.real_C}
        self.visuals = {**{k: v for k, v in inputs.items() if v is not None}, **self.outputs}
        target = (self.real_B + 1) * (self.scale / 2)
        loss = uncrtaints_loss(
            self.loss_name,
            mean.float(),
            target,
            None if var is None else var.float(),
            logdet=self.opt.uncrtaints_logdet,
        )
        self.losses = {self.loss_names[0]: loss}
        self.skipped_step = self.nonfinite_losses(self.losses)
        if self.skipped_step:
            self.optimizers["G"].zero_grad(set_to_none=True)
            self.losses = {k: v.detach() for k, v in self.losses.items()}
            return self.losses
        self.backward_and_step(loss, ("G",))
        return self.losses


def network_kwargs(opt: argparse.Namespace) -> dict:
    """UnCRtainTSNet's keyword arguments from the options; a bad value raises a one-line UserError."""
    kw = {key: getattr(opt, name) for name, (key, *_rest) in ARCH_OPTIONS.items()}
    for name in ("uncrtaints_width", "uncrtaints_out_blocks"):
        if getattr(opt, name) < 1:
            raise UserError(f"--{name} must be a positive integer, got {getattr(opt, name)}")
    if opt.uncrtaints_in_blocks < 0:
        raise UserError(f"--uncrtaints_in_blocks must be 0 or more, got {opt.uncrtaints_in_blocks}")
    if kw["width"] % 4:
        raise UserError(
            f"--uncrtaints_width {kw['width']} must be a multiple of 4 (GroupNorm's 4 groups, the gate's width / 4)"
        )
    if not kw["scale_by"] > 0:
        raise UserError(f"--uncrtaints_scale_by must be positive, got {kw['scale_by']}")
    return kw


def check_loss(loss: str, head: str) -> None:
    """Refuse a loss the head cannot train: MGNLL needs variances; L1/L2 would leave them untrained."""
    if loss == "mgnll" and head != "diag":
        raise UserError("--uncrtaints_loss mgnll needs the variance head: drop --uncrtaints_head plain")
    if loss != "mgnll" and head == "diag":
        raise UserError(
            f"--uncrtaints_loss {loss} trains no variance: add --uncrtaints_head plain (the head without one)"
        )
