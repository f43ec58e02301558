"""scripts/evaluate.py on 13-band rasters (GeoTIFF DN, float GeoTIFF, .npy): field metrics, clipping,
other band counts, ``--format`` and every error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from data.sentinel import S2_BANDS, S2_RGB, s2_to_unit
from metrics import field_metrics
from tests.sen12mscr_fixtures import s2_dn, transform_of, write_tif
from tests.test_evaluate import assert_single_error, run_main, save_png

# ----------------------------------------------------------------------------- 13-band rasters


def raster_pair(rng: np.random.Generator, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, ground truth) as uint16 Sentinel-2 digital numbers (13, size, size)."""
    return s2_dn(rng, size, cloudy=True), s2_dn(rng, size)


def expected_field(pred_unit: np.ndarray, gt_unit: np.ndarray) -> dict[str, dict[str, float]]:
    rgb = list(S2_RGB)
    return {
        "field": field_metrics(pred_unit, gt_unit),
        "field_rgb": field_metrics(pred_unit[rgb], gt_unit[rgb]),
    }


def test_evaluate_13band_geotiff_and_npy(tmp_path, capsys):
    """uint16 GeoTIFF DN (/10000), float32 GeoTIFF and .npy reflectance score exactly like our outputs."""
    rng = np.random.default_rng(3)
    expect: dict[str, dict] = {}
    for stem, fmt in (("a", "uint16"), ("b", "float_tif"), ("c", "npy")):
        pred, gt = raster_pair(rng)
        write_tif(tmp_path / "gt" / f"{stem}.tif", gt, transform_of("1", "1"))
        pred_unit = s2_to_unit(pred)
        if fmt == "uint16":
            write_tif(tmp_path / "pred" / f"{stem}.tif", pred, transform_of("1", "1"))
        elif fmt == "float_tif":
            write_tif(tmp_path / "pred" / f"{stem}.tif", pred_unit, transform_of("1", "1"))
        else:
            np.save(tmp_path / "pred" / f"{stem}.npy", pred_unit)
        expect[stem] = expected_field(pred_unit.astype(np.float64), s2_to_unit(gt).astype(np.float64))
    rc, out, err = run_main(
        ["--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", tmp_path / "o"], capsys
    )
    assert rc == 0, err
    assert "field protocol, B4 B3 B2 only" in out and "paper protocol" not in out
    rows = {r["stem"]: r for r in csv.DictReader(open(tmp_path / "o" / "metrics_per_image.csv"))}
    assert sorted(rows) == ["a", "b", "c"]
    for stem, by_protocol in expect.items():
        for protocol, values in by_protocol.items():
            for metric, value in values.items():
                assert float(rows[stem][f"{protocol}_{metric}"]) == pytest.approx(value, rel=1e-9, abs=1e-12)
    summary = json.loads((tmp_path / "o" / "metrics_summary.json").read_text())
    assert set(summary["results"]) == {"field", "field_rgb"}
    assert "UnCRtainTS" in summary["protocols"]["field"]


def test_evaluate_multiband_dn_clipped_and_rgb_bands(tmp_path, capsys):
    """DN above 10000 clip to reflectance 1 (the field's preprocessing); field_rgb is bands 3, 2, 1."""
    gt = np.full((13, 12, 12), 2000, np.uint16)
    pred = gt.copy()
    pred[[3, 2, 1]] = 14000  # only B4, B3, B2 differ, by 1.0 - 0.2 = 0.8 after clipping
    write_tif(tmp_path / "g" / "x.tif", gt, transform_of("1", "1"))
    write_tif(tmp_path / "p" / "x.tif", pred, transform_of("1", "1"))
    rc, out, err = run_main(
        ["--pred", tmp_path / "p", "--gt", tmp_path / "g", "--out", tmp_path / "o"], capsys
    )
    assert rc == 0, err
    res = json.loads((tmp_path / "o" / "metrics_summary.json").read_text())["results"]
    assert res["field_rgb"]["pred"]["mae"]["mean"] == pytest.approx(0.8)
    assert res["field"]["pred"]["mae"]["mean"] == pytest.approx(0.8 * 3 / 13)


def test_evaluate_multiband_other_band_counts_and_format(tmp_path, capsys):
    rng = np.random.default_rng(4)
    pred, gt = raster_pair(rng)
    # 4 bands: field protocol only (no B4, B3, B2 to pick)
    np.save(tmp_path / "p4.npy", s2_to_unit(pred[:4]))
    (tmp_path / "p").mkdir()
    (tmp_path / "p4.npy").rename(tmp_path / "p" / "x.npy")
    write_tif(tmp_path / "g" / "x.tif", gt[:4], transform_of("1", "1"))
    rc, out, err = run_main(
        ["--pred", tmp_path / "p", "--gt", tmp_path / "g", "--out", tmp_path / "o"], capsys
    )
    assert rc == 0, err
    assert set(json.loads((tmp_path / "o" / "metrics_summary.json").read_text())["results"]) == {"field"}
    # 3 uint16 bands: a GeoTIFF (GDAL writes them as separate bands) is DN reflectance under --format
    # auto; a TIFF stored as RGB is a 16-bit image under auto, DN reflectance under --format multiband
    import tifffile

    write_tif(tmp_path / "p3" / "x.tif", pred[:3], transform_of("1", "1"))
    write_tif(tmp_path / "g3" / "x.tif", gt[:3], transform_of("1", "1"))
    (tmp_path / "p3rgb").mkdir()
    (tmp_path / "g3rgb").mkdir()
    tifffile.imwrite(tmp_path / "p3rgb" / "x.tif", np.moveaxis(pred[:3], 0, -1), photometric="rgb")
    tifffile.imwrite(tmp_path / "g3rgb" / "x.tif", np.moveaxis(gt[:3], 0, -1), photometric="rgb")
    expect = field_metrics(s2_to_unit(pred[:3]).astype(np.float64), s2_to_unit(gt[:3]).astype(np.float64))
    for pair, fmt, protocols in (
        ("3", "auto", {"field"}),
        ("3rgb", "auto", {"paper", "field"}),
        ("3rgb", "multiband", {"field"}),
    ):
        argv = ["--pred", tmp_path / f"p{pair}", "--gt", tmp_path / f"g{pair}", "--format", fmt]
        rc, out, err = run_main(argv + ["--out", tmp_path / "o3", "--overwrite"], capsys)
        assert rc == 0, err
        res = json.loads((tmp_path / "o3" / "metrics_summary.json").read_text())["results"]
        assert set(res) == protocols, (pair, fmt)
        if protocols == {"field"}:
            assert res["field"]["pred"]["ssim"]["mean"] == pytest.approx(expect["ssim"], rel=1e-9)


def test_evaluate_multiband_errors(tmp_path, capsys):
    rng = np.random.default_rng(5)
    pred, gt = raster_pair(rng)
    gt_dir = tmp_path / "gt"
    write_tif(gt_dir / "x.tif", gt, transform_of("1", "1"))
    out_dir = tmp_path / "o"

    def case(name: str, write) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        write(folder)
        return folder

    unit = s2_to_unit(pred)
    nan = unit.copy()
    nan[0, 0, 0] = np.nan
    cases = [
        (
            case("bands", lambda f: np.save(f / "x.npy", unit[:12])),
            ["band-count mismatch for stem 'x'", "12 bands", "13"],
        ),
        (
            case("size", lambda f: np.save(f / "x.npy", unit[:, :15])),
            ["size mismatch for stem 'x'", "16x15", "16x16"],
        ),
        (
            case("garbage_tif", lambda f: (f / "x.tif").write_bytes(b"II*\x00garbage")),
            ["cannot read", "x.tif"],
        ),
        (case("garbage_npy", lambda f: (f / "x.npy").write_bytes(b"not numpy")), ["cannot read", "x.npy"]),
        (
            case("int16", lambda f: np.save(f / "x.npy", pred.astype(np.int16))),
            ["x.npy has data type int16", "uint16"],
        ),
        (
            case("range", lambda f: np.save(f / "x.npy", unit * 2)),
            ["x.npy holds float values in [", "expected reflectance in [0, 1]"],
        ),
        (case("nan", lambda f: np.save(f / "x.npy", nan)), ["x.npy contains NaN"]),
        (case("hwc", lambda f: np.save(f / "x.npy", unit[0])), ["shape (16, 16)", "(C, H, W)"]),
        (
            case("image", lambda f: save_png(f / "x.png", np.zeros((16, 16, 3), np.uint8))),
            ["is an image of 16x16", "13-band raster"],
        ),
    ]
    for folder, fragments in cases:
        rc, out, err = run_main(["--pred", folder, "--gt", gt_dir, "--out", out_dir], capsys)
        assert_single_error(rc, out, err, *fragments)
    np.save(tmp_path / "bands" / "x.npy", unit)
    rc, out, err = run_main(["--pred", tmp_path / "bands", "--gt", gt_dir, "--protocol", "paper"], capsys)
    assert_single_error(rc, out, err, "--protocol paper", "13-band raster", "use --protocol field")
    rc, out, err = run_main(["--pred", tmp_path / "bands", "--gt", tmp_path / "missing"], capsys)
    assert_single_error(rc, out, err, "--gt folder not found")
    rc, out, err = run_main(["--pred", tmp_path / "image", "--gt", gt_dir, "--format", "multiband"], capsys)
    assert_single_error(rc, out, err, "no images in --pred folder")
    rc, out, err = run_main(["--pred", tmp_path / "image", "--gt", gt_dir, "--format", "tiff"], capsys)
    assert_single_error(rc, out, err, "invalid choice: 'tiff'")
    assert not out_dir.exists()


def test_rgb_bands_are_s2_b4_b3_b2():
    assert [S2_BANDS[i] for i in S2_RGB] == ["B4", "B3", "B2"]


def test_evaluate_rgb_detector_on_13_band_inputs_uses_the_visible_bands(tmp_path, capsys):
    """--cloud_detector rgb on 13-band GeoTIFFs: the coverage is the rule's on B4, B3, B2 alone and
    the summary names rgb; cloud_shadow, the full rule, gives another coverage on the same data."""
    from metrics.cloud_masks import cloud_mask

    rng = np.random.default_rng(5)
    cloudy, gt = s2_dn(rng, 48, cloudy=True), s2_dn(rng, 48)
    for folder, arr in (("input", cloudy), ("gt", gt)):
        write_tif(tmp_path / folder / "x.tif", arr, transform_of("1", "1"))
    visible = s2_to_unit(cloudy)[[S2_BANDS.index(b) for b in ("B4", "B3", "B2")]]
    coverage = {}
    for detector in ("rgb", "cloud_shadow"):
        argv = ["--pred", tmp_path / "input", "--gt", tmp_path / "gt", "--input", tmp_path / "input"]
        rc, out, err = run_main([*argv, "--cloud_detector", detector, "--out", tmp_path / detector], capsys)
        assert rc == 0, err
        summary = json.loads((tmp_path / detector / "metrics_summary.json").read_text())
        assert summary["coverage"]["detector"] == detector
        row = next(csv.DictReader(open(tmp_path / detector / "metrics_per_image.csv")))
        coverage[detector] = float(row["cloud_coverage"])
    assert coverage["rgb"] == pytest.approx(cloud_mask(visible, "rgb", ("B4", "B3", "B2")).mean())
    assert coverage["rgb"] != pytest.approx(coverage["cloud_shadow"])
