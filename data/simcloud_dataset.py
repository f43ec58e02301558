"""Simulated clouds, made on the fly, over cloud-free optical images and SAR (``--dataset_mode simcloud``).

The paper's simulated-data experiment: any folder of cloud-free images becomes a cloud-removal
data set by covering each image with simulated clouds (:func:`data.synthetic_clouds.add_clouds`)
when it is read::

    DATAROOT/<phase>B/*.png   cloud-free optical  -> 'B' (output_nc bands) and, clouded, 'A' (input_nc bands)
    DATAROOT/<phase>C/*.png   SAR                 -> 'C' (sar_nc bands)

A ``<phase>A`` folder, if present, is ignored. Files are paired by stem as in the triplet data set,
one crop and flip per sample is applied to B and C, and the clouds are then drawn over the
cropped B, so 'A', 'B', 'C' and 'cloud_mask' stay pixel-aligned. The cloudy image is rounded to
8 bits like a PNG read from disk, so where the cloud mask is 0 (and no shadow falls) 'A' equals
'B' exactly.

Randomness:

* training (``opt.is_train``): new clouds at every read, drawn from a numpy generator seeded
  from torch's generator, which ``--seed`` and the ``DataLoader`` worker seeding make
  reproducible;
* testing: the clouds of sample ``index`` depend only on ``(--cloud_seed or --seed, index)``,
  so every test run and every model sees the same cloudy images.

Each item holds 'A', 'B', 'C' (float tensors in [-1, 1], shapes (input_nc|output_nc|sar_nc, H, W)),
'cloud_mask' ((1, H, W) float cloud opacity in [0, 1], shadows not included), 'A_paths' (the
path of the cloud-free B image the clouds were drawn on: there is no cloudy file), 'B_paths',
'C_paths' and 'stem'.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from util.errors import UserError
from util.util import unit_to_u8

from .base_dataset import BaseDataset, pil_to_tensor
from .image_folder import load_image
from .synthetic_clouds import add_clouds
from .triplet_dataset import paired_files

ROLES = ("B", "C")


def check_cover(low: float, high: float) -> None:
    if not (np.isfinite(low) and np.isfinite(high) and 0.0 <= low <= high <= 1.0):
        raise UserError(f"--cloud_cover MIN MAX needs 0 <= MIN <= MAX <= 1, got {low:g} {high:g}")


def check_thickness(value: float) -> None:
    if not (np.isfinite(value) and 0.0 < value <= 1.0):
        raise UserError(
            f"--cloud_thickness must be in (0, 1] (the opacity of the thickest clouds), got {value:g}"
        )


def cloud_rng(opt: argparse.Namespace, index: int) -> np.random.Generator:
    """The generator of one sample's clouds: fresh per read in training, fixed per index in testing."""
    if opt.is_train:
        return np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))
    seed = opt.cloud_seed if getattr(opt, "cloud_seed", None) is not None else opt.seed
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**32, int(index)]))


class SimcloudDataset(BaseDataset):
    """Cloud-free optical / SAR pairs with simulated clouds drawn over the optical image on the fly."""

    @staticmethod
    def finalize_options(opt: argparse.Namespace) -> None:
        """Refuse an impossible cloud cover range or thickness (checked once, after parsing)."""
        opt.cloud_cover = [float(v) for v in opt.cloud_cover]
        check_cover(*opt.cloud_cover)
        check_thickness(float(opt.cloud_thickness))

    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        g = parser.add_argument_group("simulated clouds (--dataset_mode simcloud)")
        g.add_argument(
            "--cloud_cover",
            nargs=2,
            type=float,
            metavar=("MIN", "MAX"),
            default=[0.2, 0.7],
            help="fraction of the image under thick cloud, drawn uniformly in [MIN, MAX] per image",
        )
        g.add_argument(
            "--cloud_thickness",
            type=float,
            default=1.0,
            help="opacity of the thickest clouds, in (0, 1] (1: opaque cores)",
        )
        g.add_argument("--no_haze", action="store_true", help="no thin haze layer over the whole image")
        g.add_argument("--no_shadows", action="store_true", help="no cloud shadows on the ground")
        g.add_argument(
            "--cloud_seed",
            type=int,
            default=None,
            help="seed of the test-phase clouds (default: --seed); training clouds follow --seed",
        )
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.pairs = paired_files(opt, ROLES)
        self.cloud_kwargs = {
            "cover": (float(opt.cloud_cover[0]), float(opt.cloud_cover[1])),
            "thickness": float(opt.cloud_thickness),
            "haze": not opt.no_haze,
            "shadows": not opt.no_shadows,
        }

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        opt = self.opt
        paths = self.pairs[index]
        clear = load_image(paths["B"], opt.output_nc)
        sar = load_image(paths["C"], opt.sar_nc)
        if clear.size != sar.size:
            raise UserError(
                f"pair {paths['B'].stem} has images of different sizes ({paths['B'].parent.name}/"
                f"{paths['B'].name} {clear.size[0]}x{clear.size[1]}, {paths['C'].parent.name}/"
                f"{paths['C'].name} {sar.size[0]}x{sar.size[1]})"
            )
        params = self.transform.draw(clear.size, paths["B"])
        clear = self.transform.apply(clear, params)
        sar = self.transform.apply(sar, params)
        # The cloudy input has input_nc bands; the clouds depend only on the generator and the size,
        # so the same mask falls on the image whatever its band count.
        base = clear
        if opt.input_nc != opt.output_nc:
            base = self.transform.apply(load_image(paths["B"], opt.input_nc), params)
        unit = np.asarray(base, dtype=np.float32) / np.float32(255.0)
        cloudy, mask = add_clouds(unit, cloud_rng(opt, index), **self.cloud_kwargs)
        cloudy_u8 = unit_to_u8(cloudy)
        return {
            "A": pil_to_tensor(Image.fromarray(cloudy_u8)),
            "B": pil_to_tensor(clear),
            "C": pil_to_tensor(sar),
            "cloud_mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None],
            "A_paths": str(paths["B"]),
            "B_paths": str(paths["B"]),
            "C_paths": str(paths["C"]),
            "stem": paths["B"].stem,
        }
