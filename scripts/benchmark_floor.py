"""The compute floor of one training iteration of the paper's model on this machine.

    python -m scripts.benchmark_floor                 # CPU, the paper's configuration (~30 s)
    python -m scripts.benchmark_floor --batch_size 4

Counts the floating-point operations of one training iteration (convolutions and matrix
products, forward and backward, as ``torch.utils.flop_counter`` counts them) for our default
step (one backward pass through the generators) and for the official code's (two), measures
the rate this machine sustains on a large float32 matrix product (the best any convolution here
can hope for; the paper's convolutions reach 90-100% of it), and prints the floor: operations /
rate, the time below which no implementation of the same float32 mathematics can go on this
machine. ``scripts.benchmark_speed`` reports it beside the measured speeds (JSON output).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time

from util.errors import run_cli

PAPER = ["--model", "pix2pix_attn", "--netG", "unet_256", "--ngf", "64", "--ndf", "64"]


def matmul_gflops(device: str = "cpu", n: int = 2048, repeats: int = 9) -> float:
    """The median rate of an n x n float32 matrix product, in GFLOP/s."""
    import torch

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def iteration_gflop(extra: list[str], batch_size: int = 1, size: int = 256, device: str = "cpu") -> float:
    """GFLOP of one training iteration of the paper's model with ``extra`` train.py flags."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from models import create_model
    from options.train_options import TrainOptions

    with tempfile.TemporaryDirectory(prefix="floor_") as tmp:
        argv = [
            *("--dataroot", tmp, "--name", "floor", "--checkpoints_dir", tmp),
            *PAPER,
            *("--load_size", str(size), "--crop_size", str(size), "--display_id", "0"),
            *("--gpu_ids", "0" if device == "cuda" else "-1"),
            *extra,
        ]
        with contextlib.redirect_stdout(io.StringIO()):
            opt = TrainOptions().parse(argv, save=False)
            model = create_model(opt)
            model.setup()
        g = torch.Generator().manual_seed(0)
        batch = {k: torch.rand(batch_size, 3, size, size, generator=g) * 2 - 1 for k in "ABC"}
        model.set_input(batch)
        with FlopCounterMode(display=False) as counter:
            model.optimize_parameters()
    return counter.get_total_flops() / 1e9


def measure(batch_size: int = 1, device: str = "cpu") -> dict:
    """Operations per iteration (ours and the official step), the machine's rate and the floors."""
    ours = iteration_gflop([], batch_size, device=device)
    official = iteration_gflop(["--train_step", "official"], batch_size, device=device)
    rate = matmul_gflops(device)
    return {
        "batch_size": batch_size,
        "gflop_per_it": round(ours, 1),
        "gflop_per_it_official_step": round(official, 1),
        "matmul_gflop_per_s": round(rate, 1),
        "floor_s_per_it": round(ours / rate, 3),
        "floor_s_per_it_official_step": round(official / rate, 3),
    }


def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.benchmark_floor", description=__doc__.split("\n")[0])
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = p.parse_args(argv)
    print(json.dumps(measure(args.batch_size, args.device), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
