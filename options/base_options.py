"""Options shared by training and testing, in the CycleGAN/pix2pix style.

Modern names come first; the official code's spellings (``--batchSize``, ``--loadSize``,
``--fineSize``, ``--which_model_netG``, ``--nThreads``, ...) are accepted as aliases so that
the paper's command lines run unchanged. The chosen model and dataset add their own options
through ``modify_commandline_options(parser, is_train)``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

import data
import models
from models.networks import INIT_BIAS_CHOICES, INIT_CHOICES, NETD_CHOICES, NETG_CHOICES, NORM_CHOICES
from util import distributed
from util.allocator import configure_malloc
from util.device import configure_backends, default_loader_workers, resolve_device
from util.errors import UserError

from .config import RUN_KEY, apply_config, run_record
from .parser import (
    DefaultsHelpFormatter,
    OneLineParser,
    given_options,
    gpu_ids_text,
    non_negative_int,
    positive_int,
    size_or_inf,
)
from .speed_options import add_speed_options

PREPROCESS_CHOICES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
# Attributes that are derived at run time and never saved with the options.
RUNTIME_KEYS = ("device", "is_train", "gpu_list", "given_options")


class BaseOptions:
    """Build, parse, validate, print and save the options of one run."""

    is_train = False
    phase = "test"  # the default --phase: the data folder suffix

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        g = parser.add_argument_group("experiment")
        g.add_argument(
            "--dataroot",
            help=f"(required) folder holding <phase>A, <phase>B, <phase>C, e.g. data/{self.phase}",
        )
        g.add_argument(
            "--name", default="experiment_name", help="experiment name: checkpoints/<name>/, results/<name>/"
        )
        g.add_argument(
            "--gpu_ids",
            type=gpu_ids_text,
            default="auto",
            help="'auto' (first GPU if any), -1 for the CPU, or e.g. 0 or 0,1",
        )
        g.add_argument("--checkpoints_dir", default="./checkpoints", help="where experiments are saved")
        g.add_argument(
            "--seed", type=int, default=0, help="seed of every random generator (data, init, pool)"
        )
        g.add_argument("--verbose", action="store_true", help="print the networks and more")
        g.add_argument(
            "--suffix", default="", help="appended to --name, may use options: e.g. {model}_{netG}"
        )

        g = parser.add_argument_group("model")
        g.add_argument("--model", default="pix2pix_attn", choices=models.MODEL_NAMES, help="model to use")
        g.add_argument(
            "--input_nc", type=positive_int, default=3, help="bands of the cloudy optical input (A)"
        )
        g.add_argument("--output_nc", type=positive_int, default=3, help="bands of the cloud-free output (B)")
        g.add_argument(
            "--sar_nc", type=positive_int, default=3, help="bands of the SAR image (C); 3 for SAR PNGs"
        )
        g.add_argument(
            "--ngf", type=positive_int, default=64, help="generator filters in the first conv layer"
        )
        g.add_argument(
            "--ndf", type=positive_int, default=64, help="discriminator filters in the first conv layer"
        )
        g.add_argument("--netD", default="basic", choices=NETD_CHOICES, help="discriminator architecture")
        g.add_argument(
            "--netG",
            "--which_model_netG",
            dest="netG",
            default="unet_256",
            choices=NETG_CHOICES,
            help="generator architecture (U-Net depth)",
        )
        g.add_argument(
            "--n_layers_D", type=positive_int, default=3, help="layers of the 'n_layers' discriminator"
        )
        g.add_argument("--norm", default="instance", choices=NORM_CHOICES, help="normalisation layer")
        g.add_argument("--init_type", default="xavier", choices=INIT_CHOICES, help="weight initialisation")
        g.add_argument("--init_gain", type=float, default=1.0, help="gain of the initialisation")
        g.add_argument(
            "--init_bias",
            default="default",
            choices=INIT_BIAS_CHOICES,
            help="conv and linear biases: PyTorch's default initialisation (the official code's) or "
            "zero (the pix2pix authors' init_weights)",
        )
        g.add_argument(
            "--no_dropout",
            dest="no_dropout",
            action="store_true",
            default=True,
            help="no dropout in the generators (the paper's setting; the default)",
        )
        g.add_argument(
            "--dropout", dest="no_dropout", action="store_false", help="use dropout in the U-Net decoders"
        )
        g.add_argument(
            "--conv_bias",
            action="store_true",
            help="give every U-Net convolution a bias (the official networks have none; "
            "their weight files then no longer load)",
        )

        g = parser.add_argument_group("data")
        g.add_argument(
            "--dataset_mode",
            default="triplet",
            choices=data.DATASET_CHOICES,
            help="dataset: 'triplet' (alias 'unaligned_sar', the official name) reads PNG triplets, "
            "'simcloud' adds simulated clouds to cloud-free images on the fly, "
            "'sen12mscr' reads the native SEN12MS-CR GeoTIFF tree (multispectral)",
        )
        g.add_argument(
            "--phase",
            default=self.phase,
            help="train, val, test, ...: the data folder suffix (<phase>A, ...)",
        )
        g.add_argument("--serial_batches", action="store_true", help="take images in order, do not shuffle")
        g.add_argument(
            "--num_threads",
            "--nThreads",
            dest="num_threads",
            type=non_negative_int,
            default=None,
            help="data-loading worker processes (0: load in the main process); default: 4, or the "
            "number of CPU cores if fewer, but 0 for a run on a CPU of at most 2 cores (workers would "
            "take the cores the networks compute on)",
        )
        g.add_argument(
            "--batch_size",
            "--batchSize",
            dest="batch_size",
            type=positive_int,
            default=1,
            help="images per batch and process: under torchrun the global batch is N processes x this",
        )
        g.add_argument(
            "--load_size",
            "--loadSize",
            dest="load_size",
            type=positive_int,
            default=286,
            help="scale images to this size first",
        )
        g.add_argument(
            "--crop_size",
            "--fineSize",
            dest="crop_size",
            type=positive_int,
            default=256,
            help="then crop to this size",
        )
        g.add_argument(
            "--max_dataset_size",
            type=size_or_inf,
            default=float("inf"),
            help="use at most this many samples ('inf': all)",
        )
        g.add_argument(
            "--preprocess",
            default="resize_and_crop",
            choices=PREPROCESS_CHOICES,
            help="scaling and cropping at load time",
        )
        g.add_argument("--no_flip", action="store_true", help="no random horizontal flip")
        g.add_argument(
            "--flip",
            dest="no_flip",
            action="store_false",
            help="random horizontal flips, where the model's data settings turn them off",
        )
        g.add_argument(
            "--rot90",
            action="store_true",
            help="training: also rotate each sample by a random multiple of 90 degrees (square crops)",
        )
        g.add_argument(
            "--display_winsize", type=positive_int, default=256, help="image size on visdom and HTML pages"
        )

        add_speed_options(parser)

        g = parser.add_argument_group("checkpoint")
        g.add_argument(
            "--epoch",
            "--which_epoch",
            dest="epoch",
            default="latest",
            help="which checkpoint to load: 'latest' or an epoch number",
        )
        g.add_argument(
            "--load_iter",
            type=non_negative_int,
            default=0,
            help="if > 0, load the checkpoint saved at this iteration (iter_<n>) instead of --epoch",
        )
        return parser

    # ------------------------------------------------------------------ parsing
    def build_parser(self, argv: list[str] | None) -> OneLineParser:
        """The full parser: base options, then those of the chosen model and dataset."""
        # --help is added last, so that it lists the model's and the dataset's options too.
        parser = OneLineParser(prog=self.prog, formatter_class=DefaultsHelpFormatter, add_help=False)
        config = self.config_defaults(argv)
        # The defaults a saved configuration replaces, for marking what this run changed.
        self.replaced_defaults: dict = {}

        def stage(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
            if config:
                for key in config:
                    if key not in self.replaced_defaults and hasattr(parser.parse_known_args([])[0], key):
                        self.replaced_defaults[key] = parser.get_default(key)
                apply_config(parser, config)
            return parser

        parser = stage(self.initialize(parser))
        known, _ = parser.parse_known_args(argv)
        parser = stage(models.get_option_setter(known.model)(parser, self.is_train))
        known, _ = parser.parse_known_args(argv)
        dataset_setter = data.get_option_setter(known.dataset_mode)
        parser = dataset_setter(parser, self.is_train)
        # The model's data settings (its authors' crops, flips, SAR clipping) replace the dataset's
        # defaults; options this dataset does not have are left out; command-line flags still win.
        dests = {action.dest for action in parser._actions}
        wanted = models.find_model_using_name(known.model).data_defaults(self.is_train)
        parser.set_defaults(**{k: v for k, v in wanted.items() if k in dests})
        parser = stage(parser)  # a saved configuration over both; the command line over all
        parser.add_argument("-h", "--help", action="help", help="show this message and exit")
        return parser

    def config_defaults(self, argv: list[str] | None) -> dict:
        """Saved option values that replace the parser's defaults (training: ``--config``)."""
        return {}

    prog = "cloud-removal"

    def parse(
        self, argv: list[str] | None = None, *, save: bool = True, show: bool = True
    ) -> argparse.Namespace:
        """Parse, check and set up one run; ``show`` prints the options and ``save`` writes them
        (both can wait for :meth:`announce`, once the run's data and model are known to be usable)."""
        parser = self.parser = self.build_parser(argv)
        opt = parser.parse_args(argv)
        opt.is_train = self.is_train
        changed = given_options(parser, argv, saved_options(opt))
        self.check_given(opt, changed)
        defaults = {key: parser.get_default(key) for key in changed}
        defaults.update({k: v for k, v in self.replaced_defaults.items() if k not in changed})
        opt.given_options = defaults
        if opt.suffix:
            opt.name = f"{opt.name}_{opt.suffix.format(**vars(opt))}"
        self.finalize(opt)
        self.validate(opt)
        opt.device, opt.gpu_list = self.choose_device(opt, sys.argv[1:] if argv is None else list(argv))
        if opt.num_threads is None:
            opt.num_threads = default_loader_workers(opt.device)
        configure_backends(opt.device, tf32=opt.tf32, cudnn_benchmark=opt.cudnn_benchmark)
        configure_malloc(opt.malloc)
        seed_everything(opt.seed)
        if show:
            self.print_options(opt, parser)
        if save:
            self.save_options(opt, parser)
        return opt

    def check_given(self, opt: argparse.Namespace, given: set[str]) -> None:
        """Refuse options given on the command line (``given``) that contradict saved ones (testing:
        the trained model's architecture)."""
        return None

    def announce(self, opt: argparse.Namespace) -> None:
        """Print and save the options of a run parsed with ``show=False, save=False``."""
        self.print_options(opt, self.parser)
        self.save_options(opt, self.parser)

    def choose_device(self, opt: argparse.Namespace, argv: list[str]) -> tuple[torch.device, list[int]]:
        """The device for ``--gpu_ids`` and the GPU indices used (training: one per process)."""
        if distributed.place().world_size > 1:
            raise UserError(
                f"{self.prog} runs as one process: start it with python, not with torchrun "
                "(only train.py is distributed)"
            )
        return resolve_device(opt.gpu_ids)

    def finalize(self, opt: argparse.Namespace) -> None:
        """Derived values (subclasses and models may extend)."""
        opt.dataset_mode = data.canonical_name(opt.dataset_mode)
        # A dataset may derive options from its own (e.g. sen12mscr: --input_nc from --s2_bands).
        data.find_dataset_using_name(opt.dataset_mode).finalize_options(opt)

    def validate(self, opt: argparse.Namespace) -> None:
        """Reject missing or contradictory options with one clear message each."""
        if not opt.dataroot:
            raise UserError("--dataroot is required: the folder holding the image folders (e.g. data/train)")
        model_class = models.find_model_using_name(opt.model)
        side = model_class.size_multiple(opt)
        crops = opt.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop")
        if opt.preprocess in ("resize_and_crop", "scale_width_and_crop") and opt.crop_size > opt.load_size:
            raise UserError(
                f"--crop_size {opt.crop_size} is larger than --load_size {opt.load_size}; "
                "make the crop smaller or the load size larger"
            )
        if crops and opt.crop_size % side:
            setter, remedy = model_class.size_rule(opt)
            raise UserError(
                f"{setter} needs image sides divisible by {side}, but --crop_size is "
                f"{opt.crop_size}; use a crop of {max(side, opt.crop_size // side * side)} or {remedy}"
            )
        if opt.epoch != "latest" and not str(opt.epoch).isdigit():
            raise UserError(f"--epoch {opt.epoch!r}: expected 'latest' or an epoch number")

    # ------------------------------------------------------------------ reporting
    @staticmethod
    def format_options(opt: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
        """Every option; those this run changed (on the command line or by ``--config``) are marked
        with their default. Values the program derives itself are not marked."""
        changed = getattr(opt, "given_options", {})
        lines = ["----------------- Options ---------------"]
        for key, value in sorted(saved_options(opt).items()):
            default = changed.get(key, value)
            note = f"\t[default: {default}]" if key in changed and value != default else ""
            lines.append(f"{key:>25}: {value!s:<30}{note}")
        lines.append("----------------- End -------------------")
        return "\n".join(lines)

    def print_options(self, opt: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
        print(self.format_options(opt, parser))

    def options_dir(self, opt: argparse.Namespace) -> Path:
        return Path(opt.checkpoints_dir) / opt.name

    def save_options(self, opt: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
        """``<phase>_opt.txt`` (human) and ``<phase>_opt.json`` (machine) in :meth:`options_dir`."""
        folder = self.options_dir(opt)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            stem = folder / f"{opt.phase}_opt"
            stem.with_suffix(".txt").write_text(self.format_options(opt, parser) + "\n")
            record = {**saved_options(opt), RUN_KEY: run_record(getattr(opt, "device", None), self.prog)}
            stem.with_suffix(".json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        except OSError as err:
            raise UserError(
                f"cannot write the options to {folder}: {err.strerror or err}; "
                "choose a writable --checkpoints_dir/--results_dir"
            ) from None


def saved_options(opt: argparse.Namespace) -> dict:
    """The options as plain JSON-able data, without run-time values such as the device."""
    out = {}
    for key, value in vars(opt).items():
        if key in RUNTIME_KEYS:
            continue
        if isinstance(value, float) and not np.isfinite(value):
            value = str(value)  # JSON has no infinity
        out[key] = value if isinstance(value, (str, int, float, bool, type(None), list)) else str(value)
    return out


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
