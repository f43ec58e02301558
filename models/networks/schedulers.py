"""Learning-rate schedules (``--lr_policy``), stepped once at the end of every epoch."""

from __future__ import annotations

import math

from torch.optim import Optimizer, lr_scheduler

LR_POLICIES = ("lambda", "linear", "step", "plateau", "cosine")


def get_scheduler(
    optimizer: Optimizer,
    *,
    lr_policy: str,
    epoch_count: int = 1,
    n_epochs: int = 100,
    n_epochs_decay: int = 100,
    lr_decay_iters: int = 50,
    lr_decay_gamma: float = 0.1,
) -> lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau:
    """Build the scheduler named ``lr_policy`` for ``optimizer``.

    - ``lambda`` / ``linear``: constant lr for ``n_epochs``, then linear decay to zero over
      ``n_epochs_decay`` epochs (pix2pix default).
    - ``step``: lr x ``lr_decay_gamma`` every ``lr_decay_iters`` epochs (the paper's schedule:
      x 0.1 every 100; GLF-CR's: x 0.5 every 5).
    - ``plateau``: lr x 0.2 when the metric passed to ``step(metric)`` stops improving.
    - ``cosine``: cosine annealing to zero over ``n_epochs + n_epochs_decay`` epochs.
    """
    if lr_policy in ("lambda", "linear"):

        def rule(epoch: int) -> float:
            return lr_factor(
                epoch,
                lr_policy="linear",
                epoch_count=epoch_count,
                n_epochs=n_epochs,
                n_epochs_decay=n_epochs_decay,
            )

        return lr_scheduler.LambdaLR(optimizer, lr_lambda=rule)
    if lr_policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=lr_decay_iters, gamma=lr_decay_gamma)
    if lr_policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
    if lr_policy == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_epochs + n_epochs_decay, eta_min=0)
    raise ValueError(f"unknown lr_policy {lr_policy!r}; choose one of {', '.join(LR_POLICIES)}")


def lr_factor(
    epochs_done: int,
    *,
    lr_policy: str,
    epoch_count: int = 1,
    n_epochs: int = 100,
    n_epochs_decay: int = 100,
    lr_decay_iters: int = 50,
    lr_decay_gamma: float = 0.1,
) -> float | None:
    """Closed form of the schedule: the lr multiplier after ``epochs_done`` scheduler steps.

    ``None`` for ``plateau``, whose factor depends on the metric history, not on the epoch.
    """
    if lr_policy in ("lambda", "linear"):
        return 1.0 - max(0, epochs_done + epoch_count - n_epochs) / float(n_epochs_decay + 1)
    if lr_policy == "step":
        return lr_decay_gamma ** (epochs_done // lr_decay_iters)
    if lr_policy == "cosine":
        total = n_epochs + n_epochs_decay
        return 0.5 * (1.0 + math.cos(math.pi * min(epochs_done, total) / total))
    return None
