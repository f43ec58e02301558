"""What a model declares about itself, read by the options parser, the harnesses and the pages
without building it: its roles, its extra flags for each setting, its authors' data settings and
test mode, and the options that shape its networks. :class:`models.base_model.BaseModel` inherits it.
"""

from __future__ import annotations

import argparse

from .networks import NETG_CHOICES
from .roles import Roles

# How a model is tested (``ModelDeclaration.test_mode``).
TEST_MODES = ("train", "eval")


class ModelDeclaration:
    """Class-level facts of a model; subclasses override the attributes and class methods."""

    roles: Roles = Roles()
    # Extra command-line flags for this model on top of the shared ones: ``tiny_flags`` make it small
    # enough for a CPU smoke run (tests, ``compare --setting smoke``); ``light_flags`` give the
    # lighter configuration of CPU demos (``compare --setting light``). Neither changes the code path.
    tiny_flags: tuple[str, ...] = ()
    light_flags: tuple[str, ...] = ()
    # Flags of the authors' published training command on top of the model's defaults (e.g. the
    # official scripts/train.sh of pix2pix_attn); ``compare --setting paper`` passes them.
    script_flags: tuple[str, ...] = ()
    # Flags that put this model in the conditions of Zhang et al.'s (2023) comparison table, where
    # those differ from its authors' defaults (``compare --setting zhang2023``); training flags,
    # the comparison passes the test-time ones on to test.py.
    zhang_flags: tuple[str, ...] = ()
    # How the model's authors test it; test.py, predict.py and the comparison follow this unless
    # the user says otherwise (``--test_mode``). "train": the networks stay in training mode, as the
    # CycleGAN/pix2pix test scripts run them (dropout on, batch norm with the batch's statistics);
    # "eval": ``module.eval()`` (dropout and stochastic depth off, batch norm's running statistics).
    test_mode: str = "train"
    # The model's own options that shape its networks (beside the shared --ngf, --netG, ...):
    # resuming with other values is refused.
    architecture_options: tuple[str, ...] = ()
    # True when a network has parameters that no loss reaches: distributed training must then
    # let DistributedDataParallel look for them every iteration (it fails otherwise).
    unused_parameters: bool = False

    # ------------------------------------------------------------------ contract
    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        return parser

    @classmethod
    def roles_for(cls, opt: argparse.Namespace) -> Roles:
        """The roles of this model built from ``opt`` (default: the class's ``roles``); a model whose
        options change what it reads or produces (no SAR, no uncertainty head) overrides it."""
        return cls.roles

    @classmethod
    def data_defaults(cls, is_train: bool) -> dict:
        """Defaults of data options (``--crop_size``, ``--no_flip``, ``--sar_scaling``, ...) as the
        model's authors prepared their data; the options parser applies those the chosen dataset
        has, after the dataset's own defaults, and a flag on the command line still wins."""
        return {}

    @classmethod
    def size_multiple(cls, opt: argparse.Namespace) -> int:
        """Image sides must be multiples of this (e.g. 2**depth for a U-Net); 1: any size."""
        return 1

    @classmethod
    def size_rule(cls, opt: argparse.Namespace) -> tuple[str, str]:
        """For error messages: the option that sets :meth:`size_multiple`, and what else to change
        (default: the U-Net's ``--netG``, a shallower U-Net)."""
        return f"--netG {opt.netG}", f"a shallower U-Net ({', '.join(NETG_CHOICES)})"
