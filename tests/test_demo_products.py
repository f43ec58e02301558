"""The demo scene as downloadable products (scripts.demo_products): each gives the demo-like model
the values of the demo's stacked GeoTIFF, so docs/scenes.md's commands mean the same scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scene import ScenePredictor
from scripts import demo_products
from tests.scene_fixtures import make_experiment, read, write_scene

SETTINGS = {
    "window": 32,
    "overlap": 8,
    "batch_size": 8,
    "progress": False,
    "log": None,
    "s2_bands": "B4,B3,B2",
}
INSIDE = (slice(None), slice(0, 480), slice(0, 480))  # windows that lie inside both grids (512 and 510 px)


@pytest.mark.slow
def test_every_demo_product_gives_the_demo_scenes_values(tmp_path: Path):
    scene = tmp_path / "scene"
    scene.mkdir()
    s2, s1 = write_scene(scene, 512, 512, s2_bands=3, sar_bands=3, smooth=True)
    s2.rename(scene / "s2_cloudy.tif")
    made = demo_products.write_demo_products(scene)
    assert len(made) == 4 and demo_products.write_demo_products(scene) == made  # a rerun keeps them
    make_experiment(tmp_path / "ck", "demo_like", "--sar_nc", "3")
    predictor = ScenePredictor(tmp_path / "ck", "demo_like", gpu_ids="-1")
    settings = {k: v for k, v in SETTINGS.items() if k != "s2_bands"}
    expected = read(predictor.predict(scene / "s2_cloudy.tif", s1, tmp_path / "ref.tif", **settings).path)
    l1c, l2a = (next(scene.glob(g)) for g in (demo_products.L1C_GLOB, demo_products.L2A_GLOB))
    for name, cloudy, sar in (
        ("l1c", l1c, s1),
        ("stac", scene / "stac_s2" / "item.json", s1),
        ("l2a", l2a, scene / "s1_linear.tif"),
    ):
        result = predictor.predict(cloudy, sar, tmp_path / f"{name}.tif", **SETTINGS)
        assert (result.width, result.height) == (510, 510)
        np.testing.assert_allclose(read(result.path)[INSIDE], expected[INSIDE], atol=1e-4, err_msg=name)
    assert demo_products.main(["--scene", str(tmp_path / "nowhere")]) == 2
