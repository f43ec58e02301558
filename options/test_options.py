"""Testing options: where results go and how many images to run."""

from __future__ import annotations

import argparse
from pathlib import Path

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

    def options_dir(self, opt: argparse.Namespace) -> Path:
        return Path(opt.results_dir) / opt.name / f"{opt.phase}_{opt.epoch}"
