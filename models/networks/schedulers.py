"""Learning-rate schedules (``--lr_policy``), stepped once at the end of every epoch.

Every policy but ``plateau`` is one closed form, :func:`lr_factor`: the learning rate after ``N``
epochs is ``lr * lr_factor(N)``, however it got there. Resuming (also with other schedule
options, e.g. more epochs) therefore only sets the epoch count (:meth:`EpochSchedule.set_epoch`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from torch.optim import Optimizer, lr_scheduler

LR_POLICIES = ("lambda", "linear", "step", "plateau", "cosine")


def lr_factor(
    epochs_done: int,
    *,
    lr_policy: str,
    epoch_count: int = 1,
    n_epochs: int = 100,
    n_epochs_decay: int = 100,
    lr_decay_iters: int = 50,
    lr_decay_gamma: float = 0.1,
) -> float:
    """The learning-rate multiplier after ``epochs_done`` epochs of a run started at ``epoch_count``.

    - ``lambda`` / ``linear``: 1 for ``n_epochs``, then linear decay to zero over ``n_epochs_decay``
      epochs (pix2pix; like the official rule it counts from ``epoch_count``, the absolute epoch).
    - ``step``: x ``lr_decay_gamma`` every ``lr_decay_iters`` epochs (the paper's schedule: x 0.1
      every 100; GLF-CR's: x 0.5 every 5).
    - ``cosine``: half a cosine from 1 to 0 over ``n_epochs + n_epochs_decay`` epochs, then 0.
    ``plateau`` has no closed form (it follows the metric): ``ValueError``.
    """
    if lr_policy in ("lambda", "linear"):
        return 1.0 - max(0, epochs_done + epoch_count - n_epochs) / float(n_epochs_decay + 1)
    if lr_policy == "step":
        return lr_decay_gamma ** (epochs_done // lr_decay_iters)
    if lr_policy == "cosine":
        total = n_epochs + n_epochs_decay
        return 0.5 * (1.0 + math.cos(math.pi * min(epochs_done, total) / total))
    raise ValueError(
        f"lr_policy {lr_policy!r} has no closed form; choose one of linear, lambda, step, cosine"
    )


def compress_schedule(*, n_epochs: int, n_epochs_decay: int, lr_decay_iters: int, epochs: int) -> dict:
    """The same schedule shape over ``epochs`` epochs instead of ``n_epochs + n_epochs_decay``: the
    constant and decaying parts and the step interval scaled by the same factor (rounded; at least
    one epoch at the initial rate where there was one, a step interval of at least one epoch).

    Returns ``n_epochs``, ``n_epochs_decay`` and ``lr_decay_iters`` (keyword arguments of
    :func:`lr_factor`)."""
    if epochs < 1:
        raise ValueError(f"a schedule needs at least one epoch, got {epochs}")
    scale = epochs / max(1, n_epochs + n_epochs_decay)
    decay = min(epochs, round(n_epochs_decay * scale))
    if n_epochs > 0 and decay == epochs:
        decay = epochs - 1
    return {
        "n_epochs": epochs - decay,
        "n_epochs_decay": decay,
        "lr_decay_iters": max(1, round(lr_decay_iters * scale)),
    }


class EpochSchedule:
    """Sets each parameter group's lr to ``base_lr * factor(epochs_done)``.

    ``base_lr`` is the group's lr when the schedule is built (the ``--lr`` of the current options);
    nothing else is state, so a resumed run sets :meth:`set_epoch` and has the exact learning
    rate of an uninterrupted one.
    """

    def __init__(self, optimizer: Optimizer, factor: Callable[[int], float]) -> None:
        self.optimizer = optimizer
        self.factor = factor
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.epochs_done = 0
        self.set_epoch(0)

    def set_epoch(self, epochs_done: int) -> None:
        """Put the schedule at ``epochs_done`` epochs (0: the start of the run)."""
        self.epochs_done = int(epochs_done)
        scale = self.factor(self.epochs_done)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * scale

    def step(self) -> None:
        """One epoch done."""
        self.set_epoch(self.epochs_done + 1)

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"epochs_done": self.epochs_done}

    def load_state_dict(self, state: dict) -> None:
        self.set_epoch(state["epochs_done"])


def get_scheduler(
    optimizer: Optimizer,
    *,
    lr_policy: str,
    epoch_count: int = 1,
    n_epochs: int = 100,
    n_epochs_decay: int = 100,
    lr_decay_iters: int = 50,
    lr_decay_gamma: float = 0.1,
) -> EpochSchedule | lr_scheduler.ReduceLROnPlateau:
    """The schedule named ``lr_policy`` for ``optimizer`` (see :func:`lr_factor`).

    ``plateau``: lr x 0.2 when the metric passed to ``step(metric)`` has not improved by 1 % for
    5 epochs (torch's ``ReduceLROnPlateau``; its state is the metric history).
    """
    if lr_policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
    if lr_policy not in LR_POLICIES:
        raise ValueError(f"unknown lr_policy {lr_policy!r}; choose one of {', '.join(LR_POLICIES)}")
    factor = functools.partial(
        lr_factor,
        lr_policy=lr_policy,
        epoch_count=epoch_count,
        n_epochs=n_epochs,
        n_epochs_decay=n_epochs_decay,
        lr_decay_iters=lr_decay_iters,
        lr_decay_gamma=lr_decay_gamma,
    )
    return EpochSchedule(optimizer, factor)
