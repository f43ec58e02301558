"""Sentinel-2 SAFE products (a ``.SAFE`` folder, its ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``, or the zip).

The pixels come through GDAL's SENTINEL2 driver (rasterio opens the product's metadata file, whose
10, 20 and 60 m subdatasets are mosaics of the granule's JP2 images, bands named B1 .. B12, B8A);
the metadata comes from the product's XML, read here: the level (the root element), the processing
baseline, the quantification value (L1C ``QUANTIFICATION_VALUE``, L2A ``BOA_QUANTIFICATION_VALUE``)
and, since baseline 04.00 (25 January 2022), the per-band offsets (L1C ``RADIO_ADD_OFFSET``, L2A
``BOA_ADD_OFFSET``, indexed by ``band_id`` in Sentinel-2's band order): reflectance =
(DN + offset) / quantification. A zip is read in place (GDAL's /vsizip/). Level-2A has no B10.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import rasterio

from data.sentinel import S2_BANDS, S2_MAX
from scene.products.base import Band, Grid, Product, band_name, open_dataset
from scene.products.sar import GRD_HINT
from util.errors import UserError

MTD_NAMES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")
OFFSET_BASELINE = "04.00"  # the first processing baseline whose digital numbers carry an offset
BASELINE_OFFSET = -1000.0
RESOLUTIONS = ("10m", "20m", "60m")
JP2_DRIVERS = {"JP2OpenJPEG", "JP2KAK", "JP2ECW", "JP2MrSID"}


def is_safe(path: str) -> bool:
    """Whether ``path`` names a Sentinel-2 SAFE product (folder, metadata file or zip)."""
    p = Path(path)
    if p.name in MTD_NAMES:
        return True
    if p.is_dir():
        return p.suffix.upper() == ".SAFE" or any((p / n).is_file() for n in MTD_NAMES)
    return p.suffix.lower() == ".zip"


def locate(path: str) -> tuple[str, bytes]:
    """(the metadata file as GDAL opens it, its bytes) of a SAFE folder, metadata file or zip."""
    p = Path(path)
    if p.is_dir() and (p / "manifest.safe").is_file() and p.name.upper().startswith("S1"):
        raise UserError(f"{path} is a Sentinel-1 SAFE product, not Sentinel-2; as SAR input: {GRD_HINT}")
    if p.is_dir():
        found = [p / n for n in MTD_NAMES if (p / n).is_file()]
        if not found:
            raise UserError(
                f"{path} holds neither MTD_MSIL1C.xml nor MTD_MSIL2A.xml: not a Sentinel-2 SAFE product "
                "(products of processing baselines before 02.06, 2017, are not read; download it again)"
            )
        p = found[0]
    if p.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(p) as zf:
                members = [m for m in zf.namelist() if m.rsplit("/", 1)[-1] in MTD_NAMES]
                if not members:
                    hint = f"; as SAR input: {GRD_HINT}" if p.name.upper().startswith("S1") else ""
                    raise UserError(
                        f"{path} holds no MTD_MSIL1C.xml or MTD_MSIL2A.xml: not a Sentinel-2 product{hint}"
                    )
                return f"/vsizip/{p.resolve()}/{members[0]}", zf.read(members[0])
        except (zipfile.BadZipFile, OSError) as err:
            raise UserError(f"cannot read the zip {path}: {err}") from None
    try:
        return str(p), p.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {p}: {err.strerror or err}") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(node: ET.Element, *names: str) -> ET.Element | None:
    """The first descendant path ``names`` (local names, namespaces ignored)."""
    for name in names:
        node = next((c for c in node if _local(c.tag) == name), None)
        if node is None:
            return None
    return node


def _all(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if _local(e.tag) == name]


def parse_metadata(xml: bytes, path: str) -> dict:
    """What the product metadata says: level, baseline, quantification, offsets by band, nodata, ids."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise UserError(f"the metadata of {path} is not valid XML: {err}") from None
    level = {"Level-1C_User_Product": "L1C", "Level-2A_User_Product": "L2A"}.get(_local(root.tag))
    if level is None:
        raise UserError(
            f"the metadata of {path} is neither a Level-1C nor a Level-2A product ({_local(root.tag)})"
        )
    info = _find(root, "General_Info", "Product_Info")
    chars = _find(root, "General_Info", "Product_Image_Characteristics")
    if info is None or chars is None:
        raise UserError(
            f"the metadata of {path} lacks General_Info/Product_Info or Product_Image_Characteristics"
        )

    def text(node: ET.Element | None, name: str) -> str | None:
        found = _find(node, name) if node is not None else None
        return found.text.strip() if found is not None and found.text else None

    quant = [e for e in _all(chars, "QUANTIFICATION_VALUE") + _all(chars, "BOA_QUANTIFICATION_VALUE")]
    offsets = {}
    for element in _all(chars, "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"):
        index = int(element.get("band_id", "-1"))
        if 0 <= index < len(S2_BANDS):
            offsets[S2_BANDS[index]] = float(element.text)
    nodata = next(
        (
            float(text(sv, "SPECIAL_VALUE_INDEX"))
            for sv in _all(chars, "Special_Values")
            if text(sv, "SPECIAL_VALUE_TEXT") == "NODATA"
        ),
        0.0,
    )
    datatake = _find(info, "Datatake")
    return {
        "level": level,
        "baseline": text(info, "PROCESSING_BASELINE"),
        "quantification": float(quant[0].text) if quant else S2_MAX,
        "offsets": offsets,
        "nodata": nodata,
        "product_uri": text(info, "PRODUCT_URI") or text(info, "PRODUCT_URI_2A"),
        "start_time": text(info, "PRODUCT_START_TIME"),
        "platform": text(datatake, "SPACECRAFT_NAME") if datatake is not None else None,
    }


def check_drivers() -> None:
    """Refuse SAFE products where rasterio's GDAL lacks the SENTINEL2 driver or every JPEG 2000 driver."""
    with rasterio.Env() as env:
        drivers = set(env.drivers())
    if "SENTINEL2" not in drivers or not drivers & JP2_DRIVERS:
        raise UserError(
            f"reading SAFE products needs GDAL's SENTINEL2 and a JPEG 2000 driver, which this rasterio's GDAL "
            f"{rasterio.__gdal_version__} lacks; install rasterio's wheel (pip install rasterio), or give a STAC item "
            "or a GeoTIFF"
        )


def read_safe(path: str, role: str, *, s2_offset: float | None = None) -> Product:
    """A SAFE product as a :class:`Product` on its 10 m grid; ``s2_offset``: replaces the metadata's offsets."""
    check_drivers()
    mtd, xml = locate(path)
    meta = parse_metadata(xml, path)
    with open_dataset(mtd, role) as ds:
        subdatasets = [s for s in ds.subdatasets if s.split(":")[-2] in RESOLUTIONS]
    if not subdatasets:
        raise UserError(
            f"GDAL's SENTINEL2 driver finds no 10/20/60 m images in {path}; an incomplete download?"
        )
    epsg = subdatasets[0].rsplit(":", 1)[-1]
    product = Product(path, role, "SAFE", "S2", None, {}, level=meta["level"], baseline=meta["baseline"])
    others = sorted({s.rsplit(":", 1)[-1] for s in subdatasets} - {epsg})
    if others:
        product.notes.append(
            f"note: {path} spans several UTM zones; only {epsg} is read ({', '.join(others)} not)"
        )
    offsets, source = _offsets(meta, s2_offset, path)
    if source:
        product.notes.append(source)
    gain = round(S2_MAX / meta["quantification"], 9)
    found = {}
    for sd in (s for s in subdatasets if s.endswith(epsg)):
        with open_dataset(sd, role) as sub:
            grid, files = Grid.of(sub), " ".join(sub.files)
            for i in range(sub.count):
                name = band_name(sub.tags(i + 1).get("BANDNAME"))
                if name is None:
                    continue  # AOT, WVP, SCL... of Level-2A
                if not re.search(rf"_B{_file_band(name)}(_\d\dm)?\.jp2", files):
                    raise UserError(
                        f"{path} lacks the image of band {name} (GRANULE/.../IMG_DATA/*_B{_file_band(name)}*.jp2); "
                        "an incomplete download?"
                    )
                found[name] = Band(
                    name, sd, i + 1, grid, sub.dtypes[i], meta["nodata"], offsets.get(name, 0.0), gain
                )
                if sd.split(":")[-2] == "10m":
                    product.grid = grid
    if product.grid is None:
        raise UserError(f"{path} has no 10 m bands (B2, B3, B4, B8); an incomplete download?")
    product.bands = {name: found[name] for name in S2_BANDS if name in found}
    product.properties = {
        "id": (meta["product_uri"] or Path(path).name).removesuffix(".SAFE"),
        "datetime": meta["start_time"],
        "platform": (meta["platform"] or "").lower() or None,
        "s2:processing_baseline": meta["baseline"],
        "processing:level": meta["level"],
    }
    return product


def _file_band(name: str) -> str:
    """B8A -> 8A, B2 -> 02: how the JP2 file names spell a band."""
    return name[1:] if name == "B8A" else f"{int(name[1:]):02d}"


def _offsets(meta: dict, given: float | None, path: str) -> tuple[dict[str, float], str | None]:
    """The offsets by band, and the note that says where they come from (None: the metadata's own)."""
    if given is not None:
        return {b: given for b in S2_BANDS}, f"note: --s2_offset {given:g} replaces the offsets of {path}"
    if meta["offsets"]:
        return meta["offsets"], None
    if meta["baseline"] and meta["baseline"] >= OFFSET_BASELINE:
        return {b: BASELINE_OFFSET for b in S2_BANDS}, (
            f"note: {path} is of processing baseline {meta['baseline']} but its metadata lists no offsets: "
            f"{BASELINE_OFFSET:g} applied, as baseline {OFFSET_BASELINE} prescribes"
        )
    return {}, None
