"""Stopping cleanly when a cluster asks: SIGTERM (preemption, ``scancel``, torchrun stopping its
workers) and SIGUSR1 (SLURM's notice before the time limit, ``#SBATCH --signal=USR1@120``).

A handler may run between any two Python bytecodes, e.g. in the middle of a checkpoint write, so it
only records the signal; the training loop asks :meth:`StopSignals.requested` at each iteration's
end, saves there and returns. A second signal while that save runs is recorded and changes nothing:
the save completes (and were the process killed outright, every save is atomic: the previous
checkpoint stays whole).

On SLURM, SIGUSR1 also requeues the job, as PyTorch Lightning's SLURM plugin does:
``scontrol requeue $SLURM_JOB_ID`` when ``scontrol`` exists; nothing off SLURM. SIGTERM requeues
nothing: SLURM requeues a preempted job itself, and a cancelled job is meant to stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from types import FrameType

import torch

from . import distributed

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """Within ``with StopSignals() as stop:`` SIGTERM and SIGUSR1 are recorded instead of ending
    the process; the previous handlers come back at the block's end. Outside the main thread
    (where Python cannot install handlers) nothing is installed and nothing is recorded."""

    def __init__(self) -> None:
        self.received: int = 0  # the first signal's number; 0: none
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.received:
            self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def requested(self, device: torch.device | str = "cpu") -> int:
        """The signal to stop for (0: go on); in a distributed run the same answer on every rank
        (the largest number any rank received): the save that follows is collective."""
        if distributed.world_size() == 1:
            return self.received  # no device tensor: no synchronisation per iteration
        flag = torch.tensor([self.received], device=device)
        return int(distributed.max_over_ranks(flag)[0])


def requeue_on_slurm(signum: int) -> str:
    """After SIGUSR1 inside a SLURM job, ask SLURM to requeue it; return what happened, in words."""
    job = os.environ.get("SLURM_JOB_ID")
    if signum != signal.SIGUSR1 or not job:
        return ""
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return f"SLURM job {job}: scontrol is not on PATH, the job is not requeued"
    try:
        done = subprocess.run([scontrol, "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"SLURM job {job}: scontrol requeue failed ({err})"
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        return f"SLURM job {job}: scontrol requeue failed ({why[-1] if why else f'status {done.returncode}'})"
    return f"SLURM job {job} requeued"
