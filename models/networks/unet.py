"""U-Net generator of the pix2pix family, laid out like the official code.

The module tree (``model.model.0``, ``model.model.1.model.3`` ...) mirrors the official
checkpoints, so their ``*_net_G.pth`` files load into these modules unchanged
(see ``shared/spec/official_state_dict_keys.txt``).
"""

from __future__ import annotations

import torch
from torch import nn

from .normalization import get_norm_layer


class UnetSkipBlock(nn.Module):
    """One U-Net level: down-sample, run the inner block, up-sample, concatenate the skip.

    Layout of ``self.model`` (indices matter for checkpoint compatibility):

    - outermost: ``[down_conv, inner, ReLU, up_conv(+bias), Tanh]``
    - innermost: ``[LeakyReLU, down_conv, ReLU, up_conv, norm]``
    - middle:    ``[LeakyReLU, down_conv, down_norm, inner, ReLU, up_conv, up_norm]`` (+ Dropout)

    Args:
        outer_nc: channels of this level's output (and of the skip input).
        inner_nc: channels after this level's down-convolution.
        input_nc: channels entering this level (defaults to ``outer_nc``).
        submodule: the next-deeper level (``None`` for the innermost).
        outermost / innermost: position in the U.
        norm: normalisation name (see :func:`get_norm_layer`).
        use_dropout: Dropout(0.5) after middle up-blocks (the official scripts disable it).
        use_bias: bias on the inner convolutions. The official code has none (its quirk, kept by
            default); the outermost up-convolution always has one.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        *,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "instance",
        use_dropout: bool = False,
        use_bias: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        norm_layer = get_norm_layer(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        down_conv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        if outermost:
            up_conv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [down_conv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        elif innermost:
            up_conv = nn.ConvTranspose2d(
                inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias
            )
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.ReLU(True), up_conv, norm_layer(outer_nc)]
        else:
            up_conv = nn.ConvTranspose2d(
                inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias
            )
            layers = [
                nn.LeakyReLU(0.2, True),
                down_conv,
                norm_layer(inner_nc),
                submodule,
                nn.ReLU(True),
                up_conv,
                norm_layer(outer_nc),
            ]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        # The in-place LeakyReLU at the head of self.model also rewrites x, so the skip carries
        # LeakyReLU(x). The parent level applies ReLU right after the concatenation, and
        # ReLU(LeakyReLU(x)) == ReLU(x), so the result is the official network's either way.
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` down-samplings: (B, input_nc, H, W) -> (B, output_nc, H, W) in [-1, 1].

    H and W must be divisible by ``2 ** num_downs`` (256 for the paper's ``unet_256``, 8 levels).
    Widths: ngf, 2ngf, 4ngf, then 8ngf for every deeper level.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        *,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        use_bias: bool = False,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"a U-Net needs at least 5 down-samplings, got num_downs={num_downs}")
        self.num_downs = num_downs
        kw = {"norm": norm, "use_bias": use_bias}
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, **kw)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout, **kw)
        block = UnetSkipBlock(ngf * 4, ngf * 8, submodule=block, **kw)
        block = UnetSkipBlock(ngf * 2, ngf * 4, submodule=block, **kw)
        block = UnetSkipBlock(ngf, ngf * 2, submodule=block, **kw)
        self.model = UnetSkipBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class AbsClamp(nn.Module):
    """``clamp(|x|, 0, 1)``: turns the attention U-Net's tanh output into a map in [0, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs().clamp(0.0, 1.0)


class AttentionUnet(nn.Sequential):
    """Attention network of the paper: U-Net (input_nc -> 1) then ``clamp(|x|, 0, 1)``.

    A ``Sequential`` so that the state-dict keys start with ``0.`` as in the official files.
    Returns (B, 1, H, W) in [0, 1].
    """

    def __init__(self, input_nc: int, **unet_kwargs) -> None:
        super().__init__(UnetGenerator(input_nc, 1, **unet_kwargs), AbsClamp())
