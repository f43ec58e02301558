"""The compute floor of one training iteration of the paper's model on this machine.

    python -m scripts.benchmark_floor                 # CPU, the paper's configuration (~30 s)
    python -m scripts.benchmark_floor --batch_size 4

Counts the floating-point operations of one training iteration (convolutions and matrix
products, forward and backward, as ``torch.utils.flop_counter`` counts them) for our default
step (one backward pass through the generators) and for the official code's (two), measures the
best rate this machine sustains (the larger of a 2048 x 2048 float32 matrix product and the
paper's heaviest convolution, the discriminator's 256 -> 512 4x4 on 31x31 outputs, whichever is
faster here: on the 2-core AMD EPYC machine oneDNN's convolution ran at ~420 GFLOP/s and MKL's
matrix product at ~200), and prints the compute floor: operations / rate. No implementation of
the same float32 mathematics can beat it on this machine; memory-bound work (the innermost
U-Net layers' 16-32 MB weights at 1x1 to 8x8 pixels, Adam over 163 M parameters) lies above it.
``scripts.benchmark_speed`` reports it beside the measured speeds (JSON output).
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.benchmark_floor")

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


def conv_gflops(device: str = "cpu", repeats: int = 9) -> float:
    """The median rate of the paper's heaviest convolution (PatchGAN's 256 -> 512, 4x4, stride 1
    on a 32x32 input, batch 1), in GFLOP/s."""
    import torch
    import torch.nn.functional as F

    x = torch.randn(1, 256, 32, 32, device=device)
    w = torch.randn(512, 256, 4, 4, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(3):
            F.conv2d(x, w)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            F.conv2d(x, w)
            sync()
            times.append(time.perf_counter() - start)
    return 2 * 31 * 31 * 512 * 256 * 16 / statistics.median(times) / 1e9


def iteration_gflop(
    extra: list[str],
    batch_size: int = 1,
    size: int = 256,
    device: str = "cpu",
    model_flags: list[str] | None = None,
) -> float:
    """GFLOP of one training iteration of the paper's model (or ``model_flags``) with ``extra``
    train.py flags."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from models import create_model
    from options.train_options import TrainOptions

    with tempfile.TemporaryDirectory(prefix="floor_") as tmp:
        argv = [
            *("--dataroot", tmp, "--name", "floor", "--checkpoints_dir", tmp),
            *(PAPER if model_flags is None else model_flags),
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
    matmul, conv = matmul_gflops(device), conv_gflops(device)
    rate = max(matmul, conv)
    return {
        "batch_size": batch_size,
        "gflop_per_it": round(ours, 1),
        "gflop_per_it_official_step": round(official, 1),
        "matmul_gflop_per_s": round(matmul, 1),
        "conv_gflop_per_s": round(conv, 1),
        "peak_gflop_per_s": round(rate, 1),
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
