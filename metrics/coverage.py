"""Cloud-aware evaluation: cloud coverage bins and metrics split into cloudy and clear pixels.

The field (UnCRtainTS and the papers after it) separates the two jobs of a cloud-removal method:
inventing the ground under a cloud and leaving clear ground alone. For every test image
`measure_split` records, beside a protocol's whole-image metrics, the same metrics over the pixels
the cloud mask flags (protocol ``<protocol>_cloudy``) and over the others (``<protocol>_clear``);
a class with no pixel is not recorded for that image. `MetricsTable` keeps each image's coverage
and summarises every metric per coverage bin (default 0-10, 10-30, 30-50, 50-70, 70-100 %; a bin
holds coverages in [low, high), the last one also its upper edge).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "CLASSES",
    "DEFAULT_BINS",
    "bin_index",
    "bin_labels",
    "format_bins",
    "format_metrics",
    "measure_split",
    "parse_bins",
    "split_base",
]

DEFAULT_BINS = (0.0, 10.0, 30.0, 50.0, 70.0, 100.0)  # percent
CLASSES = ("cloudy", "clear")
CLASS_NOTES = {
    "cloudy": "over the pixels the cloud mask flags as cloud or shadow only",
    "clear": "over the pixels the cloud mask leaves clear only",
}
SSIM_NOTE = "SSIM: that protocol's SSIM map averaged over those pixels"


def parse_bins(spec: str | Sequence[float]) -> tuple[float, ...]:
    """``"0,10,30,50,70,100"`` (percent) -> the bin edges; raises ``ValueError`` with the reason.

    Edges must be increasing, start at 0 and end at 100, so every coverage falls in one bin.
    """
    try:
        edges = tuple(float(x) for x in (spec.split(",") if isinstance(spec, str) else spec))
    except ValueError:
        raise ValueError(
            f"coverage bins {spec!r}: give comma-separated percentages, e.g. 0,10,30,50,70,100"
        ) from None
    if len(edges) < 2 or edges[0] != 0 or edges[-1] != 100 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(
            f"coverage bins {spec!r}: give increasing percentages from 0 to 100, e.g. 0,10,30,50,70,100"
        )
    return edges


def bin_labels(edges: Sequence[float]) -> list[str]:
    """E.g. ``["0-10%", "10-30%", ...]``."""
    return [f"{lo:g}-{hi:g}%" for lo, hi in zip(edges, edges[1:])]


def bin_index(coverage: float, edges: Sequence[float]) -> int:
    """The bin of a coverage fraction in [0, 1]: [low, high) in percent, the last bin closed."""
    k = int(np.searchsorted(np.asarray(edges[1:-1], dtype=np.float64), 100.0 * coverage, side="right"))
    return min(k, len(edges) - 2)


def split_base(protocol: str) -> tuple[str, str | None]:
    """``"field_cloudy"`` -> ``("field", "cloudy")``; a whole-image protocol -> ``(protocol, None)``."""
    for cls in CLASSES:
        if protocol.endswith("_" + cls):
            return protocol[: -len(cls) - 1], cls
    return protocol, None


def class_note(cls: str) -> str:
    return f"{CLASS_NOTES[cls]}; {SSIM_NOTE}"


def measure_split(
    table: object,
    stem: str,
    comparison: str,
    protocol: str,
    metric: Callable[..., dict[str, float]],
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
) -> None:
    """Add ``metric(pred, gt, mask=...)`` over the cloudy and over the clear pixels of ``mask``
    (``(H, W)`` bool, True on cloud) to ``table`` as protocols ``<protocol>_cloudy`` / ``_clear``."""
    for cls, pixels in zip(CLASSES, (mask, ~mask)):
        if pixels.any():
            table.add(stem, comparison, f"{protocol}_{cls}", metric(pred, gt, mask=pixels))


def whole_image_protocols(protocols: Sequence[str]) -> list[str]:
    return [p for p in protocols if split_base(p)[1] is None]


def format_metrics(table: object) -> str:
    """The plain-text report of `scripts.evaluate` and ``test.py``: the whole-image table, then,
    with cloud masks, the cloudy/clear-pixel table and the coverage bins."""
    whole = whole_image_protocols(table.protocols)
    text = table.format_table(whole)
    if table.coverage:
        split = [p for p in table.protocols if p not in whole]
        text += f"\n\nover cloudy / clear pixels (cloud mask: {table.detector}):\n" + table.format_table(
            split
        )
        text += "\n\n" + format_bins(table)
    return text


def format_bins(table: object, protocol: str | None = None, metric: str = "psnr") -> str:
    """Plain text: per coverage bin, its number of images and each comparison's mean ``metric``
    over all, over cloudy and over clear pixels (``-``: no image or no such pixel in the bin) under
    ``protocol`` (default: field if measured, else the first)."""
    if protocol is None:
        whole = whole_image_protocols(table.protocols)
        protocol = "field" if "field" in whole else whole[0]
    summary = table.coverage_summary()
    lines = [
        f"cloud coverage ({summary['detector']}): mean {100 * summary['mean']:.1f}%; mean {protocol} {metric} by bin"
    ]
    for b in summary["bins"]:
        parts = []
        for comparison in table.comparisons:
            cells = []
            for p in (protocol, f"{protocol}_cloudy", f"{protocol}_clear"):
                s = b["results"].get(p, {}).get(comparison, {}).get(metric)
                cells.append("-" if s is None else f"{s['mean']:.2f}")
            parts.append(f"{comparison} {'/'.join(cells)}")
        lines.append(
            f"  {b['label']:>8}: {b['count']:3d} images  " + "  ".join(parts) + "  (all/cloudy/clear)"
        )
    return "\n".join(lines)
