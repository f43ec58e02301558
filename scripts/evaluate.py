"""Evaluate cloud-removal outputs against ground truth: two folders of images paired by file stem.

Replaces the official ``metrics.py`` (which paired files by sorted ``listdir`` and read BGR).  Examples::

    # two plain folders, a.png <-> a.png
    python scripts/evaluate.py --pred out/ --gt testB/

    # directly on a results folder (<stem>_fake_B.png vs <stem>_real_B.png), with the cloudy input too
    IM=results/x/test_latest/images
    python scripts/evaluate.py --pred $IM --pred_suffix _fake_B --gt $IM --gt_suffix _real_B \\
        --input $IM --input_suffix _real_A --out results/x/test_latest/eval

Images: PNG / JPEG / TIFF / BMP, 8-bit (any Pillow mode, converted to RGB like the official code) or
16-bit (grey PNG/TIFF, colour TIFF).  Paper protocol: 8-bit RGB (16-bit -> round(x / 257)).  Field
protocol: the RGB image scaled to [0, 1] (x / 255, or x / 65535).  Hidden files and files with other
extensions are ignored; with a ``--*_suffix`` only files whose stem ends with it are used.

Every problem (missing or empty folder, folders that do not pair up, unreadable image, size mismatch)
is one ``error: ...`` line on stderr and exit code 2; nothing is written then.  With ``--out DIR`` the
files ``metrics_per_image.csv`` and ``metrics_summary.json`` are written there (formats: see
``util/metrics_io.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from util.metrics import field_metrics, paper_metrics, to_unit_chw  # noqa: E402
from util.metrics_io import MetricsTable, read_image, to_uint8  # noqa: E402

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
CSV_NAME = "metrics_per_image.csv"
JSON_NAME = "metrics_summary.json"


class EvalError(Exception):
    """A user-facing problem: reported as one ``error:`` line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise EvalError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="evaluate.py",
        description="Paper- and field-protocol metrics for two image folders paired by file stem.",
    )
    p.add_argument("--pred", required=True, help="folder with the outputs")
    p.add_argument("--gt", required=True, help="folder with the ground truth")
    p.add_argument(
        "--input", default=None, help="optional folder with the cloudy inputs (do-nothing baseline)"
    )
    p.add_argument("--pred_suffix", default="", help="stem suffix to strip from outputs, e.g. _fake_B")
    p.add_argument("--gt_suffix", default="", help="stem suffix to strip from ground truth, e.g. _real_B")
    p.add_argument("--input_suffix", default="", help="stem suffix to strip from inputs, e.g. _real_A")
    p.add_argument("--protocol", choices=("paper", "field", "both"), default="both")
    p.add_argument("--out", default=None, help=f"folder for {CSV_NAME} and {JSON_NAME}")
    return p


def collect_images(folder: str | Path, suffix: str, flag: str) -> dict[str, Path]:
    """Map stem (suffix stripped) -> image path for the image files directly inside ``folder``."""
    folder = Path(folder)
    if not folder.exists():
        raise EvalError(f"{flag} folder not found: {folder}")
    if not folder.is_dir():
        raise EvalError(f"{flag} is not a folder: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        stem = path.stem
        if suffix:
            if not stem.endswith(suffix) or stem == suffix:
                continue
            stem = stem[: -len(suffix)]
        if stem in found:
            raise EvalError(f"{flag}: stem '{stem}' matches several files: {found[stem].name}, {path.name}")
        found[stem] = path
    if not found:
        which = f" whose name ends with '{suffix}'" if suffix else ""
        raise EvalError(f"no images{which} in {flag} folder {folder}")
    return found


def _examples(stems: list[str]) -> str:
    shown = ", ".join(stems[:5])
    return shown + (", ..." if len(stems) > 5 else "")


def check_pairing(a: dict[str, Path], b: dict[str, Path], name_a: str, name_b: str) -> list[str]:
    """Sorted common stems; raises EvalError if the two sets of stems differ."""
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} of {len(a)} {name_a} stems have no {name_b} ({_examples(only_a)})")
        if only_b:
            parts.append(f"{len(only_b)} of {len(b)} {name_b} stems have no {name_a} ({_examples(only_b)})")
        hint = " (hint: --pred_suffix/--gt_suffix strip name suffixes)" if not set(a) & set(b) else ""
        raise EvalError(f"folders do not pair up by stem: {'; '.join(parts)}{hint}")
    return sorted(a)


def _load(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except Exception as e:  # any decoding failure means "unreadable"
        raise EvalError(f"cannot read image {path}: {e}") from None


def _label(suffix: str, default: str) -> str:
    return suffix.lstrip("_") or default


def evaluate(args: argparse.Namespace) -> MetricsTable:
    """Compute all metrics (reads every image once); raises EvalError on any problem."""
    pred = collect_images(args.pred, args.pred_suffix, "--pred")
    gt = collect_images(args.gt, args.gt_suffix, "--gt")
    stems = check_pairing(pred, gt, "pred", "gt")
    sources = [(_label(args.pred_suffix, "pred"), pred)]
    if args.input is not None:
        inp = collect_images(args.input, args.input_suffix, "--input")
        check_pairing(inp, gt, "input", "gt")
        sources.append((_label(args.input_suffix, "input"), inp))
        if sources[0][0] == sources[1][0]:
            raise EvalError(
                f"--pred and --input get the same label '{sources[0][0]}': use different suffixes"
            )
    protocols = ("paper", "field") if args.protocol == "both" else (args.protocol,)
    notes = {sources[1][0]: "cloudy input"} if len(sources) > 1 else {}
    table = MetricsTable(reference=_label(args.gt_suffix, "gt"), notes=notes)
    for stem in stems:
        ref = _load(gt[stem])
        for name, files in sources:
            img = _load(files[stem])
            if img.shape != ref.shape:
                raise EvalError(
                    f"size mismatch for stem '{stem}': {files[stem]} is {img.shape[1]}x{img.shape[0]}, "
                    f"{gt[stem]} is {ref.shape[1]}x{ref.shape[0]} (width x height)"
                )
            try:
                if "paper" in protocols:
                    table.add(stem, name, "paper", paper_metrics(to_uint8(img), to_uint8(ref)))
                if "field" in protocols:
                    table.add(stem, name, "field", field_metrics(to_unit_chw(img), to_unit_chw(ref)))
            except ValueError as e:
                raise EvalError(f"cannot compute metrics for {files[stem]}: {e}") from None
    return table


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 2 error)."""
    try:
        args = build_parser().parse_args(argv)
        table = evaluate(args)
        if args.out is not None:
            out = Path(args.out)
            if out.exists() and not out.is_dir():
                raise EvalError(f"--out is not a folder: {out}")
            try:
                table.write_csv(out / CSV_NAME)
                table.write_summary_json(out / JSON_NAME)
            except OSError as e:
                raise EvalError(f"cannot write results to {out}: {e}") from None
    except EvalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    print(f"{len(table)} image pairs; pred: {args.pred}, gt: {args.gt}")
    print(table.format_table())
    if args.out is not None:
        print(f"wrote {Path(args.out) / CSV_NAME} and {Path(args.out) / JSON_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
