"""DSen2-CR (Meraner, Ebel, Zhu, Schmitt, ISPRS J. Photogramm. Remote Sens. 166, 2020) as ``--model dsen2cr``.

One network (``*_net_G.pth``): a residual network from the cloudy optical image and the SAR image
to the cloud-free image, whose output is the cloudy input plus a learned correction (the long
skip); see :mod:`models.networks.dsen2cr`. Trained with CARL, the cloud-adaptive regularised L1
loss, on a cloud-and-shadow mask computed from the cloudy image (:mod:`models.networks.cloud_mask`),
with Nadam (lr 7e-5, batch 16, no learning-rate schedule, 8 epochs in the official code).
``--dsen2cr_no_sar`` is the paper's optical-only variant; ``--dsen2cr_loss l1`` its plain target L1
(L_T) variant.

Units. Our tensors are in [-1, 1]; with ``--dataset_mode sen12mscr`` that is reflectance
(DN / 10000, clipped) mapped from [0, 1]. The paper's network saw Sentinel-2 DN / 2000, i.e.
reflectance x 5 ([0, 5]), and SAR clipped and mapped to [0, 2], so the model converts on the way
in (optical x -> 5 r (x + 1) / 2, SAR s -> s + 1), adds the long skip and computes CARL in those
units (loss values comparable to the paper's), and converts the prediction back. ``r`` turns the
data's [0, 1] into reflectance: 1 for Sentinel-2 data, ``--dsen2cr_png_stretch`` (0.3) for 8-bit
PNG previews, whose white stands for reflectance 0.3; so the network sees the same units whatever
the data. The output is clamped to [-1, 1], the range of the data, for every consumer of
:meth:`infer`; the loss reads the unclamped prediction, as the paper's did.
The paper's SAR clip (VH in [-32.5, 0] dB) is ``--sar_scaling dsen2cr`` of the SEN12MS-CR reader, the
default for this model; so are its 128-px training crops with flips and quarter turns (``--rot90``).
The official augmentation draws one of {none, up-down, left-right} flips and one of four turns;
a left-right flip at one half and four turns give the same eight orientations, in other proportions.
Tested in eval mode, as Keras predicts.

The mask is also a visual, ``cloud_mask`` (1: cloud or shadow), shown as an attention map.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from data.sentinel import S2_BANDS, parse_bands
from util.errors import UserError

from .base_model import BaseModel, Roles
from .declaration import NETWORK_OPTIONS
from .networks.cloud_mask import CLOUD_THRESHOLD, BandLayout, cloud_shadow_mask
from .networks.dsen2cr import DSen2CR, carl_loss

# The paper's units: optical reflectance x 5 (= Sentinel-2 DN / 2000), SAR [0, 2].
REFLECTANCE_TO_PAPER = 5.0
SAR_SCALE = 2.0
# Bands of a 3-band PNG: R, G, B (the natural-colour composite B4, B3, B2).
RGB_NAMES = ("B4", "B3", "B2")


def band_layout(opt: argparse.Namespace) -> BandLayout:
    """Which Sentinel-2 band each input channel is, and how its [0, 1] values become reflectance."""
    if opt.dataset_mode == "sen12mscr":
        names, scale = tuple(S2_BANDS[i] for i in parse_bands(opt.s2_bands)), 1.0
    elif opt.input_nc == len(S2_BANDS):
        names, scale = S2_BANDS, 1.0
    elif opt.input_nc == 3:
        names, scale = RGB_NAMES, opt.dsen2cr_png_stretch
    else:
        raise UserError(
            f"--model dsen2cr computes its cloud mask from the bands of the cloudy image, but "
            f"--input_nc {opt.input_nc} does not say which bands they are; use 3-band RGB or 13-band "
            "Sentinel-2 data (or --dataset_mode sen12mscr --s2_bands with B2, B3 and B4)"
        )
    try:
        return BandLayout.from_names(names, scale)
    except ValueError:
        lacking = [b for b in RGB_NAMES if b not in names]
        raise UserError(
            f"--model dsen2cr needs the bands B2, B3 and B4 for its cloud mask; --s2_bands "
            f"{opt.s2_bands} lacks {', '.join(lacking)}"
        ) from None


class Dsen2crModel(BaseModel):
    roles = Roles(
        uses_sar=True,
        output="fake_B",
        sar=("real_C",),
        attention=("cloud_mask",),
        page_order=("real_C", "real_A", "cloud_mask", "att_overlay", "fake_B", "real_B"),
    )
    tiny_flags = ("--dsen2cr_feature_sizes", "8", "--dsen2cr_num_layers", "2")
    light_flags = ("--dsen2cr_feature_sizes", "32", "--dsen2cr_num_layers", "8")
    # Keras' model.predict: inference mode (the network has no dropout or batch norm).
    test_mode = "eval"
    ignored_options = NETWORK_OPTIONS  # its own network and initialisation
    architecture_options = (
        "dsen2cr_feature_sizes",
        "dsen2cr_num_layers",
        "dsen2cr_res_scale",
        "dsen2cr_no_sar",
    )

    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        g = parser.add_argument_group("dsen2cr")
        g.add_argument(
            "--dsen2cr_feature_sizes",
            type=int,
            default=256,
            help="F, the width of the residual network (paper: 256)",
        )
        g.add_argument(
            "--dsen2cr_num_layers",
            type=int,
            default=16,
            help="B, the number of residual blocks (paper: 16)",
        )
        g.add_argument(
            "--dsen2cr_res_scale", type=float, default=0.1, help="residual scaling of each block (paper: 0.1)"
        )
        g.add_argument(
            "--dsen2cr_no_sar",
            action="store_true",
            help="the optical-only variant: no SAR input (the paper's 'w/o SAR')",
        )
        g.add_argument(
            "--dsen2cr_cloud_threshold",
            type=float,
            default=CLOUD_THRESHOLD,
            help="cloud score at or above which a pixel is cloud in the mask (official: 0.2)",
        )
        g.add_argument(
            "--dsen2cr_png_stretch",
            type=float,
            default=0.3,
            help="3-band PNG data: the reflectance that white (255) stands for (0.3: previews made by "
            "scripts/convert_sen12mscr.py); sets the units the network sees (reflectance x 5, as "
            "the paper's DN / 2000) and the cloud mask's thresholds",
        )
        if is_train:
            g.add_argument(
                "--dsen2cr_loss",
                default="carl",
                choices=("carl", "l1"),
                help="'carl': the cloud-adaptive regularised loss (paper); 'l1': plain L1 to the target (L_T)",
            )
            g.add_argument(
                "--dsen2cr_lambda",
                type=float,
                default=1.0,
                help="CARL: weight of the L1 term on the whole image against the target (paper: 1)",
            )
            # The official training: Nadam(lr 7e-5, beta_1 0.9), batch 16, 8 epochs, constant lr.
            parser.set_defaults(lr=7e-5, beta1=0.9, batch_size=16, n_epochs=8, n_epochs_decay=0)
        return parser

    @classmethod
    def data_defaults(cls, is_train: bool) -> dict:
        """dsen2cr_main.py and tools/dataIO.py: SAR clipped to VV [-25, 0] and VH [-32.5, 0] dB; NaN
        filled with the image's mean before scaling (theirs: of the 128 window it reads; here: of
        the whole patch); training on random 128 x 128 crops (no resizing) with random flips and
        quarter turns."""
        crops = {"preprocess": "crop", "crop_size": 128, "no_flip": False, "rot90": True} if is_train else {}
        return {"sar_scaling": "dsen2cr", "nan_fill": "mean", **crops}

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.check_options(opt)
        self.use_sar = not opt.dsen2cr_no_sar
        if not self.use_sar:
            self.roles = dataclasses.replace(type(self).roles, uses_sar=False)
        self.layout = band_layout(opt)
        # [0, 1] data -> the paper's optical units (reflectance x 5).
        self.optical_scale = REFLECTANCE_TO_PAPER * self.layout.reflectance_scale
        self.nets = {
            "G": DSen2CR(
                optical_nc=opt.input_nc,
                sar_nc=opt.sar_nc,
                feature_sizes=opt.dsen2cr_feature_sizes,
                num_layers=opt.dsen2cr_num_layers,
                res_scale=opt.dsen2cr_res_scale,
                use_sar=self.use_sar,
            ).to(self.device)
        }
        self.visual_names = ["real_A", "fake_B", "real_B", "real_C", "cloud_mask"]
        if self.is_train:
            self.loss_names = ["G_CARL", "G_adaptive", "G_target"] if opt.dsen2cr_loss == "carl" else ["G_L1"]
            # torch's NAdam is Dozat's Nadam with the momentum schedule of Keras' Nadam
            # (schedule_decay 0.004 = momentum_decay 4e-3); the official code passed epsilon 1e-8.
            self.optimizers = {
                "G": self.make_optimizer(
                    self.nets["G"].parameters(),
                    torch.optim.NAdam,
                    lr=opt.lr,
                    betas=(opt.beta1, 0.999),
                    eps=1e-8,
                    momentum_decay=4e-3,
                )
            }

    @staticmethod
    def check_options(opt: argparse.Namespace) -> None:
        if opt.input_nc != opt.output_nc:
            raise UserError(
                f"--input_nc {opt.input_nc} and --output_nc {opt.output_nc} differ, but DSen2-CR adds the "
                "cloudy input to its output (the long skip); give both the same band count"
            )
        for flag in ("dsen2cr_feature_sizes", "dsen2cr_num_layers"):
            if getattr(opt, flag) < 1:
                raise UserError(f"--{flag} must be a positive integer, got {getattr(opt, flag)}")
        if not opt.dsen2cr_res_scale > 0:
            raise UserError(f"--dsen2cr_res_scale must be positive, got {opt.dsen2cr_res_scale}")
        if not 0 < opt.dsen2cr_cloud_threshold <= 1:
            raise UserError(f"--dsen2cr_cloud_threshold must be in (0, 1], got {opt.dsen2cr_cloud_threshold}")
        if not opt.dsen2cr_png_stretch > 0:
            raise UserError(f"--dsen2cr_png_stretch must be positive, got {opt.dsen2cr_png_stretch}")
        if opt.is_train and not opt.dsen2cr_lambda >= 0:
            raise UserError(f"--dsen2cr_lambda must be 0 or more, got {opt.dsen2cr_lambda}")

    # ------------------------------------------------------------------ inference
    def cloud_mask(self, cloudy: torch.Tensor) -> torch.Tensor:
        """(B, input_nc, H, W) in [-1, 1] -> (B, 1, H, W) in {0, 1}: 1 on cloud or shadow."""
        return cloud_shadow_mask((cloudy + 1) / 2, self.layout, threshold=self.opt.dsen2cr_cloud_threshold)

    def predict_paper_units(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> torch.Tensor:
        """The network's unclamped prediction in the paper's units (reflectance x 5) from ``cloudy``
        and ``sar`` in [-1, 1]."""
        optical = (cloudy + 1) * (self.optical_scale / 2)
        sar_units = (sar + 1) * (SAR_SCALE / 2) if self.use_sar else None
        with self.autocast():
            return self.nets["G"](optical, sar_units)

    def outputs_from(self, pred: torch.Tensor, cloudy: torch.Tensor) -> dict[str, torch.Tensor]:
        """fake_B in [-1, 1] (the prediction mapped back and clamped to the data range) and the mask."""
        fake_B = (pred.float() * (2 / self.optical_scale) - 1).clamp(-1.0, 1.0)
        return {"fake_B": fake_B, "cloud_mask": self.cloud_mask(cloudy)}

    def infer(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """fake_B (B, output_nc, H, W) in [-1, 1]; cloud_mask (B, 1, H, W) in {0, 1}."""
        return self.outputs_from(self.predict_paper_units(cloudy, sar), cloudy)

    # ------------------------------------------------------------------ training
    def losses_from(self, pred: torch.Tensor) -> dict[str, torch.Tensor]:
        """CARL (or plain L1) of the unclamped prediction ``pred``, in the paper's units."""
        target = (self.real_B + 1) * (self.optical_scale / 2)
        pred = pred.float()
        if self.opt.dsen2cr_loss == "l1":
            return {"G_L1": (pred - target).abs().mean()}
        cloudy = (self.real_A + 1) * (self.optical_scale / 2)
        terms = carl_loss(
            pred, cloudy, target, self.outputs["cloud_mask"], lambda_target=self.opt.dsen2cr_lambda
        )
        return {
            "G_CARL": terms["adaptive"] + terms["target"],
            "G_adaptive": terms["adaptive"],
            "G_target": terms["target"],
        }

    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        """One Nadam step on CARL. Like :meth:`forward`, but the loss needs the unclamped prediction,
        so the outputs are made from it here (the same values :meth:`infer` gives)."""
        sar = self.real_C if self.use_sar else None
        pred = self.predict_paper_units(self.real_A, sar)
        self.outputs = self.outputs_from(pred, self.real_A)
        inputs = {"real_A": self.real_A, "real_B": self.real_B, "real_C": self.real_C}
        self.visuals = {**{k: v for k, v in inputs.items() if v is not None}, **self.outputs}

        self.losses = self.losses_from(pred)
        optimizer = self.optimizers["G"]
        optimizer.zero_grad(set_to_none=True)
        self.skipped_step = self.nonfinite_losses(self.losses)
        if self.skipped_step:
            self.losses = {k: v.detach() for k, v in self.losses.items()}
            return self.losses
        self.losses[self.loss_names[0]].backward()
        optimizer.step()
        return self.losses
