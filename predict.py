"""Remove clouds from a whole Sentinel-2 scene with a trained model, window by window.

    python predict.py --cloudy S2.tif --sar S1.tif --name realcloud_21 --out S2_clear.tif

Inputs: the cloudy Sentinel-2 image (digital numbers, uint16, reflectance x 10000) and the
Sentinel-1 image (backscatter in dB, float) on the same grid, any size up to a full
10980 x 10980 tile. The model's configuration (bands, widths, U-Net depth, preprocessing) is read
from the experiment's ``train_opt.json``, so no training flag is repeated here.
Output: a float32 GeoTIFF of reflectance in [0, 1] (all output bands) on the input grid; nodata
where both inputs are nodata. Overlapping windows are cross-faded (see ``util/scene_io.py``);
memory stays flat as the scene grows; an existing output is only replaced by a complete file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch

import data
import models
from data.sentinel import S2_BANDS, parse_bands
from options.parser import OneLineParser, positive_int
from options.test_options import TestOptions
from util.device import resolve_device
from util.errors import UserError, run_cli
from util.scene_io import (
    S1_DTYPES,
    S2_DTYPES,
    AtomicOutput,
    BatchReader,
    WindowGrid,
    check_dtype,
    check_same_grid,
    open_raster,
    output_profile,
    parse_nodata,
)
from util.scene_predict import keep_heap_flat, predict_scene

PNG_DATASETS = ("triplet", "simcloud")  # trained on 8-bit PNGs, not on Sentinel GeoTIFFs
GDAL_CACHE_MB = 64  # GDAL's block cache, fixed so that memory does not depend on the scene


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="predict.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--cloudy", required=True, help="cloudy Sentinel-2 GeoTIFF (uint16 digital numbers)")
    p.add_argument("--sar", required=True, help="Sentinel-1 GeoTIFF on the same grid (float dB: VV, VH)")
    p.add_argument("--out", required=True, help="output GeoTIFF (float32 reflectance)")
    p.add_argument("--name", required=True, help="experiment: <checkpoints_dir>/<name>/ with train_opt.json")
    p.add_argument(
        "--checkpoints_dir", default="./checkpoints", help="where experiments are saved (%(default)s)"
    )
    p.add_argument(
        "--epoch",
        "--which_epoch",
        dest="epoch",
        default="latest",
        help="'latest' (the default) or an epoch number",
    )
    p.add_argument(
        "--gpu_ids", default="auto", help="'auto' (the default: first GPU if any), -1 for the CPU, or e.g. 0"
    )
    p.add_argument(
        "--window",
        type=positive_int,
        default=256,
        help="window side in pixels (%(default)s); a multiple of the U-Net's 2**depth (256 for unet_256)",
    )
    p.add_argument(
        "--overlap",
        type=int,
        default=64,
        help="pixels shared by neighbouring windows, cross-faded (%(default)s)",
    )
    p.add_argument(
        "--batch_size", type=positive_int, default=8, help="windows per forward pass (%(default)s)"
    )
    p.add_argument(
        "--num_threads",
        type=int,
        default=None,
        help="threads reading the inputs while a GPU runs (default: up to 6; on the CPU 0: reading, "
        "the network and writing take turns)",
    )
    p.add_argument(
        "--s2_bands",
        default=None,
        help="bands of a 13-band scene to use ('all', 'rgb', names or numbers; default: the training's)",
    )
    p.add_argument(
        "--cloudy_nodata",
        default=None,
        help="nodata value of the cloudy image (a number, 'nan' or 'none'; default: the file's)",
    )
    p.add_argument("--sar_nodata", default=None, help="nodata value of the SAR image (default: the file's)")
    p.add_argument(
        "--nodata", default="nan", help="nodata value written to the output (a number or 'nan': %(default)s)"
    )
    p.add_argument(
        "--compress",
        default="none",
        choices=("none", "zstd", "deflate", "lzw"),
        help="output compression (%(default)s; float reflectance shrinks by only 10-25%%)",
    )
    return p


# ---------------------------------------------------------------------------- the model
def load_options(checkpoints_dir: str, name: str) -> argparse.Namespace:
    """The training options of experiment ``name`` on top of today's defaults (for older files)."""
    folder = Path(checkpoints_dir) / name
    if not folder.is_dir():
        raise UserError(f"no experiment {folder}; check --name and --checkpoints_dir")
    path = folder / "train_opt.json"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"{path} is missing: predict.py reads the model's configuration from it (train.py writes it)"
        ) from None
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if not isinstance(saved, dict):
        raise UserError(f"{path} does not hold a JSON object of options")
    argv = ["--model", str(saved.get("model", "pix2pix_attn"))]
    if saved.get("dataset_mode") in data.DATASET_CHOICES:
        argv += ["--dataset_mode", saved["dataset_mode"]]
    try:
        defaults = vars(TestOptions().build_parser(argv).parse_args(argv))
    except SystemExit:
        raise UserError(
            f"{path} names a model or dataset this code does not have ({' '.join(argv)})"
        ) from None
    return argparse.Namespace(**{**defaults, **saved})


def load_model(opt: argparse.Namespace, checkpoints_dir: str, epoch: str, gpu_ids: str) -> models.BaseModel:
    """Build the model of the saved options in test mode on the chosen device and load its weights."""
    if epoch != "latest" and not str(epoch).isdigit():
        raise UserError(f"--epoch {epoch!r}: expected 'latest' or an epoch number")
    opt.checkpoints_dir, opt.epoch, opt.load_iter = checkpoints_dir, epoch, 0
    opt.is_train, opt.verbose = False, False
    opt.device, opt.gpu_list = resolve_device(gpu_ids)
    model = models.create_model(opt)
    model.setup()
    model.eval()  # deterministic: no dropout, whatever the training used
    torch.backends.cudnn.benchmark = True  # one window size: let cuDNN pick its fastest kernels
    return model


def model_forward(model: models.BaseModel) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(cloudy, sar)`` in [0, 1] on the model's device -> cloud-free reflectance in [0, 1]."""
    output = model.roles.output

    def forward(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # The model's pure inference method keeps nothing between batches.
        out = model.predict(a * 2 - 1, c * 2 - 1)[output].float()
        return (out + 1) / 2

    return forward


def window_multiple(opt: argparse.Namespace) -> int:
    """Window sides must be multiples of this for the model of ``opt`` (e.g. 2**depth of a U-Net)."""
    return models.find_model_using_name(opt.model).size_multiple(opt)


# ---------------------------------------------------------------------------- the scene
@dataclass
class Scene:
    """The two inputs, which of their bands to read (1-based) and how to scale them."""

    cloudy: rasterio.io.DatasetReader
    sar: rasterio.io.DatasetReader
    s2_indexes: list[int]
    s1_indexes: list[int]
    s2_nodata: float | None
    s1_nodata: float | None
    sar_scaling: str = "standard"
    band_names: tuple[str, ...] = ()

    def batch_reader(self, grid: WindowGrid, batch_size: int = 1, pin: bool = False) -> BatchReader:
        """Reader of batches; ``pin``: into page-locked memory, for fast asynchronous copies to a GPU."""
        return BatchReader(
            self.cloudy.name,
            self.sar.name,
            self.s2_indexes,
            self.s1_indexes,
            self.s2_nodata,
            self.s1_nodata,
            grid,
            batch_size,
            _pinned if pin else None,
        )

    def close(self) -> None:
        self.cloudy.close()
        self.sar.close()


def _pinned(n: int, dtype: np.dtype) -> tuple[np.ndarray, torch.Tensor]:
    """A page-locked torch buffer of n values (unsigned integers as the signed type of their size,
    which torch supports fully) and a numpy view of it in ``dtype``."""
    signed = np.dtype(dtype.str.replace("u", "i"))
    tensor = torch.empty(n, dtype=torch.from_numpy(np.empty(0, signed)).dtype, pin_memory=True)
    return tensor.numpy().view(dtype), tensor


def open_scene(args: argparse.Namespace, opt: argparse.Namespace) -> Scene:
    cloudy = open_raster(args.cloudy, "cloudy")
    sar = open_raster(args.sar, "SAR")
    check_dtype(cloudy, S2_DTYPES, "Sentinel-2 digital numbers (reflectance x 10000)")
    check_dtype(sar, S1_DTYPES, "Sentinel-1 backscatter in dB")
    check_same_grid(cloudy, sar)
    spec = args.s2_bands or getattr(opt, "s2_bands", None)
    n, need = cloudy.count, opt.input_nc
    if spec and n == len(S2_BANDS):
        picked = parse_bands(str(spec))
    elif n == need:
        picked = tuple(range(n))
    else:
        hint = " (give --s2_bands to choose them from a 13-band scene)" if n == len(S2_BANDS) else ""
        raise UserError(f"{args.cloudy} has {n} band(s) but the model takes {need}{hint}")
    if len(picked) != need:
        raise UserError(f"--s2_bands {spec} selects {len(picked)} band(s) but the model takes {need}")
    if sar.count != opt.sar_nc:
        raise UserError(f"{args.sar} has {sar.count} band(s) but the model takes {opt.sar_nc} SAR band(s)")
    names = (
        tuple(S2_BANDS[i] for i in picked)
        if n == len(S2_BANDS)
        else tuple(d or f"band_{i + 1}" for i, d in enumerate(cloudy.descriptions))
    )
    return Scene(
        cloudy,
        sar,
        [i + 1 for i in picked],
        list(range(1, sar.count + 1)),
        parse_nodata(args.cloudy_nodata) if args.cloudy_nodata is not None else cloudy.nodata,
        parse_nodata(args.sar_nodata) if args.sar_nodata is not None else sar.nodata,
        str(getattr(opt, "sar_scaling", None) or "standard"),
        names,
    )


# ---------------------------------------------------------------------------- the command
def check_paths(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'clear.tif'}")
    if not out.parent.is_dir():
        raise UserError(f"the folder of --out {out} does not exist")
    for role in ("cloudy", "sar"):
        src = Path(getattr(args, role))
        if out.exists() and src.exists() and out.samefile(src):
            raise UserError(f"--out {out} is the --{role} input; choose another file name")


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_paths(args)
    keep_heap_flat()
    opt = load_options(args.checkpoints_dir, args.name)
    if getattr(opt, "dataset_mode", None) in PNG_DATASETS:
        print(
            f"warning: experiment {args.name} was trained on 8-bit PNGs ({opt.dataset_mode}); its inputs were "
            "not Sentinel reflectance / dB scaled as here",
            file=sys.stderr,
        )
    if parse_nodata(args.nodata) is None:
        raise UserError("--nodata must be a number or 'nan'")
    if args.num_threads is not None and args.num_threads < 0:
        raise UserError(f"--num_threads {args.num_threads}: expected 0 or more")
    if not 0 <= args.overlap < args.window:
        raise UserError(f"--overlap {args.overlap} must be at least 0 and less than --window {args.window}")
    side = window_multiple(opt)
    if args.window % side:
        raise UserError(
            f"--window {args.window} does not fit --netG {opt.netG} of the model: the side must be a "
            f"multiple of {side}, e.g. {max(side, args.window // side * side)}"
        )
    # GDAL reads a GDAL_CACHEMAX set in the environment itself (it may carry a unit, e.g. '128MB').
    cache = {} if os.environ.get("GDAL_CACHEMAX") else {"GDAL_CACHEMAX": GDAL_CACHE_MB}
    with rasterio.Env(**cache):
        scene = open_scene(args, opt)  # input errors before the model is built
        try:
            model = load_model(opt, args.checkpoints_dir, args.epoch, args.gpu_ids)
            ran, grid, seconds = write_prediction(args, opt, model, scene)
        finally:
            scene.close()
    print(
        f"wrote {args.out}: {grid.width}x{grid.height} px, {opt.output_nc} band(s), {ran} of {len(grid)} windows "
        f"run, {seconds:.1f} s ({grid.height * grid.width / 1e6 / seconds:.2f} Mpx/s)"
    )
    return 0


def write_prediction(
    args: argparse.Namespace,
    opt: argparse.Namespace,
    model: models.BaseModel,
    scene: Scene,
    progress: bool = True,
) -> tuple[int, WindowGrid, float]:
    """Predict ``scene`` into ``args.out`` (atomically): ``(windows run, grid, seconds)``."""
    nodata = parse_nodata(args.nodata)
    start = time.perf_counter()
    grid = WindowGrid(scene.cloudy.height, scene.cloudy.width, args.window, args.overlap)
    profile = output_profile(scene.cloudy, opt.output_nc, nodata, args.compress, grid.stride)
    with AtomicOutput(args.out, profile) as dst:
        for i, band in enumerate(scene.band_names[: opt.output_nc], start=1):
            dst.set_band_description(i, band)
        dst.update_tags(
            experiment=args.name,
            epoch=str(args.epoch),
            model=opt.model,
            content="cloud-free reflectance in [0, 1]",
        )
        reader = scene.batch_reader(grid, args.batch_size, pin=model.device.type == "cuda")
        try:
            ran = predict_scene(
                reader,
                model_forward(model),
                opt.output_nc,
                dst,
                model.device,
                args.batch_size,
                nodata,
                scene.sar_scaling,
                progress,
                args.num_threads,
            )
        finally:
            reader.close()
    return ran, grid, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
