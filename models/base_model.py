"""The contract every model follows, and what they share: setup, schedules, save/load, visuals.

A model keeps its networks in ``self.nets`` (name -> module; files ``<label>_net_<name>.pth``),
its optimisers in ``self.optimizers`` (same names), the last losses in ``self.losses`` and the
last images in ``self.visuals``. ``loss_names`` and ``visual_names`` declare what is reported;
they are checked against what the model actually computes the first time they are read.
"""

from __future__ import annotations

import argparse
import contextlib
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import nn

from util.errors import UserError

from .checkpoint import Checkpoints
from .networks import get_scheduler
from .weights import cpu_state_dict, load_weights, unwrap


class BaseModel(ABC):
    """Subclasses fill ``nets``, ``optimizers``, ``loss_names`` and ``visual_names`` in ``__init__``."""

    def __init__(self, opt: argparse.Namespace) -> None:
        self.opt = opt
        self.is_train = bool(opt.is_train)
        self.device: torch.device = opt.device
        self.save_dir = Path(opt.checkpoints_dir) / opt.name
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: list = []
        self.loss_names: list[str] = []
        self.visual_names: list[str] = []
        self.losses: dict[str, torch.Tensor] = {}
        self.visuals: dict[str, torch.Tensor] = {}
        self.image_paths: list[str] = []
        # Names of the non-finite losses of the last iteration, whose optimiser steps were then
        # skipped; empty when every optimiser stepped (see optimize_parameters).
        self.skipped_step: list[str] = []
        # Mixed precision is off for the faithful model; the hook is here so that it can be
        # switched on without restructuring the training step.
        self.amp_dtype: torch.dtype | None = None

    # ------------------------------------------------------------------ contract
    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        return parser

    @abstractmethod
    def set_input(self, batch: dict) -> None:
        """Unpack a batch from the data loader and move it to ``self.device``."""

    @abstractmethod
    def forward(self) -> dict[str, torch.Tensor]:
        """Run the networks on the current input; return (and keep in ``self.visuals``) the outputs."""

    @abstractmethod
    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        """One training iteration; return (and keep in ``self.losses``) the named losses.

        A model that checks :meth:`nonfinite_losses` before stepping sets ``self.skipped_step``
        and steps nothing; ``train.py --nonfinite skip`` needs that.
        """

    @staticmethod
    def nonfinite_losses(losses: dict[str, torch.Tensor]) -> list[str]:
        """Names of the losses that are NaN or infinite (one device sync when all are finite)."""
        values = torch.cat([v.detach().float().reshape(-1) for v in losses.values()])
        if bool(torch.isfinite(values).all()):
            return []
        return [name for name, v in losses.items() if not bool(torch.isfinite(v.detach()).all())]

    def extra_state(self) -> dict:
        """Training state beyond networks and optimisers (e.g. an image pool)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        return None

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        """Schedulers for training; load weights for testing or resuming; print the networks."""
        opt = self.opt
        if self.is_train:
            self.schedulers = [
                get_scheduler(
                    optimizer,
                    lr_policy=opt.lr_policy,
                    epoch_count=opt.epoch_count,
                    n_epochs=opt.n_epochs,
                    n_epochs_decay=opt.n_epochs_decay,
                    lr_decay_iters=opt.lr_decay_iters,
                )
                for optimizer in self.optimizers.values()
            ]
        if not self.is_train:
            self.load_networks(Checkpoints.selected_label(opt))
        self.print_networks(opt.verbose)

    def autocast(self):
        """Context for the forward passes (a no-op unless ``amp_dtype`` is set)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train(self) -> None:
        for net in self.nets.values():
            net.train()

    def eval(self) -> None:
        for net in self.nets.values():
            net.eval()

    def test(self) -> dict[str, torch.Tensor]:
        """Forward pass without gradients (used by test.py and the training display)."""
        with torch.no_grad():
            return self.forward()

    @staticmethod
    def set_requires_grad(nets: nn.Module | list[nn.Module], requires_grad: bool) -> None:
        for net in nets if isinstance(nets, list) else [nets]:
            for p in net.parameters():
                p.requires_grad_(requires_grad)

    # ------------------------------------------------------------------ reporting
    def get_current_losses(self) -> dict[str, float]:
        missing = [n for n in self.loss_names if n not in self.losses]
        if missing:
            raise KeyError(
                f"{type(self).__name__}: loss name(s) {missing} are not computed; it computes {list(self.losses)}"
            )
        return {name: float(self.losses[name].detach()) for name in self.loss_names}

    def get_current_visuals(self) -> dict[str, torch.Tensor]:
        missing = [n for n in self.visual_names if n not in self.visuals]
        if missing:
            raise KeyError(
                f"{type(self).__name__}: visual name(s) {missing} are not produced; it produces {list(self.visuals)}"
            )
        return {name: self.visuals[name] for name in self.visual_names}

    def get_image_paths(self) -> list[str]:
        return self.image_paths

    def current_lrs(self) -> dict[str, float]:
        return {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}

    def update_learning_rate(self, metric: float | None = None) -> None:
        """Step every scheduler once (at the end of an epoch) and print the change."""
        before = next(iter(self.current_lrs().values()), None)
        for scheduler in self.schedulers:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(0.0 if metric is None else metric)
            else:
                scheduler.step()
        after = next(iter(self.current_lrs().values()), None)
        if before is not None:
            print(f"learning rate {before:.7f} -> {after:.7f}")

    def print_networks(self, verbose: bool = False) -> None:
        print("---------- Networks initialized -------------")
        for name, net in self.nets.items():
            if verbose:
                print(net)
            count = sum(p.numel() for p in net.parameters())
            print(f"[Network {name}] Total number of parameters : {count / 1e6:.3f} M ({count:,})")
        print("-----------------------------------------------")

    # ------------------------------------------------------------------ weights
    @property
    def checkpoints(self) -> Checkpoints:
        """The checkpoint files of this experiment (``checkpoints/<name>/``)."""
        return Checkpoints(self.save_dir)

    def save_networks(self, label: str | int) -> None:
        """Write ``<label>_net_<name>.pth`` for every network: plain CPU state_dicts, official keys."""
        self.checkpoints.save_weights(self.nets, label)

    def load_networks(self, label: str | int, names: list[str] | None = None) -> None:
        """Load ``<label>_net_<name>.pth`` (ours or the official code's) into the networks."""
        self.checkpoints.load_weights(self.nets, label, names)

    # ------------------------------------------------------------------ training state
    def training_state(self) -> dict:
        """Everything needed to resume: weights, optimisers, schedules and the model's extra state."""
        return {
            "nets": {name: cpu_state_dict(net) for name, net in self.nets.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "schedulers": [s.state_dict() for s in self.schedulers],
            "extra": self.extra_state(),
        }

    def load_training_state(self, state: dict, source: str) -> None:
        """Restore weights, optimisers and extra state from :meth:`training_state` (schedules:
        :meth:`restore_schedule`)."""
        for name, net in self.nets.items():
            if name not in state["nets"]:
                raise UserError(f"{source} has no weights for network {name}")
            load_weights(unwrap(net), state["nets"][name], f"{source} [{name}]")
        for name, optimizer in self.optimizers.items():
            if name not in state["optimizers"]:
                raise UserError(f"{source} has no state for optimiser {name}; retrain or use another --model")
            try:
                optimizer.load_state_dict(state["optimizers"][name])
            except ValueError as err:
                raise UserError(f"{source}: the state of optimiser {name} does not fit ({err})") from None
        self.load_extra_state(state.get("extra", {}))

    def restore_schedule(self, epochs_done: int, plateau_states: list[dict] | None = None) -> None:
        """Put every schedule at ``epochs_done`` epochs of the current options' schedule.

        Closed-form policies set ``lr = --lr x factor(epochs_done)``, also when the schedule
        options changed on resume. ``plateau`` follows its metric history, not the epoch: it takes
        ``plateau_states`` (saved by a plateau run) and keeps the optimisers' restored lrs.
        """
        for i, scheduler in enumerate(self.schedulers):
            if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.set_epoch(epochs_done)
            elif plateau_states is not None and i < len(plateau_states):
                scheduler.load_state_dict(plateau_states[i])
