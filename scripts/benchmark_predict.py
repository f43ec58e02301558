"""Throughput of whole-scene inference (predict.py) against the bare network on the same windows.

    python -m scripts.benchmark_predict                         # CPU, small defaults (a few minutes)
    python -m scripts.benchmark_predict --device cuda --ngf 64 --size 4096 [--out_dtype uint16]
    python -m scripts.benchmark_predict --report                # every model, a tile, memory, shards

Both rates are in scene megapixels per second, for the same synthetic scene (``--size`` squared,
``--bands`` Sentinel-2 bands, 2 SAR bands), the same random-weight model, device, window,
overlap and batch size:

* network: ``len(grid)`` windows (the overlapping windows predict.py runs for this scene) pushed
  through the model's forward function (``ScenePredictor.forward``, the bare network) in batches
  of ``--batch_size`` random inputs already on the device; no reading, scaling, transfer,
  blending or writing. Seconds from the first batch to the device having finished the last.
* predict: the scene pipeline (``ScenePredictor.predict``, what predict.py runs) from opening the
  output to closing it (reading both GeoTIFFs, scaling, host->device, network, blending,
  carrying, normalising, converting to ``--out_dtype``, writing the GeoTIFF, renaming it); the
  model is built and loaded beforehand.

The ratio network / predict - 1 is the overhead of everything around the network (target: at
most 25%). Each is measured ``--repeat`` times, interleaved, and the fastest run kept.

``--report`` prints instead the tables of :mod:`scripts.benchmark_scenes`: windows per second of
every model (``--models``) and the pipeline's share of the network's rate, a ``--crop`` scene's time
and a full tile's extrapolated, peak memory for ``--memory_sizes``, and a many-scene run by 1 and 2
workers.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit(
        "error: run it from the repository root as a module: python -m scripts.benchmark_predict"
    )

import argparse
import contextlib
import io
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine

from scene import OUT_DTYPES, Forward, OutputFormat, ScenePredictor, keep_heap_flat
from scene.output import atomic_geotiff
from scene.paths import output_files
from scene.pipeline import batches, default_workers, device_inputs, ordered_map, read_batch
from scene.predictor import gdal_env
from scene.windows import WindowGrid
from util.errors import UserError, run_cli

SAR_BANDS = 2
REPORT_MODELS = ("pix2pix_attn", "dsen2cr", "glf_cr", "pix2pix", "sar_opt_cgan", "sf_gan")


def make_experiment(root: Path, name: str, bands: int, ngf: int, netG: str) -> None:
    """A random-weight experiment as train.py leaves it (weights + train_opt.json)."""
    from models import create_model
    from options.train_options import TrainOptions

    argv = [
        "--dataroot",
        "unused",
        "--name",
        name,
        "--checkpoints_dir",
        str(root),
        "--netG",
        netG,
        "--ngf",
        str(ngf),
        "--ndf",
        str(ngf),
        "--input_nc",
        str(bands),
        "--output_nc",
        str(bands),
        "--sar_nc",
        str(SAR_BANDS),
        "--gpu_ids",
        "-1",
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        create_model(TrainOptions().parse(argv)).save_networks("latest")


def write_scene(folder: Path, size: int, bands: int, seed: int = 0) -> tuple[Path, Path]:
    """Synthetic S2 (uint16 DN) and S1 (float32 dB) GeoTIFFs, tiled, written strip by strip."""
    rng = np.random.default_rng(seed)
    common = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "crs": "EPSG:32632",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "transform": Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5100000.0),
    }
    s2, s1 = folder / f"s2_{size}.tif", folder / f"s1_{size}.tif"
    with (
        rasterio.open(s2, "w", count=bands, dtype="uint16", nodata=0, **common) as a,
        rasterio.open(s1, "w", count=SAR_BANDS, dtype="float32", **common) as c,
    ):
        for row in range(0, size, 256):
            h = min(256, size - row)
            window = rasterio.windows.Window(0, row, size, h)
            a.write(rng.integers(300, 6000, (bands, h, size), dtype=np.uint16), window=window)
            c.write(rng.uniform(-25, 0, (SAR_BANDS, h, size)).astype(np.float32), window=window)
    return s2, s1


def gpu_ids(device: str) -> str:
    return "-1" if device == "cpu" else "0"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_network(forward, grid: WindowGrid, batch_size: int, bands: int, device: torch.device) -> float:
    """Seconds to run ``len(grid)`` windows through ``forward`` in batches, inputs on the device."""
    w, n = grid.window, len(grid)
    a = torch.rand(batch_size, bands, w, w, device=device)
    c = torch.rand(batch_size, SAR_BANDS, w, w, device=device)
    sync(device)
    start = time.perf_counter()
    for first in range(0, n, batch_size):
        m = min(batch_size, n - first)
        forward(a[:m], c[:m])
    sync(device)
    return time.perf_counter() - start


def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts.benchmark_predict", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--size", type=int, default=1024, help="scene side in pixels")
    p.add_argument("--bands", type=int, default=13, help="Sentinel-2 bands of the scene and the model")
    p.add_argument("--ngf", type=int, default=64, help="U-Net width (the paper: 64; e.g. 8 for a quick run)")
    p.add_argument("--netG", default="unet_256")
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--out_dtype", default="float32", choices=OUT_DTYPES, help="predict.py --out_dtype")
    p.add_argument("--compress", default="none", choices=("none", "zstd", "deflate", "lzw"))
    p.add_argument("--repeat", type=int, default=2, help="measurements of each, the fastest kept")
    p.add_argument("--stages", action="store_true", help="also time reading, scaling, writing on their own")
    p.add_argument(
        "--num_threads", type=int, default=None, help="predict.py --num_threads (default: its own)"
    )
    p.add_argument(
        "--write_thread",
        default="auto",
        choices=("auto", "on", "off"),
        help="write in a thread of its own (auto: when there are reading threads, i.e. on a GPU)",
    )
    p.add_argument(
        "--profile", action="store_true", help="also print where predict.py's main thread spends time"
    )
    r = p.add_argument_group("--report")
    r.add_argument("--report", action="store_true", help="the tables of scripts.benchmark_scenes instead")
    r.add_argument("--models", nargs="+", default=REPORT_MODELS, choices=REPORT_MODELS, help="models to time")
    r.add_argument("--crop", type=int, default=2048, help="side of the crop a full tile is extrapolated from")
    r.add_argument("--memory_sizes", type=int, nargs="+", default=(1024, 4096), help="scene sides for memory")
    r.add_argument("--shard_scenes", type=int, default=4, help="scenes of the many-scene run")
    r.add_argument("--shard_size", type=int, default=1024, help="side of each scene of the many-scene run")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but no CUDA device is available")
    if args.report:
        from scripts.benchmark_scenes import report

        with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
            tmp = Path(tmp)
            keep_heap_flat()
            report(args, tmp, *write_scene(tmp, args.size, 13))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        tmp = Path(tmp)
        make_experiment(tmp, "bench", args.bands, args.ngf, args.netG)
        s2, s1 = write_scene(tmp, args.size, args.bands)
        keep_heap_flat()
        predictor = ScenePredictor(tmp, "bench", gpu_ids=gpu_ids(args.device))
        with contextlib.redirect_stdout(io.StringIO()):
            device, forward = predictor.model.device, predictor.forward
        run = Run(predictor, s2, s1, tmp / "out.tif", args)
        grid = WindowGrid(args.size, args.size, args.window, args.overlap)
        # Warm-up: cuDNN picks its kernels per input shape (a full batch and the last, partial one).
        warm = grid if device.type == "cuda" else WindowGrid(args.window, args.window, args.window, 0)
        time_network(forward, warm, args.batch_size, args.bands, device)
        net_s, pipe_s = [], []
        for _ in range(args.repeat):
            net_s.append(time_network(forward, grid, args.batch_size, args.bands, device))
            pipe_s.append(run.seconds())
        out_mb = (tmp / "out.tif").stat().st_size / 2**20
        stages = time_stages(run) if args.stages else {}
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(run.seconds)
            report = io.StringIO()
            pstats.Stats(profiler, stream=report).sort_stats("tottime").print_stats(14)

    mpx = args.size**2 / 1e6
    net, pipe = min(net_s), min(pipe_s)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"device: {name}; model {args.netG} ngf {args.ngf}, {args.bands} bands; scene {args.size}x{args.size} "
        f"({mpx:.2f} Mpx), window {args.window}, overlap {args.overlap}, batch {args.batch_size}, "
        f"{len(grid)} windows; output {args.out_dtype} {args.compress} {out_mb:.0f} MiB; reading threads "
        f"{'auto' if args.num_threads is None else args.num_threads}, write thread {args.write_thread}; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"network only: {mpx / net:8.3f} Mpx/s  ({net:.2f} s for {len(grid)} windows; runs {fmt(net_s)})")
    print(f"predict.py:   {mpx / pipe:8.3f} Mpx/s  ({pipe:.2f} s; runs {fmt(pipe_s)})")
    print(
        f"ratio predict/network throughput: {net / pipe:.3f}  -> overhead {100 * (pipe / net - 1):+.1f}% "
        f"(target <= +25%)"
    )
    for stage, seconds in stages.items():
        print(f"  stage alone, {stage:<58} {mpx / seconds:8.3f} Mpx/s  ({seconds:.2f} s)")
    if args.profile:
        print("main thread of predict.py (cProfile, by own time):")
        print("\n".join(line for line in report.getvalue().splitlines()[6:] if line.strip()))
    return 0


class Run:
    """One scene run of ``predictor`` with the benchmark's settings (what predict.py would run)."""

    def __init__(
        self, predictor: ScenePredictor, s2: Path, s1: Path, out: Path, args: argparse.Namespace
    ) -> None:
        self.predictor, self.s2, self.s1, self.out = predictor, s2, s1, out
        self.fmt = OutputFormat.parse(args.out_dtype, None, args.compress)
        self.window, self.overlap, self.batch_size = args.window, args.overlap, args.batch_size
        self.num_threads = args.num_threads
        self.write_thread = {"auto": None, "on": True, "off": False}[args.write_thread]

    def seconds(self, forward: Forward | None = None) -> float:
        """Seconds of the scene pipeline, from opening the output to renaming it (``forward``: run
        instead of the model's, through ``ScenePredictor.predict``'s documented parameter).

        The previous output (and its STAC item) is removed first: renaming a new file over an existing one makes ext4
        write the new file's data to disk at once (its ``auto_da_alloc`` safeguard), which would time
        the disk rather than predict.py (0.7 s for 832 MiB on the H100 machine).
        """
        for path in output_files(self.out):  # the output and its STAC item
            path.unlink(missing_ok=True)
        return self.predictor.predict(
            self.s2,
            self.s1,
            self.out,
            window=self.window,
            overlap=self.overlap,
            batch_size=self.batch_size,
            out_dtype=self.fmt.dtype,
            compress=self.fmt.compress,
            num_threads=self.num_threads,
            write_thread=self.write_thread,
            forward=forward,
            progress=False,
        ).seconds


def time_stages(run: Run) -> dict[str, float]:
    """Where the time around the network goes: each stage of the pipeline on its own."""
    predictor, fmt = run.predictor, run.fmt
    device = predictor.model.device
    bands = predictor.bands
    out = {}
    with gdal_env(), predictor.open(run.s2, run.s1) as scene:
        grid = WindowGrid(scene.height, scene.width, run.window, run.overlap)
        reader = scene.batch_reader(grid, run.batch_size, pin=device.type == "cuda")
        workers = default_workers(device) if run.num_threads is None else run.num_threads
        chunks = batches(grid, run.batch_size)
        start = time.perf_counter()
        for _ in ordered_map(lambda windows: read_batch(reader, windows), chunks, workers):
            pass
        out[f"reading ({max(workers, 1)} thread(s))"] = time.perf_counter() - start
        start = time.perf_counter()
        for batch, tensors in ordered_map(lambda windows: read_batch(reader, windows), chunks, workers):
            device_inputs(batch, tensors, grid, reader.nodata, scene.scaling, device)
        sync(device)
        out["reading + scaling on the device"] = time.perf_counter() - start
        reader.close()
        unit = torch.rand(bands, grid.stride, grid.stride * run.batch_size)
        piece = OutputFormat.host_view(fmt.encode(unit), fmt.dtype)
        start = time.perf_counter()
        with atomic_geotiff(
            run.out.with_name("stage.tif"), fmt.profile(scene.grid, bands, grid.stride)
        ) as dst:
            for k, y in enumerate(grid.rows):
                rows = grid.final_rows(k)
                for x in range(0, grid.width, piece.shape[2]):
                    cols = min(piece.shape[2], grid.width - x)
                    dst.write(piece[:, :rows, :cols], window=rasterio.windows.Window(x, y, cols, rows))
        out[f"writing ({fmt.dtype}, {fmt.compress})"] = time.perf_counter() - start
    raw = run.out.with_name("stage.raw")
    start = time.perf_counter()
    with open(raw, "wb") as fh:
        for _ in range(math.ceil(piece.itemsize * bands * grid.height * grid.width / piece.nbytes)):
            piece.tofile(fh)
    out["writing the same bytes to a plain file (the disk's pace)"] = time.perf_counter() - start
    raw.unlink()
    out["whole pipeline with the network replaced by a copy"] = run.seconds(
        forward=lambda a, c: a[:, :bands].clone()
    )
    return out


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 2 error)."""
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
