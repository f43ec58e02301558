"""A trained model for whole-scene inference: its saved options, its weights, its forward function.

The model's configuration (bands, widths, U-Net depth, SAR scaling) is read from the experiment's
``train_opt.json``, so no training flag is repeated; the model is used through its contract
(:class:`models.base_model.BaseModel`): ``predict(cloudy, sar)`` returns a dict holding
``roles.output``, and ``size_multiple(opt)`` gives the multiple window sides must be of.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch

import data
import models
from options.test_options import TestOptions
from util.device import resolve_device
from util.errors import UserError

PNG_DATASETS = ("triplet", "simcloud")  # trained on 8-bit PNGs, not on Sentinel GeoTIFFs


def load_options(checkpoints_dir: str | Path, name: str) -> argparse.Namespace:
    """The training options of experiment ``name`` on top of today's defaults (for older files)."""
    folder = Path(checkpoints_dir) / name
    if not folder.is_dir():
        raise UserError(f"no experiment {folder}; check --name and --checkpoints_dir")
    path = folder / "train_opt.json"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"{path} is missing: predict.py reads the model's configuration from it (train.py writes it)"
        ) from None
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if not isinstance(saved, dict):
        raise UserError(f"{path} does not hold a JSON object of options")
    argv = ["--model", str(saved.get("model", "pix2pix_attn"))]
    if saved.get("dataset_mode") in data.DATASET_CHOICES:
        argv += ["--dataset_mode", saved["dataset_mode"]]
    try:
        defaults = vars(TestOptions().build_parser(argv).parse_args(argv))
    except SystemExit:
        raise UserError(
            f"{path} names a model or dataset this code does not have ({' '.join(argv)})"
        ) from None
    return argparse.Namespace(**{**defaults, **saved})


def png_warning(opt: argparse.Namespace, name: str) -> str | None:
    """A warning when experiment ``name`` was trained on 8-bit PNGs rather than Sentinel GeoTIFFs."""
    if getattr(opt, "dataset_mode", None) not in PNG_DATASETS:
        return None
    return (
        f"experiment {name} was trained on 8-bit PNGs ({opt.dataset_mode}); its inputs were "
        "not Sentinel reflectance / dB scaled as here"
    )


def check_epoch(epoch: str | int) -> str:
    epoch = str(epoch)
    if epoch != "latest" and not epoch.isdigit():
        raise UserError(f"--epoch {epoch!r}: expected 'latest' or an epoch number")
    return epoch


def load_model(
    opt: argparse.Namespace, checkpoints_dir: str | Path, epoch: str | int, gpu_ids: str
) -> models.BaseModel:
    """Build the model of the saved options in test mode on the chosen device and load its weights."""
    opt.checkpoints_dir, opt.epoch, opt.load_iter = str(checkpoints_dir), check_epoch(epoch), 0
    # The mode the model's authors test in (its declaration), as test.py.
    mode = models.find_model_using_name(opt.model).test_mode
    opt.is_train, opt.verbose, opt.eval, opt.test_mode = False, False, mode == "eval", mode
    opt.device, opt.gpu_list = resolve_device(str(gpu_ids))
    # Every weight is loaded: the random initialisation is skipped unless the networks draw random
    # numbers as they run (dropout in train mode).
    model = models.create_model(opt, weights_follow=True)
    model.setup()
    if opt.eval:
        model.eval()
    torch.backends.cudnn.benchmark = True  # one window size: let cuDNN pick its fastest kernels
    return model


def model_forward(model: models.BaseModel) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(cloudy, sar)`` in [0, 1] on the model's device -> cloud-free reflectance in [0, 1]."""
    output = model.roles.output

    def forward(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # The model's pure inference method keeps nothing between batches.
        out = model.predict(a * 2 - 1, c * 2 - 1)[output].float()
        return (out + 1) / 2

    return forward


def window_multiple(opt: argparse.Namespace) -> int:
    """Window sides must be multiples of this for the model of ``opt`` (e.g. 2**depth of a U-Net)."""
    return models.find_model_using_name(opt.model).size_multiple(opt)
