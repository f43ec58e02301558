"""Weight initialisation (``--init_type``, ``--init_gain``)."""

from __future__ import annotations

from torch import nn

INIT_CHOICES = ("xavier", "normal", "kaiming", "orthogonal")


def init_weights(net: nn.Module, init_type: str = "xavier", init_gain: float = 1.0) -> nn.Module:
    """Initialise every conv / transposed-conv weight of ``net`` in place and return ``net``.

    The official code uses Xavier-normal with gain 1 and leaves biases at PyTorch's default
    initialisation; batch-norm weights get N(1, 0.02) and zero bias.
    """
    if init_type not in INIT_CHOICES:
        raise ValueError(f"unknown init_type {init_type!r}; choose one of {', '.join(INIT_CHOICES)}")

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
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

    net.apply(init_one)
    return net
