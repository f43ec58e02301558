"""Evaluate cloud-removal outputs against ground truth: two folders of files paired by file stem.

Replaces the official ``metrics.py`` (which paired files by sorted ``listdir`` and read BGR).  Examples::

    # two plain folders, a.png <-> a.png
    python -m scripts.evaluate --pred out/ --gt testB/

    # directly on a results folder (<stem>_fake_B.png vs <stem>_real_B.png), with the cloudy input too
    IM=results/x/test_latest/images
    python -m scripts.evaluate --pred $IM --pred_suffix _fake_B --gt $IM --gt_suffix _real_B \\
        --input $IM --input_suffix _real_A --out results/x/test_latest/eval

    # with a model's predicted variances (UnCRtainTS): mean variance and calibration too
    python -m scripts.evaluate --pred $IM --pred_suffix _fake_B --gt $IM --gt_suffix _real_B \\
        --var $IM --var_suffix _uncertainty

    # 13-band outputs of any method (GeoTIFF or .npy) against SEN12MS-CR's cloud-free patches
    python -m scripts.evaluate --pred other_method/ --gt SEN12MSCR_test_s2/ --format multiband

    # beside ours, other papers' protocols: GLF-CR's, DSen2-CR's (needs --input), AllClear's
    python -m scripts.evaluate --pred $IM --pred_suffix _fake_B --gt $IM --gt_suffix _real_B \
        --input $IM --input_suffix _real_A --protocol glf_cr,dsen2cr,allclear

Images: PNG / JPEG / TIFF / BMP, 8-bit (any Pillow mode, converted to RGB like the official code) or
16-bit (grey PNG/TIFF, colour TIFF).  Paper protocol: 8-bit RGB (16-bit -> round(x / 257)).  Field
protocol: the RGB image scaled to [0, 1] (x / 255, or x / 65535).
Multiband rasters: GeoTIFF or ``.npy`` ``(C, H, W)``, uint16 digital numbers (/ 10000) or float
reflectance in [0, 1]; field protocol over all bands, plus ``field_rgb`` (B4, B3, B2) for 13 bands.
With ``--format auto`` a TIFF of 1, 3 or 4 bands of 8 or 16 bits is an image, any other a raster.
Hidden files and files with other extensions are ignored; with a ``--*_suffix`` only files whose stem
ends with it are used.

With ``--input`` (the cloudy inputs) each image's cloud mask (``--cloud_detector``) adds its cloud
coverage and the metrics over its cloudy and its clear pixels, with means per coverage bin
(``--coverage_bins``), exactly as ``test.py`` computes them.

With ``--var`` (a folder of predicted variances, one ``.npy`` or GeoTIFF per output, e.g. test.py's
``<stem>_uncertainty.npy`` with ``--var_suffix _uncertainty``) each output also gets its mean
predicted variance and errors, and the summary UnCRtainTS' calibration scores (UCE, AUCE), as
``test.py`` computes them (see ``metrics/uncertainty.py``).
``--protocol`` also takes other papers' protocols (``metrics.authors``, one card each in
docs/metrics.md), reported beside ours: ``glf_cr`` (centre 128 crop), ``dsen2cr`` (top-left 128
window, their cloud split), ``allclear`` (pixels clear in the target) and ``uncrtaints`` (the field
protocol under its authors' name).

Every problem (missing or empty folder, folders that do not pair up, unreadable file, size or band-count
mismatch, unknown data type) is one ``error: ...`` line on stderr and exit code 2; nothing is written
then.  With ``--out DIR`` the files ``metrics_per_image.csv`` and ``metrics_summary.json`` are written
there (formats: see ``metrics/table.py``), and with cloud masks ``metrics_by_coverage.csv``; result
files already there are refused unless ``--overwrite``.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.evaluate")

import argparse
import sys
from pathlib import Path

from metrics import FORMATS, MetricsTable, evaluate_folders
from metrics.authors import AUTHOR_PROTOCOLS
from metrics.cloud_masks import DETECTORS
from metrics.coverage import format_metrics, parse_bins
from util.errors import UserError, run_cli

CSV_NAME = "metrics_per_image.csv"
JSON_NAME = "metrics_summary.json"
BINS_NAME = "metrics_by_coverage.csv"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m scripts.evaluate",
        description="Paper- and field-protocol metrics for two folders of images or multiband rasters "
        "paired by file stem.",
    )
    p.add_argument("--pred", required=True, help="folder with the outputs")
    p.add_argument("--gt", required=True, help="folder with the ground truth")
    p.add_argument(
        "--input", default=None, help="optional folder with the cloudy inputs (do-nothing baseline)"
    )
    p.add_argument("--pred_suffix", default="", help="stem suffix to strip from outputs, e.g. _fake_B")
    p.add_argument("--gt_suffix", default="", help="stem suffix to strip from ground truth, e.g. _real_B")
    p.add_argument("--input_suffix", default="", help="stem suffix to strip from inputs, e.g. _real_A")
    p.add_argument(
        "--protocol",
        default="auto",
        help="auto: paper and field for RGB images, field (+ field_rgb for 13 bands) for multiband rasters; "
        "paper, field, both; and/or other papers' protocols, a comma list, reported beside ours: "
        f"{', '.join(AUTHOR_PROTOCOLS)} (dsen2cr needs --input; see docs/metrics.md)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="image: RGB images; multiband: GeoTIFF/.npy reflectance (C, H, W); auto: decided per file",
    )
    p.add_argument(
        "--cloud_detector",
        choices=DETECTORS,
        default="auto",
        help="cloud mask of the --input images, for cloud coverage and the metrics over cloudy and clear "
        "pixels: s2cloudless (13 bands; pip install s2cloudless), cloud_shadow (rule-based, as DSen2-CR; "
        "B1, B2, B3, B4, B8, B10, B11), rgb (the rule on the visible bands B2, B3, B4 alone, of any data), "
        "none; auto: s2cloudless for 13 bands when installed, else the rule that fits",
    )
    p.add_argument(
        "--coverage_bins",
        default="0,10,30,50,70,100",
        help="edges (percent) of the cloud-coverage bins the metrics are averaged over",
    )
    p.add_argument(
        "--var",
        default=None,
        help="optional folder of the outputs' predicted variances (.npy or GeoTIFF, (bands, H, W) or (H, W), "
        "the data's [0, 1] units squared), paired by stem: adds mean variance and calibration (UCE, AUCE)",
    )
    p.add_argument(
        "--var_suffix", default="", help="stem suffix to strip from variance files, e.g. _uncertainty"
    )
    p.add_argument(
        "--out",
        default=None,
        help=f"folder for {CSV_NAME}, {JSON_NAME} (and {BINS_NAME}); made if missing",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the result files already in --out (default: refuse them)",
    )
    return p


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an --out that is a file, or one holding result files of an earlier run (unless ``overwrite``)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out is not a folder: {out}")
    there = [name for name in (CSV_NAME, JSON_NAME, BINS_NAME) if (out / name).exists()]
    if there and not overwrite:
        raise UserError(
            f"--out {out} already holds {', '.join(there)}; add --overwrite to replace them, "
            "or choose another --out"
        )


def write_results(table: MetricsTable, out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        table.write_csv(out / CSV_NAME)
        table.write_summary_json(out / JSON_NAME)
        if table.coverage:
            table.write_bins_csv(out / BINS_NAME)
        else:  # an earlier run's (--overwrite), which would not belong to these results
            (out / BINS_NAME).unlink(missing_ok=True)
    except OSError as e:
        raise UserError(f"cannot write results to {out}: {e}; choose another --out") from None


def run(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:
        bins = parse_bins(args.coverage_bins)
    except ValueError as err:
        raise UserError(f"--coverage_bins: {err}") from None
    if args.out is not None:
        check_out(Path(args.out), args.overwrite)  # before the work: an existing result is refused at once
    table = evaluate_folders(
        args.pred,
        args.gt,
        input_dir=args.input,
        pred_suffix=args.pred_suffix,
        gt_suffix=args.gt_suffix,
        input_suffix=args.input_suffix,
        protocol=args.protocol,
        fmt=args.format,
        detector=args.cloud_detector,
        bins=bins,
        var_dir=args.var,
        var_suffix=args.var_suffix,
    )
    if args.out is not None:
        write_results(table, Path(args.out))
    print(f"{len(table)} image pairs; pred: {args.pred}, gt: {args.gt}")
    print(format_metrics(table))
    if args.out is not None:
        names = [CSV_NAME, JSON_NAME] + ([BINS_NAME] if table.coverage else [])
        print(f"wrote {', '.join(names)} in {Path(args.out)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 2 error)."""
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
