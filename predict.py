"""Remove clouds from a whole Sentinel-2 scene with a trained model, window by window.

    python predict.py --cloudy S2.tif --sar S1.tif --name realcloud_21 --out S2_clear.tif --maps
    python predict.py --cloudy S2_dir/ --sar S1_dir/ --name realcloud_21 --out clear_dir/
    python predict.py --pairs pairs.txt --name realcloud_21 --out clear_dir/ --cog
    python predict.py --cloudy S2.tif --sar S1.tif --weights CR_net.pth --out S2_clear.tif
    python predict.py --cloudy S2B_MSIL2A_....SAFE.zip --sar S1_RTC_item.json --name NAME --out clear.tif --keep_clear

Inputs: the cloudy Sentinel-2 product as users download it (a ``.SAFE`` folder or zip, Level-1C
or Level-2A; a STAC item with one asset per band; or a GeoTIFF of digital numbers) and the
Sentinel-1 image (a GeoTIFF or STAC item, VV and VH in dB or linear power), any size up to a full
10980 x 10980 tile. Bands are found by name; 20/60 m bands and a SAR image on another grid or CRS
are resampled onto the 10 m grid on the fly; the 2022 processing-baseline offset is taken out; one
warning line per way the inputs differ from what the model was trained on (docs/scenes.md). The
model's configuration (bands, widths, U-Net depth, preprocessing) is read from the experiment's
``train_opt.json``, so no training flag is repeated here; a folder of weight files alone (the
official release) is read with the paper's configuration, and a published weight file
(``--weights``: GLF-CR's CR_net.pth, DSen2-CR's HDF5 files, UnCRtainTS' model.pth.tar, see
docs/weights.md) with its own; each is given the scene as it was trained (its input domain: bands,
level, SAR clip, scaling; 8-bit PNG models through the PNG mapping). Many scenes (two folders with the same file names, or
a list of pairs) run in one go into one folder (made if missing), shared among torchrun's
processes or a SLURM array's tasks; scenes whose files all exist are skipped, so a stopped run
restarts. An existing output is never replaced without ``--overwrite``.
Output: a GeoTIFF on the input grid, all output bands, as float32 reflectance in [0, 1] or
(``--out_dtype uint16``) reflectance x 10000, with a STAC item ``<out stem>.stac.json`` beside it;
nodata where both inputs are nodata; ``--maps`` adds the attention map (or DSen2-CR's cloud/shadow
mask, or UnCRtainTS' predicted variance, reflectance^2 averaged over the bands) as
``<out stem>_<map>.tif``; ``--keep_clear`` keeps the input's clear pixels (``<out stem>_clouds.tif``:
the weight); ``--cog`` writes cloud-optimised GeoTIFFs. Overlapping windows are cross-faded (see
``scene/windows.py``); memory stays flat as the scene grows; with ``--overwrite`` an existing output
is only replaced by a complete file.

This file is the command line only: the library is the ``scene`` package
(``scene.ScenePredictor``, ``scene.predict_scene_file``, ``scene.batch``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models import MODEL_NAMES
from options.parser import OneLineParser, positive_int
from scene import COMPRESSIONS, OUT_DTYPES, ScenePredictor, keep_heap_flat
from scene.batch import check_pairs, check_partial, folder_pairs, listed_pairs, predict_scenes
from scene.keep_clear import DEFAULT_FEATHER, PREDICT_DETECTORS
from scene.paths import check_output_path, check_overwrite, sidecar_names
from scene.products import RESAMPLINGS, SAR_UNITS, ReadOptions, product_format
from scene.shard import this_worker, worker_gpu_ids
from util.errors import UserError, run_cli


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="predict.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--cloudy",
        help="cloudy Sentinel-2: a GeoTIFF of digital numbers, a .SAFE folder or zip (L1C or L2A), a STAC "
        "item (JSON file or URL); or a folder of GeoTIFFs",
    )
    p.add_argument(
        "--sar",
        help="Sentinel-1 (VV, VH; dB or linear power): a GeoTIFF or a STAC item; or a folder with the same "
        "file names (none for a model without SAR input)",
    )
    p.add_argument(
        "--pairs", help="text file of scenes instead of --cloudy/--sar: one 'cloudy.tif sar.tif' per line"
    )
    p.add_argument(
        "--out",
        required=True,
        help="output GeoTIFF, named .tif or .tiff (float32 reflectance, or uint16 with --out_dtype); a "
        "folder for many scenes (made if missing)",
    )
    p.add_argument(
        "--name",
        default=None,
        help="experiment: <checkpoints_dir>/<name>/ with train_opt.json, or holding weight files alone "
        "(e.g. the official latest_net_G.pth ...: the paper's configuration)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="instead of --name: a published weight file (GLF-CR's CR_net.pth, a DSen2-CR .hdf5, UnCRtainTS' "
        "model.pth.tar or its folder), the "
        "name of a published set (docs/weights.md; its kind is recognised from its content), or a folder "
        "(an experiment, or weight files alone such as the official latest_net_{G,G2,A,D}.pth)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="with --weights NAME: download the published set into the cache if it is not there",
    )
    p.add_argument(
        "--model",
        default=None,
        choices=MODEL_NAMES,
        help="the model of a folder of weight files alone (default: pix2pix_attn); with --weights, refuse "
        "a file of another model",
    )
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
    g = p.add_argument_group("reading products (docs/scenes.md)")
    g.add_argument(
        "--s2_offset",
        default="auto",
        help="digital numbers added to Sentinel-2 before scaling: 'auto' (the default: from the product's "
        "metadata, -1000 since processing baseline 04.00; none for a plain GeoTIFF) or a number, e.g. -1000",
    )
    g.add_argument(
        "--s2_resampling",
        default="nearest",
        choices=RESAMPLINGS,
        help="how 20 and 60 m bands reach the 10 m grid (%(default)s, as in SEN12MS-CR)",
    )
    g.add_argument(
        "--sar_units",
        default="auto",
        choices=SAR_UNITS,
        help="Sentinel-1 values: 'auto' (the default: the product's metadata, else the values), 'db' or "
        "'linear' power (turned into dB)",
    )
    g.add_argument(
        "--b10_fill",
        type=float,
        default=ReadOptions.b10_fill,
        help="digital numbers (reflectance x 10000) B10 reads as when a product lacks it (Level-2A); "
        "default %(default)g",
    )
    p.add_argument(
        "--nodata",
        default=None,
        help="nodata value written to the output (float32: a number or 'nan', the default; uint16: 0, the "
        "default, or 10001-65535)",
    )
    p.add_argument(
        "--out_dtype",
        default="float32",
        choices=OUT_DTYPES,
        help="output type (%(default)s): float32 reflectance in [0, 1], or uint16 Sentinel-2 digital numbers "
        "(reflectance x 10000, rounded, clipped to 0..10000; half the bytes, faster to write)",
    )
    p.add_argument(
        "--compress",
        default="none",
        choices=COMPRESSIONS,
        help="output compression (%(default)s; float reflectance shrinks by only 10-25%%)",
    )
    p.add_argument(
        "--cog", action="store_true", help="write cloud-optimised GeoTIFFs (512-pixel tiles, overviews)"
    )
    p.add_argument(
        "--maps",
        action="store_true",
        help="also write the model's attention map (DSen2-CR: its cloud/shadow mask; UnCRtainTS: its "
        "per-pixel uncertainty, the predicted variance) as <out stem>_<map>.tif",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs: one scene: --out and the files beside it (default: refuse them); many "
        "scenes: redo every scene (default: skip scenes whose files are all there, refuse partial ones)",
    )
    g = p.add_argument_group("clear pixels (docs/scenes.md)")
    g.add_argument(
        "--keep_clear",
        action="store_true",
        help="keep the input's own pixels where the cloud detector finds clear ground (the model's on cloud "
        "and shadow, feathered); also writes the weight as <out stem>_clouds.tif",
    )
    g.add_argument(
        "--cloud_mask",
        action="store_true",
        help="write the detector's feathered cloud/shadow weight as <out stem>_clouds.tif (without --keep_clear)",
    )
    g.add_argument(
        "--cloud_detector",
        default="auto",
        choices=PREDICT_DETECTORS,
        help="'auto' (the default: s2cloudless for 13 bands if installed, else DSen2-CR's rules), "
        "'s2cloudless', 'cloud_shadow' (DSen2-CR's clouds and shadows), 'rgb'",
    )
    g.add_argument(
        "--feather",
        type=int,
        default=DEFAULT_FEATHER,
        help="pixels over which the detector's mask is grown and then faded to 0 (%(default)s)",
    )
    return p


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    many = args.pairs is not None or (
        args.cloudy is not None and Path(args.cloudy).is_dir() and product_format(args.cloudy) != "SAFE"
    )
    if args.pairs is None and args.cloudy is None:
        raise UserError("give --cloudy and --sar (files or folders), or --pairs LIST")
    if (args.name is None) == (args.weights is None):
        raise UserError("give an experiment (--name) or a weight file (--weights), one of the two")
    if many and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder when there are many scenes")
    worker = this_worker()
    if many:
        pairs = (
            listed_pairs(args.pairs, args.out)
            if args.pairs
            else folder_pairs(args.cloudy, args.sar, args.out)
        )
        check_pairs(pairs)
        if worker.count > 1:
            print(
                f"{worker.describe()}: {len(worker.share(pairs))} of {len(pairs)} scene(s)", file=sys.stderr
            )
            pairs = worker.share(pairs)
    else:
        check_output_path(args.out, ("cloudy", args.cloudy), *([("sar", args.sar)] if args.sar else []))
        if worker.index > 0:
            print(f"{worker.describe()}: one scene, left to worker 1", file=sys.stderr)
            return 0
    keep_heap_flat()
    predictor = ScenePredictor(
        args.checkpoints_dir,
        args.name,
        args.epoch,
        gpu_ids=worker_gpu_ids(args.gpu_ids),
        model=args.model,
        weights=args.weights,
        download=args.download,
    )
    # Refusals come before the warning, so that an error is one line.
    names = sidecar_names(predictor.chosen_maps(args.maps), args.keep_clear or args.cloud_mask)
    if not many:
        check_overwrite(args.out, names, args.overwrite)
    elif not args.overwrite:
        check_partial(pairs, names)
    if predictor.warning:
        print(f"warning: {predictor.warning}", file=sys.stderr)
    if many:
        results = predict_scenes(predictor, pairs, overwrite=args.overwrite, **settings(args))
    else:
        results = [
            predictor.predict(args.cloudy, args.sar, args.out, overwrite=args.overwrite, **settings(args))
        ]
    for result in results:
        kind = " of uint16 digital numbers" if result.dtype == "uint16" else ""
        maps = "".join(f", {path.name}" for path in (*result.maps, *([result.item] if result.item else [])))
        print(
            f"wrote {result.path}{maps}: {result.width}x{result.height} px, {result.bands} band(s){kind}, "
            f"{result.windows_run} of {result.windows} windows run, {result.seconds:.1f} s "
            f"({result.megapixels_per_second:.2f} Mpx/s)"
        )
    return 0


def settings(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``ScenePredictor.predict`` given on the command line."""
    names = ("window", "overlap", "batch_size", "out_dtype", "nodata", "compress", "s2_bands", "cog", "maps")
    names += ("keep_clear", "cloud_mask", "cloud_detector", "feather")
    read = ReadOptions(args.s2_offset, args.s2_resampling, args.sar_units, args.b10_fill)
    return {
        **{name: getattr(args, name) for name in names},
        "cloudy_nodata": args.cloudy_nodata,
        "sar_nodata": args.sar_nodata,
        "num_threads": args.num_threads,
        "read": read,
    }


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
