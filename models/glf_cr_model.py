"""GLF-CR, a baseline of the paper's comparison (Xu et al., ISPRS J. P&RS 192, 268-278, 2022).

One network, ``G`` (``*_net_G.pth``): :class:`models.networks.glf_cr.GLFCRNet`, (cloudy, SAR) ->
cloud-free, trained with an L1 loss alone (no adversary), as the official code
(``xufangchn/GLF-CR``, ``codes/model_CR_net.py``) does. Its dynamic filtering, a custom CUDA op
there, is plain PyTorch here; for the same weights our network gives the official outputs.

The official network sees data in [0, 1] (S2 reflectance / 10000, S1 dB clipped and rescaled); the
batch here is in [-1, 1], so :meth:`infer` maps it to [0, 1], runs the network, and maps back, and
the L1 loss is measured on the [0, 1] scale: the official network, loss values and weights.

Official training (``codes/train_CR_net.py``): Adam, lr 1e-4, betas (0.9, 0.999), lr x 0.5 every
5 epochs, 30 epochs, batch size 1, random 128 x 128 crops of the 256 x 256 patches, no flips; tested
in eval mode (``codes/test_CR.py``). These are the model's defaults (its training options and
:meth:`GLFCRModel.data_defaults`). The official loop skips the scheduler after its first epoch, so its halvings come
one epoch later than ours (after epochs 6, 11, ... instead of 5, 10, ...). Its SAR scaling clips VH
to [-32.5, 0] dB (``--sar_scaling dsen2cr`` of ``--dataset_mode sen12mscr``, the default here). fake_B has no output
activation (the network adds a residual to the cloudy input), so it can leave [-1, 1] slightly;
test.py's metrics and the image writers clip it to the data range (the official evaluation did not).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from util.errors import UserError

from .base_model import BaseModel, Roles
from .declaration import NETWORK_OPTIONS
from .networks.glf_cr import GLFCRNet

# Option -> (GLFCRNet keyword, type, official default, help).
ARCH_OPTIONS = {
    "glf_feats": ("feats", int, 96, "feature channels F of both streams"),
    "glf_growth": ("growth", int, 48, "growth rate G: channels each dense Swin layer adds"),
    "glf_blocks": ("blocks", int, 6, "residual dense blocks D (each followed by a local fusion)"),
    "glf_layers": ("layers", int, 5, "dense Swin layers C per block"),
    "glf_heads": ("heads", int, 8, "attention heads (must divide --glf_growth)"),
    "glf_window": ("window", int, 8, "attention window side, at half resolution (images: multiples of 2x)"),
    "glf_mlp_ratio": ("mlp_ratio", float, 2.0, "MLP hidden width / --glf_growth"),
    "glf_kernel": ("kernel_size", int, 5, "side of the predicted dynamic filters (odd)"),
    "glf_drop_path": ("drop_path", float, 0.2, "stochastic depth rate of the last layer (linear from 0)"),
    "glf_up_feats": ("up_feats", int, 64, "channels after the x2 pixel-shuffle upsampling"),
}


def network_kwargs(opt: argparse.Namespace) -> dict:
    """GLFCRNet's keyword arguments from the options; a bad value raises a one-line UserError."""
    kw = {key: getattr(opt, name) for name, (key, *_rest) in ARCH_OPTIONS.items()}
    for name, (key, kind, *_rest) in ARCH_OPTIONS.items():
        if kind is int and kw[key] < 1:
            raise UserError(f"--{name} must be a positive integer, got {kw[key]}")
    if kw["growth"] % kw["heads"]:
        raise UserError(f"--glf_heads {kw['heads']} must divide --glf_growth {kw['growth']}")
    if kw["kernel_size"] % 2 == 0:
        raise UserError(f"--glf_kernel must be odd (a centred filter), got {kw['kernel_size']}")
    if not kw["mlp_ratio"] > 0:
        raise UserError(f"--glf_mlp_ratio must be positive, got {kw['mlp_ratio']}")
    if not 0 <= kw["drop_path"] < 1:
        raise UserError(f"--glf_drop_path must be in [0, 1), got {kw['drop_path']}")
    return kw


class GLFCRModel(BaseModel):
    roles = Roles(
        uses_sar=True, output="fake_B", sar=("real_C",), page_order=("real_C", "real_A", "fake_B", "real_B")
    )
    # The last block's opt_distribute_1x1conv updates a SAR feature that nothing reads (as in the
    # official network): distributed training must expect parameters without gradients.
    unused_parameters = True
    tiny_flags = (
        "--glf_feats", "4", "--glf_growth", "4", "--glf_blocks", "1", "--glf_layers", "2", "--glf_heads", "2",
        "--glf_window", "4", "--glf_kernel", "3", "--glf_up_feats", "2",
    )  # fmt: skip
    light_flags = (
        "--glf_feats", "32", "--glf_growth", "16", "--glf_blocks", "2", "--glf_layers", "3", "--glf_heads", "4",
        "--glf_up_feats", "16",
    )  # fmt: skip
    architecture_options = tuple(ARCH_OPTIONS)
    # codes/test_CR.py calls CR_net.eval(): stochastic depth off, the same output every time.
    test_mode = "eval"
    ignored_options = NETWORK_OPTIONS  # its own network and initialisation

    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        g = parser.add_argument_group("glf_cr network (defaults: the official settings)")
        for name, (_key, kind, default, text) in ARCH_OPTIONS.items():
            g.add_argument(f"--{name}", type=kind, default=default, help=text)
        g.add_argument(
            "--glf_checkpoint",
            action="store_true",
            help="recompute each block's activations in the backward pass (one more forward pass of "
            "each block): same results, far less training memory, e.g. for 256-px crops",
        )
        if is_train:
            # The official training (codes/train_CR_net.py): Adam(1e-4), StepLR(5, 0.5), 30 epochs, batch 1.
            parser.set_defaults(
                lr=1e-4,
                beta1=0.9,
                lr_policy="step",
                lr_decay_iters=5,
                lr_decay_gamma=0.5,
                n_epochs=30,
                n_epochs_decay=0,
                batch_size=1,
            )
            g.add_argument(
                "--lambda_L1", type=float, default=1.0, help="weight of the L1 loss (on [0, 1] data)"
            )
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        if opt.input_nc != opt.output_nc:
            raise UserError(
                f"--input_nc {opt.input_nc} and --output_nc {opt.output_nc} differ, but GLF-CR adds its "
                "prediction to the cloudy input band by band; give both the same band count"
            )
        net = GLFCRNet(
            in_nc=opt.input_nc, sar_nc=opt.sar_nc, checkpoint=opt.glf_checkpoint, **network_kwargs(opt)
        )
        self.nets = {"G": net.to(self.device)}
        self.visual_names = ["real_A", "fake_B", "real_B", "real_C"]
        if self.is_train:
            self.loss_names = ["G_L1"]
            self.optimizers = {
                "G": self.make_optimizer(net.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
            }

    @classmethod
    def data_defaults(cls, is_train: bool) -> dict:
        """codes/dataloader.py: SAR clipped to VV [-25, 0] and VH [-32.5, 0] dB; NaN filled with the
        image's mean before scaling; training on random 128 x 128 crops of the 256 x 256 patches, no
        resizing, no flips or rotations."""
        crops = {"preprocess": "crop", "crop_size": 128, "no_flip": True, "rot90": False} if is_train else {}
        return {"sar_scaling": "dsen2cr", "nan_fill": "mean", **crops}

    @classmethod
    def size_multiple(cls, opt: argparse.Namespace) -> int:
        # Pixel-unshuffle x2, then whole attention windows.
        return 2 * max(1, opt.glf_window)

    @classmethod
    def size_rule(cls, opt: argparse.Namespace) -> tuple[str, str]:
        return f"--glf_window {opt.glf_window} (x2 for the unshuffle)", "a smaller --glf_window"

    def infer(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """cloudy (B, C, H, W), sar (B, sar_nc, H, W) in [-1, 1] -> fake_B (B, C, H, W), about [-1, 1]."""
        with self.autocast():
            unit = self.nets["G"]((cloudy + 1) / 2, (sar + 1) / 2)
        return {"fake_B": unit * 2 - 1}

    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        self.forward()
        # L1 on the [0, 1] scale, as the official loss: half the L1 of the [-1, 1] tensors.
        self.losses = {
            "G_L1": self.opt.lambda_L1 * 0.5 * F.l1_loss(self.outputs["fake_B"].float(), self.real_B)
        }
        self.skipped_step = self.nonfinite_losses(self.losses)
        optimizer = self.optimizers["G"]
        optimizer.zero_grad(set_to_none=True)
        if self.skipped_step:
            self.losses = {k: v.detach() for k, v in self.losses.items()}
            return self.losses
        self.losses["G_L1"].backward()
        optimizer.step()
        return self.losses
