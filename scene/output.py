"""Writing the cloud-free scene: output types, the GeoTIFF profile, atomic output.

Two output types (``--out_dtype``):

* ``float32``: reflectance in [0, 1]; nodata NaN unless another value is given.
* ``uint16``: the Sentinel-2 convention, digital numbers = reflectance x 10000, rounded and
  clipped to 0..10000 (half the bytes of float32, and the type of the input). The nodata value is
  0 (as in Sentinel-2 products; valid pixels are then written as 1..10000, so that no reflectance
  reads as nodata) or a value above 10000. Band descriptions, the dataset tags and GDAL's band
  scale (0.0001) say so.

The conversion runs where the blended rows are (on the GPU before the copy to the host, which then
moves half the bytes); rows travel as the signed type of their size (torch has few unsigned
kernels) and are written as stored.

``cog``: the scene is streamed into a plain tiled GeoTIFF under a temporary name, which is then
copied through GDAL's COG driver (cloud-optimised: 512-pixel tiles, overviews averaged down to one
tile, the chosen compression) and renamed into place; memory stays as flat as without ``cog``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
import rasterio.shutil
import torch
from rasterio.errors import RasterioError

from data.sentinel import S2_MAX
from scene.io import parse_nodata
from util.errors import UserError
from util.fileio import atomic_path, temporary_path

OUT_DTYPES = ("float32", "uint16")
COMPRESSIONS = ("none", "zstd", "deflate", "lzw")
UINT16_MAX = 65535
DN_SCALE = 1.0 / S2_MAX  # reflectance per digital number
COG_BLOCK = 512  # the COG driver's default tile side


@dataclass(frozen=True)
class OutputFormat:
    """How the cloud-free reflectance is stored: data type, nodata value and compression."""

    dtype: str = "float32"
    nodata: float = math.nan
    compress: str = "none"
    cog: bool = False

    @classmethod
    def parse(
        cls,
        dtype: str = "float32",
        nodata: str | float | None = None,
        compress: str = "none",
        cog: bool = False,
    ) -> OutputFormat:
        """Check the choices; ``nodata`` None: NaN for float32, 0 for uint16."""
        if cog:
            check_cog_driver()
            return dataclasses.replace(cls.parse(dtype, nodata, compress), cog=True)
        if dtype not in OUT_DTYPES:
            raise UserError(f"--out_dtype {dtype!r}: choose one of {', '.join(OUT_DTYPES)}")
        if compress not in COMPRESSIONS:
            raise UserError(f"--compress {compress!r}: choose one of {', '.join(COMPRESSIONS)}")
        if nodata is None:
            return cls(dtype, math.nan if dtype == "float32" else 0.0, compress)
        if dtype == "float32":
            value = parse_nodata(nodata)
            if value is None:
                raise UserError("--nodata must be a number or 'nan'")
            return cls(dtype, value, compress)
        try:
            value = float(nodata)
        except (TypeError, ValueError):
            value = None
        if value is None or not value.is_integer() or not (value == 0 or S2_MAX < value <= UINT16_MAX):
            raise UserError(
                f"--nodata {nodata} does not suit --out_dtype uint16: give 0 (the Sentinel-2 convention) or "
                f"an integer from {int(S2_MAX) + 1} to {UINT16_MAX} (1..{int(S2_MAX)} are reflectance x 10000)"
            )
        return cls(dtype, value, compress)

    @property
    def fill(self) -> float:
        """What blending writes where there is no data; :meth:`encode` turns it into ``nodata``."""
        return self.nodata if self.dtype == "float32" else math.nan

    @property
    def transport(self) -> torch.dtype:
        """The torch type of the rows :meth:`encode` returns."""
        return torch.float32 if self.dtype == "float32" else torch.int16

    def encode(self, unit: torch.Tensor) -> torch.Tensor:
        """(C, H, W) reflectance in [0, 1], :attr:`fill` where there is no data -> stored values
        (uint16 as int16 bits: view the host copy as uint16). Digital numbers are
        ``rint(clip(unit, 0, 1) * 10000)`` (half to even), the inverse of ``data.sentinel.s2_to_unit``."""
        if self.dtype == "float32":
            return unit
        missing = torch.isnan(unit)
        low = 1.0 if self.nodata == 0 else 0.0  # a nodata 0 keeps reflectance 0 readable as data
        dn = unit.mul(S2_MAX).round_().clamp_(low, S2_MAX).masked_fill_(missing, self.nodata)
        return dn.to(torch.int32).to(torch.int16)

    @staticmethod
    def host_view(rows: torch.Tensor, dtype: str) -> np.ndarray:
        """The numpy array to write of rows that :meth:`encode` returned (moved to the host)."""
        return rows.numpy().view(np.dtype(dtype))

    def profile(self, src: rasterio.io.DatasetReader, count: int, stride: int) -> dict:
        """GeoTIFF profile of ``count`` bands on the grid of ``src``.

        Tiles are 256 wide and as tall as the largest power of two (16..256) dividing the stride, so
        the rows finished by each strip fill whole tiles (no tile is written twice).
        """
        block_h = next((b for b in (256, 128, 64, 32, 16) if stride % b == 0), 16)
        profile = {
            "driver": "GTiff",
            "width": src.width,
            "height": src.height,
            "count": count,
            "dtype": self.dtype,
            "crs": src.crs,
            "transform": src.transform,
            "nodata": self.nodata,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": block_h,
            # Band-interleaved: writes need no reordering of the (bands, rows, cols) arrays. The
            # source of a COG is pixel-interleaved: GDAL's COG driver (before 3.11) copies a
            # band-interleaved, uncompressed source without the COG layout (no header, no
            # LAYOUT=COG), and lays out the pixel-interleaved one as a COG with any compression.
            "interleave": "pixel" if self.cog else "band",
            "BIGTIFF": "IF_SAFER",
        }
        if self.compress != "none":
            # Reflectance compresses little at any level: take the fastest, on all cores. Floats
            # take the floating-point predictor, digital numbers the horizontal difference.
            predictor = 3 if self.dtype == "float32" else 2
            profile.update(
                compress=self.compress, predictor=predictor, zlevel=1, zstd_level=1, num_threads="ALL_CPUS"
            )
        return profile

    def cog_options(self) -> dict:
        """Creation options of GDAL's COG driver for this format."""
        options = {
            "blocksize": COG_BLOCK,
            "overviews": "AUTO",
            "resampling": "AVERAGE",
            "bigtiff": "IF_SAFER",
            "num_threads": "ALL_CPUS",
            "compress": self.compress.upper(),
        }
        if self.compress != "none":
            options.update(predictor="YES", level=1)
        return options

    def describe(self, dst: rasterio.io.DatasetWriter, band_names: Sequence[str], **tags: str) -> None:
        """Band descriptions and tags saying what the values are (and, for uint16, their scale)."""
        dn = self.dtype == "uint16"
        for i, band in enumerate(band_names[: dst.count], start=1):
            dst.set_band_description(i, f"{band} (reflectance x 10000)" if dn else band)
        if dn:
            dst.scales = (DN_SCALE,) * dst.count
            dst.offsets = (0.0,) * dst.count
            dst.update_tags(
                content="cloud-free reflectance x 10000 (Sentinel-2 digital numbers), rounded, clipped to "
                f"{1 if self.nodata == 0 else 0}..{int(S2_MAX)}",
                scale_factor=repr(DN_SCALE),
                nodata=f"{self.nodata:g}",
                **tags,
            )
        else:
            dst.update_tags(content="cloud-free reflectance in [0, 1]", **tags)


def check_cog_driver() -> None:
    """Refuse ``--cog`` where rasterio's GDAL has no COG driver (GDAL before 3.1)."""
    with rasterio.Env() as env:
        if "COG" not in env.drivers():
            raise UserError(
                f"--cog needs GDAL's COG driver, which this rasterio's GDAL {rasterio.__gdal_version__} lacks; "
                "upgrade rasterio or drop --cog"
            )


@contextlib.contextmanager
def atomic_geotiff(
    path: str | os.PathLike, profile: dict, cog: dict | None = None
) -> Iterator[rasterio.io.DatasetWriter]:
    """A GeoTIFF open for writing under a temporary name beside ``path``; renamed onto ``path``
    when the block ends without error, removed otherwise (an existing file is only replaced by a
    complete new one). ``cog``: the COG driver's options; the written file is copied through it."""
    if cog is not None:
        with atomic_path(path) as final:
            plain = temporary_path(final)
            try:
                with atomic_geotiff(plain, profile) as dst:
                    yield dst
                try:
                    rasterio.shutil.copy(plain, final, driver="COG", **cog)
                except (RasterioError, OSError) as err:
                    raise UserError(f"writing {path} as a cloud-optimised GeoTIFF failed: {err}") from None
            finally:
                plain.unlink(missing_ok=True)
        return
    with atomic_path(path) as tmp:
        try:
            dst = rasterio.open(tmp, "w", **profile)
        except (RasterioError, OSError) as err:
            raise UserError(f"cannot write {tmp}: {err}; choose a writable --out folder") from None
        try:
            yield dst
        except BaseException:
            with contextlib.suppress(RasterioError, OSError):
                dst.close()
            raise
        try:
            dst.close()
        except (RasterioError, OSError) as err:
            raise UserError(f"writing {path} failed: {err}") from None
