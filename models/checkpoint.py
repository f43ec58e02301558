"""Checkpoints of one experiment folder (``checkpoints/<name>/``): the one owner of saving and resuming.

Files, for a label ``latest``, an epoch number or ``iter_<n>``:

- ``<label>_net_<name>.pth``: a network's plain CPU state_dict with the official keys, so official
  files load here (:func:`load_weights`) and ours load into the official code;
- ``<label>_train_state.pth``: everything ``--continue_train`` needs, self-contained: networks,
  optimisers, schedules, the model's extra state (image pool), progress counters, every random
  generator and the options. A distributed run (``torchrun``) adds ``ranks``: each process's
  random generators and extra state (its own image pool), which the same process restores.

Under ``torchrun`` rank 0 alone writes: :meth:`Checkpoints.save` is a collective that every rank
calls (it gathers the per-rank state), and :meth:`Checkpoints.save_weights` does nothing on the
other ranks. Every rank reads the files on resume (a shared file system across nodes).

:class:`Checkpoints` names the files, says which label ``--epoch/--load_iter`` select, refuses to
train into a folder that holds a model (unless ``--continue_train``) or to resume with other
architecture options, and saves and loads. Every save is one :class:`CheckpointWriter`
transaction: its files replace their predecessors together, or (disk full, Ctrl-C) none does.
Loading uses ``weights_only=True``: no code in a file ever runs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from util import distributed
from util.errors import UserError
from util.rng import capture_rng, restore_rng

from .checkpoint_writer import CheckpointWriter, atomic_save
from .weights import cpu_state_dict, load_weights, safe_load, unwrap

__all__ = [
    "FORMAT_VERSION",
    "LATEST",
    "CheckpointWriter",
    "Checkpoints",
    "atomic_save",
    "cpu_state_dict",
    "load_weights",
    "safe_load",
    "unwrap",
]


class Checkpointable(Protocol):
    """What a checkpoint needs of a model (``BaseModel`` provides it): its networks and its state."""

    nets: dict[str, nn.Module]
    architecture_options: tuple[str, ...]

    def training_state(self) -> dict: ...

    def extra_state(self) -> dict: ...

    def load_training_state(self, state: dict, source: str) -> None: ...

    def restore_schedule(self, epochs_done: int, plateau_states: list[dict] | None = None) -> None: ...

    def current_lrs(self) -> dict[str, float]: ...


# 2: schedules are closed forms of the epoch (their state is the epoch count). Version 1 files
# (torch scheduler states) still load: the schedule is recomputed from the epoch they reached.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
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
LATEST = "latest"
_STATE_KEYS = ("progress", "rng", "nets", "optimizers", "schedulers")


class Checkpoints:
    """The checkpoint files of one experiment folder ``save_dir`` (``checkpoints/<name>/``)."""

    def __init__(self, save_dir: str | os.PathLike) -> None:
        self.save_dir = Path(save_dir)

    # ------------------------------------------------------------------ labels and file names
    @staticmethod
    def selected_label(opt: argparse.Namespace) -> str:
        """The label ``--load_iter`` (``iter_<n>`` when > 0) or else ``--epoch`` selects."""
        return Checkpoints.iter_label(opt.load_iter) if opt.load_iter > 0 else str(opt.epoch)

    @staticmethod
    def iter_label(total_iters: int) -> str:
        """The label of a ``--save_by_iter`` checkpoint after ``total_iters`` images."""
        return f"iter_{total_iters}"

    def weight_path(self, label: str | int, name: str) -> Path:
        return self.save_dir / f"{label}_net_{name}.pth"

    def state_path(self, label: str | int) -> Path:
        return self.save_dir / f"{label}_train_state.pth"

    def labels(self) -> list[str]:
        """Labels saved in the folder: epochs in order, then ``iter_<n>`` in order, then ``latest``."""
        if not self.save_dir.is_dir():
            return []
        found = {p.name.split("_net_")[0] for p in self.save_dir.glob("*_net_*.pth")}
        found |= {p.name[: -len("_train_state.pth")] for p in self.save_dir.glob("*_train_state.pth")}

        def order(label: str) -> tuple:
            if label.isdigit():
                return (0, int(label), label)
            if label.startswith("iter_") and label[5:].isdigit():
                return (1, int(label[5:]), label)
            return (2 if label == LATEST else 3, 0, label)

        return sorted(found, key=order)

    def has(self, label: str) -> bool:
        """Whether ``label`` has a training state or weights here."""
        return self.state_path(label).is_file() or any(self.save_dir.glob(f"{label}_net_*.pth"))

    def newest_epoch(self, names: Iterable[str] | None = None) -> int | None:
        """The newest epoch with weights here (of every network in ``names``, when given), or None."""
        names = list(names or ())
        for label in reversed([x for x in self.labels() if x.isdigit()]):
            if all(self.weight_path(label, name).is_file() for name in names):
                return int(label)
        return None

    def resumable(self, opt: argparse.Namespace) -> bool:
        """Whether ``--continue_train`` finds something to resume: the selected checkpoint, or
        (for ``latest``) the weights of an epoch."""
        label = self.selected_label(opt)
        return self.has(label) or (label == LATEST and self.newest_epoch() is not None)

    # ------------------------------------------------------------------ refusals
    def check_start(self, opt: argparse.Namespace) -> None:
        """Refuse, before anything is written, a run that would clobber or miss a saved model.

        A fresh run into a folder holding a model would overwrite it: ``--continue_train`` or
        another ``--name``. ``--continue_train`` needs the checkpoint it selects.
        """
        saved = self.labels()
        if saved and not opt.continue_train:
            raise UserError(
                f"{self.save_dir} already holds a trained model (checkpoints: {', '.join(saved)}); "
                "add --continue_train to resume it, or choose another --name"
            )
        label = self.selected_label(opt)
        if opt.continue_train and not self.resumable(opt):
            raise UserError(
                f"--continue_train: no checkpoint '{label}' to resume in {self.save_dir}; "
                "check --name, --checkpoints_dir and --epoch, or drop --continue_train to start afresh"
            )

    @staticmethod
    def check_compatible(
        saved: Mapping[str, Any], opt: argparse.Namespace, source: str, model_options: tuple[str, ...] = ()
    ) -> None:
        """Refuse to resume when an architecture option (shared, or the model's own
        ``model_options``) differs from the saved run's ``saved``."""
        diffs = [
            f"--{k} {saved[k]} (saved) vs {getattr(opt, k)} (now)"
            for k in (*ARCHITECTURE_OPTIONS, *model_options)
            if k in saved and saved[k] != getattr(opt, k, saved[k])
        ]
        if diffs:
            raise UserError(
                f"cannot resume from {source}: {'; '.join(diffs)}; "
                "repeat the original options or start a new --name"
            )

    # ------------------------------------------------------------------ weights
    def _mkdir(self) -> None:
        try:
            self.save_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(
                f"cannot create {self.save_dir}: {err.strerror or err}; choose a writable --checkpoints_dir"
            ) from None

    def save_weights(
        self,
        nets: Mapping[str, nn.Module],
        label: str | int,
        writer: CheckpointWriter | None = None,
        same_as: str | int | None = None,
    ) -> None:
        """Write ``<label>_net_<name>.pth`` for every network (all together: in ``writer``, or in one
        transaction of their own). Rank 0 alone writes in a distributed run.

        ``same_as``: these weights were just written under that label (an epoch checkpoint right
        after the ``latest`` one): the files become hard links to those (the same bytes, 0.65 GB
        not written again for the paper's model), or are written where the file system cannot
        link. A later save of ``same_as`` renames new files onto its own, so the links keep these
        bytes."""
        if not distributed.is_main():
            return None
        if writer is None:
            with CheckpointWriter() as own:
                return self.save_weights(nets, label, own, same_as)
        self._mkdir()
        for name, net in nets.items():
            path = self.weight_path(label, name)
            if same_as is None or not writer.link(self.weight_path(same_as, name), path):
                writer.save(cpu_state_dict(net), path)
        return None

    def load_weights(
        self, nets: Mapping[str, nn.Module], label: str | int, names: Iterable[str] | None = None
    ) -> None:
        """Load ``<label>_net_<name>.pth`` (ours or the official code's) into ``nets`` (or ``names`` of them)."""
        for name in list(names) if names is not None else list(nets):
            path = self.weight_path(label, name)
            if not path.is_file():
                have = self.labels()
                hint = (
                    f"saved checkpoints: {', '.join(have)}"
                    if have
                    else f"{self.save_dir} holds no checkpoints"
                )
                raise UserError(f"no weights {path} for --epoch {label}; {hint}")
            load_weights(unwrap(nets[name]), safe_load(path), path)
            print(f"loaded {path}")

    # ------------------------------------------------------------------ training state
    def save(
        self, model: Checkpointable, label: str | int, progress: Mapping[str, int], options: Mapping
    ) -> Path | None:
        """Save the weights and the training state of ``label`` in one transaction; return the state's path.

        ``progress``: ``epoch`` (epochs finished), ``total_iters`` (images seen) and, mid-epoch,
        ``epoch_iter`` (images seen in the unfinished epoch). ``options``: plain (JSON-able) data.
        In a distributed run every rank calls this; rank 0 writes (the others return None).
        """
        own = {"rng": capture_rng(), "extra": model.extra_state()}
        ranks = distributed.gather_to_main(own)
        if ranks is None:
            return None
        state = {
            "format_version": FORMAT_VERSION,
            "progress": dict(progress),
            "options": dict(options),
            **model.training_state(),
            # Rank 0's own objects: torch.save stores their tensors once, also when listed in "ranks".
            "rng": own["rng"],
            "extra": own["extra"],
        }
        if len(ranks) > 1:
            state["ranks"] = [own, *ranks[1:]]
        with CheckpointWriter() as writer:
            self.save_weights(model.nets, label, writer)
            return writer.save(state, self.state_path(label))

    def read_state(self, label: str | int) -> dict:
        """The training-state file of ``label``, checked to be one this code can resume from."""
        path = self.state_path(label)
        state = safe_load(path)
        version = state.get("format_version") if isinstance(state, dict) else None
        if version not in READABLE_VERSIONS:
            raise UserError(
                f"{path} is not a training-state file this code reads (format {version}, this code "
                f"writes {FORMAT_VERSION}); resume with the code that wrote it, or retrain"
            )
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise UserError(f"{path} is an incomplete training-state file (no {', '.join(missing)}); retrain")
        return state

    def load_training_state(self, model: Checkpointable, label: str | int, opt: argparse.Namespace) -> dict:
        """Restore ``model`` and every random generator from ``<label>_train_state.pth``; return the progress.

        The learning rates follow the current options' schedule at the epoch reached (the saved
        one unless schedule options changed); ``plateau`` keeps its saved state and learning rates.
        """
        path = self.state_path(label)
        state = self.read_state(label)
        saved = state.get("options", {})
        self.check_compatible(saved, opt, str(path), type(model).architecture_options)
        own = self.rank_state(state, str(path))
        model.load_training_state({**state, "extra": own["extra"]}, str(path))
        progress = dict(state["progress"])
        keep_plateau = saved.get("lr_policy") == opt.lr_policy == "plateau"
        epochs_done = max(0, int(progress["epoch"]) - opt.epoch_count + 1)
        model.restore_schedule(epochs_done, state["schedulers"] if keep_plateau else None)
        changed = [
            f"--{k} {saved[k]} -> {getattr(opt, k)}"
            for k in SCHEDULE_OPTIONS
            if k in saved and saved[k] != getattr(opt, k, saved[k])
        ]
        if changed:
            lr = next(iter(model.current_lrs().values()), 0.0)
            print(f"schedule changed on resume ({'; '.join(changed)}): learning rate now {lr:.7f}")
        if own["rng"] is not None:
            restore_rng(own["rng"])
        return progress

    @staticmethod
    def rank_state(state: Mapping[str, Any], source: str) -> dict:
        """This process's random generators and extra state (image pool) in a training state.

        A distributed run saved one entry per rank (``ranks``), a single process one. Resumed
        with as many processes, each rank gets its own back and the run continues exactly; with
        another number, ranks without an entry keep their fresh generators and an empty pool
        (a warning says so; weights, optimisers and the sample position are restored all the same).
        """
        saved = state.get("ranks") or [{"rng": state["rng"], "extra": state.get("extra", {})}]
        rank, world = distributed.rank(), distributed.world_size()
        if len(saved) != world:
            distributed.warn(
                f"{source} was saved by {len(saved)} process(es) and this run has {world}: weights, "
                "optimisers and the position in the data are restored, but the random state and image "
                f"pool of rank(s) {len(saved)}.. start afresh and per-rank shards change, so the run does "
                "not continue bit-exactly"
            )
        return saved[rank] if rank < len(saved) else {"rng": None, "extra": {}}

    def resume(self, model: Checkpointable, opt: argparse.Namespace, images_per_epoch: int = 0) -> dict:
        """The progress to start from: a saved training state, else weights only (official files, or
        the newest epoch's when there is no ``latest``), else zero. ``images_per_epoch`` estimates
        the images seen when only epoch weights are left."""
        progress = {"epoch": opt.epoch_count - 1, "total_iters": 0}
        if not opt.continue_train:
            return progress
        label = self.selected_label(opt)
        if label == LATEST and not self.has(label):
            return self.resume_from_epoch_weights(model, opt, images_per_epoch)
        if self.state_path(label).is_file():
            progress = self.load_training_state(model, label, opt)
            within = (
                f", {progress['epoch_iter']} images into epoch {progress['epoch'] + 1}"
                if progress.get("epoch_iter")
                else ""
            )
            print(f"resuming after epoch {progress['epoch']}{within} ({progress['total_iters']} images seen)")
        else:
            self.load_weights(model.nets, label)
            print(
                f"no training state for '{label}' in {self.save_dir}: loaded the weights only; optimisers "
                f"start afresh at epoch {opt.epoch_count}"
            )
        return progress

    def resume_from_epoch_weights(
        self, model: Checkpointable, opt: argparse.Namespace, images_per_epoch: int
    ) -> dict:
        """Resume from the newest complete epoch weights (a run killed before its first training
        state): the weights and the schedule are restored, the rest starts afresh."""
        epoch = self.newest_epoch(model.nets)
        if epoch is None:
            raise UserError(
                f"--continue_train: {self.save_dir} holds no training state and no epoch with the weights "
                f"of every network ({', '.join(model.nets)}); retrain with another --name"
            )
        self.load_weights(model.nets, epoch)
        model.restore_schedule(max(0, epoch - opt.epoch_count + 1))
        distributed.warn(
            f"no training state in {self.save_dir}: resuming from the weights of epoch {epoch}; the "
            "optimisers' moments, the image pool and the random generators restart, so the run does not "
            "continue bit-exactly"
        )
        return {"epoch": epoch, "total_iters": epoch * images_per_epoch}
