"""Data-parallel training over processes started by ``torchrun``: the one owner of ranks, the
process group, the device of each process and the wrapping of networks in DistributedDataParallel.

``torchrun`` starts one process per device and tells each its place in the environment (``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). A process
started otherwise is a single-process run: rank 0 of 1, and every function here is then a no-op
that changes nothing in the single-process path.

Under ``torchrun``: the backend is NCCL on CUDA and gloo on the CPU; process ``LOCAL_RANK`` uses
the ``LOCAL_RANK``-th GPU of ``--gpu_ids`` (``auto``: GPU ``LOCAL_RANK``); rank 0 alone writes
files and prints (the other ranks print warnings and errors only).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .device import parse_gpu_ids, resolve_device
from .errors import ReportedError, UserError, one_line, print_error

_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")


@dataclass(frozen=True)
class Place:
    """Where this process stands: global rank and count, rank and count on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1


def launched() -> bool:
    """Whether torchrun (or a launcher that sets the same variables) started this process."""
    return all(name in os.environ for name in _TORCHRUN_VARS)


def place() -> Place:
    """This process's :class:`Place`, read from torchrun's environment (rank 0 of 1 without it)."""
    if not launched():
        return Place()
    try:
        values = {name: int(os.environ[name]) for name in _TORCHRUN_VARS}
    except ValueError:
        found = ", ".join(f"{n}={os.environ[n]!r}" for n in _TORCHRUN_VARS)
        raise UserError(
            f"the launcher's environment is not integers ({found}); start with torchrun"
        ) from None
    return Place(
        rank=values["RANK"],
        world_size=values["WORLD_SIZE"],
        local_rank=values["LOCAL_RANK"],
        local_world_size=values["LOCAL_WORLD_SIZE"],
    )


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else place().rank


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else place().world_size


def is_main() -> bool:
    """Rank 0: the one process that writes checkpoints, logs, pages and options, and prints."""
    return rank() == 0


# ---------------------------------------------------------------------- device and process group
def torchrun_command(n: int, argv: list[str], script: str = "train.py") -> str:
    """The command that trains with ``n`` processes on this node and the same options."""
    return shlex.join(["torchrun", "--standalone", f"--nproc_per_node={n}", script, *argv])


def training_device(gpu_ids: str, argv: list[str]) -> tuple[torch.device, list[int]]:
    """The device of this training process (and the GPU it uses, as a list) for ``--gpu_ids``.

    Single process: as :func:`util.device.resolve_device`, but several GPUs that all exist are
    refused with the torchrun command to run instead (one process per GPU; never silently one
    GPU). Under torchrun: ``--gpu_ids`` lists one GPU per process of the node, and process
    ``LOCAL_RANK`` takes the ``LOCAL_RANK``-th; ``auto`` means GPUs 0..N-1, or the CPU without CUDA.
    """
    ids = parse_gpu_ids(gpu_ids)
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    here = place()
    if not launched():
        if ids and len(ids) > 1 and max(ids) < available:
            raise UserError(
                f"--gpu_ids {gpu_ids} asks for {len(ids)} GPUs: train with one process per GPU "
                f"(--batch_size is per process): {torchrun_command(len(ids), argv)}"
            )
        return resolve_device(gpu_ids)
    n = here.local_world_size
    if ids is None:
        if not available:
            return torch.device("cpu"), []
        if available < n:
            raise UserError(
                f"torchrun started {n} processes on this node but only {available} GPU(s) exist; "
                f"use --nproc_per_node={available}, or --gpu_ids -1 for the CPU"
            )
        ids = list(range(n))
    if not ids:
        return torch.device("cpu"), []
    if len(ids) != n:
        raise UserError(
            f"--gpu_ids {gpu_ids} names {len(ids)} GPU(s) but torchrun started {n} process(es) on this "
            f"node; give one GPU per process (--nproc_per_node={len(ids)}) or --gpu_ids auto"
        )
    if len(set(ids)) != len(ids):
        raise UserError(f"--gpu_ids {gpu_ids} names a GPU twice; each process needs its own GPU")
    return resolve_device(str(ids[here.local_rank]))


def init(device: torch.device) -> None:
    """Join torchrun's process group (NCCL on CUDA, gloo on the CPU); nothing without torchrun."""
    if not launched() or dist.is_initialized():
        return
    store, rank, world_size = next(dist.rendezvous("env://"))
    # torchrun's agent keeps one store for a group it restarts (--max-restarts): without a prefix of
    # its own, a restarted group could read the dead group's addresses and wait on them for ever.
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    store = dist.PrefixStore(f"attempt_{attempt}/", store)
    backend = "nccl" if device.type == "cuda" else "gloo"
    extra = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, **extra)


@contextlib.contextmanager
def worker() -> Iterator[Place]:
    """The life of one training process: ranks other than 0 print nothing on stdout (warnings and
    errors still go to stderr), and the process group, if :func:`init` made one, is left at the end."""
    here = place()
    try:
        if here.rank == 0:
            yield here
        else:
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                yield here
    except UserError as err:
        if not dist.is_initialized() or isinstance(err, ReportedError):
            raise
        # The first rank to exit gets torchrun to stop the others: each rank says why before it
        # leaves the group, not after.
        print_error(one_line(err))
        raise ReportedError(str(err)) from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------------- networks and collectives
def wrap_networks(nets: dict[str, nn.Module], device: torch.device, *, find_unused: bool = False) -> None:
    """Wrap every network of ``nets`` in place in DistributedDataParallel (nothing without a group).

    DDP starts every rank from rank 0's weights and averages gradients over the ranks during
    backward, once per forward pass: a model must call backward once per iteration and network
    (sum the losses first). ``find_unused``: some parameters receive no gradient (DDP then
    searches the autograd graph for them every iteration). Buffers (batch-norm running
    statistics) are rank 0's, copied to the other ranks at every forward pass. Saving and
    loading unwrap the networks (``models.weights.unwrap``).
    """
    if not dist.is_initialized():
        return
    ids = [device.index] if device.type == "cuda" else None
    for name, net in nets.items():
        nets[name] = nn.parallel.DistributedDataParallel(
            net, device_ids=ids, find_unused_parameters=find_unused
        )


def max_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of an integer vector over all ranks (itself in a single process)."""
    if not dist.is_initialized():
        return values
    values = values.to(torch.int64)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def any_over_ranks(flags: torch.Tensor) -> torch.Tensor:
    """Element-wise OR of a boolean vector over all ranks (itself in a single process)."""
    return max_over_ranks(flags).bool()


@contextlib.contextmanager
def together(what: str) -> Iterator[None]:
    """Run a start-up step on every rank and fail on all of them when it fails on one.

    A rank that stopped alone would leave the others waiting in their next collective; here every
    rank reaches the exchange, and each raises one :class:`UserError` naming the failed ranks and
    the first one's message (its own message on a failed rank). Nothing to exchange in one process.
    """
    if not dist.is_initialized():
        yield
        return
    failure: Exception | None = None
    try:
        yield
    except Exception as err:  # noqa: BLE001 - reported to the other ranks, then raised again
        failure = err
    mine = None if failure is None else (str(failure).strip().splitlines() or [type(failure).__name__])[0]
    reports: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(reports, mine)
    if failure is not None:
        raise failure  # this rank reports its own error
    failed = [(r, m) for r, m in enumerate(reports) if m is not None]
    if failed:
        ranks = ", ".join(str(r) for r, _ in failed)
        raise UserError(f"{what} failed on rank(s) {ranks} (rank {failed[0][0]}: {failed[0][1]})")


def check_same(what: str, value: Any, hint: str) -> None:
    """Refuse, on every rank, a ``value`` that differs between ranks (e.g. the number of samples)."""
    if not dist.is_initialized():
        return
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        seen = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        raise UserError(f"{what} differs between the processes ({seen}); {hint}")


def mean_over_ranks(values: Mapping[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each value over all ranks (e.g. losses: the global batch's); as is in one process."""
    if not dist.is_initialized():
        return dict(values)
    t = torch.tensor([float(v) for v in values.values()], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: v / dist.get_world_size() for k, v in zip(values, t.tolist())}


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` as a list on rank 0 (``None`` on the others); ``[obj]`` in one process.

    A collective: every rank must call it at the same point.
    """
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def warn(message: str) -> None:
    """A warning on stderr, printed by rank 0 only (the same on every rank)."""
    if is_main():
        print(f"warning: {message}", file=sys.stderr)
