"""UnCRtainTS' training losses: the multivariate Gaussian negative log-likelihood with a diagonal
covariance (MGNLL, the paper's eq. for the aleatoric model) and the plain L1 / L2 alternatives.

Each pixel's bands form one observation y (C values) of a Gaussian with the predicted mean mu and
the diagonal covariance diag(s) of the predicted variances s::

    NLL = C / 2 log(2 pi) + 1 / 2 log det diag(s) + 1 / 2 (y - mu)^T diag(s)^-1 (y - mu)
        = C / 2 log(2 pi) + 1 / 2 sum_c log s_c  + 1 / 2 sum_c (y_c - mu_c)^2 / s_c

averaged over the pixels and the images of the batch. Two details of the authors' computation are
reproduced: the variances are clamped to at least 1e-8 for the value only (the gradient passes as
if unclamped), and the Mahalanobis term is clamped to at least 1e-9 (NaN read as 0).

The log-determinant (``logdet``): the authors' code sums the log-variances over the whole batch
for every pixel, not over the pixel's own bands only ('batch_sum', the default, their behaviour).
Each image's log-determinant then enters the mean once per image of the batch: the term weighs
B times as much as the error term, and the NLL of a pixel is smallest at s = (y - mu)^2 / B
instead of s = (y - mu)^2. A model trained so (batch 4) predicts variances about B times smaller
than the squared errors it makes. 'per_sample' is the textbook NLL (each image its own
log-determinant). For B = 1 both are the same.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

LOSSES = ("mgnll", "l1", "l2")
LOGDET_MODES = ("batch_sum", "per_sample")
VAR_FLOOR = 1e-8  # the authors' eps: variances clamped to at least this (value only)
MAHALANOBIS_FLOOR = 1e-9


def mgnll_loss(
    mean: torch.Tensor,
    target: torch.Tensor,
    var: torch.Tensor,
    *,
    logdet: str = "batch_sum",
) -> torch.Tensor:
    """The MGNLL of ``target`` under N(``mean``, diag(``var``)), a scalar.

    ``mean``, ``target``, ``var``: (B, C, H, W), in the same (scaled) units, ``var`` > 0; see the
    module docstring for ``logdet``.
    """
    if logdet not in LOGDET_MODES:
        raise ValueError(f"unknown logdet {logdet!r}; choose one of {', '.join(LOGDET_MODES)}")
    if not (mean.shape == target.shape == var.shape) or mean.dim() != 4:
        raise ValueError(
            f"mgnll_loss: shapes {mean.shape}, {target.shape}, {var.shape}; expected (B, C, H, W) each"
        )
    if torch.any(var < 0):
        raise ValueError("mgnll_loss: negative variances")
    # The clamp changes the value only (the authors clamp a copy in place, without autograd).
    var = var + (var.clamp(min=VAR_FLOOR) - var).detach()
    err = mean - target
    mahalanobis = (err * err / var).sum(dim=1).nan_to_num().clamp(min=MAHALANOBIS_FLOOR)  # (B, H, W)
    log_det = var.log().sum(dim=1)  # (B, H, W)
    if logdet == "batch_sum":
        log_det = log_det.sum(dim=0, keepdim=True).expand_as(mahalanobis)
    k = mean.shape[1]
    nll = 0.5 * k * math.log(2 * math.pi) + 0.5 * log_det + 0.5 * mahalanobis
    return nll.mean()


def uncrtaints_loss(
    name: str,
    mean: torch.Tensor,
    target: torch.Tensor,
    var: torch.Tensor | None = None,
    *,
    logdet: str = "batch_sum",
) -> torch.Tensor:
    """The loss ``name`` ('mgnll', 'l1', 'l2') of the prediction; every tensor (B, C, H, W) in the
    scaled units the network works in (the authors' losses see the data x scale_by)."""
    if name == "mgnll":
        if var is None:
            raise ValueError("the MGNLL loss needs the predicted variances (the diagonal head)")
        return mgnll_loss(mean, target, var, logdet=logdet)
    if name == "l1":
        return F.l1_loss(mean, target)
    if name == "l2":
        return F.mse_loss(mean, target)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
