"""Training options: display, saving, schedule and optimiser."""

from __future__ import annotations

import argparse
import json

import torch

import models
from models.checkpoint import Checkpoints
from models.networks import GAN_MODES, LR_POLICIES
from util import distributed
from util.errors import UserError

from .base_options import BaseOptions
from .config import config_path, read_config, unused_config_keys
from .parser import non_negative_int, positive_int


class TrainOptions(BaseOptions):
    is_train = True
    phase = "train"
    prog = "train.py"

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = super().initialize(parser)
        parser.add_argument(
            "--config",
            default=None,
            help="run again with the options saved in a train_opt.json (e.g. "
            "checkpoints/<name>/train_opt.json); options on the command line override it",
        )
        g = parser.add_argument_group("display")
        g.add_argument("--display_freq", type=positive_int, default=400, help="show results every N images")
        g.add_argument("--display_ncols", type=non_negative_int, default=4, help="images per row on visdom")
        g.add_argument("--display_id", type=int, default=1, help="visdom window id; 0 or less: no visdom")
        g.add_argument("--display_server", default="http://localhost", help="visdom server")
        g.add_argument("--display_env", default="main", help="visdom environment (default: main)")
        g.add_argument("--display_port", type=positive_int, default=8097, help="visdom port")
        g.add_argument(
            "--update_html_freq", type=positive_int, default=1000, help="save images to HTML every N images"
        )
        g.add_argument("--print_freq", type=positive_int, default=100, help="print losses every N images")
        g.add_argument("--no_html", action="store_true", help="do not write checkpoints/<name>/web/")
        g.add_argument(
            "--display_retry_interval",
            type=float,
            default=60.0,
            help="seconds between attempts to reach an unreachable visdom server",
        )
        g = parser.add_argument_group("loggers (optional, beside visdom)")
        g.add_argument(
            "--use_tensorboard",
            action="store_true",
            help="log losses, learning rates and images to TensorBoard (pip install tensorboard)",
        )
        g.add_argument(
            "--tensorboard_dir",
            default="",
            help="TensorBoard log folder (default: checkpoints/<name>/tensorboard)",
        )
        g.add_argument("--use_wandb", action="store_true", help="log to Weights & Biases (pip install wandb)")
        g.add_argument("--wandb_project_name", default="SAR-cloud-removal", help="W&B project")
        g.add_argument(
            "--wandb_mode",
            default=None,
            choices=("online", "offline", "disabled"),
            help="W&B mode; offline needs no network (default: $WANDB_MODE, else online)",
        )

        g = parser.add_argument_group("saving")
        g.add_argument(
            "--save_latest_freq", type=positive_int, default=5000, help="save 'latest' every N images"
        )
        g.add_argument(
            "--save_epoch_freq", type=positive_int, default=5, help="save <epoch>_net_*.pth every N epochs"
        )
        g.add_argument(
            "--save_budget",
            type=float,
            default=0.1,
            help="at most this fraction of the training time goes to the end-of-epoch 'latest' "
            "training state: it is skipped while the time since the last save is under (1 - f) / f "
            "times that save's duration. Epoch weights (--save_epoch_freq), mid-epoch checkpoints "
            "(--save_latest_freq) and the last epoch are always saved; 1 saves after every epoch",
        )
        g.add_argument("--save_by_iter", action="store_true", help="also keep iter_<n> checkpoints")
        g.add_argument(
            "--continue_train",
            nargs="?",
            const=True,
            default=False,
            choices=("auto",),
            help="resume from the saved training state (or, without one, the newest epoch weights); "
            "'auto': resume when the experiment holds a checkpoint, start afresh otherwise (the same "
            "command line for a requeued or restarted job)",
        )
        g.add_argument(
            "--epoch_count",
            type=positive_int,
            default=1,
            help="first epoch number (set automatically on --continue_train)",
        )

        g = parser.add_argument_group("schedule")
        g.add_argument(
            "--n_epochs",
            "--niter",
            dest="n_epochs",
            type=non_negative_int,
            default=100,
            help="epochs at the initial learning rate",
        )
        g.add_argument(
            "--n_epochs_decay",
            "--niter_decay",
            dest="n_epochs_decay",
            type=non_negative_int,
            default=100,
            help="epochs of decay after that",
        )
        g.add_argument("--beta1", type=float, default=0.5, help="Adam momentum term")
        g.add_argument("--lr", type=float, default=0.0002, help="initial Adam learning rate")
        g.add_argument("--gan_mode", default="lsgan", choices=GAN_MODES, help="GAN objective")
        g.add_argument(
            "--pool_size", type=non_negative_int, default=50, help="image pool size for the discriminator"
        )
        g.add_argument(
            "--lr_policy",
            default="linear",
            choices=LR_POLICIES,
            help="learning-rate policy ('lambda' is the old name of 'linear')",
        )
        g.add_argument(
            "--lr_decay_iters",
            type=positive_int,
            default=50,
            help="'step' policy: x --lr_decay_gamma every N epochs",
        )
        g.add_argument(
            "--lr_decay_gamma",
            type=float,
            default=0.1,
            help="'step' policy: the factor applied every --lr_decay_iters epochs",
        )
        g.add_argument(
            "--optimizer_impl",
            default="auto",
            choices=("auto", "fused", "foreach", "default"),
            help="implementation of the optimisers' update: 'fused' (one kernel per parameter group), "
            "'foreach' (batched tensor lists), 'default' (what PyTorch picks: a per-parameter loop on the "
            "CPU, as the official code ran), 'auto' (fused where the device supports it). The same "
            "algorithm; results agree up to float rounding",
        )
        g.add_argument(
            "--train_step",
            default="fast",
            choices=("fast", "official"),
            help="how a model back-propagates and steps: 'official' runs the official code's "
            "backward passes, then steps each optimiser; 'fast' back-propagates the sum of the same "
            "losses once and updates each parameter as soon as its gradient is complete (the same "
            "gradients up to float rounding; less memory). See the model's optimize_parameters",
        )
        g.add_argument(
            "--nonfinite",
            default="stop",
            choices=("stop", "skip"),
            help="on a NaN/infinite loss: 'stop' training (exit 2, the last checkpoint kept) or "
            "'skip' that iteration's optimiser steps with a warning and go on",
        )
        return parser

    def finalize(self, opt: argparse.Namespace) -> None:
        super().finalize(opt)
        if opt.continue_train == "auto":
            # Every process decides before any writes: a training state appears only in a
            # collective save, which needs every process past this point.
            opt.continue_train = Checkpoints(self.options_dir(opt)).resumable(opt)
            if not opt.continue_train:
                print(f"--continue_train auto: nothing to resume in {self.options_dir(opt)}, starting afresh")

    def validate(self, opt: argparse.Namespace) -> None:
        super().validate(opt)
        if opt.n_epochs + opt.n_epochs_decay < 1:
            raise UserError("--n_epochs plus --n_epochs_decay must be at least 1")
        if opt.lr <= 0:
            raise UserError(f"--lr must be positive, got {opt.lr}")
        if not 0 < opt.save_budget <= 1:
            raise UserError(f"--save_budget must be in (0, 1], got {opt.save_budget}")
        if not 0 < opt.lr_decay_gamma <= 1:
            raise UserError(f"--lr_decay_gamma must be in (0, 1], got {opt.lr_decay_gamma}")
        if not opt.display_retry_interval >= 0:
            raise UserError(
                f"--display_retry_interval must be 0 or more seconds, got {opt.display_retry_interval}"
            )

    def choose_device(self, opt: argparse.Namespace, argv: list[str]) -> tuple[torch.device, list[int]]:
        """One device per process: under torchrun the node's ``LOCAL_RANK``-th GPU of ``--gpu_ids``;
        several GPUs without torchrun stop with the torchrun command (see :mod:`util.distributed`)."""
        return distributed.training_device(opt.gpu_ids, argv)

    def config_defaults(self, argv: list[str] | None) -> dict:
        path = config_path(argv)
        return read_config(path) if path else {}

    def announce(self, opt: argparse.Namespace) -> None:
        config = self.config_defaults(None if opt.config is None else ["--config", opt.config])
        unused = unused_config_keys(self.parser, config)
        if unused:
            print(f"warning: --config {opt.config}: not options of this run, ignored: {', '.join(unused)}")
        super().announce(opt)

    def save_options(self, opt: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
        """Refuse before anything is written if this run would clobber or misread an earlier one.

        Every process of a distributed run checks; rank 0 alone writes."""
        self.check_start(opt)
        if distributed.is_main():
            super().save_options(opt, parser)

    def check_start(self, opt: argparse.Namespace) -> None:
        """Refuse a run that would clobber or misread an earlier one, before anything is written."""
        folder = self.options_dir(opt)
        Checkpoints(folder).check_start(opt)
        saved = folder / "train_opt.json"
        if opt.continue_train and saved.is_file():
            try:
                previous = json.loads(saved.read_text())
            except (OSError, ValueError):
                previous = {}
            own = models.find_model_using_name(opt.model).architecture_options
            Checkpoints.check_compatible(previous, opt, str(saved), own)
