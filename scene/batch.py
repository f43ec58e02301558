"""Many scenes in one run: cloudy/SAR pairs from two folders or from a list file, one output each.

A season of tiles is one command that can be stopped and restarted: a scene whose output (and the
maps asked for) exist is skipped (outputs are renamed into place only when complete, maps before
the output, so an output that exists is whole), and every pair is checked before the first scene
starts. A scene's files are the output, the maps asked for, the cloud weight of ``--keep_clear``
and the STAC item (:func:`scene.paths.output_files`); a scene with some of them but not all is
refused unless ``overwrite`` (which redoes every scene): its files are never replaced silently.
Outputs are GeoTIFFs named after the cloudy input (:func:`output_name`). Workers sharing the list
(:mod:`scene.shard`) each run this on their own share; a worker killed while writing leaves only
temporaries, removed when its scene is redone.

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

from scene.paths import GEOTIFF_SUFFIXES, check_output_path, output_files, sidecar_names
from scene.predictor import ScenePredictor, SceneResult, stderr_log
from util.errors import UserError
from util.fileio import remove_stale_temporaries

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2")
PRODUCT_SUFFIXES = (".zip", ".json", ".safe")  # named off for the output: <product name>.tif
SAFE_METADATA = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")  # a SAFE product given by its metadata file


@dataclass(frozen=True)
class Pair:
    """One scene: its two inputs and its output."""

    cloudy: Path
    sar: Path
    out: Path


def output_name(cloudy: Path) -> str:
    """The output's file name for the cloudy input ``cloudy``: its own name if a GeoTIFF's, else
    ``<stem>.tif`` (a product's name without its suffixes: ``S2A_X.SAFE.zip`` -> ``S2A_X.tif``)."""
    name = cloudy.name.rstrip("/")
    if name in SAFE_METADATA:  # a SAFE product's metadata file: the product's name
        name = cloudy.parent.name
    stem = name
    while Path(stem).suffix.lower() in PRODUCT_SUFFIXES:
        stem = Path(stem).stem
    if stem != name:  # a product
        return f"{stem}.tif"
    return name if Path(name).suffix.lower() in GEOTIFF_SUFFIXES else f"{Path(name).stem}.tif"


def _exists(path: Path) -> bool:
    return "://" in str(path) or path.exists()


def _examples(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def folder_pairs(
    cloudy_dir: str | os.PathLike, sar_dir: str | os.PathLike, out_dir: str | os.PathLike
) -> list[Pair]:
    """Every raster of ``cloudy_dir`` with the file of the same name in ``sar_dir``; outputs in
    ``out_dir`` under the same name (see :func:`output_name`)."""
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
    return [Pair(cloudy_dir / n, sar_dir / n, out_dir / output_name(Path(n))) for n in names]


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
    """Refuse missing inputs, outputs that cannot be written there (under a file, an input), or two
    scenes with one output."""
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


def files_there(pair: Pair, sidecars: tuple[str, ...]) -> list[Path]:
    """Those of the scene's files (:func:`scene.paths.output_files`; ``sidecars``: the names of the
    one-band files beside the output, :func:`scene.paths.sidecar_names`) that exist."""
    return [path for path in output_files(pair.out, sidecars) if path.exists()]


def check_partial(pairs: list[Pair], sidecars: tuple[str, ...]) -> None:
    """Refuse scenes that have some of their files but not all: running them would replace those."""
    partial = []
    for pair in pairs:
        there = files_there(pair, sidecars)
        if there and len(there) < len(output_files(pair.out, sidecars)):
            partial.append((pair, there))
    if partial:
        pair, there = partial[0]
        missing = [p.name for p in output_files(pair.out, sidecars) if p not in there]
        raise UserError(
            f"{len(partial)} scene(s) have some of their files but not all, e.g. {there[0]} exists but "
            f"{', '.join(missing)} does not; add --overwrite to redo every scene, or move those files away"
        )


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
    """Predict every pair not done yet (all of them, replacing their files, with ``overwrite``), with
    a progress bar over the scenes and one per scene; ``settings`` as for :meth:`ScenePredictor.predict`.

    The output folders are made as the scenes are written."""
    check_pairs(pairs)
    clouds = bool(settings.get("keep_clear") or settings.get("cloud_mask"))
    names = sidecar_names(predictor.chosen_maps(maps), clouds)
    if overwrite:
        todo = pairs
    else:
        check_partial(pairs, names)
        todo = [p for p in pairs if not files_there(p, names)]
    if log is not None and len(todo) < len(pairs):
        log(
            f"{len(pairs) - len(todo)} of {len(pairs)} scene(s) already done: skipped (--overwrite redoes them)"
        )
    results = []
    with tqdm(todo, unit="scene", desc="scenes", file=sys.stderr, disable=not progress, position=0) as bar:
        for pair in bar:
            bar.set_postfix_str(pair.cloudy.name)
            for path in output_files(pair.out, names):
                remove_stale_temporaries(path)  # of a worker killed while writing this scene
            results.append(
                predictor.predict(
                    pair.cloudy,
                    pair.sar,
                    pair.out,
                    maps=maps,
                    overwrite=overwrite,
                    log=log,
                    progress=progress,
                    **settings,
                )
            )
    return results
