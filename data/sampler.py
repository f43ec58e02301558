"""Sample order and augmentation randomness as pure functions of (seed, epoch, sample).

A data loader built on these gives the same batches, crops and flips whatever the number of
worker processes and whatever else used the global random generator, and can start in the
middle of an epoch: a run resumed from a mid-epoch checkpoint sees exactly the samples, in the
order and with the augmentations, that the interrupted run would have seen next.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (e.g. run seed, epoch, sample index)."""
    state = np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


class EpochSampler(Sampler):
    """Yields ``(index, sample_seed)`` for one epoch: a permutation fixed by (seed, epoch), or in order.

    ``set_epoch(epoch, start)`` chooses the epoch and skips its first ``start`` samples.

    With ``world_size`` N > 1 (one sampler per process of a distributed run) every rank computes
    the same global order, padded (as ``torch.utils.data.DistributedSampler`` does) by repeating
    its first samples up to a multiple of N, and takes every N-th sample of it from position
    ``start + rank``. Batch k of every rank together are then global samples ``[k*N*b, (k+1)*N*b)``
    of the padded order: the same images a single process with batch size N*b sees in its batch
    k. ``start`` counts global samples (multiples of N for a run that keeps its N), so a
    distributed run resumes mid-epoch exactly; every rank yields the same number of samples.
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        return torch.randperm(self.n, generator=generator).tolist()

    def _padded_length(self) -> int:
        """Samples of the epoch from ``start`` on, over all ranks: a multiple of the world size."""
        n, w = self.n, self.world_size
        if w == 1 or n == 0:
            return max(0, n - self.start)
        per_epoch = -(-n // w) * w
        rest = max(0, per_epoch - self.start)
        return -(-rest // w) * w  # a start from a run of another world size: pad once more

    def indices(self) -> list[int]:
        """This rank's sample indices for the epoch, from ``start`` on."""
        order = self.order()
        if self.world_size == 1:
            return order[self.start :]
        # The padding wraps around the epoch's order; positions count from the epoch's start.
        stop = self.start + self._padded_length()
        return [order[i % self.n] for i in range(self.start + self.rank, stop, self.world_size)]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.indices():
            yield index, derive_seed(self.seed, self.epoch, index)

    def __len__(self) -> int:
        return self._padded_length() // self.world_size


class SeededDataset(Dataset):
    """Runs ``dataset[index]`` with torch's generator seeded by the sample's seed.

    Keys are ``(index, seed)`` pairs from :class:`EpochSampler` (a plain index works too, with
    the generator as it is). The caller's generator state is restored afterwards. Attributes
    of the wrapped dataset (e.g. ``preview``) are reachable through the wrapper.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]

    def __getattr__(self, name: str):
        if name == "dataset":  # not set yet (e.g. while unpickling in a worker)
            raise AttributeError(name)
        return getattr(self.dataset, name)
