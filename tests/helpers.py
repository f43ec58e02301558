"""Shared helpers of the core test suite: tiny synthetic triplets, command lines, CLI runners.

Everything is made in a test's ``tmp_path``; nothing is downloaded and nothing outside the
repository is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# The tests run tiny tensors; with several intra-op threads on a busy 2-core machine, OpenMP
# spinning makes a 32-px step ~100x slower. One thread keeps the suite fast and deterministic.
torch.set_num_threads(1)

ROLES = ("A", "B", "C")

# Small networks and images for everything where the official 256-px sizes are not the point;
# on the CPU (bit-exact comparisons) unless a test adds its own --gpu_ids after these.
TINY = [
    "--netG",
    "unet_32",
    "--load_size",
    "32",
    "--crop_size",
    "32",
    "--ngf",
    "4",
    "--ndf",
    "4",
    "--num_threads",
    "0",
    "--display_id",
    "0",
    "--gpu_ids",
    "-1",
]


def smooth_image(rng: np.random.Generator, size: int, channels: int = 3) -> np.ndarray:
    """(size, size, channels) uint8: a random colour gradient plus noise (more image-like than noise)."""
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1)
    planes = []
    for _ in range(channels):
        a, b, c = rng.uniform(-1, 1, 3)
        planes.append(128 + 80 * (a * xx + b * yy) + 20 * c + rng.normal(0, 10, (size, size)))
    return np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.uint8)


def make_triplets(
    root: str | os.PathLike,
    phase: str = "train",
    n: int = 3,
    size: int = 32,
    *,
    seed: int = 0,
    stems: Iterable[str] | None = None,
    ext: dict[str, str] | str = ".png",
    roles: Iterable[str] = ROLES,
) -> list[str]:
    """Write PNG triplets in the official layout ``root/<phase>{A,B,C}/<stem><ext>``; return the stems.

    ``ext`` is one extension for all roles or a role -> extension dict (pairing is by stem).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    stems = list(stems) if stems is not None else [f"{i:03d}" for i in range(n)]
    for role in roles:
        folder = root / f"{phase}{role}"
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ext[role] if isinstance(ext, dict) else ext
        for stem in stems:
            Image.fromarray(smooth_image(rng, size)).save(folder / f"{stem}{suffix}")
    return stems


def train_argv(
    dataroot: str | os.PathLike, checkpoints: str | os.PathLike, name: str = "tiny", *extra: str
) -> list[str]:
    """A tiny, fast training command line (one epoch, unet_32, 32 px) plus ``extra``."""
    return [
        "--dataroot",
        str(dataroot),
        "--name",
        name,
        "--checkpoints_dir",
        str(checkpoints),
        "--n_epochs",
        "1",
        "--n_epochs_decay",
        "0",
        *TINY,
        *extra,
    ]


def train_steps(argv: list[str], steps: int = 2):
    """A model built from train.py's ``argv`` (options parsed: every generator seeded) after
    ``steps`` optimisation steps on its data loader's first batches."""
    from data import create_dataloader
    from models import create_model
    from options.train_options import TrainOptions

    opt = TrainOptions().parse(argv, save=False)
    model = create_model(opt)
    model.setup()
    for _, data in zip(range(steps), create_dataloader(opt)):
        model.set_input(data)
        model.optimize_parameters()
    return model


def test_argv(
    dataroot: str | os.PathLike,
    checkpoints: str | os.PathLike,
    results: str | os.PathLike,
    name: str = "tiny",
    *extra: str,
) -> list[str]:
    """The matching test command line plus ``extra``."""
    return [
        "--dataroot",
        str(dataroot),
        "--name",
        name,
        "--checkpoints_dir",
        str(checkpoints),
        "--results_dir",
        str(results),
        *TINY,
        *extra,
    ]


test_argv.__test__ = False  # not a pytest test despite its name


def run_main(main: Callable[[list[str]], int], argv: list[str]) -> int:
    """Exit status of an entry point, whether it returns it or raises ``SystemExit`` (argparse)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def snapshot(folder: str | os.PathLike) -> dict[str, bytes]:
    """Relative path -> content of every file under ``folder``."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def expect_error(capfd, main: Callable[[list[str]], int], argv: list[str], *fragments: str) -> str:
    """Exit status 2 and exactly one line on stderr, 'error: ...' with every fragment, no traceback."""
    capfd.readouterr()
    assert run_main(main, argv) == 2
    err = capfd.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err
