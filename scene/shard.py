"""Many scenes over many workers: each worker takes its own share of the scene list.

A worker knows its place from its launcher: ``torchrun`` (``RANK``, ``WORLD_SIZE``: one process per
GPU, each on GPU ``LOCAL_RANK``) or a SLURM job array (``SLURM_ARRAY_TASK_ID``,
``SLURM_ARRAY_TASK_MIN``, ``SLURM_ARRAY_TASK_STEP``, ``SLURM_ARRAY_TASK_COUNT``: one task per
share); both at once (torchrun inside each array task) split the list twice. Worker ``i`` of ``n``
takes scenes ``i, i + n, i + 2n, ...`` of the list, which every worker builds alike (sorted folder
contents, or the pair list's order), so the shares are disjoint and cover the list, and stay the
same when a job is resubmitted: with outputs written atomically and finished scenes skipped, a
killed worker loses only the scene it was writing, and a rerun of the same command finishes the rest.
No worker waits for another: there is no process group.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from util import distributed
from util.errors import UserError

SLURM = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")


@dataclass(frozen=True)
class Worker:
    """This process's share: worker ``index`` of ``count``, and what launched it (for the log)."""

    index: int = 0
    count: int = 1
    launcher: str = ""

    def share(self, items: Sequence) -> list:
        """Items ``index, index + count, ...`` of ``items``."""
        return list(items[self.index :: self.count])

    def describe(self) -> str:
        return f"worker {self.index + 1} of {self.count} ({self.launcher})"


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = env.get(name)
    if text is None and default is not None:
        return default
    try:
        return int(str(text))
    except ValueError:
        raise UserError(f"{name}={text!r} in the environment is not an integer") from None


def this_worker(env: Mapping[str, str] | None = None) -> Worker:
    """The worker this process is, from torchrun's and SLURM's environment (0 of 1 without them)."""
    env = os.environ if env is None else env
    index, count, launchers = 0, 1, []
    if all(name in env for name in SLURM):
        first, step = _int(env, "SLURM_ARRAY_TASK_MIN", 0), _int(env, "SLURM_ARRAY_TASK_STEP", 1)
        task, tasks = (_int(env, SLURM[0]) - first) // max(step, 1), _int(env, SLURM[1])
        if not 0 <= task < tasks:
            raise UserError(f"SLURM array task {env[SLURM[0]]} lies outside its {tasks} task(s)")
        index, count = task, tasks
        launchers.append("SLURM array")
    if all(name in env for name in ("RANK", "WORLD_SIZE")):
        rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
        if not 0 <= rank < world:
            raise UserError(f"RANK={rank} lies outside WORLD_SIZE={world}")
        index, count = index * world + rank, count * world
        launchers.append("torchrun")
    return Worker(index, count, " x ".join(launchers))


def worker_gpu_ids(gpu_ids: str) -> str:
    """``--gpu_ids`` for this process: under torchrun, process ``LOCAL_RANK`` takes its own GPU."""
    if not distributed.launched():
        return gpu_ids
    _, ids = distributed.training_device(gpu_ids, [])
    return str(ids[0]) if ids else "-1"
