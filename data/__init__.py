"""Datasets: ``--dataset_mode X`` finds ``data/X_dataset.py`` and its ``XDataset`` class.

Official names stay accepted as aliases (``unaligned_sar`` -> ``triplet``).
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from util.registry import discover, find_class
from util.rng import capture_rng, restore_rng

from .base_dataset import BaseDataset
from .sampler import EpochSampler, SeededDataset

ALIASES = {"unaligned_sar": "triplet"}


DATASET_NAMES = discover(Path(__file__).parent, "dataset")
DATASET_CHOICES = DATASET_NAMES + tuple(ALIASES)


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def find_dataset_using_name(name: str) -> type[BaseDataset]:
    """The ``BaseDataset`` subclass for ``--dataset_mode name`` (aliases accepted)."""
    return find_class("data", canonical_name(name), "dataset", BaseDataset, "--dataset_mode", DATASET_CHOICES)


def get_option_setter(name: str):
    return find_dataset_using_name(name).modify_commandline_options


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the main process's generator; derive numpy/random from it.
    import random

    import numpy as np

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def create_dataloader(
    opt: Namespace,
    *,
    shuffle: bool | None = None,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """The dataset named by ``opt.dataset_mode`` in a ``DataLoader`` whose order and augmentations
    depend only on (``--seed``, epoch, sample): see :mod:`data.sampler`.

    ``rank``/``world_size``: this process's shard of a distributed run (batches of ``--batch_size``
    per process, see :class:`~data.sampler.EpochSampler`).

    Call ``loader.sampler.set_epoch(epoch, start)`` before each epoch. ``loader.dataset`` is a
    :class:`~data.sampler.SeededDataset` that forwards attributes to the dataset itself.
    """
    dataset = find_dataset_using_name(opt.dataset_mode)(opt)
    print(f"dataset [{type(dataset).__name__}] was created: {len(dataset)} samples from {opt.dataroot}")
    shuffle = (not opt.serial_batches) if shuffle is None else shuffle
    return DataLoader(
        SeededDataset(dataset),
        batch_size=opt.batch_size,
        sampler=EpochSampler(
            len(dataset), shuffle=shuffle, seed=getattr(opt, "seed", 0), rank=rank, world_size=world_size
        ),
        num_workers=int(opt.num_threads),
        worker_init_fn=_seed_worker,
        # Its own generator: creating an iterator draws the workers' base seed from it, not from
        # the global generator that the model uses (image pool), so resuming stays exact.
        generator=torch.Generator().manual_seed(getattr(opt, "seed", 0)),
        pin_memory=str(getattr(opt, "device", "cpu")).startswith("cuda"),
        drop_last=drop_last,
        persistent_workers=False,
    )


def check_first_sample(dataset) -> None:
    """Read the first sample now, every random generator restored afterwards: a problem that all
    samples share (an unreadable format, images of different sizes, the wrong band count) stops a
    run at start-up, before it writes anything. Other samples are read when the run reaches them."""
    if len(dataset) == 0:
        return
    state = capture_rng()
    try:
        dataset[0]
    finally:
        restore_rng(state)
