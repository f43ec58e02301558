"""What a scene run reports and how its files are described: :class:`SceneResult`, GDAL's settings
for a run, the maps' ``content`` tags, the log (where the files go: :mod:`scene.paths`).

Imported by :mod:`scene.predictor` (and re-exported there) and :mod:`scene.batch`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import rasterio

from models.roles import Roles

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
