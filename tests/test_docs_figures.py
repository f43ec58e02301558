"""python -m scripts.docs_figures: the pages' parameter counts and defaults are the scripts', and a
figure that differs from what the scripts give is reported (page, line, both values)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from display.mask_figure import GAP, LABEL, TILE
from scripts import docs_figures, make_demo_data
from tests.helpers import expect_error
from tests.sen12mscr_fixtures import s2_dn, transform_of, write_tif

ROOT = docs_figures.ROOT


def test_the_pages_counts_and_defaults_are_the_scripts(capsys):
    assert docs_figures.main(["--skip_demo"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "DIFFERS" not in out and "make compare" in out and "python -m scripts.benchmark_speed" in out


def test_list_names_every_expensive_figure_and_runs_nothing(capsys):
    assert docs_figures.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "checked" not in out and "make demo" in out and "make test" in out


def test_bad_arguments_are_one_line(tmp_path, capfd):
    expect_error(capfd, docs_figures.main, ["--figure", str(tmp_path / "f.png")], "--figure needs --samples")
    expect_error(capfd, docs_figures.main, ["--root", str(tmp_path), "--skip_demo"], "no docs/ folder")
    argv = ["--samples", str(tmp_path), "--skip_demo"]
    expect_error(capfd, docs_figures.main, argv, f"--samples {tmp_path}: no s2_cloudy/")


@pytest.mark.slow
def test_changed_figures_are_reported_and_the_mask_picture_is_drawn(tmp_path, capsys):
    """A copy of the pages with a wrong parameter count and a wrong default, checked against tiny demo
    data and tiny samples: every difference is named with its page and line; the picture is drawn."""
    root = tmp_path / "root"
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copy(ROOT / "README.md", root / "README.md")
    models = root / "docs" / "models.md"
    models.write_text(models.read_text().replace("G2 54,404,099", "G2 54,404,100"))
    training = root / "docs" / "training.md"
    training.write_text(training.read_text().replace("| `--seed` | 0 |", "| `--seed` | 1 |"))
    demo = tmp_path / "demo"
    assert (
        make_demo_data.main(
            ["--out", str(demo), "--n_train", "0", "--n_test", "2", "--size", "32", "--quiet"]
        )
        == 0
    )
    samples = tmp_path / "samples"
    rng = np.random.default_rng(0)
    for name in ("ROIs1970_fall_139_p8.tif", "ROIs2017_winter_5_p3.tif"):
        write_tif(samples / "s2_cloudy" / name, s2_dn(rng, 48, cloudy=True), transform_of("1", "1"))
        write_tif(samples / "s2_cloudfree" / name, s2_dn(rng, 48), transform_of("1", "1"))
    figure = tmp_path / "masks.png"
    argv = ["--root", str(root), "--demo_data", str(demo), "--samples", str(samples), "--figure", str(figure)]
    assert docs_figures.main(argv) == 1
    out = capsys.readouterr().out
    differs = [line for line in out.splitlines() if line.startswith("DIFFERS")]
    assert any("docs/models.md:" in d and "54,404,100 is no parameter count" in d for d in differs), differs
    assert any("docs/models.md: does not say `Parameter counts at the paper's settings" in d for d in differs)
    assert any(
        "docs/training.md:" in d and "--seed defaults to 1, train.py --help says 0" in d for d in differs
    )
    # Two demo images are not the page's forty: the coverage table and the cloudy-input rows differ.
    assert any(d.startswith("DIFFERS docs/evaluation.md:") and "| images |" in d for d in differs), differs
    assert any(d.startswith("DIFFERS docs/demo.md:") and "cloudy input `real_A` vs" in d for d in differs)
    assert any(
        d.startswith("DIFFERS docs/comparison.md:") and "cloudy input (no model)" in d for d in differs
    )
    # The samples have no rows in cloud_masks.md: each (sample, detector) is named.
    assert any("no line starts with `| fall_139_p8 | rgb |`" in d for d in differs), differs
    assert sum("docs/cloud_masks.md" in d for d in differs) == 6
    with Image.open(figure) as img:
        assert img.size == (GAP + 5 * (TILE + GAP), LABEL + GAP + 2 * (TILE + GAP))
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 10  # images were drawn, not a blank canvas
