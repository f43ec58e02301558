"""Tests of scripts/convert_sen12mscr.py: native SEN12MS-CR GeoTIFFs -> official PNG triplets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sen12mscr_fixtures import SIZE, TEST, TRAIN, VAL, make_tree, tif_path, transform_of, write_tif

from scripts import convert_sen12mscr as convert


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("sen12mscr_native"))


def stems(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.png"))


def read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "RGB"
        return np.asarray(img)


def test_layout_split_and_manifest(tree, tmp_path):
    out = tmp_path / "data"
    assert convert.main(["--root", str(tree), "--out", str(out), "--quiet"]) == 0
    for split, expected in (("train", TRAIN), ("test", TEST)):
        for role in "ABC":
            assert stems(out / split / f"{split}{role}") == sorted(expected)
    assert not (out / "val").exists()  # val scenes are held out unless asked for, never put into train
    assert read(out / "train" / "trainA" / f"{TRAIN[0]}.png").shape == (SIZE, SIZE, 3)
    manifest = json.loads((out / "sen12mscr_manifest.json").read_text())
    assert manifest["bands"] == ["B4", "B3", "B2"]
    assert manifest["stretch"] == {"kind": "fixed", "max_reflectance": 0.3, "max_dn": 3000.0}
    assert manifest["sar"]["scaling"] == "standard" and manifest["splits"] == {"train": 3, "test": 2}
    assert "Copernicus" in manifest["attribution"] and "--root" in manifest["command"]

    out_val = tmp_path / "with_val"
    assert (
        convert.main(
            [
                "--root",
                str(tree),
                "--out",
                str(out_val),
                "--splits",
                "train,val,test",
                "--seasons",
                "spring",
                "--quiet",
            ]
        )
        == 0
    )
    assert stems(out_val / "val" / "valC") == [s for s in VAL if "spring" in s]
    assert stems(out_val / "train" / "trainB") == [s for s in TRAIN if "spring" in s]


def _constant_patch(root: Path) -> None:
    """One test patch whose bands are constant: B2 2400, B3 1200, B4 600 DN; VV -12.5 dB, VH -25 dB."""
    make_tree(root, {("ROIs1970_fall", "139"): ("8",)})
    dn = np.zeros((13, SIZE, SIZE), np.uint16)
    dn[1], dn[2], dn[3] = 2400, 1200, 600
    cloudy = dn.copy()
    cloudy[1:4, :4, :4] = 9000  # a small bright cloud
    db = np.stack([np.full((SIZE, SIZE), -12.5), np.full((SIZE, SIZE), -25.0)]).astype(np.float32)
    t = transform_of("139", "8")
    write_tif(tif_path(root, "s2", "ROIs1970_fall", "139", "8"), dn, t)
    write_tif(tif_path(root, "s2_cloudy", "ROIs1970_fall", "139", "8"), cloudy, t)
    write_tif(tif_path(root, "s1", "ROIs1970_fall", "139", "8"), db, t)


def test_stretch_values(tmp_path):
    root = tmp_path / "native"
    _constant_patch(root)
    out = tmp_path / "fixed"
    assert convert.main(["--root", str(root), "--out", str(out), "--splits", "test", "--quiet"]) == 0
    name = "ROIs1970_fall_139_p8.png"
    # R = B4 0.06 / 0.3 * 255 = 51, G = B3 0.12 -> 102, B = B2 0.24 -> 204
    assert read(out / "test" / "testB" / name)[10, 10].tolist() == [51, 102, 204]
    assert read(out / "test" / "testA" / name)[0, 0].tolist() == [255, 255, 255]  # cloud saturates
    # SAR: VV -12.5 dB -> 0.5 -> 128 (127.5 rounded to even); VH -25 -> 0; mean 0.25 -> 64
    assert read(out / "test" / "testC" / name)[10, 10].tolist() == [128, 0, 64]

    out = tmp_path / "bands"
    assert (
        convert.main(
            [
                "--root",
                str(root),
                "--out",
                str(out),
                "--splits",
                "test",
                "--bands",
                "B2,B3,B4",
                "--stretch",
                "0.25",
                "--sar_scaling",
                "dsen2cr",
                "--quiet",
            ]
        )
        == 0
    )
    assert read(out / "test" / "testB" / name)[10, 10].tolist() == [245, 122, 61]  # 0.96, 0.48, 0.24 of 255
    assert read(out / "test" / "testC" / name)[10, 10].tolist() == [
        128,
        59,
        93,
    ]  # VH 7.5 / 32.5 -> 58.8; mean 0.365 -> 93.2

    out = tmp_path / "percentile"
    assert (
        convert.main(
            ["--root", str(root), "--out", str(out), "--splits", "test", "--percentile", "2", "98", "--quiet"]
        )
        == 0
    )
    # Constant cloud-free bands: LO == HI, so the cloud-free image maps to 0 and anything brighter to 255.
    assert read(out / "test" / "testB" / name)[10, 10].tolist() == [0, 0, 0]
    assert read(out / "test" / "testA" / name)[0, 0].tolist() == [255, 255, 255]
    manifest = json.loads((out / "sen12mscr_manifest.json").read_text())
    assert manifest["stretch"]["kind"] == "percentile" and manifest["stretch"]["low"] == 2.0


def test_refusals(tree, tmp_path, capsys):
    out = tmp_path / "data"
    (out / "keep").mkdir(parents=True)
    assert convert.main(["--root", str(tree), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not empty" in err and "--overwrite" in err and "\n" not in err
    assert convert.main(["--root", str(tree), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert (out / "keep").is_dir() and len(stems(out / "test" / "testA")) == 2
    assert convert.main(["--root", str(tree), "--out", str(tmp_path / "x"), "--bands", "B2,B3"]) == 2
    assert "exactly 3" in capsys.readouterr().err
    assert convert.main(["--root", str(tmp_path / "data"), "--out", str(tmp_path / "y")]) == 2
    assert "not a SEN12MS-CR tree" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        convert.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--percentile" in text and "B4, B3, B2" in text and "--stretch" in text
