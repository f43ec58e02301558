"""Collecting, summarising and writing per-image metrics.

`MetricsTable` accumulates ``metrics`` dicts (from `metrics.paper_metrics` / `field_metrics`)
keyed by (stem, comparison, protocol) and writes:

``metrics_per_image.csv``  one row per (image stem, comparison), columns
    ``stem, comparison, reference, <protocol>_<metric>...`` e.g. ``paper_psnr, paper_ssim, paper_rmse,
    field_rmse, field_psnr, field_mae, field_sam, field_ssim``.  Floats are written with full precision,
    ``inf`` for the PSNR of identical images, an empty cell where a protocol was not computed.
    In pandas: ``df = pd.read_csv(p); df.groupby("comparison").mean(numeric_only=True)`` reproduces the
    summary means, ``df.pivot(index="stem", columns="comparison", values="paper_psnr")`` compares per image.

When cloud coverages were recorded (`MetricsTable.set_coverage`), the CSV has a ``cloud_coverage``
column (fraction of the cloudy input flagged cloud or shadow), the split protocols
``<protocol>_cloudy`` / ``<protocol>_clear`` (see `metrics.coverage`) add their columns, and
``metrics_by_coverage.csv`` (`write_bins_csv`) holds one row per coverage bin and comparison: the bin,
its number of images and the mean of every metric.

``metrics_summary.json``  ``{"reference", "comparisons", "protocols", "std", "nonfinite", "results"}``
    with ``results[protocol][comparison][metric] = {"mean", "std", "count", "n_inf", "mean_finite",
    "std_finite"}`` (std is the population std over images, ddof=0).  JSON has no infinity: every
    non-finite statistic (e.g. the mean PSNR when some image pair is identical) is written as ``null``;
    ``n_inf`` says how many per-image values were infinite and ``mean_finite`` / ``std_finite`` are taken
    over the finite ones only.  `MetricsTable.summary` returns the same dict with real ``inf``/``nan``.
    With coverages, also ``"coverage": {"detector", "definition", "mean", "bins": [{"label", "range",
    "count", "results"}]}``, ``results`` laid out as the top-level one, over the bin's images.
    With predicted variances (protocol ``uncertainty``, `metrics.uncertainty`), also
    ``"calibration": {comparison: {"uce", "auce", "bins", "images", "definition"}}``: UnCRtainTS'
    calibration scores over all images.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from metrics.coverage import DEFAULT_BINS, bin_index, bin_labels, class_note, split_base
from metrics.uncertainty import CALIBRATION_DEFINITION, DESCRIPTION, PROTOCOL, calibration
from util.fileio import write_text

__all__ = ["PROTOCOL_DESCRIPTIONS", "MetricsTable", "describe_protocol"]

PROTOCOL_DESCRIPTIONS: dict[str, str] = {
    "paper": "paper protocol (official metrics.py): 8-bit RGB (H,W,3) uint8; PSNR with data range 255; "
    "SSIM = scikit-image structural_similarity defaults (7x7 uniform window, sample covariance, data range "
    "255, 3-px border excluded) per RGB channel then mean; RMSE on the 0-255 scale; mean over images",
    "field": "field protocol (UnCRtainTS): reflectance in [0,1], all bands (C,H,W); rmse=sqrt(mean((t-p)^2)); "
    "psnr=20 log10(1/rmse); mae=mean(|t-p|); sam=mean spectral angle in degrees; SSIM as UnCRtainTS' "
    "pytorch_ssim (Gaussian 11x11 sigma 1.5, zero padding 5, all bands as channels, C1=0.01^2, C2=0.03^2, "
    "mean of the whole map); mean over images. 8-bit PNGs are scaled to uint8/255, uint16 Sentinel-2 "
    "digital numbers are clipped to [0,10000] and divided by 10000",
    "field_rgb": "field protocol on the natural-colour bands B4, B3, B2 of multispectral reflectance only "
    "(same formulas as 'field'); for comparison with RGB-only results",
    PROTOCOL: DESCRIPTION,
}
DEFAULT_NOTES: dict[str, str] = {"real_A": "cloudy input"}
NONFINITE_NOTE = (
    "JSON cannot hold infinity: non-finite statistics are written as null. n_inf counts per-image values "
    "that are infinite (PSNR of an output identical to the reference); mean_finite/std_finite exclude them."
)


def describe_protocol(protocol: str) -> str:
    """The description of a protocol, split ones (``field_cloudy``) included."""
    base, cls = split_base(protocol)
    if cls is None:
        return PROTOCOL_DESCRIPTIONS.get(protocol, "")
    return f"{PROTOCOL_DESCRIPTIONS.get(base, base)}; {class_note(cls)}"


def _stats(v: np.ndarray) -> dict:
    finite = v[np.isfinite(v)]
    mean, std = _mean_std(v)
    mean_f, std_f = _mean_std(finite)
    return {
        "mean": mean,
        "std": std,
        "count": int(v.size),
        "n_inf": int(np.isinf(v).sum()),
        "mean_finite": mean_f,
        "std_finite": std_f,
    }


def _mean_std(v: np.ndarray) -> tuple[float, float]:
    if v.size == 0:
        return float("nan"), float("nan")
    if np.all(np.isfinite(v)):
        return float(v.mean()), float(v.std())
    with np.errstate(invalid="ignore"):
        mean = float(v.mean())
    return mean, float("nan")


def _json_safe(obj: object) -> object:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _write(path: str | os.PathLike, text: str) -> None:
    """Atomic write (util.fileio), creating the results folder if needed."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "n/a" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return f"{v:.4g}" if abs(v) < 1 else f"{v:.3f}"


class MetricsTable:
    """Accumulates per-image metrics for several comparisons (e.g. ``fake_B``, ``real_A``) against one
    reference (``real_B``) under several protocols (``paper``, ``field``).

    Usage (test.py)::

        table = MetricsTable(reference="real_B")
        table.add(stem, "fake_B", "paper", paper_metrics(fake_u8, real_u8))
        table.add(stem, "real_A", "paper", paper_metrics(cloudy_u8, real_u8))
        table.add(stem, "fake_B", "field", field_metrics(fake_01, real_01))
        ...
        print(table.format_table())
        table.write_csv(results_dir / "metrics_per_image.csv")
        table.write_summary_json(results_dir / "metrics_summary.json")
    """

    def __init__(self, reference: str = "real_B", notes: Mapping[str, str] | None = None) -> None:
        """``reference``: name of the ground truth; ``notes``: comparison -> remark shown in labels."""
        self.reference = reference
        self.notes = dict(DEFAULT_NOTES if notes is None else notes)
        self._rows: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
        self._columns: dict[str, list[str]] = {}  # protocol -> metric names, in first-seen order
        self._comparisons: list[str] = []
        self.coverage: dict[str, float] = {}  # stem -> fraction flagged cloud or shadow
        self.detector: str | None = None  # the cloud detector behind the coverages
        self.bins: tuple[float, ...] = DEFAULT_BINS

    def set_coverage(self, stem: str, coverage: float, detector: str) -> None:
        """Record one image's cloud coverage (fraction in [0, 1]) and the detector that measured it."""
        if self.detector not in (None, detector):
            raise ValueError(f"MetricsTable: coverages from two detectors ({self.detector}, {detector})")
        self.detector = detector
        self.coverage[str(stem)] = float(coverage)

    def add(self, stem: str, comparison: str, protocol: str, metrics: Mapping[str, float]) -> None:
        """Record the metrics of one image (``stem``) for one comparison under one protocol."""
        if not metrics:
            raise ValueError(f"MetricsTable.add: empty metrics for {stem!r} {comparison!r} {protocol!r}")
        row = self._rows.setdefault((str(stem), str(comparison)), {})
        if protocol in row:
            raise ValueError(
                f"MetricsTable.add: duplicate entry for stem {stem!r}, {comparison!r}, {protocol!r}"
            )
        row[protocol] = {str(k): float(v) for k, v in metrics.items()}
        cols = self._columns.setdefault(protocol, [])
        cols.extend(k for k in row[protocol] if k not in cols)
        if comparison not in self._comparisons:
            self._comparisons.append(comparison)

    def __len__(self) -> int:
        """Number of distinct image stems."""
        return len({stem for stem, _ in self._rows})

    @property
    def comparisons(self) -> list[str]:
        return list(self._comparisons)

    @property
    def protocols(self) -> list[str]:
        return list(self._columns)

    def label(self, comparison: str) -> str:
        """E.g. ``"real_A vs real_B (cloudy input)"``."""
        note = self.notes.get(comparison)
        return f"{comparison} vs {self.reference}" + (f" ({note})" if note else "")

    def get(self, stem: str, comparison: str, protocol: str) -> dict[str, float]:
        """The metrics recorded for one image, comparison and protocol (KeyError if absent)."""
        return dict(self._rows[(str(stem), str(comparison))][protocol])

    def values(
        self, protocol: str, comparison: str, metric: str, stems: set[str] | None = None
    ) -> np.ndarray:
        """Per-image values (float64, in insertion order) of one metric (of the ``stems`` only, if given)."""
        out = [
            r[protocol][metric]
            for (stem, c), r in self._rows.items()
            if c == comparison
            and protocol in r
            and metric in r[protocol]
            and (stems is None or stem in stems)
        ]
        return np.asarray(out, dtype=np.float64)

    def _results(self, stems: set[str] | None = None) -> dict[str, dict]:
        results: dict[str, dict] = {}
        for protocol, metrics in self._columns.items():
            for comparison in self._comparisons:
                stats = {}
                for metric in metrics:
                    v = self.values(protocol, comparison, metric, stems)
                    if v.size:
                        stats[metric] = _stats(v)
                if stats:
                    results.setdefault(protocol, {})[comparison] = stats
        return results

    def bin_stems(self) -> list[set[str]]:
        """The stems of each coverage bin (``self.bins``)."""
        out: list[set[str]] = [set() for _ in self.bins[1:]]
        for stem, value in self.coverage.items():
            out[bin_index(value, self.bins)].add(stem)
        return out

    def coverage_summary(self) -> dict:
        """Coverage per bin: label, range (fractions), number of images and the metrics' statistics."""
        bins = [
            {
                "label": name,
                "range": [lo / 100, hi / 100],
                "count": len(stems),
                "results": self._results(stems),
            }
            for name, lo, hi, stems in zip(bin_labels(self.bins), self.bins, self.bins[1:], self.bin_stems())
        ]
        values = np.asarray(list(self.coverage.values()), dtype=np.float64)
        return {
            "detector": self.detector,
            "definition": "fraction of the cloudy input's pixels the cloud detector flags as cloud or shadow; "
            "a bin holds coverages in [low, high), the last one its upper edge too",
            "mean": float(values.mean()),
            "bins": bins,
        }

    def calibration(self) -> dict[str, dict]:
        """UnCRtainTS' UCE and AUCE of each comparison with predicted variances (`metrics.uncertainty`)."""
        out = {}
        for comparison in self._comparisons:
            variances = self.values(PROTOCOL, comparison, "mean_var")
            if variances.size:
                errors = self.values(PROTOCOL, comparison, "error")
                out[comparison] = {**calibration(variances, errors), "definition": CALIBRATION_DEFINITION}
        return out

    def summary(self) -> dict:
        """Mean / std / count per protocol, comparison and metric (floats may be inf or nan here)."""
        out = {
            "reference": self.reference,
            "comparisons": {c: self.label(c) for c in self._comparisons},
            "protocols": {p: describe_protocol(p) for p in self._columns},
            "std": "population standard deviation over images (ddof=0)",
            "nonfinite": NONFINITE_NOTE,
            "results": self._results(),
        }
        if self.coverage:
            out["coverage"] = self.coverage_summary()
        calibrated = self.calibration()
        if calibrated:
            out["calibration"] = calibrated
        return out

    def csv_columns(self) -> list[str]:
        """Header of the per-image CSV."""
        cols = ["stem", "comparison", "reference"] + (["cloud_coverage"] if self.coverage else [])
        return cols + [f"{p}_{m}" for p, ms in self._columns.items() for m in ms]

    def write_csv(self, path: str | os.PathLike) -> None:
        """Write one row per (stem, comparison); see the module docstring for the format."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.csv_columns())
        for (stem, comparison), row in self._rows.items():
            cells = [stem, comparison, self.reference]
            if self.coverage:
                cells.append(repr(self.coverage[stem]) if stem in self.coverage else "")
            for p, ms in self._columns.items():
                cells += [repr(row[p][m]) if p in row and m in row[p] else "" for m in ms]
            writer.writerow(cells)
        _write(path, buf.getvalue())

    def write_bins_csv(self, path: str | os.PathLike) -> None:
        """One row per coverage bin and comparison: ``bin, coverage_low, coverage_high, comparison,
        images, <protocol>_<metric>...`` (means over the bin's images; empty where none)."""
        metric_cols = [(p, m) for p, ms in self._columns.items() for m in ms]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(
            ["bin", "coverage_low", "coverage_high", "comparison", "images"]
            + [f"{p}_{m}" for p, m in metric_cols]
        )
        for b in self.coverage_summary()["bins"]:
            for c in self._comparisons:
                cells = [b["label"], repr(b["range"][0]), repr(b["range"][1]), c, str(b["count"])]
                for p, m in metric_cols:
                    s = b["results"].get(p, {}).get(c, {}).get(m)
                    cells.append("" if s is None or not math.isfinite(s["mean"]) else repr(s["mean"]))
                writer.writerow(cells)
        _write(path, buf.getvalue())

    def write_summary_json(self, path: str | os.PathLike) -> None:
        """Write `summary` as strict JSON (non-finite numbers become null, see ``nonfinite``)."""
        text = json.dumps(_json_safe(self.summary()), indent=2, allow_nan=False)
        _write(path, text + "\n")

    def format_table(self, protocols: Sequence[str] | None = None) -> str:
        """Plain-text table: one row per comparison, columns = metric means grouped by protocol
        (all protocols, or those of ``protocols`` that were measured)."""
        if not self._rows:
            return "(no metrics)"
        summ = self._results()
        columns = {p: ms for p, ms in self._columns.items() if protocols is None or p in protocols}
        titles = {
            "paper": "paper protocol (8-bit RGB)",
            "field": "field protocol (reflectance 0-1)",
            "field_rgb": "field protocol, B4 B3 B2 only",
            PROTOCOL: "predicted uncertainty (0-1 scale)",
        }
        for p in columns:
            base, cls = split_base(p)
            if cls is not None:
                titles[p] = f"{base} protocol, {cls} pixels"
        head = ["comparison", "n"]
        groups: list[tuple[int, int, str]] = []  # (first column, n columns, title)
        for p, ms in columns.items():
            groups.append((len(head), len(ms), titles.get(p, f"{p} protocol")))
            head += ms
        body, notes = [], []
        for c in self._comparisons:
            n = sum(1 for (_, cc) in self._rows if cc == c)
            cells = [self.label(c), str(n)]
            for p, ms in columns.items():
                for m in ms:
                    s = summ.get(p, {}).get(c, {}).get(m)
                    cells.append("" if s is None else _fmt(s["mean"]))
                    if s is not None and s["n_inf"]:
                        notes.append(
                            f"  {p} {m}, {self.label(c)}: {s['n_inf']} of {s['count']} images identical to "
                            f"the reference (inf); mean over the rest: {_fmt(s['mean_finite'])}"
                        )
            body.append(cells)
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        for start, k, title in groups:  # spread a long group title over the group's columns
            extra = len(title) - (sum(widths[start : start + k]) + 2 * (k - 1))
            for j in range(max(extra, 0)):
                widths[start + j % k] += 1
        starts = {g[0] for g in groups}

        def line(cells: list[str]) -> str:
            out = ""
            for i, cell in enumerate(cells):
                sep = "" if i == 0 else (" | " if i in starts else "  ")
                out += sep + (cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]))
            return out.rstrip()

        top = " " * (widths[0] + 2 + widths[1])
        for start, k, title in groups:
            span = sum(widths[start : start + k]) + 2 * (k - 1)
            top += " | " + title.center(span)
        lines = [top.rstrip(), line(head), *(line(r) for r in body)]
        lines.insert(2, "-" * max(len(s) for s in lines))
        if notes:
            lines += ["notes:", *notes]
        if PROTOCOL in columns:
            for c, scores in self.calibration().items():
                lines.append(
                    f"calibration of {self.label(c)} (UnCRtainTS' scores, {scores['images']} images): "
                    f"UCE {_fmt(scores['uce'])}, AUCE {_fmt(scores['auce'])}"
                )
        return "\n".join(lines)
