"""Normalisation layers selectable by name (``--norm``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

NORM_CHOICES = ("instance", "batch", "none")


class Identity(nn.Module):
    def forward(self, x):
        return x


def get_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Return a constructor ``f(num_features) -> nn.Module`` for the norm called ``norm``.

    ``instance``: InstanceNorm2d without affine parameters and *without* running statistics.
    The official code built it with running statistics but never switched to eval mode, so it
    always normalised with per-instance statistics; ``track_running_stats=False`` gives those
    same outputs in train and in eval mode (official checkpoints' unused buffers are dropped on
    load, see :func:`models.weights.load_weights`).
    """
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "none":
        return lambda num_features: Identity()
    raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORM_CHOICES)}")


class PerSampleBatchNorm2d(nn.BatchNorm2d):
    """Batch norm that, in training mode, normalises each sample with its own statistics: what a
    batch of one gives (mean and biased variance over H and W, then the affine map), whatever
    else shares the batch; the running statistics are neither used nor updated. In eval mode it
    is plain batch norm (the running statistics). Same parameters and state_dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def per_sample_statistics(nets: Iterable[nn.Module]) -> int:
    """Make every ``nn.BatchNorm2d`` of ``nets`` a :class:`PerSampleBatchNorm2d` in place (for
    inference in training mode: a sample's output then does not depend on its batch-mates).
    Returns how many were changed."""
    count = 0
    for net in nets:
        for m in net.modules():
            if type(m) is nn.BatchNorm2d:
                m.__class__ = PerSampleBatchNorm2d
                count += 1
    return count
