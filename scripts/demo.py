"""The one-command demo: make synthetic data, train the paper's model, test it, print the metrics.

    make demo              (installs first), or:  python -m scripts.demo [--quick] [--gpu_ids auto]

The model is the paper's ``pix2pix_attn`` (same networks, losses and update order) in a lighter
configuration that trains on a laptop CPU in minutes: U-Net depth 7 (``unet_128``) with 32
filters instead of 8 levels with 64, random 128x128 crops of the 256x256 demo images, batches of
4, 20 epochs. Testing runs on the whole 256x256 images. Running it again resumes or reuses
what is there (``checkpoints/demo``, ``datasets/demo``): nothing is overwritten.

It also leaves a small georeferenced synthetic scene for predict.py (``datasets/demo/scene``:
``s2_cloudy.tif``, 3 bands of uint16 digital numbers, and ``s1.tif``, 3 bands of float32 dB, on a
512 x 512 UTM grid of 10 m pixels), scaled so that the demo model sees the values it was trained on,
and the same scene as the products users download (:mod:`scripts.demo_products`: SAFE L1C folder,
SAFE L2A zip, STAC item, SAR in linear power).
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.demo")

import sys
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

import test as test_script
import train as train_script
from data.image_folder import is_image_file
from data.synthetic import make_triplet
from options.parser import DefaultsHelpFormatter, OneLineParser, add_gpu_ids_option
from scripts import make_demo_data
from scripts.demo_products import write_demo_products
from util.errors import run_cli
from util.fileio import atomic_path

ROOT = Path(__file__).resolve().parents[1]  # defaults live in the checkout, wherever it is run from

N_TRAIN, N_TEST = 160, 40
MODEL = ["--model", "pix2pix_attn", "--netG", "unet_128", "--ngf", "32", "--ndf", "32"]
TRAIN = [
    "--preprocess",
    "crop",
    "--crop_size",
    "128",
    "--batch_size",
    "4",
    "--n_epochs",
    "10",
    "--n_epochs_decay",
    "10",
    "--lr_policy",
    "linear",
    "--display_id",
    "0",
    "--print_freq",
    "320",
    "--display_freq",
    "320",
    "--update_html_freq",
    "320",
    "--save_epoch_freq",
    "10",
    "--num_threads",
    "1",
]
QUICK = ["--n_epochs", "1", "--n_epochs_decay", "1"]
SCENE_SIZE, SCENE_CRS = 512, "EPSG:32632"  # a demo scene on a UTM grid of 10 m pixels
SCENE_TRANSFORM = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5100000.0)


def count_images(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if is_image_file(p.name)) if folder.is_dir() else 0


def ensure_data(out: Path, seed: int) -> int:
    """Generate the demo triplets unless a complete set is already there."""
    complete = all(
        count_images(out / ph / f"{ph}{r}") == n
        for ph, n in (("train", N_TRAIN), ("test", N_TEST))
        for r in "ABC"
    )
    if complete:
        print(f"using the demo data in {out}")
        return 0
    return make_demo_data.main(
        [
            "--out",
            str(out),
            "--n_train",
            str(N_TRAIN),
            "--n_test",
            str(N_TEST),
            "--size",
            "256",
            "--seed",
            str(seed),
            "--overwrite",
        ]
    )


def write_demo_scene(folder: Path, seed: int) -> None:
    """A 512 x 512 synthetic scene as GeoTIFFs for predict.py, unless it is there already.

    The optical image is stored as digital numbers (8-bit value / 255 x 10000) and the SAR as dB
    (8-bit value / 255 x 25 - 25), the inverses of predict.py's scaling, so the demo model (trained
    on the 8-bit PNGs) sees the values it knows.
    """
    cloudy, sar = folder / "s2_cloudy.tif", folder / "s1.tif"
    if cloudy.is_file() and sar.is_file():
        write_demo_products(folder)
        return
    folder.mkdir(parents=True, exist_ok=True)
    sample = make_triplet(seed, N_TRAIN + N_TEST, size=SCENE_SIZE)
    layers = {
        cloudy: np.rint(sample["A"].transpose(2, 0, 1) / 255.0 * 10000).astype("uint16"),
        sar: (sample["C"].transpose(2, 0, 1) / 255.0 * 25 - 25).astype("float32"),
    }
    for path, values in layers.items():
        profile = {"driver": "GTiff", "width": SCENE_SIZE, "height": SCENE_SIZE, "count": 3}
        profile.update(dtype=str(values.dtype), crs=SCENE_CRS, transform=SCENE_TRANSFORM, tiled=True)
        with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            dst.write(values)
    print(f"wrote a {SCENE_SIZE}x{SCENE_SIZE} synthetic scene for predict.py: {cloudy}, {sar}")
    for path in write_demo_products(folder):
        print(f"  and as a product users download: {path}")


def run(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m scripts.demo",
        description=__doc__.splitlines()[0],
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=ROOT / "datasets" / "demo", help="demo data folder")
    parser.add_argument("--name", default="demo", help="experiment name")
    parser.add_argument(
        "--checkpoints_dir",
        default=str(ROOT / "checkpoints"),
        help="the model goes to <checkpoints_dir>/<name>/",
    )
    parser.add_argument(
        "--results_dir", default=str(ROOT / "results"), help="the results page goes to <results_dir>/<name>/"
    )
    add_gpu_ids_option(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the demo data and of the training")
    parser.add_argument(
        "--amp",
        default="off",
        choices=("off", "bf16", "fp16"),
        help="mixed precision for training and testing (GPU; compare its metrics with an 'off' run)",
    )
    parser.add_argument("--quick", action="store_true", help="2 epochs only (a smoke test, not a result)")
    args = parser.parse_args(argv)

    if ensure_data(args.data, args.seed):
        return 2
    write_demo_scene(args.data / "scene", args.seed)
    common = [
        "--name",
        args.name,
        "--checkpoints_dir",
        args.checkpoints_dir,
        "--gpu_ids",
        args.gpu_ids,
        "--seed",
        str(args.seed),
        "--amp",
        args.amp,
        *MODEL,
    ]
    ckpt = Path(args.checkpoints_dir) / args.name
    resume = ["--continue_train"] if any(ckpt.glob("*_net_*.pth")) else []
    print("\n=== training (pix2pix_attn, demo configuration) ===")
    code = train_script.main(
        ["--dataroot", str(args.data / "train"), *common, *TRAIN, *(QUICK if args.quick else []), *resume]
    )
    if code:
        return code
    print("\n=== testing on the 40 held-out 256x256 demo triplets ===")
    return test_script.main(
        [
            "--dataroot",
            str(args.data / "test"),
            *common,
            "--results_dir",
            args.results_dir,
            "--num_threads",
            "0",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
