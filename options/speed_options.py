"""The speed options shared by training and testing; their defaults are the faithful float32 path."""

from __future__ import annotations

import argparse

from util.allocator import MALLOC_CHOICES
from util.device import AMP_DTYPES, TF32_CHOICES


def add_speed_options(parser: argparse.ArgumentParser) -> None:
    """``--amp``, ``--channels_last``, ``--tf32``, ``--malloc``, ``--cudnn_benchmark``."""
    g = parser.add_argument_group("speed (defaults: the faithful float32 computation)")
    g.add_argument(
        "--amp",
        default="off",
        choices=tuple(AMP_DTYPES),
        help="mixed precision: the networks run in bfloat16 or float16 (with a gradient scaler) "
        "under autocast, losses and weights stay float32; 'off' is exact float32",
    )
    g.add_argument(
        "--channels_last",
        action="store_true",
        help="channels-last (NHWC) memory layout for networks and inputs: faster convolutions on "
        "GPUs with tensor cores; the same computation up to float rounding",
    )
    g.add_argument(
        "--tf32",
        default="default",
        choices=TF32_CHOICES,
        help="CUDA TensorFloat-32: 'on' for matmuls and convolutions, 'off' for neither, 'default' "
        "PyTorch's (convolutions only)",
    )
    g.add_argument(
        "--malloc",
        default="tuned",
        choices=MALLOC_CHOICES,
        help="C heap allocator (Linux with glibc): 'tuned' keeps large blocks mapped between "
        "iterations instead of returning them to the system (fewer page faults: the same "
        "numbers, faster on CPUs, a little more resident memory); 'system' leaves glibc's defaults",
    )
    g.add_argument(
        "--cudnn_benchmark",
        action="store_true",
        help="let cuDNN pick the fastest convolution algorithms for the fixed input size (CUDA)",
    )
