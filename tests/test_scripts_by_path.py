"""Every script runs as ``python -m scripts.X``; run by path it says so in one line (no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "scripts").glob("*.py") if p.name != "__init__.py")
# helper modules of benchmark_speed point at the command they belong to
ENTRY = {
    "speed_children": "benchmark_speed",
    "speed_report": "benchmark_speed",
    "benchmark_scenes": "benchmark_predict",
}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_run_by_path_says_how_to_run_it(script):
    done = subprocess.run(
        [sys.executable, str(script.relative_to(ROOT)), "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: run it from the repository root as a module: python -m scripts.{ENTRY.get(script.stem, script.stem)}"
    ]


@pytest.mark.parametrize("script", [p for p in SCRIPTS if p.stem not in ENTRY], ids=lambda p: p.stem)
def test_runs_as_module(script):
    done = subprocess.run(
        [sys.executable, "-m", f"scripts.{script.stem}", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


@pytest.mark.parametrize(
    ("module", "argv", "fragment"),
    [
        ("compare", ["--models", "foo"], "unknown model(s) foo"),
        ("compare", ["--gpu_ids", "banana"], "'banana'"),
        ("demo", ["--gpu_ids", "banana"], "'banana'"),
    ],
)
def test_compare_and_demo_refuse_bad_arguments_before_making_data(monkeypatch, capfd, module, argv, fragment):
    import importlib

    from tests.helpers import expect_error

    script = importlib.import_module(f"scripts.{module}")
    made = []
    monkeypatch.setattr(script, "ensure_data", lambda *a, **k: made.append(a) or 0)
    expect_error(capfd, script.main, argv, fragment)
    assert made == []


def test_compare_runs_on_a_gpu_when_there_is_one():
    from scripts.compare import build_parser

    assert build_parser().parse_args([]).gpu_ids == "auto"
