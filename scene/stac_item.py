"""What a scene run records about itself: the output's tags, and a STAC item beside each output.

The tags (GDAL metadata of the GeoTIFF) say which inputs were read and how: their format and
level, the offset taken out of the Sentinel-2 digital numbers, the SAR units as delivered, the B10
fill, the compositing. The STAC item (``<out stem>.stac.json``, written with pystac) names the
output and its sidecars as assets, the inputs as ``derived_from`` links, the model, the experiment
and its weight files, and the grid (projection extension).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from scene.io import Scene
from scene.paths import item_path
from scene.products.base import Band, Filled
from util.fileio import write_text

PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
PREFIX = "cloud_removal"


def input_tags(scene: Scene, keep: str | None) -> dict[str, str]:
    """The output's tags about its inputs (``keep``: how clear pixels were kept, or None)."""
    real = [i for i, s in enumerate(scene.s2_slots) if isinstance(s, Band)]
    offsets = sorted({scene.scaling.s2_offset[i] for i in real})  # the products' and the model's
    gains = sorted({scene.scaling.s2_gain[i] for i in real})
    tags = {
        "input_cloudy": str(scene.optical.path),
        "input_cloudy_format": scene.optical.format,
        "input_bands": ",".join(scene.band_names),
        "input_s2_offset": ",".join(f"{o:g}" for o in offsets),
        "input_s2_gain": ",".join(f"{g:g}" for g in gains),
        "input_scaling": "reflectance = clip((DN + input_s2_offset) x input_s2_gain, 0, 10000) / 10000",
    }
    if scene.sar is not None:
        tags["input_sar"] = str(scene.sar.path)
        tags["input_sar_format"] = scene.sar.format
        tags["input_sar_units"] = scene.sar.units
        tags["input_sar_clip"] = scene.scaling.sar_clip
    if scene.optical.level:
        tags["input_s2_level"] = scene.optical.level
    filled = [f"{s.name}={s.value:g}" for s in scene.s2_slots if isinstance(s, Filled)]
    if filled:
        tags["input_filled_bands"] = ",".join(filled)
    if scene.mapping != "unit":
        tags["input_mapping"] = f"{scene.mapping} (the model's inputs, see model_input_domain)"
    if keep:
        tags["keep_clear"] = keep
    return tags


def write_item(
    out: Path,
    scene: Scene,
    *,
    weights: list[Path],
    sidecars: dict[str, Path],
    cog: bool,
    tags: dict[str, str],
) -> Path:
    """Write the STAC item of ``out`` (atomically) and return its path."""
    import pystac
    from rasterio.warp import transform_bounds

    grid = scene.grid
    west, south, east, north = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds, densify_pts=21)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    acquired = _datetime(scene.optical.properties.get("datetime"))
    props = {
        "created": now.isoformat().replace("+00:00", "Z"),
        "proj:code": grid.crs.to_string() if grid.crs else None,
        "proj:shape": [grid.height, grid.width],
        "proj:transform": list(grid.transform)[:6],
        f"{PREFIX}:datetime_from": "the cloudy input" if acquired else "the run (the input gives no date)",
        **{f"{PREFIX}:{k}": v for k, v in tags.items() if k != "weights"},
        f"{PREFIX}:weights": [str(w) for w in weights],
    }
    for key in ("platform", "constellation"):
        if scene.optical.properties.get(key):
            props[key] = scene.optical.properties[key]
    item = pystac.Item(
        out.stem,
        {"type": "Polygon", "coordinates": [ring]},
        [west, south, east, north],
        acquired or now,
        props,
        stac_extensions=[PROJECTION],
    )
    media = pystac.MediaType.COG if cog else pystac.MediaType.GEOTIFF
    item.add_asset("data", pystac.Asset(f"./{out.name}", title="cloud-free reflectance", media_type=media,
                                        roles=["data"]))  # fmt: skip
    for name, path in sidecars.items():
        role = ["cloud"] if name == "clouds" else ["data"]
        item.add_asset(name, pystac.Asset(f"./{path.name}", title=name, media_type=media, roles=role))
    for role, product in (("cloudy", scene.optical), ("sar", scene.sar)):
        if product is None:  # a model without SAR input
            continue
        href = str(product.path)
        if "://" not in href:
            href = str(Path(href).resolve())
        item.add_link(pystac.Link("derived_from", href, title=f"{role} input ({product.format})"))
    path = item_path(out)
    write_text(path, json.dumps(item.to_dict(include_self_link=False), indent=2) + "\n")
    return path


def _datetime(text) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
