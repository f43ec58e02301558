"""Network architectures, losses and their factories.

Constructors take explicit keyword arguments; ``models/*_model.py`` turns options into them.
"""

from __future__ import annotations

from torch import nn

from .init import INIT_BIAS_CHOICES, INIT_CHOICES, init_weights
from .losses import GAN_MODES, GANLoss, SSIMLoss, ssim
from .normalization import NORM_CHOICES, get_norm_layer
from .patchgan import NLayerDiscriminator, PixelDiscriminator
from .schedulers import LR_POLICIES, EpochSchedule, compress_schedule, get_scheduler, lr_factor
from .unet import AbsClamp, AttentionUnet, UnetGenerator, UnetSkipBlock

# Name -> number of down-samplings; the input size must be divisible by 2 ** depth.
UNET_DEPTHS = {"unet_256": 8, "unet_128": 7, "unet_64": 6, "unet_32": 5}
NETG_CHOICES = tuple(UNET_DEPTHS)
NETD_CHOICES = ("basic", "n_layers", "pixel")

__all__ = [
    "GAN_MODES",
    "INIT_BIAS_CHOICES",
    "INIT_CHOICES",
    "LR_POLICIES",
    "NETD_CHOICES",
    "NETG_CHOICES",
    "NORM_CHOICES",
    "UNET_DEPTHS",
    "AbsClamp",
    "AttentionUnet",
    "EpochSchedule",
    "GANLoss",
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "SSIMLoss",
    "UnetGenerator",
    "UnetSkipBlock",
    "define_D",
    "define_G",
    "get_norm_layer",
    "compress_schedule",
    "get_scheduler",
    "init_weights",
    "lr_factor",
    "ssim",
    "unet_min_size",
]


def _unet_depth(netG: str) -> int:
    if netG not in UNET_DEPTHS:
        raise ValueError(f"unknown netG {netG!r}; choose one of {', '.join(NETG_CHOICES)}")
    return UNET_DEPTHS[netG]


def unet_min_size(netG: str) -> int:
    """Smallest image side (and the divisor of any side) the U-Net ``netG`` accepts."""
    return 2 ** _unet_depth(netG)


def define_G(
    input_nc: int,
    output_nc: int,
    *,
    ngf: int = 64,
    netG: str = "unet_256",
    norm: str = "instance",
    use_dropout: bool = False,
    use_bias: bool = False,
    attention: bool = False,
    init_type: str = "xavier",
    init_gain: float = 1.0,
    init_bias: str = "default",
) -> nn.Module:
    """Build and initialise a U-Net generator (or, with ``attention=True``, the attention net).

    ``attention=True`` ignores ``output_nc`` and returns :class:`AttentionUnet` (1 channel in [0, 1]).
    """
    kwargs = dict(num_downs=_unet_depth(netG), ngf=ngf, norm=norm, use_dropout=use_dropout, use_bias=use_bias)
    net = AttentionUnet(input_nc, **kwargs) if attention else UnetGenerator(input_nc, output_nc, **kwargs)
    return init_weights(net, init_type, init_gain, init_bias)


def define_D(
    input_nc: int,
    *,
    ndf: int = 64,
    netD: str = "basic",
    n_layers_D: int = 3,
    norm: str = "instance",
    use_bias: bool = True,
    init_type: str = "xavier",
    init_gain: float = 1.0,
    init_bias: str = "default",
) -> nn.Module:
    """Build and initialise a discriminator: ``basic`` (70x70 PatchGAN), ``n_layers``, ``pixel``.

    ``use_bias=False``: no bias in the PatchGAN convolutions that a norm layer follows.
    """
    if netD == "basic":
        net = NLayerDiscriminator(input_nc, ndf=ndf, n_layers=3, norm=norm, use_bias=use_bias)
    elif netD == "n_layers":
        net = NLayerDiscriminator(input_nc, ndf=ndf, n_layers=n_layers_D, norm=norm, use_bias=use_bias)
    elif netD == "pixel":
        net = PixelDiscriminator(input_nc, ndf=ndf, norm=norm)
    else:
        raise ValueError(f"unknown netD {netD!r}; choose one of {', '.join(NETD_CHOICES)}")
    return init_weights(net, init_type, init_gain, init_bias)
