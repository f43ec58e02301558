"""The test results page, laid out like the paper's figure: one row per image, with its metrics.

``results/<name>/<phase>_<epoch>/``::

    index.html                  rows in test order
    index_worst_first.html      the same rows by the output's PSNR, lowest first
    index_best_first.html       ... highest first
    images/<stem>_<visual>.png  the images (written by test.py)

Each row: the image's stem, its rank by PSNR and its metrics (output and cloudy input against the
ground truth, every protocol measured), then its visuals in the order given - the model's declared
page order (SAR | attention | cloudy | output | ground truth | G2's SAR translation for the paper's
model). The mean metrics head every page, with links to the two orderings and to the worst and the
best image, so either is one click away. Without measurements (no ground truth) only ``index.html``
is written, rows in test order.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dominate import tags as h
from dominate.util import text as dom_text

from display.html import HTML, relative_url
from metrics import MetricsTable
from metrics.coverage import split_base

Row = tuple[str, Sequence[tuple[str, str]]]  # (stem, [(visual name, file name in images/)])

PAGES = {
    "index.html": "as tested",
    "index_worst_first.html": "worst PSNR first",
    "index_best_first.html": "best PSNR first",
}

_CSS = """
table.results td { vertical-align: top; text-align: center; padding: 4px; }
table.results td.info { text-align: left; min-width: 16em; }
table.results tr:target { outline: 3px solid #d33; }
table.row-metrics { border-collapse: collapse; font-size: 85%; margin-top: 4px; }
table.row-metrics th, table.row-metrics td { border: 1px solid #bbb; padding: 1px 4px; text-align: right; }
p.nav a { margin-right: 1em; }
span.current { font-weight: bold; margin-right: 1em; }
"""


def role_labels(roles: object) -> dict[str, str]:
    """Captions from a model's declared roles (``models.base_model.Roles``): visual name -> role."""
    labels = {name: "SAR" for name in getattr(roles, "sar", ())}
    labels.update({name: "attention" for name in getattr(roles, "attention", ())})
    labels.update({name: "uncertainty (std)" for name in getattr(roles, "uncertainty", ())})
    if getattr(roles, "attention", ()):
        labels["att_overlay"] = "attention overlay"
    for attr, label in (("cloudy", "cloudy"), ("output", "output"), ("reference", "ground truth")):
        if getattr(roles, attr, None):
            labels[getattr(roles, attr)] = label
    return labels


def _psnr(table: MetricsTable, stem: str, comparison: str, protocol: str) -> float:
    """The image's PSNR; an unmeasured or NaN one counts as the worst (-inf), identical images (inf) best."""
    try:
        value = table.get(stem, comparison, protocol).get("psnr", math.nan)
    except KeyError:
        value = math.nan
    return -math.inf if math.isnan(value) else value


def sort_protocol(table: MetricsTable, output: str) -> str | None:
    """The protocol whose PSNR of ``output`` orders the rows: the paper's if measured, else the first."""
    measured = [p for p in table.protocols if table.values(p, output, "psnr").size]
    if "paper" in measured:
        return "paper"
    return measured[0] if measured else None


def write_results_page(
    web_dir: str | os.PathLike,
    title: str,
    table: MetricsTable | None,
    rows: Sequence[Row],
    *,
    output: str = "fake_B",
    cloudy: str = "real_A",
    labels: Mapping[str, str] | None = None,
    width: int = 256,
    note: str | None = None,
) -> list[Path]:
    """Write the results page(s) in ``web_dir``; return their paths (``index.html`` first).

    Args:
        web_dir: the results folder (images are in ``web_dir/images``).
        title: page title.
        table: the per-image metrics (None or empty: nothing was measured).
        rows: per image, ``(stem, [(visual name, file name)])`` in the order to show.
        output, cloudy: the visuals whose metrics are shown per row (the model's roles).
        labels: visual name -> role caption (``role_labels(model.roles)``).
        width: display width of each image in pixels.
        note: a line shown under the title (e.g. why nothing was measured).
    """
    web_dir = Path(web_dir)
    labels = dict(labels or {})
    measured = table is not None and len(table) > 0
    protocol = sort_protocol(table, output) if measured else None
    ranked = list(range(len(rows)))
    if protocol is not None:
        ranked.sort(key=lambda i: _psnr(table, rows[i][0], output, protocol))
    rank = {i: k + 1 for k, i in enumerate(ranked)}
    orders = {"index.html": list(range(len(rows)))}
    if protocol is not None:
        orders["index_worst_first.html"] = ranked
        orders["index_best_first.html"] = ranked[::-1]
    written = []
    for filename, order in orders.items():
        page = HTML(str(web_dir), title, extra_css=_CSS)
        if note:
            page.add_text(note)
        if measured:
            _add_summary(page, table)
        if protocol is not None:
            _add_navigation(page, filename, orders, rows, ranked, table, output, protocol)
        with page.doc:
            results = h.table(cls="results", border="1")
        for i in order:
            stem, visuals = rows[i]
            info = _RowInfo(rank.get(i) if protocol else None, len(rows), table if measured else None)
            _add_row(results, i, stem, visuals, info, (output, cloudy), labels, width)
        written.append(Path(page.save(filename)))
    return written


def _add_summary(page: HTML, table: MetricsTable) -> None:
    """One table per protocol: the mean of each metric, output vs cloudy input."""
    results = table.summary()["results"]
    page.add_header("Metrics (mean over images; files: metrics_per_image.csv, metrics_summary.json)")
    for protocol, by_comparison in results.items():
        metrics = list(next(iter(by_comparison.values())))
        rows = [[table.label(c), *(stats[m]["mean"] for m in metrics)] for c, stats in by_comparison.items()]
        page.add_text(f"{protocol} protocol")
        page.add_table(rows, header=["comparison", *metrics])
    if table.coverage:
        _add_bins(page, table)


def _add_bins(page: HTML, table: MetricsTable) -> None:
    """Means per cloud-coverage bin: over all, cloudy and clear pixels (field protocol if measured)."""
    summary = table.coverage_summary()
    whole = [p for p in table.protocols if split_base(p)[1] is None]
    protocol = "field" if "field" in whole else whole[0]
    page.add_header(
        f"By cloud coverage (cloud mask: {summary['detector']}; mean coverage "
        f"{100 * summary['mean']:.1f}%; file: metrics_by_coverage.csv)"
    )
    page.add_text(
        f"{protocol} protocol; cloudy / clear: over the pixels the cloud mask flags / leaves clear "
        "(SSIM: the SSIM map averaged over those pixels)"
    )
    header = ["coverage", "images", "comparison"]
    columns = [
        (p, m) for m in ("psnr", "ssim") for p in (protocol, f"{protocol}_cloudy", f"{protocol}_clear")
    ]
    header += [f"{m} {split_base(p)[1] or 'all'}" for p, m in columns]
    rows = []
    for b in summary["bins"]:
        for c in table.comparisons:
            cells = [b["label"], b["count"], table.label(c)]
            for p, m in columns:
                stats = b["results"].get(p, {}).get(c, {}).get(m)
                cells.append("-" if stats is None else stats["mean"])
            rows.append(cells)
    page.add_table(rows, header=header)


def _add_navigation(
    page: HTML,
    current: str,
    orders: Mapping[str, Sequence[int]],
    rows: Sequence[Row],
    ranked: Sequence[int],
    table: MetricsTable,
    output: str,
    protocol: str,
) -> None:
    """Links to the three orderings and to the worst and best image's row."""
    page.add_header(f"Images, one per row (ranked by {output} PSNR, {protocol} protocol)")
    with page.doc:
        with h.p(cls="nav"):
            dom_text("order: ")
            for filename in orders:
                if filename == current:
                    h.span(PAGES[filename], cls="current")
                else:
                    h.a(PAGES[filename], href=relative_url(filename))
        with h.p(cls="nav"):
            for label, i in (("worst", ranked[0]), ("best", ranked[-1])):
                stem = rows[i][0]
                psnr = _psnr(table, stem, output, protocol)
                h.a(f"{label}: {stem} ({psnr:.2f} dB)", href=f"#{_row_id(i)}", cls=f"jump-{label}")


def _row_id(i: int) -> str:
    # The row's position, not its stem: a stem may hold characters that are not valid in an id.
    return f"img-{i}"


@dataclass(frozen=True)
class _RowInfo:
    rank: int | None  # by PSNR, 1 = worst; None when not ranked
    total: int
    table: MetricsTable | None  # None: nothing measured


def _add_row(
    parent: h.table,
    i: int,
    stem: str,
    visuals: Sequence[tuple[str, str]],
    info: _RowInfo,
    comparisons: Sequence[str],
    labels: Mapping[str, str],
    width: int,
) -> None:
    row = parent.add(h.tr(id=_row_id(i)))
    with row.add(h.td(cls="info")):
        h.div(stem, cls="stem")
        if info.rank is not None:
            h.div(f"PSNR rank {info.rank} of {info.total} (1 = worst)", cls="rank")
        if info.table is not None and stem in info.table.coverage:
            coverage = 100 * info.table.coverage[stem]
            h.div(f"cloud coverage {coverage:.1f}% ({info.table.detector})", cls="coverage")
        if info.table is not None:
            _row_metrics(info.table, stem, comparisons)
    for name, filename in visuals:
        src = relative_url(os.path.join("images", filename))
        with row.add(h.td()):
            with h.a(href=src):
                h.img(src=src, style=f"width:{int(width)}px", alt=f"{stem} {name}")
            h.br()
            dom_text(f"{labels[name]} ({name})" if name in labels else name)


def _row_metrics(metrics: MetricsTable, stem: str, comparisons: Sequence[str]) -> None:
    """A small table: one line per comparison, one column per protocol and metric."""
    columns: list[tuple[str, str]] = []
    for protocol in metrics.protocols:
        for comparison in comparisons:
            try:
                names = list(metrics.get(stem, comparison, protocol))
            except KeyError:
                continue
            columns.extend((protocol, m) for m in names if (protocol, m) not in columns)
    t = h.table(cls="row-metrics")
    header = t.add(h.tr())
    header.add(h.th(f"vs {metrics.reference}"))
    for protocol, metric in columns:
        header.add(h.th(f"{protocol} {metric}"))
    for comparison in comparisons:
        line = t.add(h.tr())
        line.add(h.th(comparison))
        for protocol, metric in columns:
            try:
                value = metrics.get(stem, comparison, protocol)[metric]
            except KeyError:
                line.add(h.td("-"))
                continue
            line.add(h.td(f"{value:.4f}"))
