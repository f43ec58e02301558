"""Stacked GeoTIFFs (or a VRT / JPEG 2000 of the same): today's inputs, and SEN12MS-CR's own format.
Other images (a PNG, a JPEG: no georeferenced scene) are refused in one line.

Sentinel-2: integer digital numbers, bands named by their descriptions (``B2``, ``B02``, ``B8A``)
or, without names, by count: 13 bands are B1 .. B12 in Sentinel-2's order, 12 bands the same
without B10 (a Level-2A stack); any other count is taken by position as the model's own bands.
The offset comes from ``--s2_offset`` or from GDAL's band scale/offset (reflectance = DN x scale +
offset, as rasterio and GDAL write it); a stack without either carries none (SEN12MS-CR's case).
Sentinel-1: float backscatter, bands named VV/VH by their descriptions or, without names, VV then VH.
"""

from __future__ import annotations

from data.sentinel import S2_BANDS
from scene.products.base import Band, Grid, Product, band_name, open_dataset
from scene.products.sar import check_backscatter, resolve_units, sample_values, units_word
from util.errors import UserError

SCENE_DRIVERS = ("GTiff", "COG", "VRT", "JPEG2000")  # and GDAL's other JPEG 2000 drivers (JP2*)
S2_DTYPES = ("uint16", "int16", "uint32", "int32")  # digital numbers, reflectance x 10000
L2A_BANDS = tuple(b for b in S2_BANDS if b != "B10")
LEVEL_TAGS = ("PROCESSING_LEVEL", "S2_LEVEL", "LEVEL")


def parse_offset(text: str | float | None) -> float | None:
    """``--s2_offset`` -> a number of digital numbers, or None for 'auto' (from the product)."""
    if text is None or str(text).strip().lower() == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"--s2_offset {text!r}: expected 'auto' or a number such as -1000") from None


def level_of(text: str | None) -> str | None:
    t = str(text or "").upper().replace("-", "").replace("LEVEL", "")
    return "L1C" if t.endswith("1C") else "L2A" if t.endswith("2A") else None


def _names(descriptions: tuple, count: int, sensor: str) -> tuple[tuple[str, ...], bool, str | None]:
    """Band names of a stack: (names, positional, note)."""
    named = [band_name(d) for d in descriptions]
    if all(named) and len(set(named)) == count:
        return tuple(named), False, None
    plain = tuple(d or f"band_{i + 1}" for i, d in enumerate(descriptions))
    if len(set(plain)) < count:
        plain = tuple(f"band_{i + 1}" for i in range(count))
    if sensor == "S1":
        return (("VV", "VH"), False, None) if count == 2 else (plain, True, None)
    if count == len(S2_BANDS):
        return S2_BANDS, False, None
    if count == len(L2A_BANDS):
        note = "note: 12 unnamed bands taken as a Level-2A product's, B1 .. B12 without B10"
        return L2A_BANDS, False, note
    return plain, True, None


def read_geotiff(
    path: str, role: str, sensor: str, *, s2_offset: str | float | None = "auto", sar_units: str = "auto"
) -> Product:
    """A stacked raster as a :class:`Product` (its checks in one line each)."""
    with open_dataset(path, role) as ds:
        if ds.driver not in SCENE_DRIVERS and not ds.driver.startswith("JP2"):
            raise UserError(
                f"{role} image {path} is a {ds.driver} file, not a GeoTIFF: give the scene as a GeoTIFF, a "
                ".SAFE product or a STAC item (docs/scenes.md); PNG triplets are tested with test.py"
            )
        grid, count, dtype, nodata = Grid.of(ds), ds.count, ds.dtypes[0], ds.nodata
        descriptions, tags = ds.descriptions, {k.upper(): v for k, v in ds.tags().items()}
        scales, offsets, units = ds.scales, ds.offsets, ds.units
        if sensor == "S1":
            check_backscatter(ds, path)
            declared = units_word(units[0]) or units_word(tags.get("UNITS"))
            unit, how = resolve_units(
                sar_units, declared, lambda: sample_values(ds, list(range(1, count + 1)), nodata), path
            )
        elif dtype not in S2_DTYPES:
            raise UserError(
                f"{path} has data type {dtype}, but Sentinel-2 digital numbers (reflectance x 10000) must be "
                f"one of {', '.join(S2_DTYPES)}"
            )
    names, positional, note = _names(descriptions, count, sensor)
    product = Product(path, role, "GeoTIFF", sensor, grid, {}, positional=positional)
    if note:
        product.notes.append(note)
    if sensor == "S1":
        product.units = unit
        if unit == "linear":
            product.notes.append(
                f"note: the SAR input {path} is taken as linear power (from {how}): converted to dB"
            )
    else:
        product.level = next((level_of(tags[k]) for k in LEVEL_TAGS if k in tags), None)
        if product.level is None and names == L2A_BANDS and note:  # 12 unnamed bands: Level-2A's set
            product.level = "L2A"
    given = parse_offset(s2_offset) if sensor == "S2" else None
    for i, name in enumerate(names):
        offset, gain = 0.0, 1.0
        if sensor == "S2":
            offset, gain = _scaling(scales[i], offsets[i])
            if given is not None:
                offset, gain = given, 1.0
        product.bands[name] = Band(name, path, i + 1, grid, dtype, nodata, offset, gain)
    return product


def _scaling(scale: float, offset: float) -> tuple[float, float]:
    """GDAL's band scale/offset (reflectance = DN x scale + offset) -> (DN offset, gain to x 10000)."""
    if not scale or (scale == 1.0 and offset == 0.0):
        return 0.0, 1.0
    return round(offset / scale, 6), round(scale * 10000.0, 9)
