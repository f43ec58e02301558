"""scripts/evaluate.py end to end on images: pairing by stem, suffixes, bit depths and every error."""

from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metrics import field_metrics, paper_metrics, read_image, to_unit_chw
from scripts import evaluate

ROOT = Path(__file__).resolve().parents[1]


def noisy_pair_u8(rng: np.random.Generator, h: int, w: int, noise: int = 25) -> tuple[np.ndarray, np.ndarray]:
    # smooth-ish ground truth plus noise, so SSIM is neither ~0 nor ~1
    base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:h, :w]
    gt = base.astype(np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-noise, noise + 1, gt.shape), 0, 255).astype(np.uint8)
    return pred, gt


# ----------------------------------------------------------------------------- evaluate.py


def save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_png16_rgb(path: Path, arr: np.ndarray) -> None:
    """Minimal 16-bit RGB PNG writer (Pillow cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


@pytest.fixture
def pairs():
    rng = np.random.default_rng(42)
    return {stem: noisy_pair_u8(rng, 24, 20) for stem in ("s1", "s2", "s3")}


def run_main(argv, capsys):
    rc = evaluate.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_evaluate_plain_folders(tmp_path, pairs, capsys):
    for stem, (pred, gt) in pairs.items():
        save_png(tmp_path / "pred" / f"{stem}.png", pred)
        save_png(tmp_path / "gt" / f"{stem}.png", gt)
    (tmp_path / "pred" / "notes.txt").write_text("ignored")
    (tmp_path / "gt" / ".hidden.png").write_bytes(b"ignored")
    rc, out, err = run_main(
        ["--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", tmp_path / "o"], capsys
    )
    assert rc == 0, err
    assert err == "" and "3 image pairs" in out and "pred vs gt" in out
    data = json.loads((tmp_path / "o" / "metrics_summary.json").read_text())
    expect = np.mean([paper_metrics(p, g)["ssim"] for p, g in pairs.values()])
    assert data["results"]["paper"]["pred"]["ssim"]["mean"] == pytest.approx(expect, rel=1e-12)
    expect = np.mean([field_metrics(to_unit_chw(p), to_unit_chw(g))["sam"] for p, g in pairs.values()])
    assert data["results"]["field"]["pred"]["sam"]["mean"] == pytest.approx(expect, rel=1e-12)
    rows = list(csv.DictReader(open(tmp_path / "o" / "metrics_per_image.csv")))
    assert [r["stem"] for r in rows] == ["s1", "s2", "s3"]


def make_results_folder(folder: Path, pairs) -> None:
    rng = np.random.default_rng(0)
    for stem, (pred, gt) in pairs.items():
        save_png(folder / f"{stem}_fake_B.png", pred)
        save_png(folder / f"{stem}_real_B.png", gt)
        save_png(folder / f"{stem}_real_A.png", rng.integers(0, 256, gt.shape, dtype=np.uint8))
        save_png(folder / f"{stem}_real_C.png", gt[:, :, 0])
    (folder / "index.html").write_text("<html></html>")


def test_evaluate_results_folder_with_suffixes(tmp_path, pairs, capsys):
    im = tmp_path / "images"
    make_results_folder(im, pairs)
    argv = ["--pred", im, "--pred_suffix", "_fake_B", "--gt", im, "--gt_suffix", "_real_B"]
    argv += ["--input", im, "--input_suffix", "_real_A", "--protocol", "paper", "--out", tmp_path / "o"]
    rc, out, err = run_main(argv, capsys)
    assert rc == 0, err
    assert "fake_B vs real_B" in out and "real_A vs real_B (cloudy input)" in out and "field" not in out
    data = json.loads((tmp_path / "o" / "metrics_summary.json").read_text())
    # The paper protocol only, over whole images and (cloud masks of the inputs) cloudy/clear pixels.
    assert "paper" in data["results"] and set(data["results"]) <= {"paper", "paper_cloudy", "paper_clear"}
    assert set(data["results"]["paper"]) == {"fake_B", "real_A"}
    expect = np.mean([paper_metrics(p, g)["psnr"] for p, g in pairs.values()])
    assert data["results"]["paper"]["fake_B"]["psnr"]["mean"] == pytest.approx(expect, rel=1e-12)
    rows = list(csv.DictReader(open(tmp_path / "o" / "metrics_per_image.csv")))
    assert len(rows) == 6 and {r["reference"] for r in rows} == {"real_B"}


def test_evaluate_identical_images_inf(tmp_path, pairs, capsys):
    for stem, (_, gt) in pairs.items():
        save_png(tmp_path / "p" / f"{stem}.png", gt)
        save_png(tmp_path / "g" / f"{stem}.png", gt)
    rc, out, err = run_main(
        ["--pred", tmp_path / "p", "--gt", tmp_path / "g", "--out", tmp_path / "o"], capsys
    )
    assert rc == 0, err
    assert "3 of 3 images identical" in out
    data = json.loads((tmp_path / "o" / "metrics_summary.json").read_text())
    assert data["results"]["field"]["pred"]["psnr"]["mean"] is None
    assert data["results"]["field"]["pred"]["psnr"]["n_inf"] == 3


def test_evaluate_16bit_and_other_modes_match_8bit(tmp_path, capsys):
    rng = np.random.default_rng(5)
    pred, gt = noisy_pair_u8(rng, 16, 16)
    save_png(tmp_path / "g" / "a.png", gt)
    (tmp_path / "p16").mkdir()
    write_png16_rgb(tmp_path / "p16" / "a.png", pred.astype(np.uint16) * 257)  # 16-bit colour PNG: refused
    import tifffile

    (tmp_path / "p" / "a.tif").parent.mkdir()
    tifffile.imwrite(tmp_path / "p" / "a.tif", pred.astype(np.uint16) * 257, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "p" / "a.tif"), pred.astype(np.uint16) * 257)
    rc, out, err = run_main(
        ["--pred", tmp_path / "p", "--gt", tmp_path / "g", "--out", tmp_path / "o"], capsys
    )
    assert rc == 0, err
    data = json.loads((tmp_path / "o" / "metrics_summary.json").read_text())["results"]
    for k, v in paper_metrics(pred, gt).items():
        assert data["paper"]["pred"][k]["mean"] == pytest.approx(v, rel=1e-12)
    for k, v in field_metrics(to_unit_chw(pred), to_unit_chw(gt)).items():
        assert data["field"]["pred"][k]["mean"] == pytest.approx(v, rel=1e-9)
    rc, out, err = run_main(["--pred", tmp_path / "p16", "--gt", tmp_path / "g"], capsys)
    assert rc == 2 and err.startswith("error: cannot read image") and "16-bit colour PNG" in err
    # 16-bit grey PNG, 8-bit grey, RGBA: read as RGB
    grey16 = (gt[:, :, 0].astype(np.uint16) * 257).astype(np.uint16)
    save_png(tmp_path / "grey16.png", grey16)
    np.testing.assert_array_equal(read_image(tmp_path / "grey16.png"), np.repeat(grey16[:, :, None], 3, 2))
    save_png(tmp_path / "rgba.png", np.dstack([gt, np.full(gt.shape[:2], 7, np.uint8)]))
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), gt)
    save_png(tmp_path / "grey8.png", gt[:, :, 1])
    np.testing.assert_array_equal(read_image(tmp_path / "grey8.png"), np.repeat(gt[:, :, 1:2], 3, 2))


def assert_single_error(rc: int, out: str, err: str, *fragments: str) -> None:
    assert rc == 2
    assert out == ""
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for frag in fragments:
        assert frag in err, (frag, err)


def test_evaluate_errors_leave_output_untouched(tmp_path, pairs, capsys):
    im = tmp_path / "images"
    make_results_folder(im, pairs)
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    (out_dir / "metrics_summary.json").write_text("OLD")
    (out_dir / "metrics_per_image.csv").write_text("OLD")
    # --overwrite: an earlier result may be replaced, but only by a run that succeeds.
    sfx = ["--pred_suffix", "_fake_B", "--gt_suffix", "_real_B", "--out", out_dir, "--overwrite"]

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".x.png").write_bytes(b"")
    (empty / "readme.md").write_text("x")
    unpaired = tmp_path / "unpaired"
    for i in range(7):
        save_png(unpaired / f"other{i}_fake_B.png", pairs["s1"][0])
    bad = tmp_path / "bad"
    save_png(bad / "s1_fake_B.png", pairs["s1"][0])
    save_png(bad / "s2_fake_B.png", pairs["s2"][0][:20])  # 20x20 vs 20x24
    (bad / "s3_fake_B.png").write_bytes(b"not a png")
    dup = tmp_path / "dup"
    save_png(dup / "s1_fake_B.png", pairs["s1"][0])
    save_png(dup / "s1_fake_B.jpg", pairs["s1"][0])

    cases = [
        (["--pred", tmp_path / "nope", "--gt", im], ["--pred folder not found", "nope"]),
        (["--pred", im, "--gt", im / "index.html"], ["--gt is not a folder"]),
        (["--pred", empty, "--gt", im], ["no images whose name ends with '_fake_B' in --pred folder"]),
        (
            ["--pred", unpaired, "--gt", im],
            ["do not pair up", "7 of 7 pred stems have no gt (other0, other1, other2, other3, other4, ...)"],
        ),
        (["--pred", dup, "--gt", im], ["stem 's1' matches several files", "s1_fake_B.jpg", "s1_fake_B.png"]),
    ]
    for argv, fragments in cases:
        rc, out, err = run_main(argv + sfx, capsys)
        assert_single_error(rc, out, err, *fragments)

    rc, out, err = run_main(["--pred", bad, "--gt", im] + sfx, capsys)
    assert_single_error(rc, out, err, "size mismatch for stem 's2'", "s2_fake_B.png", "20x20", "20x24")
    save_png(bad / "s2_fake_B.png", pairs["s2"][0])
    rc, out, err = run_main(["--pred", bad, "--gt", im] + sfx, capsys)
    assert_single_error(rc, out, err, "cannot read image", "s3_fake_B.png")

    only_gt = tmp_path / "partial"
    save_png(only_gt / "s1_fake_B.png", pairs["s1"][0])
    rc, out, err = run_main(["--pred", only_gt, "--gt", im] + sfx, capsys)
    assert_single_error(rc, out, err, "2 of 3 gt stems have no pred (s2, s3)")
    rc, out, err = run_main(["--pred", im, "--gt", im, "--input", empty] + sfx, capsys)
    assert_single_error(rc, out, err, "no images in --input folder")

    assert (out_dir / "metrics_summary.json").read_text() == "OLD"
    assert (out_dir / "metrics_per_image.csv").read_text() == "OLD"
    assert sorted(p.name for p in out_dir.iterdir()) == ["metrics_per_image.csv", "metrics_summary.json"]


def test_evaluate_no_common_stem_hint_and_small_images(tmp_path, capsys):
    save_png(tmp_path / "p" / "a_fake_B.png", np.zeros((12, 12, 3), np.uint8))
    save_png(tmp_path / "g" / "a_real_B.png", np.zeros((12, 12, 3), np.uint8))
    rc, out, err = run_main(["--pred", tmp_path / "p", "--gt", tmp_path / "g"], capsys)
    assert_single_error(rc, out, err, "1 of 1 pred stems have no gt (a_fake_B)", "hint: --pred_suffix")
    save_png(tmp_path / "p2" / "a.png", np.zeros((6, 8, 3), np.uint8))
    save_png(tmp_path / "g2" / "a.png", np.zeros((6, 8, 3), np.uint8))
    rc, out, err = run_main(["--pred", tmp_path / "p2", "--gt", tmp_path / "g2"], capsys)
    assert_single_error(rc, out, err, "cannot compute metrics", "at least 7x7")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--pred", "x"], "the following arguments are required: --gt"),
        (["--pred", "x", "--gt", "y", "--protocol", "pixel"], "unknown protocol pixel"),
        (["--pred", "x", "--gt", "y", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_evaluate_argument_errors(argv, fragment, capsys):
    rc, out, err = run_main(argv, capsys)
    assert_single_error(rc, out, err, fragment)


def test_evaluate_runs_as_module(tmp_path):
    save_png(tmp_path / "p" / "a.png", np.full((12, 12, 3), 9, np.uint8))
    save_png(tmp_path / "g" / "a.png", np.full((12, 12, 3), 10, np.uint8))
    cmd = [
        sys.executable,
        "-m",
        "scripts.evaluate",
        "--pred",
        str(tmp_path / "p"),
        "--gt",
        str(tmp_path / "g"),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "pred vs gt" in res.stdout and "48.131" in res.stdout  # 20 log10(255 / 1)
    res = subprocess.run(cmd[:5], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
