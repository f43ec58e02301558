"""Normalisation layers selectable by name (``--norm``)."""

from __future__ import annotations

import functools
from collections.abc import Callable

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
