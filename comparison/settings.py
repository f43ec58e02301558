"""The settings of a comparison, and what each model's options say about its training.

- ``smoke``: tiny networks on 32-px crops, a few images: proves the pipeline (tests use it).
- ``light``: the demo's network sizes (U-Net depth 7 with 32 filters for the U-Net models, each
  model lightened by its ``light_flags``), 128-px crops of the 256-px images, batch 4, 3200
  training images per model; finishes on the demo data on a 2-core CPU.
- ``paper``: every model as its authors trained it: its defaults and its authors' published
  command (``script_flags``): its own optimiser, schedule, batch size, number of epochs and data
  settings.
- ``zhang2023``: the conditions of Zhang et al.'s comparison table: ``paper`` plus each model's
  ``zhang_flags`` (their own implementations' settings where they differ from the authors'), for
  the four baselines of their table and their model.

``smoke`` and ``light`` are equal budgets: every model sees the same number of training images in
the same batch size; each keeps its own optimiser, learning rate and its authors' schedule shape
(``script_flags`` and defaults: constant and decaying parts, step interval) compressed to the
budget's epochs
(:func:`models.networks.compress_schedule`). ``--images`` makes any setting an equal budget.
"""

from __future__ import annotations

import argparse
import contextlib
import io

import models
from models.networks import compress_schedule
from options.test_options import TestOptions, resolve_test_mode
from options.train_options import TrainOptions

# Columns of the paper's figure, left to right; ours last before the ground truth.
PAPER_ORDER = ("pix2pix", "sar_opt_cgan", "sf_gan", "glf_cr", "dsen2cr", "uncrtaints", "pix2pix_attn")
# Zhang et al. compare four baselines; DSen2-CR and UnCRtainTS are our additions.
ZHANG_TABLE = ("pix2pix", "sar_opt_cgan", "sf_gan", "glf_cr", "pix2pix_attn")
OUR_ADDITIONS = ("dsen2cr", "uncrtaints")
LABELS = {
    "pix2pix": "pix2pix",
    "sar_opt_cgan": "SAR-opt-cGAN",
    "sf_gan": "SF-GAN",
    "glf_cr": "GLF-CR",
    "dsen2cr": "DSen2-CR (our addition)",
    "uncrtaints": "UnCRtainTS (our addition)",
    "pix2pix_attn": "ours (attention GAN)",
}
OURS = "pix2pix_attn"

_SMALL = ["--netG", "unet_32", "--ngf", "4", "--ndf", "4", "--load_size", "32", "--crop_size", "32"]
SETTINGS = {
    "smoke": {
        "train": _SMALL,
        "test": _SMALL,
        "model_flags": ("script_flags", "tiny_flags"),
        "images": 4,
        "batch_size": 1,
    },
    "light": {
        "train": [
            "--netG",
            "unet_128",
            "--ngf",
            "32",
            "--ndf",
            "32",
            "--preprocess",
            "crop",
            "--crop_size",
            "128",
        ],
        "test": ["--netG", "unet_128", "--ngf", "32", "--ndf", "32"],
        "model_flags": ("script_flags", "light_flags"),
        "images": 3200,
        "batch_size": 4,
    },
    "paper": {"train": [], "test": [], "model_flags": ("script_flags",), "images": None, "batch_size": None},
    "zhang2023": {
        "train": [],
        "test": [],
        "model_flags": ("script_flags", "zhang_flags"),
        "images": None,
        "batch_size": None,
        "models": ZHANG_TABLE,
    },
}
# Options recorded with each row: what its data looked like and how it was trained.
DATA_KEYS = ("dataset_mode", "preprocess", "load_size", "crop_size", "no_flip", "rot90", "sar_scaling")
SCHEDULE_KEYS = ("lr", "beta1", "lr_policy", "n_epochs", "n_epochs_decay", "lr_decay_iters", "lr_decay_gamma")


def label(model: str) -> str:
    return LABELS.get(model, model)


def model_flags(model: str, setting: str) -> list[str]:
    """The setting's flags for ``model`` (its ``tiny_flags``, ``script_flags``, ... in order)."""
    cls = models.find_model_using_name(model)
    return [flag for attr in SETTINGS[setting]["model_flags"] for flag in getattr(cls, attr)]


def parsed_options(argv: list[str], *, is_train: bool) -> argparse.Namespace:
    """The options ``argv`` gives (model, dataset and the model's data defaults applied), unvalidated."""
    options = TrainOptions() if is_train else TestOptions()
    with contextlib.redirect_stdout(io.StringIO()):
        return options.build_parser(argv).parse_args(argv)


def test_flags(flags: list[str], argv_head: list[str]) -> list[str]:
    """``flags`` without the options test.py does not have (training options and their values)."""
    known = {s for a in parsed_parser(argv_head)._actions for s in a.option_strings}
    out, skipping = [], False
    for flag in flags:
        if flag.startswith("--"):
            skipping = flag not in known
        if not skipping:
            out.append(flag)
    return out


def parsed_parser(argv: list[str]):
    with contextlib.redirect_stdout(io.StringIO()):
        return TestOptions().build_parser(argv)


def training_schedule(opt: argparse.Namespace, epochs: int | None) -> dict:
    """The model's schedule from its options; compressed to ``epochs`` when given."""
    schedule = {k: getattr(opt, k) for k in SCHEDULE_KEYS}
    if epochs is not None and schedule["lr_policy"] != "plateau":
        schedule.update(
            compress_schedule(
                n_epochs=opt.n_epochs,
                n_epochs_decay=opt.n_epochs_decay,
                lr_decay_iters=opt.lr_decay_iters,
                epochs=epochs,
            )
        )
    return schedule


def schedule_flags(schedule: dict) -> list[str]:
    keys = ("lr_policy", "n_epochs", "n_epochs_decay", "lr_decay_iters")
    return [item for k in keys for item in (f"--{k}", str(schedule[k]))]


def row_options(train_argv: list[str], test_argv: list[str], model: str) -> dict:
    """What a row ran: its data settings in training and testing, and its test mode."""
    train = parsed_options(train_argv, is_train=True)
    test = parsed_options(test_argv, is_train=False)
    test_data = {k: getattr(test, k, None) for k in DATA_KEYS if k not in ("no_flip", "rot90")}
    if test_data["load_size"] is None:
        test_data["load_size"] = test.crop_size  # test.py: whole images, no rescaling
    return {
        "train_data": {k: getattr(train, k, None) for k in DATA_KEYS},
        "test_data": test_data,
        "test_mode": resolve_test_mode(model, test.test_mode),
        "batch_size": train.batch_size,
    }
