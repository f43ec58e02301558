"""Product readers (scene.products): SAFE folders and zips, STAC items, stacked GeoTIFFs, Sentinel-1
in dB or linear power, built here from seeded data; what is read equals what was written."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from data.sentinel import S2_BANDS, s1_to_unit, s2_to_unit
from models.weight_sets import InputDomain
from scene.domain import check_domain
from scene.io import open_scene
from scene.products import BandStack, ReadOptions, open_product
from scene.scaling import s1_unit, s2_unit
from tests.product_fixtures import SIZE, at_10m, native_bands, s1_item, s2_item, safe, shifted, write_stack
from tests.scene_fixtures import CRS, TRANSFORM, write_scene
from util.errors import UserError

L2A = tuple(b for b in S2_BANDS if b != "B10")
WHOLE = Window(0, 0, SIZE, SIZE)


def read_all(product, names=S2_BANDS, resampling="nearest", fills=None) -> np.ndarray:
    slots = product.select(names, fills)
    stack = BandStack(slots, product.grid, resampling, "cloudy", 0, "uint16")
    try:
        return stack.read(list(range(1, len(slots) + 1)), WHOLE)
    finally:
        stack.close()


def model_units(product, names=S2_BANDS, **kw) -> np.ndarray:
    """What the network sees: the product read and scaled on the device as predict.py does."""
    raw = read_all(product, names, **kw)
    slots = product.select(names, kw.get("fills"))
    offset = torch.tensor([getattr(s, "offset", 0.0) for s in slots]).view(-1, 1, 1)
    gain = torch.tensor([getattr(s, "gain", 1.0) for s in slots]).view(-1, 1, 1)
    return s2_unit(torch.from_numpy(raw.astype(np.float32)), 0, offset, gain)[0].numpy()


# ---------------------------------------------------------------------------- SAFE
@pytest.mark.parametrize("zip_it", [False, True])
def test_safe_l1c_with_the_2022_offset_reads_what_was_written(tmp_path, zip_it):
    truth = native_bands(0)
    product = open_product(safe(tmp_path, shifted(truth, -1000), zip_it=zip_it), "cloudy", "S2")
    assert (product.format, product.level, product.baseline) == ("SAFE", "L1C", "04.00")
    assert product.band_names == S2_BANDS and product.grid.width == SIZE
    assert product.grid.transform == TRANSFORM and product.grid.crs == CRS
    assert {b.offset for b in product.bands.values()} == {-1000.0}
    raw, ten = read_all(product), at_10m(truth)
    np.testing.assert_array_equal(raw, np.stack([ten[b] + 1000 for b in S2_BANDS]))
    expected = s2_to_unit(np.stack([ten[b] for b in S2_BANDS]))
    np.testing.assert_array_equal(model_units(product), expected)


def test_safe_before_2022_has_no_offset_and_a_missing_list_follows_the_baseline(tmp_path):
    truth = native_bands(1)
    old = open_product(safe(tmp_path / "old", truth, baseline="03.01", offset=None), "cloudy", "S2")
    assert {b.offset for b in old.bands.values()} == {0.0} and not old.notes
    np.testing.assert_array_equal(
        model_units(old), s2_to_unit(np.stack([at_10m(truth)[b] for b in S2_BANDS]))
    )
    bare = open_product(safe(tmp_path / "new", shifted(truth, -1000), offset=None), "cloudy", "S2")
    assert {b.offset for b in bare.bands.values()} == {-1000.0}
    assert "lists no offsets" in bare.notes[0] and "04.00" in bare.notes[0]
    forced = open_product(safe(tmp_path / "old", truth, baseline="03.01", offset=None), "cloudy", "S2",
                          ReadOptions(s2_offset=-1000))  # fmt: skip
    assert {b.offset for b in forced.bands.values()} == {-1000.0} and "--s2_offset" in forced.notes[0]


def test_safe_l2a_zip_has_12_bands_and_b10_is_filled_where_there_is_data(tmp_path):
    truth = native_bands(2, L2A)
    stored = shifted(truth, -1000)
    for data in stored.values():  # outside the swath in the top-left corner: every band DN 0
        data[: 6 // (SIZE // len(data)), : 6 // (SIZE // len(data))] = 0
    product = open_product(safe(tmp_path, stored, level="L2A", zip_it=True), "cloudy", "S2")
    assert product.level == "L2A" and product.band_names == L2A
    raw = read_all(product, S2_BANDS, fills={"B10": 20})
    b10 = raw[S2_BANDS.index("B10")]
    assert (b10[6:, :] == 20).all() and (b10[:6, :6] == 0).all()
    ten = at_10m(truth)
    np.testing.assert_array_equal(raw[S2_BANDS.index("B12")][6:, 6:], ten["B12"][6:, 6:] + 1000)
    with pytest.raises(UserError, match="lacks band"):
        product.select(S2_BANDS)


def test_resampling_of_the_coarse_bands_is_an_option(tmp_path):
    product = open_product(safe(tmp_path, native_bands(3)), "cloudy", "S2")
    nearest, bilinear = read_all(product, ("B5",)), read_all(product, ("B5",), "bilinear")
    assert not np.array_equal(nearest, bilinear)
    assert abs(float(nearest.mean()) - float(bilinear.mean())) < 0.05 * float(nearest.mean())
    with pytest.raises(UserError, match="--s2_resampling"):
        ReadOptions(s2_resampling="lanczos4")


def test_damaged_safe_products_are_refused_in_one_line(tmp_path):
    root = safe(tmp_path / "a", native_bands(4))
    next(root.rglob("*_B05.jp2")).unlink()
    with pytest.raises(UserError, match="lacks the image of band B5"):
        open_product(root, "cloudy", "S2")
    root = safe(tmp_path / "b", native_bands(4))
    (root / "MTD_MSIL1C.xml").unlink()
    with pytest.raises(UserError, match="neither MTD_MSIL1C.xml nor MTD_MSIL2A.xml"):
        open_product(root, "cloudy", "S2")
    root = safe(tmp_path / "c", native_bands(4))
    mtd = root / "MTD_MSIL1C.xml"
    mtd.write_text(mtd.read_text().replace("</n1:General_Info>", ""))
    with pytest.raises(UserError, match="not valid XML"):
        open_product(root, "cloudy", "S2")
    archive = tmp_path / "S2A_MSIL1C_x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "nothing")
    with pytest.raises(UserError, match="no MTD_MSIL1C.xml"):
        open_product(archive, "cloudy", "S2")


def test_a_safe_folder_its_metadata_file_and_its_zip_read_the_same(tmp_path):
    stored = shifted(native_bands(5), -1000)
    root = safe(tmp_path / "f", stored)
    archive = safe(tmp_path / "z", stored, zip_it=True)
    a = read_all(open_product(root, "cloudy", "S2"))
    b = read_all(open_product(root / "MTD_MSIL1C.xml", "cloudy", "S2"))
    c = read_all(open_product(archive, "cloudy", "S2"))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


# ---------------------------------------------------------------------------- STAC
def test_stac_item_with_raster_scale_and_offset(tmp_path):
    truth = native_bands(6, L2A)
    product = open_product(s2_item(tmp_path, shifted(truth, -1000)), "cloudy", "S2")
    assert (product.format, product.level, product.baseline) == ("STAC item", "L2A", "05.10")
    assert product.band_names == L2A and product.grid.width == SIZE and product.grid.resolution == 10
    assert {(b.offset, b.gain) for b in product.bands.values()} == {(-1000.0, 1.0)}
    expected = s2_to_unit(np.stack([at_10m(truth)[b] for b in L2A]))
    np.testing.assert_array_equal(model_units(product, L2A), expected)


@pytest.mark.parametrize(
    ("baseline", "extra", "offset"),
    [("05.10", {}, -1000.0), ("03.01", {}, 0.0), ("05.10", {"earthsearch:boa_offset_applied": True}, 0.0)],
)
def test_stac_item_without_band_scaling_follows_its_baseline(tmp_path, baseline, extra, offset):
    product = open_product(
        s2_item(
            tmp_path, native_bands(7, ("B2", "B3", "B4")), baseline=baseline, raster_offset=None, **extra
        ),
        "cloudy",
        "S2",
    )
    assert {b.offset for b in product.bands.values()} == {offset}
    assert bool(product.notes) == (offset != 0.0)


def test_stac_bands_are_found_by_key_or_eo_name(tmp_path):
    by_common = open_product(s2_item(tmp_path / "a", native_bands(8)), "cloudy", "S2")
    by_name = open_product(s2_item(tmp_path / "b", native_bands(8), common_keys=False), "cloudy", "S2")
    assert by_common.band_names == by_name.band_names == S2_BANDS
    np.testing.assert_array_equal(read_all(by_common), read_all(by_name))


def test_a_stac_collection_or_a_grd_item_is_refused(tmp_path):
    import pystac

    collection = pystac.Collection("c", "d", pystac.Extent.from_dict(
        {"spatial": {"bbox": [[0, 0, 1, 1]]}, "temporal": {"interval": [[None, None]]}}))  # fmt: skip
    path = tmp_path / "collection.json"
    collection.save_object(include_self_link=False, dest_href=str(path))
    with pytest.raises(UserError, match="not an item"):
        open_product(path, "cloudy", "S2")
    vv = np.full((SIZE, SIZE), 0.1)
    grd = s1_item(tmp_path / "grd", vv, vv / 4, collection="sentinel-1-grd")
    with pytest.raises(UserError, match="GRD item .* RTC"):
        open_product(grd, "SAR", "S1")


# ---------------------------------------------------------------------------- Sentinel-1
def sar_units_of(product) -> np.ndarray:
    slots = product.select(("VV", "VH"))
    stack = BandStack(slots, product.grid, "bilinear", "SAR", None, "float32")
    raw = stack.read([1, 2], WHOLE)
    stack.close()
    return s1_unit(torch.from_numpy(raw), None, "standard", product.units)[0].numpy()


def test_linear_rtc_item_in_another_crs_is_converted_to_db(tmp_path):
    rng = np.random.default_rng(9)
    db = rng.uniform(-22, -4, (2, SIZE, SIZE))
    linear = 10 ** (db / 10)
    item = s1_item(tmp_path, linear[0], linear[1])
    product = open_product(item, "SAR", "S1")
    assert (product.units, product.quantity) == ("linear", "gamma0") and "converted to dB" in product.notes[0]
    np.testing.assert_allclose(sar_units_of(product), s1_to_unit(db.astype(np.float32)), atol=1e-5)
    declared = open_product(s1_item(tmp_path / "u", db[0], db[1], unit="dB"), "SAR", "S1")
    assert declared.units == "dB" and not declared.notes
    # the same place in the neighbouring UTM zone: read through a warp onto the optical grid
    (x,), (y,) = rasterio.warp.transform(CRS, "EPSG:32633", [TRANSFORM.c], [TRANSFORM.f])
    other = s1_item(tmp_path / "z33", linear[0], linear[1], crs="EPSG:32633", origin=(x, y))
    s2 = write_stack(tmp_path / "s2.tif", native_bands(9))
    scene = open_scene(s2, other, input_nc=13, sar_nc=2, s2_bands="all")
    assert any("resampled onto the grid" in n for n in scene.notes)
    assert scene.scaling.sar_units == "linear"


@pytest.mark.parametrize(("values", "expected"), [("db", "dB"), ("linear", "linear")])
def test_sar_geotiff_units_from_the_values_or_the_option(tmp_path, values, expected):
    s2, s1 = write_scene(tmp_path, SIZE, SIZE)
    if values == "linear":
        with rasterio.open(s1, "r+") as dst:
            dst.write(10 ** (dst.read() / 10))
    assert open_product(s1, "SAR", "S1").units == expected
    if expected == "dB":
        assert open_product(s1, "SAR", "S1", ReadOptions(sar_units="linear")).units == "linear"
    else:  # linear power said to be dB: the white output of a mis-scaled input, refused
        with pytest.raises(UserError, match="no value below 0.*--sar_units db says.*--sar_units linear"):
            open_product(s1, "SAR", "S1", ReadOptions(sar_units="db"))


def test_ambiguous_radar_geometry_and_integer_sar_are_refused(tmp_path):
    profile = {"driver": "GTiff", "width": 20, "height": 20, "count": 2, "crs": CRS, "transform": TRANSFORM}
    mixed = tmp_path / "mixed.tif"
    with rasterio.open(mixed, "w", dtype="float32", **profile) as dst:
        dst.write(np.random.default_rng(0).uniform(-1, 5, (2, 20, 20)).astype("float32"))
    with pytest.raises(UserError, match="--sar_units"):
        open_product(mixed, "SAR", "S1")
    dn = tmp_path / "dn.tif"
    with rasterio.open(dn, "w", dtype="uint16", **profile) as dst:
        dst.write(np.ones((2, 20, 20), "uint16"))
    with pytest.raises(UserError, match="uncalibrated"):
        open_product(dn, "SAR", "S1")
    gcps = [
        rasterio.control.GroundControlPoint(r, c, 11.0 + c / 100, 46.0 + r / 100)
        for r in (0, 19)
        for c in (0, 19)
    ]
    radar = tmp_path / "grd.tif"
    with rasterio.open(radar, "w", driver="GTiff", width=20, height=20, count=2, dtype="float32",
                       gcps=gcps, crs="EPSG:4326") as dst:  # fmt: skip
        dst.write(np.ones((2, 20, 20), "float32"))
    with rasterio.open(radar) as ds:
        assert ds.crs is None and ds.gcps[0]  # GDAL keeps GCPs apart from a map grid
    with pytest.raises(UserError, match="radar geometry.*RTC"):
        open_product(radar, "SAR", "S1")


# ---------------------------------------------------------------------------- domain
def test_the_domain_check_says_one_line_per_mismatch(tmp_path):
    truth = native_bands(10, L2A)
    l2a = safe(tmp_path / "l2a", shifted(truth, -1000), level="L2A")
    vv = np.full((SIZE, SIZE), 0.1)
    rtc = s1_item(tmp_path / "rtc", vv, vv / 4)
    scene = open_scene(l2a, rtc, input_nc=13, sar_nc=2, s2_bands="all", read=ReadOptions(b10_fill=25))
    lines = check_domain(InputDomain(), "the weights", scene.report())
    assert len(lines) == 2
    assert "Level-2A" in lines[0] and "Level-1C" in lines[0] and "B10 with 25" in lines[0]
    assert "the weights was trained on" in lines[0]
    assert "gamma0" in lines[1] and "sigma0" in lines[1]
    unknown = InputDomain(s2_level="unknown", sar_quantity="unknown")  # nothing to compare with
    assert check_domain(unknown, "m", scene.report()) == ["the cloudy input lacks band(s) that m takes: filled "
                                                           "B10 with 25 (reflectance 0.0025)"]  # fmt: skip
    s2, s1 = write_scene(tmp_path, SIZE, SIZE)
    plain = open_scene(s2, s1, input_nc=13, sar_nc=2, s2_bands="all")
    assert check_domain(InputDomain(), "m", plain.report()) == []
    assert "linear units" in check_domain(InputDomain(sar_units="linear"), "m", plain.report())[0]


def test_the_models_own_offset_is_added_after_the_products_is_taken_out(tmp_path):
    truth = native_bands(12)
    l1c = safe(tmp_path / "l1c", shifted(truth, -1000), level="L1C")
    s1 = write_scene(tmp_path, SIZE, SIZE)[1]
    plain = open_scene(l1c, s1, input_nc=13, sar_nc=2, s2_bands="all")
    assert set(plain.scaling.s2_offset) == {-1000.0}
    offset = open_scene(l1c, s1, input_nc=13, sar_nc=2, s2_bands="all", s2_dn_offset=1000)
    assert set(offset.scaling.s2_offset) == {0.0}  # reflectance x 10000 + 1000, as that model saw


def test_a_plain_stack_reads_as_it_did(tmp_path):
    s2, _ = write_scene(tmp_path, 40, 50)
    product = open_product(s2, "cloudy", "S2")
    assert (product.format, product.level, product.band_names) == ("GeoTIFF", None, S2_BANDS)
    with rasterio.open(s2) as src:
        np.testing.assert_array_equal(
            BandStack(list(product.bands.values()), product.grid, "nearest", "c", 0, "uint16").read(
                list(range(1, 14)), Window(3, 4, 20, 10)
            ),
            src.read(window=Window(3, 4, 20, 10)),
        )
    shutil.copy(s2, tmp_path / "copy.tif")
    with rasterio.open(tmp_path / "copy.tif", "r+") as dst:
        dst.scales, dst.offsets = (0.0001,) * 13, (-0.1,) * 13
    assert {b.offset for b in open_product(tmp_path / "copy.tif", "cloudy", "S2").bands.values()} == {-1000.0}
    assert Affine.identity() != product.grid.transform


@pytest.mark.parametrize(("level", "key"), [("L1C", "RADIO_ADD_OFFSET"), ("L2A", "BOA_ADD_OFFSET")])
def test_gdal_reads_the_same_offsets_from_the_fixture_metadata(tmp_path, level, key):
    """GDAL's SENTINEL2 driver, an independent reader of the metadata, finds the offsets we parse."""
    names = S2_BANDS if level == "L1C" else L2A
    product = open_product(
        safe(tmp_path, shifted(native_bands(11, names), -1000), level=level), "cloudy", "S2"
    )
    for band in product.bands.values():
        with rasterio.open(band.path) as sub:
            assert float(sub.tags(band.index)[key]) == band.offset == -1000.0
            assert sub.tags(band.index)["BANDNAME"] == band.name


@pytest.mark.slow
def test_the_b10_fill_effect_script_measures_error_and_masks(tmp_path, capsys):
    from scripts import b10_fill_effect

    s2, _ = write_scene(tmp_path, 32, 32)
    with rasterio.open(s2, "r+") as dst:
        dn = dst.read()
        dn[10] = 40
        dst.write(dn)
    assert b10_fill_effect.main([str(s2), "--fill", "20"]) == 0
    out = capsys.readouterr().out
    assert "B10 40 DN median, filled 20: MAE 0.0020" in out and "cloud_shadow cover" in out
    assert b10_fill_effect.main([str(s2), "--name", "x"]) == 2


def test_safe_needs_gdals_drivers_and_says_so(tmp_path, monkeypatch):
    from scene.products import safe as safe_module

    root = safe(tmp_path, native_bands(12))
    monkeypatch.setattr(safe_module, "JP2_DRIVERS", {"NoSuchJP2Driver"})
    with pytest.raises(UserError, match="SENTINEL2 and a JPEG 2000 driver"):
        open_product(root, "cloudy", "S2")
