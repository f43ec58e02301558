"""Weight initialisation (``--init_type``, ``--init_gain``), and building without it when the
weights are loaded right after (:func:`skipped_init`, :func:`draws_random_numbers`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

INIT_CHOICES = ("xavier", "normal", "kaiming", "orthogonal")
# What happens to conv and linear biases (``--init_bias``): "default" keeps PyTorch's default
# initialisation (Zhang et al.'s code base, the official networks); "zero" zeroes them, as the
# pix2pix authors' ``init_weights`` does for every init type.
INIT_BIAS_CHOICES = ("default", "zero")


def init_weights(
    net: nn.Module, init_type: str = "xavier", init_gain: float = 1.0, init_bias: str = "default"
) -> nn.Module:
    """Initialise every conv / transposed-conv / linear weight of ``net`` in place and return ``net``.

    The official code uses Xavier-normal with gain 1 and leaves biases at PyTorch's default
    initialisation (``init_bias="default"``); the pix2pix authors' code zeroes them
    (``init_bias="zero"``). Batch-norm weights get N(1, 0.02) and zero bias.
    """
    if init_type not in INIT_CHOICES:
        raise ValueError(f"unknown init_type {init_type!r}; choose one of {', '.join(INIT_CHOICES)}")
    if init_bias not in INIT_BIAS_CHOICES:
        raise ValueError(f"unknown init_bias {init_bias!r}; choose one of {', '.join(INIT_BIAS_CHOICES)}")
    if _skipping:
        return net

    def init_one(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=init_gain)
            elif init_type == "normal":
                nn.init.normal_(m.weight, 0.0, 0.02 * init_gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=init_gain)
            if init_bias == "zero" and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

    net.apply(init_one)
    return net


def draws_random_numbers(net: nn.Module) -> bool:
    """Whether a forward pass of ``net``, each module in the mode it is in now, draws random numbers:
    dropout (p > 0) or RReLU while training, or a module of ours whose ``draws_random_numbers``
    property says so (GLF-CR's stochastic depth)."""
    for m in net.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0:
            return True
        if isinstance(m, nn.RReLU) and m.training:
            return True
        if getattr(m, "draws_random_numbers", False) is True:
            return True
    return False


_skipping = False
# The in-place initialisers of torch.nn.init that PyTorch's layers (reset_parameters) and ours call.
_INITIALISERS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
)


def _leave(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return tensor


@contextlib.contextmanager
def skipped_init() -> Iterator[None]:
    """Build networks without initialising their weights (they hold whatever memory held).

    Only for networks whose every parameter and buffer is loaded right after, strictly (test.py,
    whole-scene inference): the random initialisation of the paper's three U-Nets (163 M numbers,
    drawn twice: PyTorch's default, then ``--init_type``) takes ~1.1-1.4 s on a 2-core CPU, and
    nothing of it survives the load. It draws no random numbers either, so it must not be used
    where random numbers are drawn later (dropout at test time without ``--eval``, see
    :func:`draws_random_numbers`): those draws would no longer follow the initialisation's. Not
    thread-safe (it swaps ``torch.nn.init``'s functions for the duration).
    """
    global _skipping
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}
    previous = _skipping
    _skipping = True
    for name in _INITIALISERS:
        setattr(nn.init, name, _leave)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)
        _skipping = previous
