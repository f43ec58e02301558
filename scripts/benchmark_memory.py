"""Peak memory of predict.py on a small and a large scene: it should not grow with the scene.

    python -m scripts.benchmark_memory                       # CPU: 1024^2 and 4096^2, ngf 8 (a minute or two)
    python -m scripts.benchmark_memory --device cuda --ngf 64 [--out_dtype uint16]

Each scene is predicted by ``python predict.py ...`` in a fresh subprocess; its peak resident
set size (``ru_maxrss`` from ``os.wait4`` of that very process, so one run's peak cannot leak
into another's) is printed with the ratio large / small (target: within 10%). The scenes are
synthetic Sentinel-2 (``--bands`` uint16) and Sentinel-1 (2 float32) GeoTIFFs and the model a
random-weight experiment, all in a temporary folder.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.benchmark_memory")

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scene import OUT_DTYPES
from scripts.benchmark_predict import gpu_ids, make_experiment, write_scene
from util.errors import run_cli

ROOT = Path(__file__).resolve().parents[1]  # where predict.py is


def peak_rss(cmd: list[str], log: Path) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of running ``cmd`` to completion; its output goes to ``log``."""
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text()[-2000:]
        raise SystemExit(f"error: predict.py failed ({proc.returncode}):\n{tail}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # Linux: KiB


def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts.benchmark_memory", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument(
        "--sizes", type=int, nargs=2, default=(1024, 4096), help="sides of the small and large scene"
    )
    p.add_argument("--bands", type=int, default=13)
    p.add_argument("--ngf", type=int, default=8, help="U-Net width (the paper: 64)")
    p.add_argument("--netG", default="unet_256")
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--out_dtype", default="float32", choices=OUT_DTYPES, help="predict.py --out_dtype")
    p.add_argument("--compress", default="none", choices=("none", "zstd", "deflate", "lzw"))
    args = p.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        tmp = Path(tmp)
        make_experiment(tmp, "bench", args.bands, args.ngf, args.netG)
        for size in args.sizes:
            s2, s1 = write_scene(tmp, size, args.bands)
            out = tmp / f"out_{size}.tif"
            cmd = [
                sys.executable,
                str(ROOT / "predict.py"),
                "--cloudy",
                str(s2),
                "--sar",
                str(s1),
                "--out",
                str(out),
                "--name",
                "bench",
                "--checkpoints_dir",
                str(tmp),
                "--gpu_ids",
                gpu_ids(args.device),
                "--window",
                str(args.window),
                "--overlap",
                str(args.overlap),
                "--batch_size",
                str(args.batch_size),
                "--out_dtype",
                args.out_dtype,
                "--compress",
                args.compress,
            ]
            rss, seconds = peak_rss(cmd, tmp / f"log_{size}.txt")
            results.append((size, rss, seconds))
            for path in (s2, s1, out):
                path.unlink()

    print(
        f"device {args.device}; model {args.netG} ngf {args.ngf}, {args.bands} bands; window {args.window}, "
        f"overlap {args.overlap}, batch {args.batch_size}; output {args.out_dtype} {args.compress}; "
        f"GDAL_CACHEMAX {os.environ.get('GDAL_CACHEMAX', 'predict.py default (64 MB)')}"
    )
    for size, rss, seconds in results:
        print(
            f"scene {size:>5}x{size:<5} ({size * size / 1e6:7.2f} Mpx): peak RSS {rss:8.1f} MiB  ({seconds:.1f} s)"
        )
    (small, rss_small, _), (large, rss_large, _) = results
    print(
        f"ratio peak RSS {large}^2 / {small}^2: {rss_large / rss_small:.3f} "
        f"({(large / small) ** 2:.0f}x the pixels; target within 10%)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 2 error)."""
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
