"""Training and test speed of the paper's model: our default path against the plain eager float32 path.

    python -m scripts.benchmark_speed                        # CPU, the paper's configuration (~10 min, 2 cores)
    python -m scripts.benchmark_speed --smoke                # a tiny run that checks the script (seconds)
    python -m scripts.benchmark_speed --device cuda          # GPU: adds the mixed-precision variants
    python -m scripts.benchmark_speed --json speed.json      # also write the JSON there

Every figure comes from one invocation, variants measured side by side: each measurement runs in
a fresh process (its peak resident memory is its own, ``ru_maxrss`` of that child), rounds
alternate the variants, and medians are reported with ratios to the plain path. The data are
synthetic 256x256 PNG triplets made in a temporary folder; the networks are the paper's
(``unet_256``, 64 filters, official options: 286 -> 256 crops, pool 50, step schedule).

* ``plain``: what the official code computes, in eager float32: two backward passes for the
  generators, then PyTorch's default Adam (``--train_step official --optimizer_impl default``),
  with the former default of loader workers (4, or the number of cores if fewer); in whole runs it
  also writes the training state after every epoch (``--save_budget 1``). For test.py: the former
  path (``no_grad``, writing in the main thread, networks initialised before their weights are
  loaded, loader workers as before).
  On the CPU it is our reference for the official code's speed (the official code itself ran
  1.87 s/it against this path's 2.06 s/it on the 2-core machine, measured side by side
  before the speed work).
* ``fast``: our defaults (one backward pass, parameters stepped inside it, fused Adam): the
  same update (tests/test_speed.py).
* further variants (channels-last, loader workers as before, mixed precision on a GPU) are
  labelled with their flags; those that change the arithmetic say so.

Figures: ``train``: seconds per iteration (loader + step, after warm-up), iterations/s, peak
RSS (CPU) or peak CUDA memory; ``epochs``: whole ``train.py`` runs of several 12-image epochs,
with the share of wall time spent saving checkpoints; ``test``: ``test.py`` on the test images,
whole process and the loop alone (images/s).
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.benchmark_speed")

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from scripts.speed_report import (
    print_epochs,
    print_test,
    print_train,
    summarize_epochs,
    summarize_test,
    summarize_train,
)
from util.errors import UserError, run_cli

ROOT = Path(__file__).resolve().parents[1]
PAPER = ["--model", "pix2pix_attn", "--netG", "unet_256", "--ngf", "64", "--ndf", "64"]
SMOKE = ["--model", "pix2pix_attn", "--netG", "unet_32", "--ngf", "4", "--ndf", "4"]
OFFICIAL_TRAIN = ["--lr_policy", "step", "--pool_size", "50", "--no_flip", "--display_id", "0"]
PLAIN = ["--train_step", "official", "--optimizer_impl", "default", "--malloc", "system"]
# The former default of loader workers (now none on CPUs of at most 2 cores).
WORKERS_BEFORE = ["--num_threads", str(min(4, os.cpu_count() or 1))]


def variants(device: str) -> dict[str, list[str]]:
    """Variant name -> extra train.py/test.py flags."""
    out = {"plain": [*PLAIN, *WORKERS_BEFORE], "fast": [], "fast+channels_last": ["--channels_last"]}
    if device == "cpu":
        out["fast, loader workers as before"] = WORKERS_BEFORE
        out["fast, glibc's malloc defaults"] = ["--malloc", "system"]
    else:
        out["plain"] = [*PLAIN, "--tf32", "off"]  # strict float32
        out["fast+bf16 (AMP: other arithmetic)"] = [
            "--amp",
            "bf16",
            "--channels_last",
            "--cudnn_benchmark",
            "--tf32",
            "on",
        ]
        out["fast+fp16 (AMP: other arithmetic)"] = [
            "--amp",
            "fp16",
            "--channels_last",
            "--cudnn_benchmark",
            "--tf32",
            "on",
        ]
    return out


# ---------------------------------------------------------------- data
def write_triplets(root: Path, phase: str, n: int, size: int, seed: int) -> None:
    """``n`` smooth random RGB triplets of ``size``^2 in ``root/<phase>{A,B,C}``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1)
    for role in "ABC":
        (root / f"{phase}{role}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            planes = [
                128 + 80 * (a * xx + b * yy) + rng.normal(0, 12, (size, size))
                for a, b in rng.uniform(-1, 1, (3, 2))
            ]
            image = np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / f"{phase}{role}" / f"{i:03d}.png")


def run_child(spec: dict, env: dict | None = None) -> dict:
    """Run one measurement in a fresh process (it reports its own peak RSS); add its wall time."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.benchmark_speed", "--child", json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise UserError(f"benchmark child {spec['kind']} failed: {err.decode()[-1500:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


# ---------------------------------------------------------------- the parent
def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts.benchmark_speed", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument(
        "--smoke", action="store_true", help="tiny networks and sizes: checks the script in seconds"
    )
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 4], help="training and test batch sizes")
    p.add_argument("--iters", type=int, default=6, help="timed iterations per run (after --warmup)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="runs of every variant, alternating")
    p.add_argument("--epochs", type=int, default=6, help="epochs of 12 images in the whole-run measurement")
    p.add_argument("--epoch_rounds", type=int, default=1, help="whole runs of each of plain and fast")
    p.add_argument("--test_images", type=int, default=8)
    p.add_argument("--only", nargs="+", default=None, help="variants to run (default: all)")
    p.add_argument(
        "--parts",
        nargs="+",
        default=["floor", "train", "epochs", "test"],
        choices=("floor", "train", "epochs", "test"),
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        spec = json.loads(args.child)
        from scripts.speed_children import CHILDREN, peak_rss_mib

        result = CHILDREN[spec["kind"]](spec)
        result["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(result))
        return 0
    if min(args.batch_sizes) < 1 or args.iters < 1 or args.rounds < 1 or args.warmup < 0:
        raise UserError("--batch_sizes, --iters and --rounds must be positive, --warmup not negative")
    table = variants(args.device)
    chosen = {k: v for k, v in table.items() if args.only is None or k in args.only}
    if not chosen or "plain" not in chosen:
        raise UserError(f"--only must include 'plain' (the reference); variants: {', '.join(table)}")
    gpu = ["--gpu_ids", "0" if args.device == "cuda" else "-1"]
    model = SMOKE if args.smoke else PAPER
    size, load = (32, 36) if args.smoke else (256, 286)
    report: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "device": args.device,
        "configuration": "smoke (tiny networks)" if args.smoke else "paper (unet_256, ngf 64, 256x256)",
        "variants": {k: v for k, v in chosen.items()},
        "floor": {},
        "train": {},
        "epochs": {},
        "test": {},
    }
    import torch

    report["torch"] = torch.__version__
    if args.device == "cuda":
        report["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
        tmp = Path(tmp)
        write_triplets(tmp / "data", "train", 12, size, 0)
        write_triplets(tmp / "data", "test", args.test_images, size, 1)
        common = [*model, *gpu, "--load_size", str(load), "--crop_size", str(size), *OFFICIAL_TRAIN]
        if "floor" in args.parts and not args.smoke:
            report["floor"] = run_child({"kind": "floor", "batch_size": 1, "device": args.device})
            print(
                f"compute floor, batch 1: {report['floor']['gflop_per_it']} GFLOP/it at "
                f"{report['floor']['peak_gflop_per_s']} GFLOP/s (the best of a matrix product and a "
                "convolution): "
                f"{report['floor']['floor_s_per_it']} s/it",
                file=sys.stderr,
            )
        if "train" in args.parts:
            for bs in args.batch_sizes:
                # Larger batches: the reference and our default only (they take longest).
                pick = chosen if bs == 1 else {k: v for k, v in chosen.items() if k in ("plain", "fast")}
                report["train"][f"batch {bs}"] = measure_train(
                    tmp, args, pick, [*common, "--batch_size", str(bs)], bs
                )
        if "epochs" in args.parts:
            report["epochs"] = measure_epochs(tmp, args, chosen, common)
        if "test" in args.parts:
            test_flags = [*model, *gpu, "--load_size", str(size), "--crop_size", str(size)]
            report["test"] = measure_test(tmp, args, common, test_flags)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


def experiment(tmp: Path, name: str) -> list[str]:
    return ["--dataroot", str(tmp / "data"), "--name", name, "--checkpoints_dir", str(tmp / "c")]


def measure_train(tmp: Path, args, chosen: dict, flags: list[str], batch: int) -> dict:
    """Seconds per iteration of every variant, ``args.rounds`` alternating runs each."""
    runs: dict[str, list] = {k: [] for k in chosen}
    for _ in range(args.rounds):
        for name, extra in chosen.items():
            argv = [*experiment(tmp, "b"), *flags, *extra]
            runs[name].append(
                run_child(
                    {
                        "kind": "train",
                        "argv": argv,
                        "iters": args.iters,
                        "warmup": args.warmup,
                        "plain": name == "plain",
                    }
                )
            )
    rows = summarize_train(runs, batch)
    print_train(batch, rows)
    return rows


def measure_epochs(tmp: Path, args, chosen: dict, flags: list[str]) -> dict:
    """Whole train.py runs of ``args.epochs`` 12-image epochs, plain and fast, checkpoints included."""
    runs: dict[str, list] = {k: [] for k in ("plain", "fast") if k in chosen}
    # The plain run also saves the training state after every epoch, as the code did before.
    extra = {"plain": [*chosen["plain"], "--save_budget", "1"], "fast": chosen.get("fast", [])}
    for r in range(args.epoch_rounds):
        for name in runs:
            epochs = ["--n_epochs", str(args.epochs), "--n_epochs_decay", "0", "--no_html"]
            argv = [*experiment(tmp, f"e_{name}_{r}"), *flags, *epochs, *extra[name]]
            runs[name].append(run_child({"kind": "epochs", "argv": argv, "epochs": args.epochs}))
    rows = summarize_epochs(runs, args.epochs)
    print_epochs(rows)
    return rows


def measure_test(tmp: Path, args, train_flags: list[str], flags: list[str]) -> dict:
    """test.py on the test images: the former path ('plain') and ours, at each batch size."""
    one_image = ["--n_epochs", "1", "--n_epochs_decay", "0", "--max_dataset_size", "1", "--no_html"]
    run_child({"kind": "epochs", "argv": [*experiment(tmp, "t"), *train_flags, *one_image], "epochs": 1})
    keys = [(name, bs) for bs in args.batch_sizes for name in ("plain", "fast")]
    runs: dict[str, list] = {f"{name}, batch {bs}": [] for name, bs in keys}
    for r in range(args.rounds):
        for name, bs in keys:
            results = ["--results_dir", str(tmp / f"results_{r}_{name}_{bs}"), "--batch_size", str(bs)]
            spec = {
                "kind": "test",
                "argv": [
                    *experiment(tmp, "t"),
                    *flags,
                    *results,
                    *([*WORKERS_BEFORE, "--malloc", "system"] if name == "plain" else []),
                ],
                "plain": name == "plain",
            }
            runs[f"{name}, batch {bs}"].append(run_child(spec))
    rows = summarize_test(runs, args.test_images)
    print_test(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
