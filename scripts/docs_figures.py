"""Regenerate the figures the documentation quotes from the project's own scripts, and compare.

    python -m scripts.docs_figures                  # the cheap figures (make docs-figures)
    python -m scripts.docs_figures --samples DIR    # also cloud_masks.md's two real SEN12MS-CR samples
    python -m scripts.docs_figures --list           # only list the expensive figures and their commands

Cheap figures, run every time (about a minute on 2 cores): the parameter counts of models.md
(``python -m scripts.model_sizes``); the defaults in training.md's options table (``python train.py
--help``); the demo test set's cloudy inputs (``python -m scripts.evaluate``: coverage, bins, the
metrics over all, cloudy and clear pixels) quoted in demo.md, evaluation.md and comparison.md, on
``datasets/demo`` (or, when it is absent or incomplete, demo data made in a temporary folder exactly as
``make demo`` makes it). With ``--samples DIR`` (a folder with ``s2_cloudy/`` and ``s2_cloudfree/``
GeoTIFFs of the same names), the coverage table of cloud_masks.md; ``--figure PATH`` redraws its
picture from them. Expensive figures (the demo's time and metrics, the comparison, the benchmarks,
the test suite's time) are never run here: each is listed with the command that regenerates it.

Exit status: 0 when every checked figure is what the page says; 1 when some differ (each printed with
the page, what it says and what the script gives); 2 on bad arguments.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.docs_figures")

import contextlib
import io
import math
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from options.parser import OneLineParser
from util.errors import UserError, run_cli

ROOT = Path(__file__).resolve().parents[1]

# (what, pages, the command that regenerates it): run by hand on a quiet machine, then edit the pages.
EXPENSIVE = (
    (
        "the demo's time, metrics and whole-scene time",
        "README.md, docs/demo.md",
        "make demo, then the README's predict.py command",
    ),
    ("the light comparison: table, figure, plots, times", "docs/comparison.md", "make compare"),
    ("the 32-px smoke comparison", "docs/comparison.md", "python -m scripts.compare --setting smoke"),
    (
        "training and test.py speed, peak memory, saving share",
        "docs/speed.md",
        "python -m scripts.benchmark_speed (13 min)",
    ),
    ("the compute floor of an iteration", "docs/speed.md", "python -m scripts.benchmark_floor"),
    (
        "whole-scene throughput and memory",
        "docs/speed.md",
        "python -m scripts.benchmark_predict; python -m scripts.benchmark_memory",
    ),
    ("the test suite's size and time", "docs/testing.md", "make test (on a fresh clone)"),
    ("visdom's assets download time", "docs/dashboard.md", "make visdom-assets"),
    ("the GPU checks (not measured yet)", "docs/cluster.md", "the commands listed there, on a CUDA GPU"),
)


@dataclass(frozen=True)
class Expect:
    """A page must hold ``text``: in the line that starts with ``line`` (None: anywhere)."""

    page: str
    line: str | None
    text: str
    source: str


def differences(root: Path, expects: list[Expect]) -> list[str]:
    """One message per expectation the pages under ``root`` do not meet."""
    out = []
    for e in expects:
        page = (root / e.page).read_text()
        if e.line is None:
            if e.text not in " ".join(page.split()):  # prose may break a figure's line anywhere
                out.append(f"{e.page}: does not say `{e.text}` ({e.source} gives it)")
            continue
        found = [(n, line) for n, line in enumerate(page.splitlines(), 1) if line.startswith(e.line)]
        if not found:
            out.append(f"{e.page}: no line starts with `{e.line}` ({e.source} gives `{e.text}`)")
        elif not any(e.text in line for _, line in found):
            n, line = found[0]
            out.append(f"{e.page}:{n}: says `{line.strip()}`; {e.source} gives `{e.text}`")
    return out


# ----------------------------------------------------------------------------- parameter counts

COUNT = re.compile(r"\b\d{1,3}(?:,\d{3}){2,}\b")  # 1,234,567 and larger


def parameter_figures(root: Path) -> tuple[list[Expect], list[str]]:
    """models.md's table rows and paragraph, and every 1,234,567-style number of the pages, against
    ``scripts.model_sizes`` (networks built on the meta device)."""
    import models
    from comparison.plan import PAPER_ORDER
    from scripts.model_sizes import DATA, parameter_counts

    source = "python -m scripts.model_sizes"
    expects, known = [], set()

    def fmt(counts: dict[str, int]) -> str:
        return "; ".join(f"{name} {value:,}" for name, value in counts.items())

    for model in sorted(set(models.MODEL_NAMES) | set(PAPER_ORDER)):
        for data in DATA:
            try:
                counts = parameter_counts(model, data)
            except UserError:  # a model outside the paper's table that does not take such data
                if model in PAPER_ORDER:
                    raise
                continue
            known |= set(counts.values())
            if model in PAPER_ORDER:
                expects.append(Expect("docs/models.md", f"| `{model}` ", fmt(counts), source))
    ours = parameter_counts("pix2pix_attn", "png")
    expects.append(
        Expect("docs/models.md", None, f"Parameter counts at the paper's settings: {fmt(ours)}", source)
    )
    for data in DATA:  # the optical-only DSen2-CR the page quotes too
        known |= set(parameter_counts("dsen2cr", data, ("--dsen2cr_no_sar",)).values())
    stray = []
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for n, line in enumerate(page.read_text().splitlines(), 1):
            for number in COUNT.findall(line):
                if int(number.replace(",", "")) not in known:
                    stray.append(
                        f"{page.relative_to(root)}:{n}: {number} is no parameter count {source} computes "
                        "(any model, 3 or 13 + 2 bands)"
                    )
    return expects, stray


# ----------------------------------------------------------------------------- training.md's defaults


def option_defaults(root: Path) -> list[str]:
    """training.md's options table: each default against train.py's parser (test.py's for its own
    options). A cell that explains instead of listing one value per option is left to the reader."""
    from options.test_options import TestOptions
    from options.train_options import TrainOptions

    defaults, by_flag = {}, {}
    for options in (TestOptions(), TrainOptions()):  # train.py's value wins where both have the option
        with contextlib.redirect_stdout(io.StringIO()):
            parser = options.build_parser(["--model", "pix2pix_attn"])
        for action in parser._actions:
            defaults[(options.prog, action.dest)] = action.default
            by_flag |= {flag: (options.prog, action.dest) for flag in action.option_strings}
    out = []
    lines = (root / "docs" / "training.md").read_text().splitlines()
    for n, line in enumerate(lines, 1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`--"):
            continue
        flags = re.findall(r"`(--\w+)`", re.sub(r"\([^)]*\)", "", cells[0]))
        values = [v.strip() for v in re.sub(r"\([^)]*\)", "", cells[1]).split(",")] if cells[1] else []
        if len(values) == 1 and len(flags) > 1:
            values *= len(flags)  # one default for all (`--ngf`, `--ndf` | 64)
        if len(values) != len(flags):
            continue  # a cell that explains (e.g. derived from the machine) rather than lists
        for flag, value in zip(flags, values):
            key = by_flag.get(flag)
            if key is None:
                out.append(f"docs/training.md:{n}: {flag} is not an option of train.py or test.py")
            elif defaults[key] is not None and not same_default(value.strip("`"), defaults[key]):
                out.append(
                    f"docs/training.md:{n}: {flag} defaults to {value}, {key[0]} --help says {defaults[key]}"
                )
    return out


def same_default(text: str, value: object) -> bool:
    """Whether a page's ``text`` ('off', 'all', '256', 'linear') states the default ``value``."""
    words = {"off": False, "on": True, "all": math.inf}
    if text.lower() in words:
        return words[text.lower()] == value
    if isinstance(value, str):
        return text == value
    try:
        return float(text) == float(value)
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------- cloud masks


def evaluate_inputs(cloudy: Path, clear: Path, detector: str, protocol: str):
    """scripts.evaluate's table of the cloudy inputs against the cloud-free images (``--pred`` and
    ``--input`` both the cloudy folder)."""
    from metrics.folders import evaluate_folders

    return evaluate_folders(cloudy, clear, input_dir=cloudy, protocol=protocol, detector=detector)


def demo_figures(demo: Path) -> list[Expect]:
    """The cloudy inputs of the demo test set, as demo.md, evaluation.md and comparison.md quote them."""
    source = "python -m scripts.evaluate on datasets/demo/test (the cloudy inputs)"
    table = evaluate_inputs(demo / "test" / "testA", demo / "test" / "testB", "auto", "both")
    res = table.summary()["results"]

    def mean(protocol: str, metric: str) -> float:
        return res[protocol]["input"][metric]["mean"]

    def bin_psnr(results: dict, protocol: str) -> str:
        stats = results.get(protocol, {}).get("input", {}).get("psnr")
        return "-" if stats is None else f"{stats['mean']:.2f}"

    cov = table.coverage_summary()
    counts = [b["count"] for b in cov["bins"]]
    split = [b["results"] for b in cov["bins"]]
    pct = f"{100 * cov['mean']:.1f}"
    cells = [
        " / ".join(bin_psnr(s, p) for p in ("field", "field_cloudy", "field_clear")) if "field" in s else "-"
        for s in split
    ]
    paper = f"{mean('paper', 'psnr'):.2f} | {mean('paper', 'ssim'):.3f}"
    cloudy = f"{mean('field_cloudy', 'psnr'):.2f} | {mean('field_clear', 'psnr'):.2f}"
    return [
        Expect("docs/evaluation.md", "| images |", "| " + " | ".join(map(str, counts)) + " |", source),
        Expect("docs/evaluation.md", "| cloudy input, field PSNR", " | ".join(cells) + " |", source),
        Expect("docs/evaluation.md", None, f"Mean coverage {pct}%", source),
        Expect(
            "docs/demo.md",
            "| cloudy input `real_A` vs `real_B` |",
            f"| {paper} | {mean('paper', 'rmse'):.1f} | {mean('field', 'mae'):.3f} | "
            f"{mean('field', 'sam'):.2f} | {mean('field', 'ssim'):.3f} |",
            source,
        ),
        Expect(
            "docs/demo.md",
            "| cloudy input `real_A` |",
            f"| {mean('field_cloudy', 'psnr'):.2f} | {mean('field_cloudy', 'ssim'):.3f} | "
            f"{mean('field_clear', 'psnr'):.2f} | {mean('field_clear', 'ssim'):.3f} | "
            + " | ".join(bin_psnr(s, "field") for s in split[-2:])
            + " |",
            source,
        ),
        Expect("docs/demo.md", None, f"mean coverage {pct} %", source),
        Expect(
            "docs/demo.md",
            "| | cloudy px PSNR |",
            f"50-70 % bin ({counts[-2]} images) | 70-100 % bin ({counts[-1]} images) |",
            source,
        ),
        Expect("docs/comparison.md", None, f"itself ({mean('field_clear', 'psnr'):.2f} dB)", source),
        Expect(
            "docs/comparison.md",
            "| cloudy input (no model) |",
            f"| {mean('paper', 'psnr'):.2f} | {mean('paper', 'rmse'):.2f} | {mean('paper', 'ssim'):.3f} | "
            f"{mean('field', 'psnr'):.2f} | {mean('field', 'ssim'):.3f} | {mean('field', 'sam'):.2f} | "
            f"{mean('field', 'mae'):.4f} | {cloudy} | {mean('field_cloudy', 'ssim'):.3f} | "
            f"{mean('field_clear', 'ssim'):.3f} |",
            source,
        ),
        Expect(
            "docs/comparison.md",
            None,
            f"mean coverage {pct} % (bins 0-10 / 10-30 / 30-50 / 50-70 / 70-100 %: "
            + " / ".join(map(str, counts)),
            source,
        ),
        Expect("docs/evaluation.md", None, small_coverage(demo / "test" / "testA"), source + " at 32 px"),
    ]


def small_coverage(folder: Path, side: int = 32) -> str:
    """evaluation.md's sentence on the test inputs resized (bicubic) to the smoke setting's 32 px."""
    from PIL import Image

    from metrics.cloud_masks import cloud_mask

    coverage = []
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as img:
            small = np.asarray(img.convert("RGB").resize((side, side), Image.BICUBIC), dtype=np.float32)
        coverage.append(100 * cloud_mask(small.transpose(2, 0, 1) / 255, "rgb", is_preview=True).mean())
    counts = np.histogram(coverage, [0, 10, 30, 50, 70, math.inf])[0]
    return f"measure {np.mean(coverage):.1f}% on average (bins {' / '.join(map(str, counts))})"


DETECTORS = ("s2cloudless", "cloud_shadow", "rgb")


def sample_figures(samples: Path, figure: Path | None) -> list[Expect]:
    """cloud_masks.md's table on real SEN12MS-CR triplets (and its picture, when ``figure`` is given)."""
    for sub in ("s2_cloudy", "s2_cloudfree"):
        if not (samples / sub).is_dir():
            raise UserError(f"--samples {samples}: no {sub}/ folder (GeoTIFFs of the same names in both)")
    source = "python -m scripts.evaluate --protocol field --cloud_detector D on the samples"
    expects = []
    for detector in DETECTORS:
        table = evaluate_inputs(samples / "s2_cloudy", samples / "s2_cloudfree", detector, "field")
        for stem in sorted(table.coverage):
            short = re.sub(r"^ROIs\d+_", "", stem)
            rows = [table.values(p, "input", "psnr", {stem}) for p in ("field_cloudy", "field_clear")]
            cloudy, clear = (float(v[0]) if v.size else None for v in rows)
            cells = [f"{100 * table.coverage[stem]:.1f}%", *(_db(v) for v in (cloudy, clear))]
            expects.append(
                Expect("docs/cloud_masks.md", f"| {short} | {detector} |", " | ".join(cells) + " |", source)
            )
    if figure is not None:
        from display.mask_figure import draw_masks

        draw_masks(samples, DETECTORS, figure)
        print(f"wrote {figure}")
    return expects


def _db(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f} dB"


# ----------------------------------------------------------------------------- the command


def demo_data(path: Path | None, scratch: Path) -> Path:
    """The demo data to measure: ``path``, else datasets/demo when complete, else made in ``scratch``."""
    from scripts.demo import N_TEST, ensure_data

    if path is not None:
        if not (path / "test" / "testA").is_dir():
            raise UserError(f"--demo_data {path}: no test/testA folder (make demo writes datasets/demo)")
        return path
    default = ROOT / "datasets" / "demo"
    if len(list((default / "test" / "testA").glob("*.png"))) == N_TEST:
        return default
    print(f"making the demo data in {scratch} (as make demo does)")
    if ensure_data(scratch, 0):
        raise UserError("could not make the demo data")
    return scratch


def run(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m scripts.docs_figures", description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=ROOT, help="the folder with README.md and docs/ to check")
    p.add_argument("--samples", type=Path, help="real SEN12MS-CR triplets: s2_cloudy/ and s2_cloudfree/")
    p.add_argument("--figure", type=Path, help="with --samples: redraw cloud_masks.md's picture here")
    p.add_argument("--demo_data", type=Path, help="the demo data (default: datasets/demo, or made)")
    p.add_argument("--skip_demo", action="store_true", help="leave out the demo test set's figures")
    p.add_argument("--list", action="store_true", help="only list the expensive figures")
    args = p.parse_args(argv)
    if args.figure is not None and args.samples is None:
        raise UserError("--figure needs --samples (the triplets it draws)")
    if not (args.root / "docs").is_dir():
        raise UserError(f"--root {args.root}: no docs/ folder")
    if not args.list:
        expects, found = parameter_figures(args.root)
        found += option_defaults(args.root)
        with tempfile.TemporaryDirectory(prefix="docs_figures_") as scratch:
            if not args.skip_demo:
                expects += demo_figures(demo_data(args.demo_data, Path(scratch)))
            if args.samples is not None:
                expects += sample_figures(args.samples, args.figure)
        found += differences(args.root, expects)
        print(f"checked {len(expects)} figures and every parameter count and default of the pages")
        for message in found:
            print(f"DIFFERS {message}")
    print("\nNot run here (minutes to hours; run each on a quiet machine and update the pages by hand):")
    for what, pages, command in EXPENSIVE:
        print(f"  {what} ({pages}): {command}")
    return 1 if not args.list and found else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 (the pages agree), 1 (differences, printed) or 2 (a one-line error)."""
    try:
        return run_cli(lambda: run(argv))
    except SystemExit as exc:  # --help, or a bad option reported by the parser
        return int(exc.code or 0)


if __name__ == "__main__":
    sys.exit(main())
