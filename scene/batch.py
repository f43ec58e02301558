"""Many scenes in one run: cloudy/SAR pairs from two folders or from a list file, one output each.

A season of tiles is one command that can be stopped and restarted: a scene whose output exists
is skipped (outputs are renamed into place only when complete, maps before the output, so an
output that exists is whole), and every pair is checked before the first scene starts.

    pairs = folder_pairs("S2/", "S1/", "clear/")      # the same file name in both folders
    pairs = listed_pairs("pairs.txt", "clear/")       # lines "cloudy sar": GeoTIFFs, SAFE, STAC items
    predict_scenes(ScenePredictor("checkpoints", "s12"), pairs, maps=True)
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from scene.predictor import ScenePredictor, SceneResult, check_output_path, map_path, stderr_log
from scene.stac_item import item_path
from util.errors import UserError
from util.fileio import remove_stale_temporaries

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2")
PRODUCT_SUFFIXES = (".zip", ".json", ".safe")  # named off for the output: <product name>.tif


def output_name(cloudy: Path) -> str:
    """The output file name of a scene: the cloudy input's name, a product's with .tif for its suffix."""
    name = cloudy.name.rstrip("/")
    if name in ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml"):  # a SAFE product's metadata file: the product's name
        name = cloudy.parent.name
    stem = name
    while Path(stem).suffix.lower() in PRODUCT_SUFFIXES:
        stem = Path(stem).stem
    return name if stem == name else f"{stem}.tif"


def _exists(path: Path) -> bool:
    return "://" in str(path) or path.exists()


@dataclass(frozen=True)
class Pair:
    """One scene: its two inputs and its output."""

    cloudy: Path
    sar: Path
    out: Path


def _examples(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def folder_pairs(
    cloudy_dir: str | os.PathLike, sar_dir: str | os.PathLike, out_dir: str | os.PathLike
) -> list[Pair]:
    """Every raster of ``cloudy_dir`` with the file of the same name in ``sar_dir``; outputs in
    ``out_dir`` under the same name."""
    cloudy_dir, sar_dir, out_dir = Path(cloudy_dir), Path(sar_dir), Path(out_dir)
    if not sar_dir.is_dir():
        raise UserError(f"--cloudy {cloudy_dir} is a folder, so --sar must be one too; {sar_dir} is not")
    names = sorted(p.name for p in cloudy_dir.iterdir() if p.suffix.lower() in RASTER_SUFFIXES)
    if not names:
        raise UserError(f"--cloudy folder {cloudy_dir} holds no {'/'.join(RASTER_SUFFIXES)} file")
    missing = [n for n in names if not (sar_dir / n).is_file()]
    if missing:
        raise UserError(
            f"{len(missing)} cloudy image(s) have no SAR image of the same name in {sar_dir}, e.g. "
            f"{_examples(missing)}; pair them by name, or list the pairs in a file (--pairs)"
        )
    return [Pair(cloudy_dir / n, sar_dir / n, out_dir / n) for n in names]


def listed_pairs(list_file: str | os.PathLike, out_dir: str | os.PathLike) -> list[Pair]:
    """Pairs from a text file, one ``cloudy sar`` per line (paths relative to the file's folder, or
    URLs; quote paths with spaces; '#' starts a comment; any product :mod:`scene.products` reads);
    outputs in ``out_dir`` named after the cloudy input (:func:`output_name`)."""
    list_file, out_dir = Path(list_file), Path(out_dir)
    try:
        lines = list_file.read_text().splitlines()
    except OSError as err:
        raise UserError(f"cannot read --pairs {list_file}: {err.strerror or err}") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        try:
            fields = shlex.split(line, comments=True)
        except ValueError as err:
            raise UserError(f"{list_file} line {number}: {err}") from None
        if not fields:
            continue
        if len(fields) != 2:
            raise UserError(
                f"{list_file} line {number}: expected 'cloudy.tif sar.tif', got {len(fields)} field(s)"
            )
        cloudy, sar = (Path(f) if "://" in f else list_file.parent / f for f in fields)
        pairs.append(Pair(cloudy, sar, out_dir / output_name(cloudy)))
    if not pairs:
        raise UserError(f"--pairs {list_file} lists no pair")
    return pairs


def check_pairs(pairs: list[Pair]) -> None:
    """Refuse missing inputs, a missing output folder, outputs that are inputs, or two scenes with one output."""
    seen: dict[Path, Path] = {}
    for pair in pairs:
        for role, path in (("cloudy", pair.cloudy), ("SAR", pair.sar)):
            if not _exists(path):
                raise UserError(f"{role} image {path} does not exist")
        check_output_path(pair.out, ("cloudy", pair.cloudy), ("sar", pair.sar))
        if pair.out in seen:
            raise UserError(
                f"{seen[pair.out]} and {pair.cloudy} would both be written to {pair.out}; rename one"
            )
        seen[pair.out] = pair.cloudy


def is_done(pair: Pair, maps: tuple[str, ...]) -> bool:
    """Whether the scene's output (and the maps asked for) are there, hence complete."""
    return pair.out.is_file() and all(map_path(pair.out, name).is_file() for name in maps)


def predict_scenes(
    predictor: ScenePredictor,
    pairs: list[Pair],
    *,
    maps: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = stderr_log,
    progress: bool = True,
    **settings,
) -> list[SceneResult]:
    """Predict every pair not done yet (all of them with ``overwrite``), with a progress bar over
    the scenes and one per scene; ``settings`` as for :meth:`ScenePredictor.predict`."""
    check_pairs(pairs)
    names = predictor.chosen_maps(maps)
    todo = pairs if overwrite else [p for p in pairs if not is_done(p, names)]
    if log is not None and len(todo) < len(pairs):
        log(
            f"{len(pairs) - len(todo)} of {len(pairs)} scene(s) already done: skipped (--overwrite redoes them)"
        )
    results = []
    with tqdm(todo, unit="scene", desc="scenes", file=sys.stderr, disable=not progress, position=0) as bar:
        for pair in bar:
            bar.set_postfix_str(pair.cloudy.name)
            for path in (pair.out, *(map_path(pair.out, n) for n in names), item_path(pair.out)):
                remove_stale_temporaries(path)  # of a worker killed while writing this scene
            results.append(
                predictor.predict(
                    pair.cloudy, pair.sar, pair.out, maps=maps, log=log, progress=progress, **settings
                )
            )
    return results
