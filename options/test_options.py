"""Testing options: where results go and how many images to run."""

from __future__ import annotations

import argparse
from pathlib import Path

from metrics.cloud_masks import DETECTORS
from metrics.coverage import parse_bins
from util.errors import UserError

from .base_options import BaseOptions
from .parser import size_or_inf


class TestOptions(BaseOptions):
    is_train = False
    prog = "test.py"

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = super().initialize(parser)
        g = parser.add_argument_group("testing")
        g.add_argument("--results_dir", default="./results", help="results/<name>/<phase>_<epoch>/ goes here")
        g.add_argument("--aspect_ratio", type=float, default=1.0, help="aspect ratio of saved images")
        g.add_argument("--phase", default="test", help="train, val, test, ...: the data folder suffix")
        g.add_argument(
            "--eval",
            action="store_true",
            help="put the networks in eval mode: dropout off and batch norm with its running statistics "
            "(instance norm is per image either way); without it, pix2pix-style models test as the "
            "pix2pix paper does, with dropout and per-batch statistics",
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
            "as DSen2-CR), rgb (3-band rule), none; auto: s2cloudless for 13 bands when installed, "
            "else the rule that fits the bands",
        )
        g.add_argument(
            "--coverage_bins",
            default="0,10,30,50,70,100",
            help="edges (percent) of the cloud-coverage bins the metrics are averaged over",
        )
        g.add_argument(
            "--display_id",
            type=int,
            default=0,
            help="accepted for the official command line; testing shows nothing on visdom",
        )
        # Tests see whole images in order, once each, with no augmentation.
        # --load_size defaults to --crop_size (whole images, no rescaling): see finalize().
        parser.set_defaults(load_size=None, serial_batches=True, no_flip=True)
        return parser

    def finalize(self, opt: argparse.Namespace) -> None:
        super().finalize(opt)
        if opt.load_size is None:
            opt.load_size = opt.crop_size
        opt.serial_batches = True
        opt.no_flip = True
        opt.display_id = -1
        try:
            opt.coverage_bins = parse_bins(opt.coverage_bins)
        except ValueError as err:
            raise UserError(f"--coverage_bins: {err}") from None

    def options_dir(self, opt: argparse.Namespace) -> Path:
        return Path(opt.results_dir) / opt.name / f"{opt.phase}_{opt.epoch}"
