"""The paper's figure: rows of test examples; columns SAR | attention | cloudy | each model | ground truth.

A model that predicts its uncertainty (UnCRtainTS) gets a second column beside its output: the
predicted standard deviation as a heat map (``<stem>_uncertainty.png``).

Rows are chosen from the test set by measured cloud coverage (the fraction of the cloudy input the
cloud mask flags; without cloud masks, by the cloudy input's paper-protocol PSNR), evenly spread from
the most to the least clouded image, so the figure shows easy and hard cases alike. ``figure.png`` is
one labelled image; ``index.html`` shows every test image as a row with each model's PSNR/SSIM.
"""

from __future__ import annotations

import csv
import html
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import models
from util.fileio import atomic_path, write_text

from .plan import OURS, Plan, label

TILE = 160  # pixels per image in figure.png
LABEL_H = 34


def _stems_by_cloudiness(plan: Plan) -> list[str]:
    """Test stems sorted by cloud coverage, most clouded first (without coverages: by the cloudy
    input's paper PSNR, lowest first)."""
    exps = {e.model: e for e in plan.experiments}
    exp = exps.get(OURS, plan.experiments[-1])
    rows = []
    with open(exp.test_dir / "metrics_per_image.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["comparison"] == "real_A":
                coverage = row.get("cloud_coverage")
                key = -float(coverage) if coverage else float(row["paper_psnr"])
                rows.append((key, row["stem"]))
    return [stem for _, stem in sorted(rows)]


def pick_rows(stems: list[str], rows: int) -> list[str]:
    """``rows`` stems evenly spread over ``stems`` (all of them when there are fewer)."""
    if len(stems) <= rows:
        return stems
    picks = np.linspace(0, len(stems) - 1, rows).round().astype(int)
    return [stems[i] for i in picks]


def columns(plan: Plan) -> list[tuple[str, str, Path]]:
    """(title, visual, images folder) per column, in the paper's order."""
    exps = {e.model: e for e in plan.experiments}
    source = exps.get(OURS, plan.experiments[-1])
    cols = [("SAR", "real_C", source.test_dir / "images")]
    if OURS in exps:
        cols.append(("attention", "att_A", exps[OURS].test_dir / "images"))
    cols.append(("cloudy", "real_A", source.test_dir / "images"))
    for exp in plan.experiments:
        cols.append((label(exp.model), "fake_B", exp.test_dir / "images"))
        for name in models.find_model_using_name(exp.model).roles.uncertainty:
            cols.append((f"{label(exp.model).split(' (')[0]} uncertainty", name, exp.test_dir / "images"))
    cols.append(("ground truth", "real_B", source.test_dir / "images"))
    return cols


def _tile(path: Path) -> Image.Image:
    if not path.is_file():  # a model that does not produce this visual: a grey tile
        return Image.new("RGB", (TILE, TILE), (200, 200, 200))
    with Image.open(path) as img:
        return img.convert("RGB").resize((TILE, TILE), Image.BICUBIC)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def write_figure(plan: Plan, rows: int = 4) -> Path:
    """Write ``figure.png`` (``rows`` examples) and ``index.html`` (all test images); return the PNG."""
    stems = _stems_by_cloudiness(plan)
    chosen = pick_rows(stems, rows)
    cols = columns(plan)
    pad = 4
    width = len(cols) * (TILE + pad) + pad
    height = LABEL_H + len(chosen) * (TILE + pad) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font(13)
    for c, (title, _, _) in enumerate(cols):
        x = pad + c * (TILE + pad)
        letter = f"({chr(ord('a') + c)}) "
        draw.text((x + 2, 4), letter + title, fill=(0, 0, 0), font=font)
    for r, stem in enumerate(chosen):
        y = LABEL_H + r * (TILE + pad)
        for c, (_, visual, folder) in enumerate(cols):
            canvas.paste(_tile(folder / f"{stem}_{visual}.png"), (pad + c * (TILE + pad), y))
    out = plan.out_dir / "figure.png"
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
    write_page(plan, stems, cols)
    return out


def _per_image_metrics(plan: Plan) -> dict[tuple[str, str], tuple[float, float]]:
    """(model, stem) -> paper (PSNR, SSIM) of its output."""
    out = {}
    for exp in plan.experiments:
        with open(exp.test_dir / "metrics_per_image.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                if row["comparison"] == "fake_B":
                    out[(exp.model, row["stem"])] = (float(row["paper_psnr"]), float(row["paper_ssim"]))
    return out


def write_page(plan: Plan, stems: list[str], cols: list[tuple[str, str, Path]]) -> Path:
    """``index.html``: the tables, the figure, then every test image as a row of the figure's columns."""
    metrics = _per_image_metrics(plan)
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Comparison {esc(plan.name)}</title>",
        "<style>body{font-family:sans-serif} td{text-align:center;font-size:12px;vertical-align:top}"
        " img{width:128px;height:128px} table.t td,table.t th{border:1px solid #ccc;padding:2px 6px}</style>",
        "</head><body>",
        f"<h1>Comparison {esc(plan.name)} ({esc(plan.setting)} setting)</h1>",
        "<p><a href='table.md'>table.md</a> | <a href='table.csv'>table.csv</a> | <a href='figure.png'>figure.png</a></p>",
    ]
    table = (plan.out_dir / "table.csv").read_text().splitlines()
    rows = list(csv.reader(table))
    parts.append("<table class='t'><tr>" + "".join(f"<th>{esc(h)}</th>" for h in rows[0]) + "</tr>")
    for row in rows[1:]:
        parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    parts.append("</table><h2>All test images (most clouded first)</h2><table>")
    parts.append("<tr>" + "".join(f"<th>{esc(t)}</th>" for t, _, _ in cols) + "</tr>")
    for stem in stems:
        cells = []
        for title, visual, folder in cols:
            src = folder / f"{stem}_{visual}.png"
            rel = os.path.relpath(src, plan.out_dir)
            caption = esc(stem) if visual == "real_C" else ""
            model = next((e.model for e in plan.experiments if label(e.model) == title), None)
            if model and (model, stem) in metrics:
                psnr, ssim = metrics[(model, stem)]
                caption = f"{psnr:.2f} dB / {ssim:.3f}"
            img = f"<img src='{esc(rel)}' alt='{esc(title)}'>" if src.is_file() else "&mdash;"
            cells.append(f"<td>{img}<br>{caption}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table></body></html>\n")
    out = plan.out_dir / "index.html"
    write_text(out, "\n".join(parts))
    return out
