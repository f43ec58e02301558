"""The whole-scene figures of ``python -m scripts.benchmark_predict --report``: one table per question.

* every model (``--models``): windows per second of the bare network (``ScenePredictor.forward`` on
  the grid's windows, inputs already on the device) and of the whole pipeline (``predict``: reading,
  scaling, network, blending, writing), and the pipeline's rate as a fraction of the network's;
* a ``--crop`` x ``--crop`` scene's time through the pipeline, and a full Sentinel-2 tile's
  (10980 x 10980 px) extrapolated from it by the number of windows;
* peak memory (resident set size of a fresh ``predict.py`` process) for each of ``--memory_sizes``;
* the total time of a many-scene run (``--shard_scenes`` scenes of ``--shard_size`` px, a pair list)
  by 1 worker and by 2 workers at once (SLURM-array shares; each worker gets cpu_count / workers
  threads), and the speed-up.

Models are random-weight experiments in their authors' configurations (``--dataset_mode
sen12mscr``: 13 bands, 2 SAR bands); pix2pix_attn's width and depth follow ``--ngf``/``--netG``.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit(
        "error: run it from the repository root as a module: python -m scripts.benchmark_predict"
    )

import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

from scene import ScenePredictor
from scene.windows import WindowGrid

TILE = 10980  # a Sentinel-2 tile's side at 10 m
ROOT = Path(__file__).resolve().parents[1]


def make_model(root: Path, name: str, model: str, ngf: int, netG: str) -> None:
    """A random-weight experiment of ``model`` as train.py leaves it (13 bands, 2 SAR bands)."""
    from models import create_model
    from options.train_options import TrainOptions

    argv = ["--dataroot", "unused", "--name", name, "--checkpoints_dir", str(root), "--model", model]
    argv += ["--dataset_mode", "sen12mscr", "--gpu_ids", "-1"]
    if model == "pix2pix_attn":
        argv += ["--netG", netG, "--ngf", str(ngf), "--ndf", str(ngf)]
    with contextlib.redirect_stdout(io.StringIO()):
        create_model(TrainOptions().parse(argv)).save_networks("latest")


def model_rows(args, tmp: Path, s2: Path, s1: Path) -> list[str]:
    """Per model: network and pipeline windows per second on the ``--size`` scene, and their ratio."""
    from scripts.benchmark_predict import Run, gpu_ids, sync, time_network

    rows = [
        "| model | windows | network windows/s | pipeline windows/s | pipeline / network |",
        "|---|---|---|---|---|",
    ]
    for model in args.models:
        make_model(tmp, model, model, args.ngf, args.netG)
        predictor = ScenePredictor(tmp, model, gpu_ids=gpu_ids(args.device))
        with contextlib.redirect_stdout(io.StringIO()):
            device, forward = predictor.model.device, predictor.forward
        grid = WindowGrid(args.size, args.size, args.window, args.overlap)
        time_network(
            forward, WindowGrid(args.window, args.window, args.window, 0), args.batch_size, 13, device
        )
        run = Run(predictor, s2, s1, tmp / f"{model}.tif", args)
        net = min(time_network(forward, grid, args.batch_size, 13, device) for _ in range(args.repeat))
        pipe = min(run.seconds() for _ in range(args.repeat))
        sync(device)
        n = len(grid)
        rows.append(f"| {model} | {n} | {n / net:.2f} | {n / pipe:.2f} | {net / pipe:.1%} |")
        del predictor
    return rows


def crop_rows(args, tmp: Path) -> list[str]:
    """The first model's pipeline time on a ``--crop`` scene, and a full tile's extrapolated."""
    from scripts.benchmark_predict import Run, gpu_ids, write_scene

    s2, s1 = write_scene(tmp, args.crop, 13, seed=1)
    predictor = ScenePredictor(tmp, args.models[0], gpu_ids=gpu_ids(args.device))
    with contextlib.redirect_stdout(io.StringIO()):
        _ = predictor.model  # built and loaded before the clock starts
    seconds = Run(predictor, s2, s1, tmp / "crop.tif", args).seconds()
    crop, tile = (len(WindowGrid(n, n, args.window, args.overlap)) for n in (args.crop, TILE))
    full = seconds * tile / crop
    return [
        f"{args.models[0]}: {args.crop}x{args.crop} crop {seconds:.1f} s ({crop} windows); full tile "
        f"{TILE}x{TILE} ({tile} windows) extrapolated: {full:.0f} s = {full / 3600:.2f} h"
    ]


def predict_cmd(tmp: Path, args, model: str, *inputs: str) -> list[str]:
    from scripts.benchmark_predict import gpu_ids

    return [
        sys.executable, str(ROOT / "predict.py"), *inputs, "--name", model, "--checkpoints_dir", str(tmp),
        "--gpu_ids", gpu_ids(args.device), "--window", str(args.window), "--overlap", str(args.overlap),
        "--batch_size", str(args.batch_size),
    ]  # fmt: skip


def memory_rows(args, tmp: Path) -> list[str]:
    """Peak RSS of a fresh predict.py process for each scene size."""
    from scripts.benchmark_memory import peak_rss
    from scripts.benchmark_predict import write_scene

    rows, first = [], None
    for size in args.memory_sizes:
        s2, s1 = write_scene(tmp, size, 13, seed=2)
        out = tmp / f"mem_{size}.tif"
        cmd = predict_cmd(tmp, args, args.models[0], "--cloudy", str(s2), "--sar", str(s1), "--out", str(out))
        rss, seconds = peak_rss(cmd, tmp / f"mem_{size}.log")
        first = first or rss
        rows.append(
            f"scene {size}x{size}: peak RSS {rss:.0f} MiB ({rss / first:.3f} of the smallest), {seconds:.1f} s"
        )
        for path in (s2, s1, out):
            path.unlink()
    return rows


def shard_rows(args, tmp: Path) -> list[str]:
    """Total wall time of one many-scene run by 1 worker and by 2 workers at once."""
    from scripts.benchmark_predict import write_scene

    lines = []
    for i in range(args.shard_scenes):
        folder = tmp / f"shard_in{i}"
        folder.mkdir()
        s2, s1 = write_scene(folder, args.shard_size, 13, seed=10 + i)
        lines.append(
            f"{s2.rename(folder / f'scene{i}.tif')} {s1}"
        )  # outputs are named after the cloudy input
    pairs = tmp / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    rows, times = [], {}
    for workers in (1, 2):
        out = tmp / f"shard_out{workers}"
        out.mkdir()
        cmd = predict_cmd(tmp, args, args.models[0], "--pairs", str(pairs), "--out", str(out))
        threads = str(max(1, (os.cpu_count() or 2) // workers))
        env = {**os.environ, "OMP_NUM_THREADS": threads, "SLURM_ARRAY_TASK_COUNT": str(workers)}
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**env, "SLURM_ARRAY_TASK_ID": str(w)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for w in range(workers)
        ]
        errors = [p.communicate()[1] for p in procs]
        if any(p.returncode for p in procs):
            raise SystemExit(f"error: a worker failed:\n{errors[-1][-2000:]}")
        times[workers] = time.perf_counter() - start
        rows.append(
            f"{args.shard_scenes} scenes of {args.shard_size}x{args.shard_size}, {workers} worker(s) "
            f"({threads} threads each): {times[workers]:.1f} s"
        )
    rows.append(f"speed-up of 2 workers: {times[1] / times[2]:.2f}x")
    return rows


def report(args, tmp: Path, s2: Path, s1: Path) -> None:
    """Print every table of the report."""
    print(f"\n## windows per second, window {args.window}, overlap {args.overlap}, batch {args.batch_size}")
    print("\n".join(model_rows(args, tmp, s2, s1)))
    print(f"\n## a {args.crop}x{args.crop} crop and a full tile")
    print("\n".join(crop_rows(args, tmp)))
    print("\n## peak memory against scene size")
    print("\n".join(memory_rows(args, tmp)))
    print("\n## many scenes, 1 and 2 workers")
    print("\n".join(shard_rows(args, tmp)))
