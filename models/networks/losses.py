"""Losses of the paper: GAN objectives and the Gaussian-window SSIM used as a loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("lsgan", "vanilla")


class GANLoss(nn.Module):
    """GAN objective against a constant target (1 for real, 0 for fake).

    ``lsgan`` (the paper's): mean squared error on the logits (Mao et al. 2017).
    ``vanilla``: binary cross-entropy with logits (Goodfellow et al. 2014).
    """

    def __init__(self, gan_mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {gan_mode!r}; choose one of {', '.join(GAN_MODES)}")
        self.gan_mode = gan_mode
        self.register_buffer("real_label", torch.tensor(real_label), persistent=False)
        self.register_buffer("fake_label", torch.tensor(fake_label), persistent=False)
        self.loss = nn.MSELoss() if gan_mode == "lsgan" else nn.BCEWithLogitsLoss()

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = self.real_label if target_is_real else self.fake_label
        return self.loss(prediction, target.to(prediction.dtype).expand_as(prediction))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 2-D Gaussian kernel, shape (size, size), sums to 1."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(
    img1: torch.Tensor,
    img2: torch.Tensor,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    c1: float = 0.01**2,
    c2: float = 0.03**2,
) -> torch.Tensor:
    """Mean SSIM of two (B, C, H, W) batches, as the official loss computes it.

    Gaussian window ``window_size`` x ``window_size`` (sigma 1.5), zero padding of
    ``window_size // 2``, each channel filtered on its own, SSIM map averaged over everything.
    The constants assume a dynamic range of 1 even though the official code feeds [-1, 1]
    tensors; that behaviour is kept for the faithful model.
    """
    if img1.shape != img2.shape:
        raise ValueError(f"ssim: shapes differ, {tuple(img1.shape)} vs {tuple(img2.shape)}")
    channels = img1.shape[1]
    window = gaussian_window(window_size, sigma).to(device=img1.device, dtype=img1.dtype)
    window = window.expand(channels, 1, window_size, window_size).contiguous()
    pad = window_size // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, padding=pad, groups=channels)

    mu1, mu2 = blur(img1), blur(img2)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = blur(img1 * img1) - mu1_sq
    sigma2_sq = blur(img2 * img2) - mu2_sq
    sigma12 = blur(img1 * img2) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2)
    )
    return ssim_map.mean()


class SSIMLoss(nn.Module):
    """``1 - SSIM(x, y)`` with the official window and constants."""

    def __init__(self, window_size: int = 11, sigma: float = 1.5) -> None:
        super().__init__()
        self.window_size = window_size
        self.sigma = sigma

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 1.0 - ssim(x, y, window_size=self.window_size, sigma=self.sigma)
