"""The comparison table: both protocols, the cloudy input, parameters, speed, budget and machine."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date
from pathlib import Path

import models
from models.weights import safe_load
from options.test_options import TestOptions
from util.fileio import write_text

from .plan import Experiment, Plan, label

# (protocol, metric, column title, format)
METRIC_COLUMNS = (
    ("paper", "psnr", "paper PSNR (dB)", "{:.2f}"),
    ("paper", "rmse", "paper RMSE", "{:.2f}"),
    ("paper", "ssim", "paper SSIM", "{:.3f}"),
    ("field", "psnr", "field PSNR (dB)", "{:.2f}"),
    ("field", "ssim", "field SSIM", "{:.3f}"),
    ("field", "sam", "field SAM (deg)", "{:.2f}"),
    ("field", "mae", "field MAE", "{:.4f}"),
    ("field_cloudy", "psnr", "field PSNR, cloudy px (dB)", "{:.2f}"),
    ("field_clear", "psnr", "field PSNR, clear px (dB)", "{:.2f}"),
    ("field_cloudy", "ssim", "field SSIM, cloudy px", "{:.3f}"),
    ("field_clear", "ssim", "field SSIM, clear px", "{:.3f}"),
)
# UnCRtainTS' calibration scores, for the models that predict their uncertainty (empty for the others).
CALIBRATION_COLUMNS = (("uce", "UCE (calibration)", "{:.4f}"),)
OTHER_COLUMNS = ("parameters, inference (M)", "parameters, all (M)", "train s/iteration", "test images/s")


def model_parameters(exp: Experiment, dataset_mode: str) -> dict:
    """Parameter counts of the trained experiment: every network saved, and those used to infer."""
    counts = {}
    for path in sorted(exp.experiment_dir.glob("latest_net_*.pth")):
        state = safe_load(path)
        counts[path.stem.split("_net_", 1)[1]] = int(sum(v.numel() for v in state.values()))
    argv = ["--dataroot", "unused", "--name", exp.model, "--checkpoints_dir", str(exp.checkpoints_dir)]
    argv += ["--model", exp.model, "--dataset_mode", dataset_mode, "--gpu_ids", "-1", *exp.test_flags]
    opt = TestOptions().parse(argv, save=False)
    inference = sorted(models.find_model_using_name(exp.model)(opt).nets)  # the networks test.py loads
    return {
        "networks": counts,
        "inference_networks": inference,
        "inference": sum(counts.get(n, 0) for n in inference),
        "all": sum(counts.values()),
    }


def _summary(exp: Experiment) -> dict:
    return json.loads((exp.test_dir / "metrics_summary.json").read_text())["results"]


def _calibration_cells(exp: Experiment, output: str) -> list[str]:
    scores = json.loads((exp.test_dir / "metrics_summary.json").read_text()).get("calibration", {})
    cells = []
    for key, _, fmt in CALIBRATION_COLUMNS:
        value = scores.get(output, {}).get(key)
        cells.append("" if value is None or not math.isfinite(value) else fmt.format(value))
    return cells


def coverage_line(plan: Plan) -> str:
    """table.md's line on the cloud masks: detector, mean coverage, images per bin ("" without)."""
    info = json.loads((plan.experiments[0].test_dir / "metrics_summary.json").read_text()).get("coverage")
    if not info:
        return ""
    bins = ", ".join(f"{b['label']}: {b['count']}" for b in info["bins"])
    return (
        f"Cloud mask of the cloudy inputs: {info['detector']}; mean coverage {100 * info['mean']:.1f}%; images "
        f"per coverage bin: {bins}. Cloudy / clear px: over the pixels it flags / leaves clear (SSIM: the "
        "SSIM map averaged over them); plots: coverage_histogram.png, psnr_vs_coverage.png."
    )


def _cell(results: dict, comparison: str, protocol: str, metric: str, fmt: str) -> str:
    try:
        value = results[protocol][comparison][metric]["mean"]
    except KeyError:
        return ""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "inf" if value == math.inf else ""
    return fmt.format(value)


def table_rows(plan: Plan, records: dict[str, dict]) -> list[list[str]]:
    """One row per model in figure order, then the cloudy input (the 'do nothing' baseline)."""
    rows = []
    cloudy = None
    for exp in plan.experiments:
        results = _summary(exp)
        record = records[exp.model]
        output = models.find_model_using_name(exp.model).roles.output
        cells = [_cell(results, output, p, m, f) for p, m, _, f in METRIC_COLUMNS]
        cells += _calibration_cells(exp, output)
        params = record.get("parameters", {})
        train_it = record.get("train_seconds", 0.0) / max(1, record.get("train_iterations", 1))
        test_ips = (record.get("test_images") or 0) / max(1e-9, record.get("test_seconds", 0.0))
        cells += [
            f"{params.get('inference', 0) / 1e6:.3f}",
            f"{params.get('all', 0) / 1e6:.3f}",
            f"{train_it:.3f}",
            f"{test_ips:.2f}",
        ]
        rows.append([label(exp.model), *cells])
        if cloudy is None:
            cloudy = [
                "cloudy input (no model)",
                *[_cell(results, "real_A", p, m, f) for p, m, _, f in METRIC_COLUMNS],
            ]
            cloudy += [""] * (len(CALIBRATION_COLUMNS) + len(OTHER_COLUMNS))
    return rows + ([cloudy] if cloudy else [])


def write_tables(plan: Plan, records: dict[str, dict], machine: str) -> None:
    """``table.csv`` (machine-readable) and ``table.md`` (with the budget, protocol and machine)."""
    header = [
        "model",
        *(c for _, _, c, _ in METRIC_COLUMNS),
        *(c for _, c, _ in CALIBRATION_COLUMNS),
        *OTHER_COLUMNS,
    ]
    rows = table_rows(plan, records)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(plan.out_dir / "table.csv", buf.getvalue())
    lines = [
        f"# Comparison `{plan.name}` ({plan.setting} setting), {date.today().isoformat()}",
        "",
        f"Data: `{plan.dataroot}` ({plan.dataset_mode}); {plan.budget_text()}; metrics are means over the "
        "test images.",
        "Paper protocol: 8-bit RGB, PSNR (range 255), scikit-image SSIM defaults, RMSE on 0-255. "
        "Field protocol (UnCRtainTS): reflectance in [0, 1], all bands. UCE: UnCRtainTS' uncertainty "
        "calibration error of the models that predict a variance (0: calibrated; see docs/metrics.md).",
        f"Machine: {machine}. Train s/iteration: wall time of training (data, checkpoints included) per "
        "iteration; test images/s: whole test.py run.",
        coverage_line(plan),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    write_text(plan.out_dir / "table.md", "\n".join(lines))


def read_table(out_dir: Path) -> list[dict[str, str]]:
    """The rows of a written ``table.csv`` as dicts (for scripts and tests)."""
    with open(out_dir / "table.csv", newline="") as fh:
        return list(csv.DictReader(fh))
