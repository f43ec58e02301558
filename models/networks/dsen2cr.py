"""DSen2-CR: the residual network and the CARL loss of Meraner, Ebel, Zhu, Schmitt (ISPRS J. 2020).

Architecture (paper section 4.2; the official Keras code ``Code/dsen2cr_network.py`` has the same
layers): the cloudy optical image (13 Sentinel-2 bands) concatenated with the SAR image (2 bands,
VV and VH) -> 3x3 conv to F features + ReLU -> B residual blocks (3x3 conv, ReLU, 3x3 conv,
output scaled by 0.1 and added to the block's input) -> 3x3 conv back to the optical bands ->
plus the cloudy input (the long skip), so the network learns a correction of the cloudy image.
No normalisation; every convolution has a bias; the paper's setting is F = 256, B = 16.
Weights He-uniform (Keras ``he_uniform``), biases zero (Keras' default), as in the official code.

The network works in the paper's units: optical reflectance x 5 (Sentinel-2 DN / 2000, so [0, 5]
for DN 0..10000) and SAR mapped to [0, 2]; :mod:`models.dsen2cr_model` converts from [-1, 1].

CARL, the cloud-adaptive regularised loss (paper section 4.3, eq. 3; official
``Code/tools/image_metrics.py: carl_error``), with P the prediction, I the cloudy input, T the
cloud-free target and CSM the binary cloud-and-shadow mask of the cloudy image::

    L_CARL = mean(CSM * |P - T| + (1 - CSM) * |P - I|) + lambda * mean(|P - T|),   lambda = 1

where each mean runs over all N_tot = batch x bands x height x width values: under clouds and
shadows the output must match the target, elsewhere reproduce the input, and the whole image is
also pulled towards the target.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """x -> x + res_scale * conv(relu(conv(x))), both convs 3x3 with bias, ``features`` channels."""

    def __init__(self, features: int, *, res_scale: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(self.relu(self.conv1(x)))


class DSen2CR(nn.Module):
    """The DSen2-CR residual network.

    Args:
        optical_nc: bands of the cloudy input and of the output (13 for Sentinel-2).
        sar_nc: bands of the SAR input (2: VV, VH); ignored when ``use_sar`` is False.
        feature_sizes: F, the width of every hidden layer (paper: 256).
        num_layers: B, the number of residual blocks (paper: 16).
        res_scale: the residual scaling of each block (paper: 0.1).
        use_sar: concatenate the SAR image to the input (False: the paper's optical-only variant).
    """

    def __init__(
        self,
        *,
        optical_nc: int = 13,
        sar_nc: int = 2,
        feature_sizes: int = 256,
        num_layers: int = 16,
        res_scale: float = 0.1,
        use_sar: bool = True,
    ) -> None:
        super().__init__()
        self.use_sar = use_sar
        in_nc = optical_nc + (sar_nc if use_sar else 0)
        self.head = nn.Conv2d(in_nc, feature_sizes, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.body = nn.Sequential(
            *(ResidualBlock(feature_sizes, res_scale=res_scale) for _ in range(num_layers))
        )
        self.tail = nn.Conv2d(feature_sizes, optical_nc, kernel_size=3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # Keras he_uniform: U(-sqrt(6 / fan_in), sqrt(6 / fan_in)); Keras biases start at zero.
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor | None = None) -> torch.Tensor:
        """``optical`` (B, optical_nc, H, W) and ``sar`` (B, sar_nc, H, W) in the paper's units ->
        (B, optical_nc, H, W): ``optical`` plus the predicted correction (unbounded)."""
        if self.use_sar:
            if sar is None:
                raise ValueError("this DSen2-CR network was built with use_sar=True: pass the SAR image")
            x = torch.cat([optical, sar], dim=1)
        else:
            x = optical
        return optical + self.tail(self.body(self.relu(self.head(x))))


def parameter_count(
    *,
    optical_nc: int = 13,
    sar_nc: int = 2,
    feature_sizes: int = 256,
    num_layers: int = 16,
    use_sar: bool = True,
) -> int:
    """Closed-form parameter count of :class:`DSen2CR` (3x3 kernels, biases everywhere).

    At the paper's setting (13 + 2 input bands, F = 256, B = 16) this is 18,947,341.
    """
    in_nc = optical_nc + (sar_nc if use_sar else 0)
    f = feature_sizes
    head = 9 * in_nc * f + f
    block = 2 * (9 * f * f + f)
    tail = 9 * f * optical_nc + optical_nc
    return head + num_layers * block + tail


def carl_loss(
    pred: torch.Tensor,
    cloudy: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    *,
    lambda_target: float = 1.0,
) -> dict[str, torch.Tensor]:
    """The two terms of CARL; their sum is the loss.

    ``pred``, ``cloudy``, ``target`` (B, C, H, W) in the same units; ``mask`` (B, 1, H, W), 1 on
    cloud or shadow and 0 on clear pixels, broadcast over the bands. Returns ``adaptive`` (the
    cloud-adaptive term) and ``target`` (``lambda_target`` x the L1 distance to the target).
    """
    mask = mask.to(pred.dtype)
    adaptive = (mask * (pred - target).abs() + (1.0 - mask) * (pred - cloudy).abs()).mean()
    return {"adaptive": adaptive, "target": lambda_target * (pred - target).abs().mean()}
