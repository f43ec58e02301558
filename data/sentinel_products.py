"""Small Sentinel products written in the layout of the real ones, from arrays: for tests and the demo.

* :func:`write_safe` — a Sentinel-2 SAFE product (compact naming, processing baseline 02.xx to 05.xx),
  Level-1C or Level-2A, as a folder or a zip: ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` with the element
  names of ESA's product specification (quantification value, the ``RADIO_ADD_OFFSET`` /
  ``BOA_ADD_OFFSET`` lists of baseline 04.00 on), ``GRANULE/<id>/MTD_TL.xml`` with the tile geocoding,
  and one lossless JPEG 2000 image per band at its native 10, 20 or 60 m (L2A: in ``IMG_DATA/R10m``,
  ``R20m``, ``R60m``, with the AOT, WVP, SCL and QI masks GDAL's SENTINEL2 driver lists).
* :func:`write_stac_item` — a STAC item (pystac) with one cloud-optimised GeoTIFF asset per band, as
  STAC catalogues serve Sentinel-2 and Sentinel-1 RTC: ``eo:bands`` names, ``raster:bands`` nodata,
  scale and offset, and the properties the readers use.

Band arrays are given at their native resolution (:data:`NATIVE`): B2 of a 60 x 60 px 10 m grid is
(60, 60), B5 is (30, 30), B1 is (10, 10).
"""

from __future__ import annotations

import datetime as dt
import shutil
import zipfile
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from data.sentinel import S2_BANDS

NATIVE = {"B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20, "B8": 10, "B8A": 20}
NATIVE.update({"B9": 60, "B10": 60, "B11": 20, "B12": 20})
# STAC's common names (B5, B6, B7 all 'rededge'), and the asset keys of catalogues that key by them.
COMMON = {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "rededge", "B6": "rededge"}
COMMON.update({"B7": "rededge", "B8": "nir", "B8A": "nir08", "B9": "nir09", "B10": "cirrus"})
COMMON.update({"B11": "swir16", "B12": "swir22"})
COMMON_KEYS = {**COMMON, "B5": "rededge1", "B6": "rededge2", "B7": "rededge3"}
L2A_EXTRA = {"AOT": (10, 20, 60), "WVP": (10, 20, 60), "SCL": (20, 60)}
L2A_MASKS = {"CLDPRB": (20, 60), "SNWPRB": (20, 60)}
NS = "https://psd-14.sentinel2.eo.esa.int/PSD"


def file_band(name: str) -> str:
    """B8A -> B8A, B2 -> B02: band names as SAFE file names spell them."""
    return name if name == "B8A" else f"B{int(name[1:]):02d}"


def _jp2(path: Path, data: np.ndarray, crs: str, transform: Affine) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "JP2OpenJPEG", "width": data.shape[1], "height": data.shape[0], "count": 1}
    profile.update(dtype=str(data.dtype), crs=crs, transform=transform, QUALITY=100, REVERSIBLE="YES")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[None])


def write_safe(
    folder: str | Path,
    bands: dict[str, np.ndarray],
    *,
    level: str = "L1C",
    baseline: str = "04.00",
    offset: float | None = -1000.0,
    crs: str = "EPSG:32632",
    origin: tuple[float, float] = (600000.0, 5100000.0),
    tile: str = "T32TQM",
    when: dt.datetime = dt.datetime(2022, 6, 1, 10, 20, 21),
    zip_it: bool = False,
) -> Path:
    """Write a compact-naming SAFE product of ``bands`` (uint16 DN at native resolution) in ``folder``.

    ``offset``: the offset its metadata lists for every band (None: no list, as before baseline
    04.00); the DN must already carry it. Returns the ``.SAFE`` folder, or the zip (``zip_it``).
    """
    short = level[1:]  # 1C / 2A
    stamp = when.strftime("%Y%m%dT%H%M%S")
    name = f"S2A_MSIL{short}_{stamp}_N{baseline.replace('.', '')}_R065_{tile}_{stamp}"
    root = Path(folder) / f"{name}.SAFE"
    granule = f"L{short}_{tile}_A036264_{stamp}"
    prefix = f"{tile}_{stamp}"
    n10 = next(a.shape[0] * NATIVE[b] // 10 for b, a in bands.items())
    files = []
    for band, data in bands.items():
        res = NATIVE[band]
        rel = f"GRANULE/{granule}/IMG_DATA/" + (
            f"{prefix}_{file_band(band)}" if level == "L1C" else f"R{res}m/{prefix}_{file_band(band)}_{res}m"
        )
        _jp2(root / f"{rel}.jp2", data, crs, Affine(res, 0, origin[0], 0, -res, origin[1]))
        files.append(rel)
    if level == "L2A":
        for extra, resolutions in L2A_EXTRA.items():
            for res in resolutions:
                rel = f"GRANULE/{granule}/IMG_DATA/R{res}m/{prefix}_{extra}_{res}m"
                zeros = np.zeros((n10 * 10 // res,) * 2, "uint8" if extra == "SCL" else "uint16")
                _jp2(root / f"{rel}.jp2", zeros, crs, Affine(res, 0, origin[0], 0, -res, origin[1]))
                files.append(rel)
        for mask, resolutions in L2A_MASKS.items():
            for res in resolutions:
                zeros = np.zeros((n10 * 10 // res,) * 2, "uint8")
                path = root / f"GRANULE/{granule}/QI_DATA/MSK_{mask}_{res}m.jp2"
                _jp2(path, zeros, crs, Affine(res, 0, origin[0], 0, -res, origin[1]))
    (root / "GRANULE" / granule / "MTD_TL.xml").write_text(_tile_xml(level, crs, origin, n10))
    (root / f"MTD_MSIL{short}.xml").write_text(_product_xml(level, baseline, offset, name, when, files))
    (root / "manifest.safe").write_text("<?xml version='1.0' encoding='UTF-8'?>\n<xfdu:XFDU/>\n")
    if not zip_it:
        return root
    archive = Path(folder) / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(root.rglob("*")):
            zf.write(path, path.relative_to(Path(folder)).as_posix())
    shutil.rmtree(root)
    return archive


def _product_xml(
    level: str, baseline: str, offset: float | None, name: str, when: dt.datetime, files: list[str]
) -> str:
    short = level[1:]
    start = when.strftime("%Y-%m-%dT%H:%M:%S.024Z")
    images = "\n".join(f"            <IMAGE_FILE>{f}</IMAGE_FILE>" for f in files)
    if level == "L1C":
        quant = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        tag, lst = "RADIO_ADD_OFFSET", "Radiometric_Offset_List"
    else:
        quant = (
            "<QUANTIFICATION_VALUES_LIST>\n"
            '        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>\n'
            '        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>\n'
            '        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>\n'
            "      </QUANTIFICATION_VALUES_LIST>"
        )
        tag, lst = "BOA_ADD_OFFSET", "BOA_ADD_OFFSET_VALUES_LIST"
    ids = range(len(S2_BANDS)) if level == "L1C" else [i for i, b in enumerate(S2_BANDS) if b != "B10"]
    offsets = ""
    if offset is not None:
        rows = "\n".join(f'        <{tag} band_id="{i}">{offset:g}</{tag}>' for i in ids)
        offsets = f"<{lst}>\n{rows}\n      </{lst}>"
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-{short}_User_Product xmlns:n1="{NS}/User_Product_Level-{short}.xsd" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="{NS}/User_Product_Level-{short}.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{start}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{start}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{name}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-{short}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI{short}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <GENERATION_TIME>{start}</GENERATION_TIME>
      <Datatake datatakeIdentifier="GS2A_{when:%Y%m%dT%H%M%S}_036264_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <SENSING_ORBIT_NUMBER>65</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Query_Options completeSingleTile="true">
        <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>
      </Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule datastripIdentifier="S2A_OPER_MSI_L{short}_DS_2APS_{when:%Y%m%dT%H%M%S}_S{when:%Y%m%dT%H%M%S}_N{baseline}" \
granuleIdentifier="S2A_OPER_MSI_L{short}_TL_2APS_{when:%Y%m%dT%H%M%S}_A036264_{name.split("_")[5]}_N{baseline}" imageFormat="JPEG2000">
{images}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
      {quant}
      {offsets}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-{short}_User_Product>
"""


def _tile_xml(level: str, crs: str, origin: tuple[float, float], n10: int) -> str:
    short, epsg = level[1:], crs.split(":")[1]
    sizes = "".join(
        f'\n        <Size resolution="{r}"><NROWS>{n10 * 10 // r}</NROWS><NCOLS>{n10 * 10 // r}</NCOLS></Size>'
        for r in (10, 20, 60)
    )
    positions = "".join(
        f'\n        <Geoposition resolution="{r}"><ULX>{origin[0]:g}</ULX><ULY>{origin[1]:g}</ULY>'
        f"<XDIM>{r}</XDIM><YDIM>-{r}</YDIM></Geoposition>"
        for r in (10, 20, 60)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-{short}_Tile_ID xmlns:n1="{NS}/S2_PDI_Level-{short}_Tile_Metadata.xsd">
  <n1:General_Info>
    <TILE_ID metadataLevel="Brief">S2A_OPER_MSI_L{short}_TL_2APS_A036264_T32TQM</TILE_ID>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Geocoding metadataLevel="Brief">
        <HORIZONTAL_CS_NAME>WGS84 / UTM zone {int(epsg) % 100}N</HORIZONTAL_CS_NAME>
        <HORIZONTAL_CS_CODE>{crs}</HORIZONTAL_CS_CODE>{sizes}{positions}
    </Tile_Geocoding>
  </n1:Geometric_Info>
</n1:Level-{short}_Tile_ID>
"""


def _cog(path: Path, data: np.ndarray, crs: str, transform: Affine, nodata: float | None) -> None:
    profile = {"driver": "COG", "width": data.shape[-1], "height": data.shape[-2], "count": 1}
    profile.update(dtype=str(data.dtype), crs=crs, transform=transform, nodata=nodata, blocksize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.reshape(1, *data.shape[-2:]))


def write_stac_item(
    folder: str | Path,
    bands: dict[str, np.ndarray],
    *,
    properties: dict,
    crs: str = "EPSG:32632",
    origin: tuple[float, float] = (600000.0, 5100000.0),
    resolution: dict[str, float] | None = None,
    raster: dict[str, dict] | None = None,
    keys: dict[str, str] | None = None,
    collection: str | None = None,
    nodata: float | None = 0,
    item_id: str = "item",
    when: dt.datetime = dt.datetime(2022, 6, 1, 10, 20, 21),
) -> Path:
    """A STAC item JSON in ``folder`` with one COG per band (relative hrefs); returns its path.

    ``resolution``: each band's pixel size (default: Sentinel-2's native, 10 m for others);
    ``raster``: extra ``raster:bands`` fields per band (e.g. scale and offset, unit); ``keys``: asset
    keys per band (default: the band name).
    """
    import pystac

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    resolution, raster, keys = resolution or {}, raster or {}, keys or {}
    bbox_proj = None
    item = pystac.Item(item_id, None, None, when, dict(properties), collection=collection)
    for band, data in bands.items():
        res = resolution.get(band, NATIVE.get(band, 10))
        transform = Affine(res, 0, origin[0], 0, -res, origin[1])
        _cog(folder / f"{band}.tif", data, crs, transform, nodata)
        bbox_proj = bbox_proj or (
            origin[0],
            origin[1] - res * data.shape[-2],
            origin[0] + res * data.shape[-1],
            origin[1],
        )
        eo = {"name": file_band(band)} if band in NATIVE else {"name": band}
        if band in COMMON:
            eo["common_name"] = COMMON[band]
        fields = {"eo:bands": [eo], "raster:bands": [{"nodata": nodata, **raster.get(band, {})}]}
        asset = pystac.Asset(
            f"./{band}.tif", media_type=pystac.MediaType.COG, roles=["data"], extra_fields=fields
        )
        item.add_asset(keys.get(band, band), asset)
    item.bbox, item.geometry = _footprint(crs, bbox_proj)
    path = folder / f"{item_id}.json"
    item.set_self_href(str(path))
    item.save_object(include_self_link=False, dest_href=str(path))
    return path


def _footprint(crs: str, bounds: tuple[float, float, float, float]) -> tuple[list, dict]:
    from rasterio.warp import transform_bounds

    west, south, east, north = transform_bounds(crs, "EPSG:4326", *bounds)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return [west, south, east, north], {"type": "Polygon", "coordinates": [ring]}
