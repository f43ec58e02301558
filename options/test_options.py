"""Testing options: where results go and how many images to run, and the trained model's
architecture, read from ``<checkpoints_dir>/<name>/train_opt.json`` as predict.py reads it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import models
from data.sentinel import parse_bands
from metrics.authors import AUTHOR_PROTOCOLS, parse_author_protocols
from metrics.cloud_masks import DETECTORS
from metrics.coverage import parse_bins
from models.base_model import TEST_MODES
from models.checkpoint import ARCHITECTURE_OPTIONS
from models.weight_sets import WeightSet, check_weight_options, open_weight_set, option_values
from util.errors import UserError

from .base_options import BaseOptions
from .parser import size_or_inf

# How the data was fed to the networks in training (bands, SAR clipping): as much a part of the
# trained model as its architecture.
DATA_FORM_OPTIONS = ("s2_bands", "sar_scaling")


def trained_options(argv: list[str] | None) -> tuple[Path | None, dict]:
    """The architecture (and data form) of the experiment that ``argv`` names with ``--name``:
    ``(path of its train_opt.json, {option: value})``; ``(None, {})`` without ``--name`` or
    ``--suffix``, or for a folder of weight files alone (the official release: its options come
    from the command line, as in the official code)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--name", default=None)
    pre.add_argument("--checkpoints_dir", default="./checkpoints")
    pre.add_argument("--suffix", default="")
    known, _ = pre.parse_known_args(argv)
    if known.name is None or known.suffix:
        return None, {}
    path = Path(known.checkpoints_dir) / known.name / "train_opt.json"
    if not path.is_file():
        return None, {}
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(
            f"cannot read {path} ({err}); test.py reads the model's architecture from it"
        ) from None
    if not isinstance(saved, dict):
        raise UserError(f"{path} does not hold the options of a training run")
    model = str(saved.get("model", "pix2pix_attn"))
    if model not in models.MODEL_NAMES:
        raise UserError(f"{path} holds a {model} model, which this code does not have")
    keys = (
        *ARCHITECTURE_OPTIONS,
        *models.find_model_using_name(model).architecture_options,
        *DATA_FORM_OPTIONS,
    )
    return path, {key: saved[key] for key in keys if key in saved}


def flag_text(key: str, value) -> str:
    """An option as on a command line: ``--ngf 8``, ``--conv_bias`` / ``no --conv_bias``, ``--dropout``."""
    if isinstance(value, bool):
        if key == "no_dropout":
            return "--no_dropout" if value else "--dropout"
        return f"--{key}" if value else f"no --{key}"
    return f"--{key} {value}"


def same_value(key: str, a, b) -> bool:
    if key == "s2_bands" and a is not None and b is not None:
        try:
            return parse_bands(str(a)) == parse_bands(str(b))
        except UserError:
            return False
    return a == b


def resolve_test_mode(model: str, mode: str) -> str:
    """``mode`` ('train' or 'eval'), or for 'model' the mode that ``model`` declares."""
    return models.find_model_using_name(model).test_mode if mode == "model" else mode


class TestOptions(BaseOptions):
    is_train = False
    prog = "test.py"

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = super().initialize(parser)
        g = parser.add_argument_group("testing")
        g.add_argument("--results_dir", default="./results", help="results/<name>/<phase>_<epoch>/ goes here")
        g.add_argument("--aspect_ratio", type=float, default=1.0, help="aspect ratio of saved images")
        g.add_argument(
            "--test_mode",
            default="model",
            choices=("model", *TEST_MODES),
            help="'model': the mode the model's authors test in (its declaration); 'train': networks in "
            "training mode, as the CycleGAN/pix2pix test scripts (dropout on, batch statistics); "
            "'eval': eval mode (dropout and stochastic depth off, running statistics)",
        )
        g.add_argument(
            "--eval",
            dest="test_mode",
            action="store_const",
            const="eval",
            help="the same as --test_mode eval",
        )
        g.add_argument(
            "--num_test",
            "--how_many",
            dest="num_test",
            type=size_or_inf,
            default=float("inf"),
            help="how many test images to run ('inf': all)",
        )
        g.add_argument(
            "--cloud_detector",
            choices=DETECTORS,
            default="auto",
            help="cloud mask of the cloudy input for cloud coverage and the metrics over cloudy and over "
            "clear pixels: s2cloudless (13 bands; pip install s2cloudless), cloud_shadow (rule-based, "
            "as DSen2-CR; B1, B2, B3, B4, B8, B10, B11), rgb (the rule on the visible bands B2, B3, B4 "
            "alone, of any data), none; auto: s2cloudless for 13 bands when installed, else the rule "
            "that fits the bands",
        )
        g.add_argument(
            "--coverage_bins",
            default="0,10,30,50,70,100",
            help="edges (percent) of the cloud-coverage bins the metrics are averaged over",
        )
        g.add_argument(
            "--protocols",
            default="",
            help="other papers' evaluation protocols to report beside ours, a comma list of "
            f"{', '.join(AUTHOR_PROTOCOLS)} (see docs/metrics.md)",
        )
        g.add_argument(
            "--display_id",
            type=int,
            default=0,
            help="accepted for the official command line; testing shows nothing on visdom",
        )
        g.add_argument(
            "--weights",
            default=None,
            help="a published weight file (e.g. GLF-CR's CR_net.pth, a DSen2-CR .hdf5, UnCRtainTS' model.pth.tar "
            "or its folder) or a published set's "
            "name (docs/weights.md) instead of --name's checkpoints: the model, its architecture and its "
            "data settings come from the file",
        )
        g.add_argument(
            "--download",
            action="store_true",
            help="with --weights NAME: download the published set into the cache if it is not there",
        )
        # Tests see whole images in order, once each, with no augmentation.
        # --load_size defaults to --crop_size (whole images, no rescaling): see finalize().
        parser.set_defaults(load_size=None, serial_batches=True, no_flip=True)
        return parser

    def config_defaults(self, argv: list[str] | None) -> dict:
        """With ``--weights``: the weight file's model, architecture and data settings; otherwise the
        trained model's architecture (see :func:`trained_options`); either replaces the defaults."""
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--weights", default=None)
        pre.add_argument("--model", default=None)
        pre.add_argument("--download", action="store_true")
        known, _ = pre.parse_known_args(argv)
        self.weight_set: WeightSet | None = None
        self.trained_from, self.trained = None, {}
        if known.weights:
            self.weight_set = open_weight_set(known.weights, model=known.model, download=known.download)
            return option_values(self.weight_set)
        self.trained_from, self.trained = trained_options(argv)
        return self.trained

    def check_given(self, opt: argparse.Namespace, given: set[str]) -> None:
        """Refuse an option on the command line that contradicts the trained model, naming both values."""
        trained, source = getattr(self, "trained", {}), getattr(self, "trained_from", None)
        if "model" in given and "model" in trained and opt.model != trained["model"]:
            raise UserError(
                f"{source.parent} holds a {trained['model']} model, not {opt.model}; test it with "
                f"--model {trained['model']} (or leave --model out)"
            )
        for key in sorted(given & set(trained)):
            if not same_value(key, getattr(opt, key), trained[key]):
                raise UserError(
                    f"{flag_text(key, getattr(opt, key))} contradicts the trained model "
                    f"({flag_text(key, trained[key])} in {source}); leave it out: test.py reads the "
                    "architecture from there"
                )

    def finalize(self, opt: argparse.Namespace) -> None:
        super().finalize(opt)
        if getattr(self, "weight_set", None) is not None:
            check_weight_options(self.weight_set, opt)
        opt.test_mode = resolve_test_mode(opt.model, opt.test_mode)
        opt.eval = opt.test_mode == "eval"
        if opt.load_size is None:
            opt.load_size = opt.crop_size
        opt.serial_batches = True
        opt.no_flip = True
        opt.display_id = -1
        try:
            opt.coverage_bins = parse_bins(opt.coverage_bins)
        except ValueError as err:
            raise UserError(f"--coverage_bins: {err}") from None
        try:
            opt.protocols = parse_author_protocols(opt.protocols)
        except ValueError as err:
            raise UserError(f"--protocols: {err}") from None

    def options_dir(self, opt: argparse.Namespace) -> Path:
        return Path(opt.results_dir) / opt.name / f"{opt.phase}_{opt.epoch}"
