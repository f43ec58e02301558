"""Where a scene run writes, checked before it writes: the output GeoTIFF and the files beside it.

A run writes the output, a map per name (``<stem>_<name>.tif``: the model's maps with ``--maps``,
the cloud weight ``<stem>_clouds.tif`` with ``--keep_clear`` or ``--cloud_mask``) and its STAC
item (``<stem>.stac.json``). An output is a GeoTIFF named ``.tif`` or ``.tiff``; it may not be a
folder, lie under a file or be one of the inputs; an existing file of the run is replaced only with
``overwrite`` (``--overwrite``). Missing folders are made once every check has passed.
"""

from __future__ import annotations

import os
from pathlib import Path

from util.errors import UserError

GEOTIFF_SUFFIXES = (".tif", ".tiff")  # what an output may be named: it is always a GeoTIFF
MASK_NAME = "clouds"  # the cloud weight of --keep_clear / --cloud_mask: <out stem>_clouds.tif


def check_output_path(out: str | os.PathLike, *inputs: tuple[str, str | os.PathLike]) -> Path:
    """Refuse an output that is a folder, under a file, not named as a GeoTIFF (.tif, .tiff), or one
    of the ``(role, path)`` inputs. Its missing folders are made later (:func:`make_parent`), once
    every check has passed."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'clear.tif'}")
    if out.suffix.lower() not in GEOTIFF_SUFFIXES:
        raise UserError(
            f"--out {out}: the output is a GeoTIFF; give a name ending in .tif or .tiff, e.g. "
            f"{out.with_suffix('.tif').name}"
        )
    ancestor = next(p for p in out.absolute().parents if p.exists())
    if not ancestor.is_dir():
        raise UserError(f"--out {out}: {ancestor} is a file, not a folder; choose another --out")
    for role, path in inputs:
        src = Path(path)
        if out.exists() and src.exists() and out.samefile(src):
            raise UserError(f"--out {out} is the --{role} input; choose another file name")
    return out


def make_parent(out: Path) -> None:
    """Make the missing folders of output ``out`` (as ``results/<name>/`` is made for test.py)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot make the folder of --out {out}: {err.strerror or err}") from None


def sidecar_names(maps: tuple[str, ...], clouds: bool) -> tuple[str, ...]:
    """The names of the one-band files beside an output: ``maps``, then the cloud weight if ``clouds``."""
    return (*maps, *((MASK_NAME,) if clouds else ()))


def output_files(out: str | os.PathLike, sidecars: tuple[str, ...] = ()) -> tuple[Path, ...]:
    """The files a run writes: the output ``out``, the map of each name of ``sidecars`` beside it
    (:func:`sidecar_names`) and the STAC item."""
    return (Path(out), *(map_path(out, name) for name in sidecars), item_path(out))


def check_overwrite(out: str | os.PathLike, sidecars: tuple[str, ...], overwrite: bool) -> None:
    """Refuse to replace an existing file of the run (:func:`output_files`) unless ``overwrite``."""
    if overwrite:
        return
    out = Path(out)
    whats = {map_path(out, name): f"the map that --maps writes beside --out {out}" for name in sidecars}
    whats[map_path(out, MASK_NAME)] = (
        f"the cloud weight that --keep_clear or --cloud_mask writes beside --out {out}"
    )
    whats[item_path(out)] = f"the STAC item written beside --out {out}"
    for path in output_files(out, sidecars):
        if path.exists():
            what = "" if path == out else f" ({whats[path]})"
            raise UserError(f"{path} exists{what}; add --overwrite to replace it, or choose another --out")


def item_path(out: str | os.PathLike) -> Path:
    """Where the STAC item of output ``out`` goes: ``<stem>.stac.json`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.stac.json")


def map_path(out: str | os.PathLike, name: str) -> Path:
    """Where the map ``name`` (e.g. att_A) of output ``out`` goes: ``<stem>_<name><suffix>`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_{name}{out.suffix or '.tif'}")
