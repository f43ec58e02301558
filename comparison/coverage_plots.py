"""Plots of the comparison against cloud coverage, saved beside the table.

``coverage_histogram.png``  the test set's cloud coverage (from the per-image metrics' ``cloud_coverage``:
                            the fraction of each cloudy input the cloud mask flags), with the bins.
``psnr_vs_coverage.png``    field-protocol PSNR of each model's output and of the cloudy input against
                            coverage, over all pixels, over cloudy pixels and over clear pixels: one
                            point per image, a line through the means of each coverage bin.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

import models
from util.fileio import atomic_path

from .plan import Plan, label

PANELS = (
    ("field_psnr", "all pixels"),
    ("field_cloudy_psnr", "cloudy pixels"),
    ("field_clear_psnr", "clear pixels"),
)


def _per_image(path: Path, comparison: str) -> dict[str, dict[str, float]]:
    """stem -> the numeric columns of one comparison's rows of a ``metrics_per_image.csv``."""
    out = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["comparison"] == comparison:
                out[row["stem"]] = {
                    k: float(v) for k, v in row.items() if v and k not in ("stem", "comparison", "reference")
                }
    return out


def _curves(plan: Plan) -> list[tuple[str, dict[str, dict[str, float]]]]:
    """(label, per-image values) for each model's output, then the cloudy input."""
    curves = []
    for exp in plan.experiments:
        output = models.find_model_using_name(exp.model).roles.output
        curves.append((label(exp.model), _per_image(exp.test_dir / "metrics_per_image.csv", output)))
    first = plan.experiments[0]
    curves.append(("cloudy input (no model)", _per_image(first.test_dir / "metrics_per_image.csv", "real_A")))
    return curves


def _coverage_info(plan: Plan) -> dict:
    summary = json.loads((plan.experiments[0].test_dir / "metrics_summary.json").read_text())
    return summary.get("coverage", {})


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def write_coverage_plots(plan: Plan) -> list[Path]:
    """Write both plots into ``plan.out_dir``; returns their paths (none without cloud coverages)."""
    from matplotlib.figure import Figure  # no pyplot: no display backend needed

    info = _coverage_info(plan)
    curves = _curves(plan)
    if not info or not curves[-1][1] or "cloud_coverage" not in next(iter(curves[-1][1].values())):
        return []
    edges = [b["range"][0] * 100 for b in info["bins"]] + [100.0]
    coverage = np.array([v["cloud_coverage"] * 100 for v in curves[-1][1].values()])

    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    ax.hist(coverage, bins=np.arange(0, 105, 5), color="#4a7ab8", edgecolor="white")
    for e in edges[1:-1]:
        ax.axvline(e, color="grey", linestyle=":", linewidth=1)
    counts = ", ".join(f"{b['label']}: {b['count']}" for b in info["bins"])
    ax.set_title(f"{len(coverage)} test images; mask: {info['detector']}\n{counts}", fontsize=8)
    ax.set_xlabel("cloud coverage of the cloudy input (%)")
    ax.set_ylabel("images")
    ax.set_xlim(0, 100)
    fig.tight_layout()
    hist = plan.out_dir / "coverage_histogram.png"
    _save(fig, hist)

    fig = Figure(figsize=(14, 4.2))
    axes = fig.subplots(1, len(PANELS), sharey=True)
    centres = [(lo + hi) / 2 for lo, hi in zip(edges, edges[1:])]
    for ax, (column, title) in zip(axes, PANELS):
        for k, (name, values) in enumerate(curves):
            cloudy = name.startswith("cloudy input")
            color = "black" if cloudy else f"C{k}"
            pts = [
                (v["cloud_coverage"] * 100, v[column])
                for v in values.values()
                if math.isfinite(v.get(column, math.nan))
            ]
            if not pts:
                continue
            x, y = np.array(pts).T
            ax.scatter(x, y, s=6, alpha=0.35, color=color)
            means = [y[(x >= lo) & ((x < hi) | (hi == 100))] for lo, hi in zip(edges, edges[1:])]
            line = [(c, m.mean()) for c, m in zip(centres, means) if m.size]
            ax.plot(*zip(*line), marker="o", color=color, linestyle="--" if cloudy else "-", label=name)
        ax.set_title(f"field PSNR over {title}")
        ax.set_xlabel("cloud coverage (%)")
        ax.set_xlim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("PSNR (dB); line: mean per coverage bin")
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"Comparison {plan.name} ({plan.setting}): PSNR against cloud coverage (mask: {info['detector']})"
    )
    fig.tight_layout()
    plot = plan.out_dir / "psnr_vs_coverage.png"
    _save(fig, plot)
    return [hist, plot]
