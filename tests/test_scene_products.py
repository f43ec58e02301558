"""predict.py on the products users download: the same scene as a SAFE product, a STAC item or a
stacked GeoTIFF gives the same output; Level-2A warns and fills B10; --keep_clear keeps clear pixels
bit for bit; every output has its STAC item and tags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import predict
from data.sentinel import S2_BANDS, s2_to_unit
from scene import ScenePredictor
from scene.products import ReadOptions
from tests.helpers import run_main
from tests.product_fixtures import SIZE, at_10m, native_bands, s1_item, s2_item, safe, shifted, write_stack
from tests.scene_fixtures import make_experiment, predict_flags, read, write_scene

L2A = tuple(b for b in S2_BANDS if b != "B10")
SETTINGS = {"window": 32, "overlap": 8, "batch_size": 4, "progress": False, "log": None}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    make_experiment(root, "s12", "--input_nc", "13", "--output_nc", "13",
                    saved={"dataset_mode": "sen12mscr", "s2_bands": "all"})  # fmt: skip
    return root


@pytest.fixture(scope="module")
def predictor(ckpt: Path) -> ScenePredictor:
    return ScenePredictor(ckpt, "s12", gpu_ids="-1")


@pytest.fixture
def sar(tmp_path: Path) -> Path:
    (tmp_path / "sar").mkdir()
    return write_scene(tmp_path / "sar", SIZE, SIZE, smooth=True)[1]


def cli(ckpt, cloudy, sar, out, *extra) -> list[str]:
    return [
        "--cloudy",
        str(cloudy),
        "--sar",
        str(sar),
        "--out",
        str(out),
        *predict_flags(ckpt, "s12"),
        *extra,
    ]


def test_safe_zip_and_stac_item_give_the_stacked_geotiffs_output(ckpt, predictor, tmp_path, sar):
    truth = native_bands(20)
    stack = write_stack(tmp_path / "stack.tif", truth)
    assert run_main(predict.main, cli(ckpt, stack, sar, tmp_path / "stack_out.tif")) == 0
    expected = read(tmp_path / "stack_out.tif")
    stored = shifted(truth, -1000)  # products of 2022 on carry the offset
    folder = safe(tmp_path / "safe", stored)
    assert run_main(predict.main, cli(ckpt, folder, sar, tmp_path / "safe_out.tif")) == 0
    np.testing.assert_array_equal(read(tmp_path / "safe_out.tif"), expected)
    for name, product in (
        ("zip", safe(tmp_path / "zip", stored, zip_it=True)),
        ("stac", s2_item(tmp_path / "stac", stored, level="L1C")),
    ):
        predictor.predict(product, sar, tmp_path / f"{name}.tif", **SETTINGS)
        np.testing.assert_array_equal(read(tmp_path / f"{name}.tif"), expected, err_msg=name)
    with rasterio.open(tmp_path / "safe_out.tif") as dst:
        tags = dst.tags()
    assert tags["input_cloudy_format"] == "SAFE" and tags["input_s2_offset"] == "-1000"
    assert tags["input_s2_level"] == "L1C" and tags["input_sar_units"] == "dB"


def test_linear_power_sar_item_gives_the_db_output(predictor, tmp_path, sar):
    stack = write_stack(tmp_path / "stack.tif", native_bands(21))
    predictor.predict(stack, sar, tmp_path / "db.tif", **SETTINGS)
    with rasterio.open(sar) as src:
        linear = 10 ** (src.read().astype(np.float64) / 10)
    item = s1_item(tmp_path / "rtc", linear[0], linear[1], collection="sentinel-1-linear")
    predictor.predict(stack, item, tmp_path / "linear.tif", **SETTINGS)
    np.testing.assert_allclose(read(tmp_path / "linear.tif"), read(tmp_path / "db.tif"), atol=1e-4)


def test_level_2a_warns_in_one_line_and_fills_b10(ckpt, tmp_path, sar, capsys):
    product = safe(tmp_path / "l2a", shifted(native_bands(22, L2A), -1000), level="L2A", zip_it=True)
    out = tmp_path / "l2a.tif"
    assert run_main(predict.main, cli(ckpt, product, sar, out, "--b10_fill", "30")) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, warnings
    assert "Level-2A" in warnings[0] and "Level-1C" in warnings[0] and "B10 with 30" in warnings[0]
    with rasterio.open(out) as dst:
        assert dst.tags()["input_filled_bands"] == "B10=30" and dst.count == 13


def cloudy_stack(path: Path) -> np.ndarray:
    """A 13-band 96 x 96 scene: dark smooth ground, a bright cloud in the top-left quarter."""
    yy, xx = np.mgrid[0:96, 0:96]
    ground = 600 + 150 * np.sin(yy / 17.0) * np.cos(xx / 23.0)
    dn = np.stack([ground + 40 * i for i in range(13)])
    cloud = (yy - 24) ** 2 + (xx - 24) ** 2 < 14**2
    dn[:, cloud] = 7000
    dn = np.rint(dn).astype("uint16")
    with rasterio.open(path, "w", driver="GTiff", width=96, height=96, count=13, dtype="uint16",
                       crs="EPSG:32632", transform=rasterio.Affine(10, 0, 600000, 0, -10, 5100000)) as dst:  # fmt: skip
        dst.write(dn)
    return dn


def test_keep_clear_keeps_clear_pixels_bit_for_bit_and_replaces_clouds(predictor, tmp_path):
    pytest.importorskip("s2cloudless")
    dn = cloudy_stack(tmp_path / "cloudy.tif")
    sar = write_scene(tmp_path, 96, 96, smooth=True)[1]
    kwargs = {**SETTINGS, "cloud_detector": "s2cloudless", "feather": 2}
    plain = predictor.predict(tmp_path / "cloudy.tif", sar, tmp_path / "plain.tif", **SETTINGS)
    assert plain.maps == () and not (tmp_path / "plain_clouds.tif").exists()
    kept = predictor.predict(tmp_path / "cloudy.tif", sar, tmp_path / "kept.tif", keep_clear=True, **kwargs)
    assert kept.maps == (tmp_path / "kept_clouds.tif",)
    weight, out, model = read(kept.maps[0])[0], read(tmp_path / "kept.tif"), read(tmp_path / "plain.tif")
    clear, cloud = weight == 0, weight == 1
    assert clear.mean() > 0.5 and cloud[24, 24] and clear[90, 90]
    assert ((weight > 0) & (weight < 1)).any()  # feathered edges
    np.testing.assert_array_equal(out[:, clear], s2_to_unit(dn)[:, clear])  # the input, bit for bit
    np.testing.assert_array_equal(out[:, cloud], model[:, cloud])  # the model's
    mixed = (weight > 0) & (weight < 1)
    between = weight[mixed] * model[:, mixed] + (1 - weight[mixed]) * s2_to_unit(dn)[:, mixed]
    np.testing.assert_allclose(out[:, mixed], between, atol=1e-6)
    only = predictor.predict(tmp_path / "cloudy.tif", sar, tmp_path / "m.tif", cloud_mask=True, **kwargs)
    np.testing.assert_array_equal(read(tmp_path / "m.tif"), model)  # the mask alone changes nothing
    np.testing.assert_array_equal(read(only.maps[0]), read(kept.maps[0]))


def test_keep_clear_needs_bands_a_detector_can_read(ckpt, tmp_path, capsys):
    root = make_experiment(tmp_path / "ck", "plain4", "--input_nc", "4", "--output_nc", "4")
    s2, s1 = write_scene(tmp_path, 40, 40, s2_bands=4)
    argv = [
        "--cloudy",
        str(s2),
        "--sar",
        str(s1),
        "--out",
        str(tmp_path / "o.tif"),
        *predict_flags(root, "plain4"),
    ]
    assert run_main(predict.main, [*argv, "--keep_clear"]) == 2
    assert "B2, B3 and B4" in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()


def test_the_stac_item_names_output_inputs_model_and_weights(ckpt, predictor, tmp_path, sar):
    import pystac

    product = s2_item(tmp_path / "stac", shifted(native_bands(23), -1000), level="L1C")
    result = predictor.predict(product, sar, tmp_path / "clear.tif", cloud_mask=True, cog=True,
                               cloud_detector="cloud_shadow", **SETTINGS)  # fmt: skip
    assert result.item == tmp_path / "clear.stac.json"
    item = pystac.Item.from_dict(json.loads(result.item.read_text()))
    assert set(item.assets) == {"data", "clouds"}
    assert item.assets["data"].href == "./clear.tif" and "cloud" in item.assets["clouds"].roles
    assert item.assets["data"].media_type == pystac.MediaType.COG
    links = {link.title: link.href for link in item.links if link.rel == "derived_from"}
    assert links["cloudy input (STAC item)"] == str(product.resolve())
    assert item.properties["cloud_removal:experiment"] == "s12"
    assert any(w.endswith("latest_net_G.pth") for w in item.properties["cloud_removal:weights"])
    assert item.properties["proj:shape"] == [SIZE, SIZE] and item.properties["proj:code"] == "EPSG:32632"
    assert item.datetime.year == 2022  # the product's acquisition, not the run's
    assert item.properties["cloud_removal:input_s2_offset"] == "-1000"


def test_a_pair_list_of_products_names_outputs_after_them(ckpt, tmp_path, sar):
    stored = shifted(native_bands(24), -1000)
    product = safe(tmp_path / "in", stored, zip_it=True)
    listed = tmp_path / "pairs.txt"
    listed.write_text(f"{product.relative_to(tmp_path)} {sar.relative_to(tmp_path)}\n")
    (tmp_path / "out").mkdir()
    assert run_main(predict.main, ["--pairs", str(listed), "--out", str(tmp_path / "out"),
                                   *predict_flags(ckpt, "s12")]) == 0  # fmt: skip
    assert (tmp_path / "out" / product.name.replace(".zip", ".tif")).is_file()


def test_read_options_are_checked(predictor, tmp_path, sar):
    stack = write_stack(tmp_path / "stack.tif", native_bands(25))
    for options, words in (
        ({"s2_offset": "minus"}, "--s2_offset"),
        ({"sar_units": "kelvin"}, "--sar_units"),
        ({"b10_fill": -3}, "--b10_fill"),
    ):
        with pytest.raises(Exception, match=words):
            predictor.predict(stack, sar, tmp_path / "o.tif", read=ReadOptions(**options), **SETTINGS)
    assert not (tmp_path / "o.tif").exists()
    ten = at_10m(native_bands(25))
    assert ten["B1"].shape == (SIZE, SIZE)


@pytest.mark.needs_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_products_and_keep_clear_on_the_gpu_match_the_cpu(ckpt, predictor, tmp_path, sar):
    """Offsets on the device, page-locked reads of a SAFE product, compositing on the GPU."""
    product = safe(tmp_path / "safe", shifted(native_bands(26), -1000))
    gpu = ScenePredictor(ckpt, "s12", gpu_ids="0")
    kwargs = {**SETTINGS, "keep_clear": True, "cloud_detector": "cloud_shadow", "feather": 2}
    cpu_out = predictor.predict(product, sar, tmp_path / "cpu.tif", **kwargs)
    gpu_out = gpu.predict(product, sar, tmp_path / "gpu.tif", **kwargs)
    mask_gpu, mask_cpu = read(gpu_out.maps[0])[0], read(cpu_out.maps[0])[0]
    same = np.abs(mask_gpu - mask_cpu) < 1e-6  # a detector threshold may tip on a pixel or two
    assert same.mean() > 0.99
    np.testing.assert_allclose(read(gpu_out.path)[:, same], read(cpu_out.path)[:, same], atol=1e-4)


def test_the_models_input_domain_names_the_bands_read_from_a_product(tmp_path):
    """Without --s2_bands a product's bands are picked by the model's input domain: the RGB of a model
    of 8-bit PNG triplets (its 3-channel SAR read as stored, VV and VH through the PNG mapping), and
    B1 .. B12 of a 13-band model, whose Level-2A input then runs with B10 filled."""
    root = tmp_path / "ck"
    make_experiment(root, "png", "--input_nc", "3", "--output_nc", "3", "--sar_nc", "3",
                    saved={"dataset_mode": "triplet"})  # fmt: skip
    make_experiment(root, "plain13", "--input_nc", "13", "--output_nc", "13", saved={"s2_bands": None})
    product = safe(tmp_path / "l1c", shifted(native_bands(31), -1000), level="L1C")
    (tmp_path / "s3").mkdir(), (tmp_path / "s2").mkdir()
    sar3 = write_scene(tmp_path / "s3", SIZE, SIZE, sar_bands=3)[1]
    sar2 = write_scene(tmp_path / "s2", SIZE, SIZE)[1]
    png = ScenePredictor(root, "png", gpu_ids="-1")
    for sar, mapping in ((sar3, "unit"), (sar2, "png8")):
        scene = png.open(product, sar)
        assert (scene.band_names, scene.mapping) == (("B4", "B3", "B2"), mapping)
    plain = ScenePredictor(root, "plain13", gpu_ids="-1")
    assert plain.open(product, sar2).band_names == S2_BANDS
    l2a = safe(tmp_path / "l2a", shifted(native_bands(32, L2A), -1000), level="L2A")
    scene = plain.open(l2a, sar2)
    assert scene.band_names == S2_BANDS and scene.report().s2_filled == (("B10", 20.0),)
