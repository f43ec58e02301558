"""PNG triplets in the official layout (``--dataset_mode triplet``, alias ``unaligned_sar``).

    DATAROOT/<phase>A/*.png   cloudy optical      -> 'A' (input_nc bands)
    DATAROOT/<phase>B/*.png   cloud-free optical  -> 'B' (output_nc bands)
    DATAROOT/<phase>C/*.png   SAR                 -> 'C' (sar_nc bands)

The official code paired the three folders by sorted position and cropped each image at its
own random place. Here files are paired by stem (``12.png`` with ``12.png``; the extension
may differ) and a mismatch is refused; one crop and flip per sample is applied to all three.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from util.errors import UserError

from .base_dataset import BaseDataset, pil_to_tensor
from .image_folder import list_images, load_image

ROLES = ("A", "B", "C")


def pair_by_stem(folders: dict[str, Path]) -> list[dict[str, Path]]:
    """Match the images of several folders by file stem; raise if any stem lacks a partner."""
    listing = {role: {p.stem: p for p in list_images(folder)} for role, folder in folders.items()}
    for role, files in listing.items():
        if len(files) != len(list_images(folders[role])):
            raise UserError(f"{folders[role]} holds several images with the same stem (e.g. a.png and a.jpg)")
    stems = set().union(*[set(files) for files in listing.values()])
    common = set.intersection(*[set(files) for files in listing.values()])
    if common != stems:
        gaps = []
        for role, files in listing.items():
            lacking = sorted(stems - set(files))
            if lacking:
                examples = ", ".join(lacking[:3]) + (", ..." if len(lacking) > 3 else "")
                gaps.append(f"{folders[role]} lacks {len(lacking)} ({examples})")
        raise UserError(f"the image folders do not pair up by file name: {'; '.join(gaps)}")
    return [{role: listing[role][stem] for role in listing} for stem in sorted(common)]


ROLE_NAMES = {"A": "cloudy", "B": "cloud-free", "C": "SAR"}


def paired_files(opt: argparse.Namespace, roles: tuple[str, ...] = ROLES) -> list[dict[str, Path]]:
    """The files of ``DATAROOT/<phase><role>`` for each role, paired by stem, cut to --max_dataset_size.

    Raises :class:`UserError` naming the missing root or folders, or the unpaired files.
    """
    root = Path(opt.dataroot)
    if not root.is_dir():
        raise UserError(f"--dataroot {root} does not exist")
    folders = {role: root / f"{opt.phase}{role}" for role in roles}
    absent = [str(f) for f in folders.values() if not f.is_dir()]
    if absent:
        needed = ", ".join(f"{opt.phase}{r} ({ROLE_NAMES[r]})" for r in roles)
        raise UserError(
            f"--dataroot {root} lacks {', '.join(absent)}; --dataset_mode {opt.dataset_mode} needs {needed}"
        )
    pairs = pair_by_stem(folders)
    return pairs[: int(min(opt.max_dataset_size, len(pairs)))]


class TripletDataset(BaseDataset):
    """Aligned cloudy / cloud-free / SAR PNG triplets."""

    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        # Inference on real cloudy scenes has no cloud-free image: testing without <phase>B is allowed.
        no_truth = not opt.is_train and not (Path(opt.dataroot) / f"{opt.phase}B").is_dir()
        self.roles = ("A", "C") if no_truth else ROLES
        self.has_reference = not no_truth
        self.triplets = paired_files(opt, self.roles)
        self.channels = {"A": opt.input_nc, "B": opt.output_nc, "C": opt.sar_nc}

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, index: int) -> dict:
        paths = self.triplets[index]
        images = {role: load_image(paths[role], self.channels[role]) for role in self.roles}
        sizes = {role: img.size for role, img in images.items()}
        if len(set(sizes.values())) > 1:
            detail = ", ".join(
                f"{paths[r].parent.name}/{paths[r].name} {w}x{h}" for r, (w, h) in sizes.items()
            )
            raise UserError(f"triplet {paths['A'].stem} has images of different sizes ({detail})")
        params = self.transform.draw(sizes["A"], paths["A"])
        item = {role: pil_to_tensor(self.transform.apply(img, params)) for role, img in images.items()}
        item.update({f"{role}_paths": str(paths[role]) for role in self.roles})
        item["stem"] = paths["A"].stem
        return item
