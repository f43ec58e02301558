"""Resumable training state: one self-contained file per label (``<label>_train_state.pth``).

It holds the networks, optimisers, schedulers, the model's extra state (image pool), the
progress counters, every random generator and the options, so ``--continue_train`` rebuilds
the run from this single file. Written atomically (see :func:`util.checkpoint.atomic_save`).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_save, safe_load
from .errors import UserError

FORMAT_VERSION = 1
# Options that change the networks' shapes or the data they expect: resuming with other values
# would not fit the saved state (or would silently train another model).
ARCHITECTURE_OPTIONS = (
    "model",
    "input_nc",
    "output_nc",
    "sar_nc",
    "ngf",
    "ndf",
    "netG",
    "netD",
    "n_layers_D",
    "norm",
    "no_dropout",
    "conv_bias",
)
# Options of the learning-rate schedule: these may change on resume (e.g. more epochs); the
# learning rate then follows the new schedule from the epoch reached.
SCHEDULE_OPTIONS = (
    "lr",
    "lr_policy",
    "n_epochs",
    "n_epochs_decay",
    "lr_decay_iters",
    "lr_decay_gamma",
    "epoch_count",
)


def state_path(save_dir: Path, label: str) -> Path:
    return Path(save_dir) / f"{label}_train_state.pth"


def capture_rng() -> dict:
    """All random generators as tensors and plain data (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(model, label: str, progress: dict, options: dict) -> Path:
    """Write ``<label>_train_state.pth`` beside the weights; returns its path."""
    path = state_path(model.save_dir, label)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format_version": FORMAT_VERSION,
        "progress": dict(progress),
        "rng": capture_rng(),
        "options": options,
        **model.training_state(),
    }
    atomic_save(state, path)
    return path


def check_compatible(saved: dict, opt: argparse.Namespace, source: str) -> None:
    """Refuse to resume when an architecture option differs from the saved run's."""
    diffs = [
        f"--{k} {saved[k]} (saved) vs {getattr(opt, k)} (now)"
        for k in ARCHITECTURE_OPTIONS
        if k in saved and saved[k] != getattr(opt, k, saved[k])
    ]
    if diffs:
        raise UserError(
            f"cannot resume from {source}: {'; '.join(diffs)}; "
            "repeat the original options or start a new --name"
        )


def load_training_state(model, label: str, opt: argparse.Namespace) -> dict:
    """Restore ``model`` and the random generators from ``<label>_train_state.pth``; return the progress."""
    path = state_path(model.save_dir, label)
    state = safe_load(path, map_location="cpu")
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path} is not a training-state file of this version")
    saved = state.get("options", {})
    check_compatible(saved, opt, str(path))
    changed = [
        f"--{k} {saved[k]} -> {getattr(opt, k)}"
        for k in SCHEDULE_OPTIONS
        if k in saved and saved[k] != getattr(opt, k, saved[k])
    ]
    model.load_training_state(state, str(path), restore_schedule=not changed)
    progress = state["progress"]
    if changed:
        model.reschedule(int(progress["epoch"]) - opt.epoch_count + 1)
        lr = next(iter(model.current_lrs().values()), None)
        print(f"schedule changed on resume ({'; '.join(changed)}): learning rate now {lr:.7f}")
    restore_rng(state["rng"])
    return progress
