"""What the Sentinel-1 readers share: dB or linear power, and refusing what is not backscatter on a map.

SEN12MS-CR's Sentinel-1 is sigma0 in dB from terrain-corrected GRD; analysis-ready RTC products
(e.g. the Sentinel-1 RTC collections of STAC catalogues) give gamma0 in linear power. ``--sar_units
auto`` takes the units from the product's metadata (a band's unit, a STAC item's), else from the
values: backscatter in dB is mostly negative, linear power is never negative and mostly below 1.
SAR said to be in dB (by ``--sar_units db`` or the metadata) with no value below 0 is refused.
"""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.windows import Window

from util.errors import UserError

SAR_UNITS = ("auto", "db", "linear")
SAR_DTYPES = ("float32", "float64")
DB_WORDS = ("db", "decibel", "decibels")
LINEAR_WORDS = ("linear", "power", "intensity", "linear power", "1")
GRD_HINT = (
    "give terrain-corrected backscatter on a map grid instead: a Sentinel-1 RTC product (e.g. a STAC "
    "catalogue's sentinel-1-rtc item) or the GRD calibrated and terrain-corrected with ESA's SNAP"
)


def units_word(text: str | None) -> str | None:
    """A unit as a product writes it -> 'dB', 'linear', or None when it says neither."""
    t = str(text or "").strip().lower()
    if t in DB_WORDS:
        return "dB"
    if t in LINEAR_WORDS:
        return "linear"
    return None


def check_backscatter(ds: rasterio.io.DatasetReader, path: str) -> None:
    """Refuse a raster that is not calibrated backscatter on a map grid (one line, naming what to use)."""
    if ds.crs is None and ds.gcps[0]:
        raise UserError(
            f"the SAR input {path} is in radar geometry (ground control points, no map grid): an "
            f"uncalibrated Sentinel-1 GRD; {GRD_HINT}"
        )
    if ds.dtypes[0] not in SAR_DTYPES:
        raise UserError(
            f"the SAR input {path} holds {ds.dtypes[0]} values, not calibrated backscatter (float32 dB or "
            f"linear power): uncalibrated GRD digital numbers? {GRD_HINT}"
        )


def sample_values(ds: rasterio.io.DatasetReader, indexes: list[int], nodata: float | None) -> np.ndarray:
    """Finite values (not nodata) of up to 9 windows of 64 x 64 px spread over the raster."""
    size = 64
    rows = np.linspace(0, max(0, ds.height - size), 3).astype(int)
    cols = np.linspace(0, max(0, ds.width - size), 3).astype(int)
    parts = []
    for r in sorted(set(rows)):
        for c in sorted(set(cols)):
            win = Window(int(c), int(r), min(size, ds.width), min(size, ds.height))
            parts.append(ds.read(indexes, window=win).astype(np.float64).ravel())
    values = np.concatenate(parts)
    keep = np.isfinite(values)
    if nodata is not None and not np.isnan(nodata):
        keep &= values != nodata
    return values[keep]


def guess_units(values: np.ndarray, path: str) -> str:
    """'dB' or 'linear' from sampled values, or a one-line error asking for ``--sar_units``.

    dB when at least half the values are negative; linear when none is and the median is below 1
    (gamma0/sigma0 power of land and water); dB when there are none (nothing to convert).
    """
    if values.size == 0:
        return "dB"  # nothing sampled has data: nothing to convert there, SEN12MS-CR's units
    negative = float(np.mean(values < 0))
    median = float(np.median(values))
    if negative >= 0.5:
        return "dB"
    if negative == 0.0 and median < 1.0:
        return "linear"
    raise UserError(
        f"cannot tell whether the SAR input {path} holds dB or linear power ({100 * negative:.0f}% negative, "
        f"median {median:.3g}); give --sar_units db or --sar_units linear"
    )


def resolve_units(option: str, declared: str | None, sample, path: str) -> tuple[str, str]:
    """The SAR units and how they were found: ``option`` ('auto', 'db', 'linear'), the product's
    ``declared`` units (or None), and ``sample()`` -> values, called only when needed (to guess the
    units, or to check that values said to be in dB have some below 0)."""
    option = str(option or "auto").lower()
    if option not in SAR_UNITS:
        raise UserError(f"--sar_units {option!r}: choose one of {', '.join(SAR_UNITS)}")
    if option != "auto":
        units, how = ("dB" if option == "db" else "linear"), "--sar_units"
    elif declared is not None:
        units, how = declared, "the product's metadata"
    else:
        return guess_units(sample(), path), "the values (--sar_units auto)"
    if units == "dB":
        check_db(sample(), path, "--sar_units db" if how == "--sar_units" else how)
    return units, how


def check_db(values: np.ndarray, path: str, how: str) -> None:
    """Refuse SAR said to be in dB (by ``how``) that holds no value below 0: linear power read as dB
    would give the white output of a mis-scaled input."""
    if values.size and float(values.min()) >= 0:
        raise UserError(
            f"the SAR input {path} holds no value below 0, so it is linear power, not dB as {how} says: "
            "give --sar_units linear (or auto)"
        )
