"""The contract every model follows, and what they share: setup, schedules, save/load, visuals.

A model keeps its networks in ``self.nets`` (name -> module; files ``<label>_net_<name>.pth``),
its optimisers in ``self.optimizers`` (same names), the last losses in ``self.losses`` and the
last images in ``self.visuals``. ``loss_names`` and ``visual_names`` declare what is reported;
they are checked against what the model actually computes the first time they are read.

Under ``torchrun`` (see :mod:`util.distributed`) the networks in ``self.nets`` are wrapped in
DistributedDataParallel after set-up, which averages gradients over the processes once per forward
pass: call backward once per iteration and network (sum the losses first), reach networks through
``self.nets`` only, and keep the order of collectives the same on every rank (every rank runs
the same forward passes; :meth:`BaseModel.nonfinite_losses` answers the same on every rank).

Every model declares its :class:`Roles` (which inputs it reads, which visual is its output, which
are SAR images or attention maps, and the page order) and implements one pure inference method,
:meth:`BaseModel.infer` ``(cloudy, sar) -> {output and named extras}``. Training, ``test.py``
and whole-scene inference all go through it; pages, metrics and previews read the roles instead
of naming one model's visuals.
"""

from __future__ import annotations

import argparse
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from util import distributed
from util.device import AMP_DTYPES
from util.errors import UserError

from .checkpoint import Checkpoints
from .declaration import TEST_MODES, ModelDeclaration
from .networks import get_scheduler
from .networks.init import draws_random_numbers
from .optimization import allocate_states, backward_and_step, build_optimizer
from .roles import BAND_OPTIONS, INPUT_VISUALS, Roles  # noqa: F401 (Roles: part of the contract)
from .weight_sets import load_weight_file
from .weights import cpu_state_dict, load_weights, unwrap


class BaseModel(ModelDeclaration, ABC):
    """Subclasses fill ``nets``, ``optimizers``, ``loss_names`` and ``visual_names`` in ``__init__``,
    set ``roles`` and implement :meth:`infer` (and :meth:`optimize_parameters` for training); what
    they declare about themselves (flags, data settings, test mode) is :class:`ModelDeclaration`'s."""

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
        self.outputs: dict[str, torch.Tensor] = {}
        self.real_A: torch.Tensor | None = None
        self.real_B: torch.Tensor | None = None
        self.real_C: torch.Tensor | None = None
        # Names of the non-finite losses of the last iteration, whose optimiser steps were then
        # skipped; empty when every optimiser stepped (see optimize_parameters).
        self.skipped_step: list[str] = []
        # Mixed precision (--amp) is off for the faithful model: forward passes run under
        # autocast() in this dtype; float16 training scales its losses (GradScaler).
        self.amp_dtype: torch.dtype | None = AMP_DTYPES[getattr(opt, "amp", "off")]
        self.grad_scaler: torch.amp.GradScaler | None = None
        if self.is_train and self.amp_dtype == torch.float16:
            self.grad_scaler = torch.amp.GradScaler(self.device.type)
        self.channels_last = bool(getattr(opt, "channels_last", False))

    # ------------------------------------------------------------------ contract
    def band_counts(self) -> dict[str, int]:
        """Bands of each batch entry: 'A' cloudy, 'B' cloud-free, 'C' SAR."""
        return {"A": self.opt.input_nc, "B": self.opt.output_nc, "C": self.opt.sar_nc}

    def set_input(self, batch: dict) -> None:
        """Unpack a batch: 'A' (B, input_nc, H, W), 'C' (B, sar_nc, H, W) and, where there is a ground
        truth, 'B' (B, output_nc, H, W), all in [-1, 1]; check band counts and sizes; move to the device.

        'B' is required for training only: inference on real cloudy scenes has no cloud-free image.
        """
        needed = ["A", "B"] if self.is_train else ["A"]
        if self.roles.uses_sar:
            needed.append("C")
        lacking = [k for k in needed if batch.get(k) is None]
        if lacking:
            names = {"A": "cloudy", "B": "cloud-free", "C": "SAR"}
            raise UserError(
                f"model {self.opt.model} needs the {', '.join(names[k] for k in lacking)} image(s), "
                "which the data does not give"
            )
        side = self.size_multiple(self.opt)
        expected = self.band_counts()
        for key in ("A", "B", "C"):
            t = batch.get(key)
            if t is None:
                setattr(self, INPUT_VISUALS[key], None)
                continue
            if t.shape[1] != expected[key]:
                raise UserError(
                    f"{BAND_OPTIONS[key]} is {expected[key]} but the data gives {t.shape[1]} band(s) for {key}"
                )
            h, w = t.shape[-2:]
            if h % side or w % side:
                setter, remedy = self.size_rule(self.opt)
                raise UserError(
                    f"images of {w}x{h} do not fit model {self.opt.model} ({setter}): sides must "
                    f"be multiples of {side}; change --crop_size/--preprocess or use {remedy}"
                )
            t = t.to(self.device, non_blocking=True)
            if self.channels_last:
                t = t.contiguous(memory_format=torch.channels_last)
            setattr(self, INPUT_VISUALS[key], t)
        self.image_paths = list(batch.get("A_paths", []))

    @abstractmethod
    def infer(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The model's mapping, and nothing else: no state is kept.

        ``cloudy`` (B, input_nc, H, W) and ``sar`` (B, sar_nc, H, W) in [-1, 1] (``sar`` is None when
        ``roles.uses_sar`` is False) -> a dict holding ``roles.output`` (B, output_nc, H, W) in [-1, 1]
        and any named extras (e.g. attention maps in [0, 1]). Gradients flow when the caller allows them.
        """

    def forward(self) -> dict[str, torch.Tensor]:
        """Run :meth:`infer` on the current input; keep its result in ``self.outputs`` and return (and
        keep in ``self.visuals``) the inputs and outputs by visual name."""
        self.outputs = self.infer(self.real_A, self.real_C if self.roles.uses_sar else None)
        inputs = {"real_A": self.real_A, "real_B": self.real_B, "real_C": self.real_C}
        self.visuals = {
            **{k: v for k, v in inputs.items() if v is not None},
            **self.outputs,
        }
        return self.visuals

    def infer_draws_random_numbers(self) -> bool:
        """Whether :meth:`infer`, the networks in their current mode, draws random numbers (dropout
        while training, see :func:`models.networks.init.draws_random_numbers`). A model whose
        ``infer`` draws any itself (noise inputs) must say so here: test.py then keeps the
        random initialisation, whose draws those follow."""
        return any(draws_random_numbers(net) for net in self.nets.values())

    def predict(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """:meth:`infer` for inference: no gradients, nothing kept on the model."""
        with torch.inference_mode():
            return self.infer(cloudy, sar if self.roles.uses_sar else None)

    @abstractmethod
    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        """One training iteration; return (and keep in ``self.losses``) the named losses.

        A model that checks :meth:`nonfinite_losses` before stepping sets ``self.skipped_step``
        and steps nothing; ``train.py --nonfinite skip`` needs that.
        """

    @staticmethod
    def nonfinite_losses(losses: dict[str, torch.Tensor]) -> list[str]:
        """Names of the losses that are NaN or infinite (one device sync).

        In a distributed run, the names of those non-finite on any rank: every rank then takes
        the same decision (step, or skip the step), as its gradient all-reduces require.
        """
        bad = torch.stack([~torch.isfinite(v.detach().float()).all() for v in losses.values()])
        bad = distributed.any_over_ranks(bad)
        return [name for name, b in zip(losses, bad.tolist()) if b]

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
                    lr_decay_gamma=opt.lr_decay_gamma,
                )
                for optimizer in self.optimizers.values()
            ]
        if not self.is_train:
            if getattr(opt, "weights", None):  # a weight file from outside (test.py/predict.py --weights)
                load_weight_file(self.nets, opt.weights, opt.model)
            else:
                self.load_networks(Checkpoints.selected_label(opt))
        if self.channels_last:
            for net in self.nets.values():
                net.to(memory_format=torch.channels_last)
        self.print_networks(opt.verbose)

    # ------------------------------------------------------------------ optimisation
    def make_optimizer(
        self, params: Iterable, optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam, **kwargs
    ) -> torch.optim.Optimizer:
        """``optimizer_class(params, **kwargs)`` in the implementation ``--optimizer_impl`` selects.

        Every model builds its optimisers here. 'fused' and 'foreach' compute the same update as
        'default' (PyTorch's choice: a loop over the parameters on the CPU, the official code's
        path) in fewer, larger kernels; the order of float operations differs, so the results agree
        to rounding (a one-step update within ~1e-7 relative, tested), not bit for bit. 'auto' is
        'fused' where this optimiser and device support it, else 'default'.
        """
        impl = getattr(self.opt, "optimizer_impl", "default")
        return build_optimizer(optimizer_class, list(params), impl, self.device.type, **kwargs)

    def allocate_optimizer_states(self) -> int:
        """Create the optimisers' states now, before the first training step (train.py calls this
        after resuming); see :func:`models.optimization.allocate_states`. Returns their count."""
        return sum(allocate_states(optimizer) for optimizer in self.optimizers.values())

    def backward_and_step(self, loss: torch.Tensor, names: Sequence[str]) -> None:
        """Back-propagate ``loss``, the whole objective of the optimisers ``names`` in this
        iteration (one backward pass), and step them; see :func:`models.optimization.backward_and_step`.
        ``--train_step fast`` steps each parameter inside the pass; ``official``, float16 training
        and distributed training (gradients averaged at the end of the pass) step after it."""
        backward_and_step(
            loss,
            [self.optimizers[n] for n in names],
            grad_scaler=self.grad_scaler,
            inside=getattr(self.opt, "train_step", "official") == "fast" and not self.is_distributed,
        )

    @property
    def is_distributed(self) -> bool:
        """Whether this run trains over several processes (torchrun, DistributedDataParallel)."""
        return distributed.world_size() > 1

    def finish_iteration(self) -> None:
        """End of an iteration's updates: the float16 gradient scaler adapts its scale."""
        if self.grad_scaler is not None:
            self.grad_scaler.update()

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

    def apply_test_mode(self, mode: str) -> None:
        """Put the networks in the mode ``mode`` ("train" or "eval", see ``test_mode``) tests them in:
        "eval" every network; "train" every network in training mode but those of ``eval_at_test``,
        which run at test as they ran when the others were trained."""
        if mode not in TEST_MODES:
            raise ValueError(f"unknown test mode {mode!r}; choose one of {', '.join(TEST_MODES)}")
        if mode == "eval":
            self.eval()
            return
        self.train()
        for name in self.eval_at_test:
            self.nets[name].eval()

    def test(self) -> dict[str, torch.Tensor]:
        """Forward pass without gradients or autograd bookkeeping (``inference_mode``), for test.py:
        the visuals are inference tensors (read them; do not train on them)."""
        with torch.inference_mode():
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
        """The declared visuals in ``visual_names`` order (inputs the data did not give are left out)."""
        missing = [n for n in self.visual_names if n not in self.visuals and n not in INPUT_VISUALS.values()]
        if missing:
            raise KeyError(
                f"{type(self).__name__}: visual name(s) {missing} are not produced; it produces {list(self.visuals)}"
            )
        return {name: self.visuals[name] for name in self.visual_names if name in self.visuals}

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
            **({"grad_scaler": self.grad_scaler.state_dict()} if self.grad_scaler is not None else {}),
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
        if self.grad_scaler is not None and "grad_scaler" in state:
            self.grad_scaler.load_state_dict(state["grad_scaler"])

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
