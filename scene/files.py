"""Where a scene run's files go and what it reports: output checks, sidecar names, :class:`SceneResult`.

Imported by :mod:`scene.predictor` (and re-exported there) and :mod:`scene.batch`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import rasterio

from models.roles import Roles
from util.errors import UserError

GDAL_CACHE_MB = 64  # GDAL's block cache, fixed so that memory does not depend on the scene


@dataclass(frozen=True)
class SceneResult:
    """What :meth:`ScenePredictor.predict` wrote."""

    path: Path
    width: int
    height: int
    bands: int
    dtype: str
    windows_run: int  # windows with data, which went through the network
    windows: int  # windows of the grid
    seconds: float  # from opening the output to renaming it into place
    maps: tuple[Path, ...] = ()  # attention maps / masks written beside the output
    item: Path | None = None  # the STAC item beside the output

    @property
    def megapixels_per_second(self) -> float:
        return self.width * self.height / 1e6 / self.seconds


def gdal_env() -> rasterio.Env:
    """GDAL's settings for a run: a fixed block cache, unless the user set GDAL_CACHEMAX (GDAL reads
    it from the environment itself; it may carry a unit, e.g. '128MB')."""
    return rasterio.Env(**({} if os.environ.get("GDAL_CACHEMAX") else {"GDAL_CACHEMAX": GDAL_CACHE_MB}))


def check_output_path(
    out: str | os.PathLike, *inputs: tuple[str, str | os.PathLike], create: bool = False
) -> Path:
    """Refuse an output that is a folder, under a file, or one of the ``(role, path)`` inputs;
    ``create``: make its missing folders (as ``results/<name>/`` is made for test.py)."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'clear.tif'}")
    ancestor = next(p for p in out.absolute().parents if p.exists())
    if not ancestor.is_dir():
        raise UserError(f"--out {out}: {ancestor} is a file, not a folder; choose another --out")
    if create:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot make the folder of --out {out}: {err.strerror or err}") from None
    for role, path in inputs:
        src = Path(path)
        if out.exists() and src.exists() and out.samefile(src):
            raise UserError(f"--out {out} is the --{role} input; choose another file name")
    return out


def map_path(out: str | os.PathLike, name: str) -> Path:
    """Where the map ``name`` (e.g. att_A) of output ``out`` goes: ``<stem>_<name><suffix>`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_{name}{out.suffix or '.tif'}")


def map_content(name: str, roles: Roles, model: str) -> str:
    """The ``content`` tag of map ``name``'s GeoTIFF: what its values are."""
    if name in roles.uncertainty:
        return (
            f"{name}: predicted variance of {model}, averaged over the output bands, in reflectance^2 "
            "(the standard deviation is its square root)"
        )
    return f"{name}: map in [0, 1] of {model}"


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr)
