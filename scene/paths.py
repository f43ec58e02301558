"""Where a scene run writes, checked before it writes: the output GeoTIFF and the maps beside it.

An output is a GeoTIFF named ``.tif`` or ``.tiff``; it may not be a folder, lie under a file or be
one of the inputs; an existing output or map is replaced only with ``overwrite`` (``--overwrite``).
Missing folders are made once every check has passed.
"""

from __future__ import annotations

import os
from pathlib import Path

from util.errors import UserError

GEOTIFF_SUFFIXES = (".tif", ".tiff")  # what an output may be named: it is always a GeoTIFF


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


def output_files(out: str | os.PathLike, maps: tuple[str, ...] = ()) -> tuple[Path, ...]:
    """The files a run writes: the output ``out`` and the map of each name of ``maps`` beside it."""
    return (Path(out), *(map_path(out, name) for name in maps))


def check_overwrite(out: str | os.PathLike, maps: tuple[str, ...], overwrite: bool) -> None:
    """Refuse to replace an existing output or map file unless ``overwrite``."""
    if overwrite:
        return
    out = Path(out)
    for path in output_files(out, maps):
        if path.exists():
            what = "" if path == out else f" (the map that --maps writes beside --out {out})"
            raise UserError(f"{path} exists{what}; add --overwrite to replace it, or choose another --out")


def map_path(out: str | os.PathLike, name: str) -> Path:
    """Where the map ``name`` (e.g. att_A) of output ``out`` goes: ``<stem>_<name><suffix>`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_{name}{out.suffix or '.tif'}")
