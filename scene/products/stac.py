"""STAC items with one raster asset per band (Sentinel-2 L1C/L2A, Sentinel-1 RTC or dB), read with pystac.

The item is read with pystac (a JSON file or URL); each band's asset is then read window by window
through rasterio (a local file, or a URL through GDAL's /vsicurl/: only the blocks a window needs
travel), its 20/60 m or other-CRS rasters resampled onto the grid of the finest band. Heavier STAC
loaders (odc-stac, stackstac) build a dask array of the whole item; reading each asset's window
through rasterio keeps whole-scene inference's flat memory and needs no dask or xarray.

Bands are found by the asset's ``eo:bands`` / ``bands`` name, by its key (``B02``, ``vv``), or by its
common name (``blue``, ``nir08``, ...). Sentinel-2 scaling: an asset's ``raster:bands`` scale and
offset (reflectance = DN x scale + offset; e.g. 0.0001 and -0.1: the 2022 offset of -1000) when given,
else the processing baseline (``s2:processing_baseline`` >= 04.00: -1000, unless
``earthsearch:boa_offset_applied`` says the offset is already taken out). The level comes from
``s2:product_type``, ``processing:level`` or the collection's name.
"""

from __future__ import annotations

from data.sentinel import S2_BANDS, S2_MAX
from scene.products.base import COMMON_NAMES, Band, Grid, Product, band_name, open_dataset
from scene.products.geotiff import level_of
from scene.products.safe import BASELINE_OFFSET, OFFSET_BASELINE
from scene.products.sar import GRD_HINT, check_backscatter, resolve_units, sample_values, units_word
from util.errors import UserError

SKIP_ROLES = {"thumbnail", "overview", "metadata", "visual"}


def is_stac(path: str) -> bool:
    return str(path).split("?", 1)[0].lower().endswith(".json")


def load_item(path: str, role: str):
    """The pystac Item of a JSON file or URL, with a one-line error for anything else."""
    import pystac

    try:
        obj = pystac.read_file(path)
    except FileNotFoundError:
        raise UserError(f"{role} input {path} does not exist") from None
    except Exception as err:  # noqa: BLE001 - pystac raises many kinds for a file that is not STAC
        raise UserError(
            f"cannot read the {role} input {path} as a STAC item: {str(err).splitlines()[0]}"
        ) from None
    if not isinstance(obj, pystac.Item):
        raise UserError(f"{path} is a STAC {type(obj).__name__}, not an item; give one item's JSON")
    return obj


def _asset_band(key: str, asset) -> tuple[str | None, dict]:
    """(canonical band name or None, the band's raster fields) of a single-band asset."""
    fields = asset.extra_fields
    listed = fields.get("bands") or fields.get("eo:bands") or []
    raster = (fields.get("raster:bands") or [{}])[0]
    if len(listed) > 1 or len(fields.get("raster:bands") or [{}]) > 1:
        return None, {}
    entry = listed[0] if listed else {}
    merged = {**raster, **{k.removeprefix("raster:"): v for k, v in entry.items() if k.startswith("raster:")}}
    for k in ("nodata", "unit", "scale", "offset"):
        if k in entry:
            merged.setdefault(k, entry[k])
    for candidate in (entry.get("name"), key):
        name = band_name(candidate)
        if name:
            return name, merged
    common = entry.get("common_name") or entry.get("eo:common_name") or key.lower()
    return COMMON_NAMES.get(str(common).lower()), merged


def read_stac(
    path: str, role: str, sensor: str, *, s2_offset: float | None = None, sar_units: str = "auto"
) -> Product:
    """A STAC item as a :class:`Product` on the grid of its finest band."""
    item = load_item(path, role)
    props = item.properties
    collection = (item.collection_id or "").lower()
    if sensor == "S1" and "grd" in collection and "rtc" not in collection:
        raise UserError(
            f"the SAR input {path} is a Sentinel-1 GRD item (radar geometry, uncalibrated); {GRD_HINT}"
        )
    bands: dict[str, tuple[str, dict]] = {}
    for key, asset in item.assets.items():
        if SKIP_ROLES & set(asset.roles or ()) or (asset.media_type or "image").split(";")[0] not in (
            "image/tiff",
            "image/jp2",
            "image/vnd.stac.geotiff",
            "image",
        ):
            continue
        name, fields = _asset_band(key, asset)
        if name and (name in ("VV", "VH", "HH", "HV")) == (sensor == "S1") and name not in bands:
            bands[name] = (asset.get_absolute_href(), fields)
    if not bands:
        what = "VV/VH" if sensor == "S1" else "Sentinel-2 band"
        raise UserError(f"the STAC item {path} has no {what} assets; is it the {role} input?")
    order = S2_BANDS if sensor == "S2" else ("VV", "VH", "HH", "HV")
    product = Product(path, role, "STAC item", sensor, None, {})
    product.properties = {"id": item.id, "datetime": props.get("datetime"), "platform": props.get("platform")}
    offset_of = _s2_offsets(item, bands, s2_offset, product) if sensor == "S2" else None
    for name in (n for n in order if n in bands):
        href, fields = bands[name]
        with open_dataset(href, role) as ds:
            if sensor == "S1":
                check_backscatter(ds, href)
            grid, dtype = Grid.of(ds), ds.dtypes[0]
            nodata = fields.get("nodata", ds.nodata)
        offset, gain = offset_of(name, fields) if offset_of else (0.0, 1.0)
        product.bands[name] = Band(name, href, 1, grid, dtype, nodata, offset, gain)
        if product.grid is None or grid.resolution < product.grid.resolution:
            product.grid = grid
    if sensor == "S1":
        _sar_domain(product, item, bands, sar_units)
    return product


def _s2_offsets(item, bands: dict, given: float | None, product: Product):
    """Fill the product's level and baseline; return ``(name, fields) -> (offset, gain)``."""
    props, collection = item.properties, (item.collection_id or "").lower()
    product.level = (
        level_of(props.get("s2:product_type", "").replace("S2MSI", ""))
        or level_of(props.get("processing:level"))
        or ("L2A" if "l2a" in collection else "L1C" if "l1c" in collection else None)
    )
    baseline = props.get("s2:processing_baseline")
    product.baseline = str(baseline) if baseline is not None else None
    listed = any("scale" in f or "offset" in f for _, f in bands.values())
    applied = bool(props.get("earthsearch:boa_offset_applied"))
    from_baseline = (
        not listed and not applied and product.baseline is not None and product.baseline >= OFFSET_BASELINE
    )
    if given is not None:
        product.notes.append(f"note: --s2_offset {given:g} replaces the offsets of {item.id}")
    elif from_baseline:
        product.notes.append(
            f"note: the STAC item {item.id} gives no band offsets; {BASELINE_OFFSET:g} applied for its processing "
            f"baseline {product.baseline} (>= {OFFSET_BASELINE})"
        )

    def offset_of(name: str, fields: dict) -> tuple[float, float]:
        if given is not None:
            return given, 1.0
        if "scale" in fields or "offset" in fields:
            scale, offset = float(fields.get("scale", 1.0 / S2_MAX)), float(fields.get("offset", 0.0))
            return round(offset / scale, 6), round(scale * S2_MAX, 9)
        return (BASELINE_OFFSET if from_baseline else 0.0), 1.0

    return offset_of


def _sar_domain(product: Product, item, bands: dict, option: str) -> None:
    """Units (from the assets' unit, else the values) and quantity (RTC: gamma0) of a SAR item."""
    props, collection = item.properties, (item.collection_id or "").lower()
    declared = next((units_word(f.get("unit")) for _, f in bands.values() if units_word(f.get("unit"))), None)
    first = next(iter(product.bands.values()))

    def sample():
        with open_dataset(first.path, product.role) as ds:
            return sample_values(ds, [1], first.nodata)

    product.units, how = resolve_units(option, declared, sample, product.path)
    rtc = "rtc" in collection or str(props.get("sar:product_type", "")).upper() == "RTC"
    product.quantity = "gamma0" if rtc else None
    if product.units == "linear":
        product.notes.append(
            f"note: the SAR input {product.path} is linear power (from {how}): converted to dB"
        )
