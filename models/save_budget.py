"""The time budget of optional checkpoint saves (``--save_budget``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import torch

from util import distributed
from util.errors import UserError


class SaveBudget:
    """Whether an optional save fits a time budget: saving takes at most ``fraction`` of the run.

    The training state of the paper's model is about 2.6 GB (the networks, again inside the state
    file, and Adam's two moments); writing it after each short epoch would dominate the epoch. An
    optional save (train.py's end-of-epoch ``latest``) is :meth:`due` once the time since the last
    save is at least ``(1 - fraction) / fraction`` times that save's duration; the first is always
    due (nothing measured yet, and a run killed after its first epoch then has a training state to
    resume from). Saves that are not optional (epoch checkpoints, mid-epoch ones, the last epoch, a
    save on a preemption signal) run through :meth:`timed` too, so every save counts. The
    trade-off: a ``kill -9`` loses at most about ``1 / fraction`` save durations of training (e.g.
    10 x 10 s for the paper's model on a 2-core machine); every save stays atomic.
    """

    def __init__(
        self,
        fraction: float,
        clock: Callable[[], float] = time.monotonic,
        device: torch.device | str = "cpu",
    ) -> None:
        if not 0 < fraction <= 1:
            raise UserError(f"--save_budget must be in (0, 1], got {fraction}")
        self.fraction = fraction
        self.device = device  # of the decision shared between ranks (NCCL needs CUDA tensors)
        self.clock = clock
        self.last_end: float | None = None  # no save yet: the first optional one is due
        self.last_cost = 0.0

    def due(self) -> bool:
        """Whether the optional save fits; in a distributed run rank 0's answer, on every rank
        (the save is collective)."""
        if self.last_end is None or self.fraction >= 1:
            due = True
        else:
            waited = self.clock() - self.last_end
            due = waited * self.fraction >= self.last_cost * (1 - self.fraction)
        flag = torch.tensor([due and distributed.is_main()], device=self.device)
        return bool(distributed.any_over_ranks(flag)[0])

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Measure the save inside the block (its duration is the next wait's yardstick)."""
        start = self.clock()
        yield
        self.last_end = self.clock()
        self.last_cost = self.last_end - start
