"""Base class of the datasets and the paired geometric transforms.

Every sample's scaling, crop position and flip are drawn once and applied to all of its images
(cloudy, cloud-free, SAR), so the three stay pixel-aligned. Randomness comes from torch's
generator, which ``DataLoader`` seeds per worker from the main seed.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from util.errors import UserError


class BaseDataset(Dataset, ABC):
    """A dataset reads ``opt`` once in ``__init__`` and returns dicts of tensors in ``__getitem__``.

    Items: 'A' cloudy, 'C' SAR and (where there is a ground truth) 'B' cloud-free, (C, H, W) float32
    in [-1, 1]; 'A_paths' ...; 'stem'. The optional features below have working defaults, which
    datasets of other data (e.g. multispectral GeoTIFFs) override.
    """

    # Positions of the red, green and blue bands among the optical bands, where the data has more
    # than three (adds the 'field_rgb' metrics); None: the optical images are RGB or have no RGB.
    rgb_bands: tuple[int, int, int] | None = None
    # The Sentinel-2 names of the optical bands (for the cloud detectors of the evaluation); None:
    # plain images (3 channels: a natural-colour R, G, B preview) or bands of unknown names.
    band_names: tuple[str, ...] | None = None
    # False when the items carry no cloud-free 'B' (inference on real cloudy images): nothing is measured.
    has_reference: bool = True

    def __init__(self, opt: argparse.Namespace) -> None:
        self.opt = opt
        self.root = opt.dataroot
        self.transform = PairedTransform(opt)

    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        """Add dataset-specific options or change defaults; returns the parser."""
        return parser

    @staticmethod
    def finalize_options(opt: argparse.Namespace) -> None:
        """Derive or check options after parsing (e.g. band counts that follow the data)."""
        return None

    def preview(self, name: str, tensor: torch.Tensor, kind: str | None = None) -> np.ndarray | None:
        """(H, W, 3) uint8 rendering of a visual of ``kind`` 'optical' or 'sar' (first of the batch);
        None (the default): the generic rendering (grey, RGB or the first three bands)."""
        return None

    def write_output(self, folder: Path, stem: str, name: str, tensor: torch.Tensor, batch: dict, i: int):
        """Write the output visual ``name`` of sample ``i`` in the data's own format (e.g. a georeferenced
        GeoTIFF) into ``folder``; return the path written, or None (the default: PNGs only)."""
        return None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> dict: ...


def _rand_int(high: int) -> int:
    """Uniform integer in [0, high] from torch's generator."""
    return int(torch.randint(0, high + 1, ()).item()) if high > 0 else 0


class PairedTransform:
    """The geometry of a sample (scaling, crop, flip, quarter turns), drawn once and applied to all of its images.

    Built once per dataset from ``--preprocess``, ``--load_size``, ``--crop_size``, ``--no_flip`` and the
    phase: training crops at random, flips unless ``--no_flip`` and, with ``--rot90``, turns by a random
    multiple of 90 degrees; testing takes the centre crop.
    """

    def __init__(self, opt: argparse.Namespace) -> None:
        self.preprocess = str(opt.preprocess)
        self.load_size = int(opt.load_size)
        self.crop_size = int(opt.crop_size)
        self.is_train = bool(opt.is_train)
        self.flip = self.is_train and not opt.no_flip
        self.rot90 = self.is_train and bool(getattr(opt, "rot90", False))
        self.crop = "crop" in self.preprocess

    def scaled_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(w, h) after the scaling step of ``--preprocess``."""
        w, h = size
        if "resize" in self.preprocess:
            return self.load_size, self.load_size
        if "scale_width" in self.preprocess and w != self.load_size:
            return self.load_size, max(self.crop_size, round(self.load_size * h / w))
        return w, h

    def draw(self, size: tuple[int, int], source: object) -> dict:
        """Check that images of (w, h) = ``size`` (read from ``source``) fit the crop; draw the crop
        corner and the flip."""
        w, h = size
        if self.preprocess == "crop" and min(w, h) < self.crop_size:
            raise UserError(
                f"{source} is {w}x{h}, smaller than --crop_size {self.crop_size}; "
                "use a smaller crop or --preprocess resize_and_crop"
            )
        w, h = self.scaled_size(size)
        x = y = 0
        if self.crop:
            if self.is_train:
                x, y = _rand_int(w - self.crop_size), _rand_int(h - self.crop_size)
            else:
                x, y = max(0, (w - self.crop_size) // 2), max(0, (h - self.crop_size) // 2)
        flip = self.flip and bool(torch.rand(()).item() > 0.5)
        # Drawn only when asked for: the draws of the other settings stay what they were.
        turns = 0
        if self.rot90:
            side = (self.crop_size, self.crop_size) if self.crop else (w, h)
            if side[0] != side[1]:
                raise UserError(
                    f"--rot90 needs square images, but {source} gives {side[0]}x{side[1]}; "
                    "crop it square (--preprocess crop) or leave --rot90 out"
                )
            turns = int(torch.randint(0, 4, ()).item())
        return {"size": (w, h), "crop": (x, y) if self.crop else None, "flip": flip, "turns": turns}

    def apply(self, img: Image.Image, params: dict, method=Image.BICUBIC) -> Image.Image:
        """Scale, crop and flip a PIL image as drawn by :meth:`draw`."""
        if img.size != params["size"]:
            img = img.resize(params["size"], method)
        if params["crop"] is not None:
            x, y = params["crop"]
            img = img.crop((x, y, x + self.crop_size, y + self.crop_size))
        if params["flip"]:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        for _ in range(params.get("turns", 0)):
            img = img.transpose(Image.ROTATE_90)  # counter-clockwise, as np.rot90
        return img

    def apply_array(self, arr: np.ndarray, params: dict) -> np.ndarray:
        """:meth:`apply` for a ``(C, H, W)`` float array of any band count (e.g. reflectance).

        Scaling is bicubic (antialiased when shrinking) and clipped to the input's value range, so
        reflectance stays in [0, 1]; the crop and the flip are exact.
        """
        w, h = params["size"]
        if (arr.shape[2], arr.shape[1]) != (w, h):
            t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None]
            t = torch.nn.functional.interpolate(
                t, size=(h, w), mode="bicubic", align_corners=False, antialias=True
            )
            arr = np.clip(t[0].numpy(), float(arr.min()), float(arr.max()))
        if params["crop"] is not None:
            x, y = params["crop"]
            arr = arr[:, y : y + self.crop_size, x : x + self.crop_size]
        if params["flip"]:
            arr = arr[:, :, ::-1]
        if params.get("turns", 0):
            arr = np.rot90(arr, params["turns"], axes=(1, 2))
        return np.ascontiguousarray(arr, dtype=np.float32)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit PIL image -> (C, H, W) float32 in [-1, 1]."""
    arr = np.array(img, dtype=np.uint8)  # a writable copy: torch warns on read-only arrays
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)
