"""A trained model for whole-scene inference: its saved options, its weights, its forward function.

The model's configuration (bands, widths, U-Net depth, SAR scaling) is read from the experiment's
``train_opt.json``, so no training flag is repeated. A folder that holds only weight files (the
official release: ``latest_net_{G,G2,A,D}.pth``) gets the paper's configuration, with the band
counts, width and depth of its U-Nets read from the weights. A published weight file (GLF-CR's
``CR_net.pth``, a DSen2-CR HDF5 file; :mod:`models.weight_sets`) gets its model, architecture
and input domain from its content and the registry. The model is used through its contract
(:class:`models.base_model.BaseModel`): ``predict(cloudy, sar)`` returns a dict holding
``roles.output``, and ``size_multiple(opt)`` gives the multiple window sides must be of.

Each model has an :class:`~models.weight_sets.InputDomain` (:func:`input_domain`); how a scene is
given to it by that domain is :mod:`scene.domain`'s.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch

import data
import models
from models.networks import UNET_DEPTHS
from models.networks.normalization import per_sample_statistics
from models.weight_sets import InputDomain, WeightSet, domain_from_options, open_weight_set, option_values
from models.weight_sets.domain import PNG_DATASETS
from models.weight_sets.formats import folder_weight_file
from models.weights import safe_load
from options.test_options import TestOptions
from util.device import resolve_device
from util.errors import UserError

OFFICIAL_MODEL = "pix2pix_attn"  # the paper's model, the one official weight files hold


def load_options(
    checkpoints_dir: str | Path, name: str, model: str | None = None, epoch: str | int = "latest"
) -> argparse.Namespace:
    """The training options of experiment ``name`` on top of today's defaults (for older files).

    Without ``train_opt.json``, weight files alone: the paper's configuration of ``model``
    (default pix2pix_attn), see :func:`weights_only_options`. ``model``: refuse another model.
    """
    folder = Path(checkpoints_dir) / name
    if not folder.is_dir():
        raise UserError(f"no experiment {folder}; check --name and --checkpoints_dir")
    path = folder / "train_opt.json"
    if not path.exists():
        if not any(folder.glob("*_net_*.pth")):
            raise UserError(
                f"{folder} holds neither train_opt.json (train.py writes it) nor weight files (*_net_G.pth)"
            )
        return weights_only_options(folder, model or OFFICIAL_MODEL, check_epoch(epoch))
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if not isinstance(saved, dict):
        raise UserError(f"{path} does not hold a JSON object of options")
    saved_model = str(saved.get("model", OFFICIAL_MODEL))
    if model is not None and saved_model != model:
        raise UserError(f"{folder} holds a {saved_model} model, not {model}; load it as {saved_model}")
    return argparse.Namespace(**{**model_defaults(saved_model, saved.get("dataset_mode"), path), **saved})


def model_defaults(model: str, dataset_mode: str | None, source: str | Path) -> dict:
    """Today's test options of ``model`` (and ``dataset_mode``, if this code has it)."""
    argv = ["--model", model]
    if dataset_mode in data.DATASET_CHOICES:
        argv += ["--dataset_mode", dataset_mode]
    try:
        return vars(TestOptions().build_parser(argv).parse_args(argv))
    except SystemExit:
        raise UserError(
            f"{source} names a model or dataset this code does not have ({' '.join(argv)})"
        ) from None


def weights_only_options(folder: Path, model: str, epoch: str) -> argparse.Namespace:
    """Options for a folder of weight files without ``train_opt.json``: the model's defaults, which
    for pix2pix_attn are the paper's configuration (3-band PNG triplets, unet_256, 64 filters, no
    dropout); for pix2pix_attn the band counts, filters and U-Net depth are read from the weights,
    so that official files and smaller ones alike load."""
    opt = argparse.Namespace(**model_defaults(model, None, folder))
    opt.name = folder.name
    opt.weights_only = True  # the official release's layout: no record of how its data were made
    if model == OFFICIAL_MODEL:
        shapes = {net: unet_shape(safe_load(folder / f"{epoch}_net_{net}.pth")) for net in ("G", "G2", "A")}
        (g_in, ngf, depth, out_nc), (sar_nc, *_), (in_nc, *_) = shapes["G"], shapes["G2"], shapes["A"]
        netG = f"unet_{2**depth}"
        if netG not in UNET_DEPTHS or g_in != in_nc + out_nc:
            raise UserError(f"{folder / f'{epoch}_net_G.pth'} is not a pix2pix_attn U-Net this code knows")
        opt.input_nc, opt.output_nc, opt.sar_nc, opt.ngf, opt.netG = in_nc, out_nc, sar_nc, ngf, netG
    return opt


def unet_shape(state: dict) -> tuple[int, int, int, int]:
    """(input bands, filters, depth, output bands) of a U-Net state_dict (ours or the official one)."""
    if not isinstance(state, dict) or not state:
        raise UserError("a weight file does not hold a state_dict")
    keys = [k for k in state if k.endswith(".weight") or k.endswith(".bias")]
    first, last = keys[0], keys[-1]
    depth = max(k.count("model.") for k in keys) - 1
    return int(state[first].shape[1]), int(state[first].shape[0]), depth, int(state[last].shape[0])


def model_source(
    checkpoints_dir: str | Path | None,
    name: str | None,
    epoch: str | int = "latest",
    *,
    model: str | None = None,
    weights: str | Path | None = None,
    download: bool = False,
) -> tuple[argparse.Namespace, WeightSet | None, Path, str]:
    """What is to run: the options, the weight file (None for an experiment), the checkpoints folder
    and the name. ``weights``: a weight file or a published set (:func:`models.weight_sets.open_weight_set`),
    or a folder, which is an experiment (unless it is a published layout's folder: UnCRtainTS'); else
    the experiment ``name`` in ``checkpoints_dir``."""
    if weights is not None and Path(weights).expanduser().is_dir() and folder_weight_file(weights) is None:
        folder = Path(weights).expanduser().resolve()
        checkpoints_dir, name, weights = folder.parent, folder.name, None
    if weights is not None:
        ws = open_weight_set(weights, model=model, download=download)
        return weights_options(ws), ws, ws.path.parent, ws.name
    if name is None:
        raise UserError("give an experiment (--name) or a weight file (--weights)")
    folder = Path(checkpoints_dir or "./checkpoints")
    return load_options(folder, name, model, epoch), None, folder, name


def described(opt: argparse.Namespace, ws: WeightSet | None, folder: Path) -> str:
    """The model in messages: the weight file and what it is, or the experiment."""
    if ws is not None:
        return f"{ws.path.name} ({ws.description})"
    if getattr(opt, "weights_only", False):
        return f"the weight folder {folder}"
    return f"experiment {folder.name}"


def weights_options(ws: WeightSet) -> argparse.Namespace:
    """Test options for running the weight file ``ws``: its model's defaults, its architecture,
    its data settings, ``weights`` (the file, which ``BaseModel.setup`` loads)."""
    values = option_values(ws)
    opt = argparse.Namespace(**model_defaults(ws.model, values.get("dataset_mode"), ws.path))
    for key, value in {**values, **ws.settings}.items():
        setattr(opt, key, value)
    return opt


def input_domain(opt: argparse.Namespace, ws: WeightSet | None = None) -> InputDomain:
    """What the model expects: the weight file's recorded domain, else its training options'."""
    if ws is not None and ws.domain is not None:
        return ws.domain
    return domain_from_options(opt, official=bool(getattr(opt, "weights_only", False)))


def png_warning(opt: argparse.Namespace, name: str, domain: InputDomain | None = None) -> str | None:
    """A warning when experiment ``name`` was trained on 8-bit PNGs rather than Sentinel GeoTIFFs
    and no PNG mapping fits it (a 3-band RGB + 3-channel SAR model gets one: :func:`png8_forward`)."""
    if getattr(opt, "dataset_mode", None) not in PNG_DATASETS:
        return None
    if domain is not None and domain.scaling == "png8":
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
    model.apply_test_mode(mode)
    if mode == "train":
        # Windows come in batches: batch norm in training mode normalises each window with its own
        # statistics, as a batch of one (the authors' test batch), not with its batch-mates'.
        per_sample_statistics(model.nets.values())
    torch.backends.cudnn.benchmark = True  # one window size: let cuDNN pick its fastest kernels
    return model


def model_forward(
    model: models.BaseModel, maps: tuple[str, ...] = ()
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(cloudy, sar)`` in [0, 1] on the model's device -> cloud-free reflectance in [0, 1], followed
    by one channel per name in ``maps`` (``model.roles.maps``: attention maps in [0, 1], predicted
    variances in [0, 1] units squared)."""
    output = model.roles.output
    for name in maps:
        if name not in model.roles.maps:
            raise UserError(f"model {model.opt.model} has no map {name!r} ({map_names(model) or 'none'})")

    def forward(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # The model's pure inference method keeps nothing between batches.
        result = model.predict(a * 2 - 1, c * 2 - 1)
        out = (result[output].float() + 1) / 2
        return torch.cat([out, *(result[name].float() for name in maps)], 1) if maps else out

    return forward


def map_names(model: models.BaseModel) -> str:
    return ", ".join(model.roles.maps)


def window_multiple(opt: argparse.Namespace) -> int:
    """Window sides must be multiples of this for the model of ``opt`` (e.g. 2**depth of a U-Net)."""
    return models.find_model_using_name(opt.model).size_multiple(opt)
