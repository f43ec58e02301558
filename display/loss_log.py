"""``loss_log.txt``: its line format, a parser that survives resumed runs, and the loss-curve PNG."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from util.fileio import atomic_path

_LOSS_LINE = re.compile(r"^\(epoch: (\d+), iters: (\d+), time: ([^,]+), data: ([^)]+)\)(.*)$")
_LOSS_ITEM = re.compile(r"([^\s:]+): (\S+)")

Curves = dict[str, tuple[list[float], list[float]]]  # loss name -> (x = epoch, y = value)


@dataclass
class LossRecord:
    """One parsed line of ``loss_log.txt``."""

    epoch: int
    iters: int
    time: float
    data: float
    losses: dict[str, float] = field(default_factory=dict)


def format_loss_line(epoch: int, iters: int, losses: dict[str, float], t_comp: float, t_data: float) -> str:
    """The official line: ``(epoch: 3, iters: 400, time: 0.123, data: 0.010) G_GAN: 0.512 ...``."""
    message = f"(epoch: {epoch}, iters: {iters}, time: {t_comp:.3f}, data: {t_data:.3f}) "
    message += "".join(f"{k}: {float(v):.3f} " for k, v in losses.items())
    return message.rstrip()


def parse_loss_log(path: str, latest_run: bool = True) -> list[LossRecord]:
    """Parse the loss lines of a ``loss_log.txt`` (headers and junk lines are skipped).

    With ``latest_run`` (default), when the log goes back in (epoch, iters) -
    a resumed or restarted run appended to the same file - the older entries
    from that point on are dropped, so the result is one monotonic history.
    """
    records: list[LossRecord] = []
    if not os.path.isfile(path):
        return records
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _LOSS_LINE.match(line.strip())
            if not m:
                continue
            try:
                rec = LossRecord(int(m[1]), int(m[2]), float(m[3]), float(m[4]))
                rec.losses = {k: float(v) for k, v in _LOSS_ITEM.findall(m[5])}
            except ValueError:
                continue
            if latest_run:
                while records and (records[-1].epoch, records[-1].iters) >= (rec.epoch, rec.iters):
                    records.pop()
            records.append(rec)
    return records


def curves_from_records(records: list[LossRecord]) -> Curves:
    """Loss curves with x = epoch + iters / max(iters) (an estimate of epoch + counter_ratio)."""
    curves: Curves = {}
    per_epoch = max((r.iters for r in records), default=1) or 1
    for r in records:
        for k, v in r.losses.items():
            xs, ys = curves.setdefault(k, ([], []))
            xs.append(r.epoch + r.iters / per_epoch)
            ys.append(v)
    return curves


def save_curves_png(curves: Curves, path: str, title: str) -> None:
    """Write the curves as a PNG, one small panel per loss, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no global backend state
    from matplotlib.figure import Figure

    # One small panel per loss: the weighted terms differ by orders of magnitude
    # (G_L1 ~ 100, D ~ 0.2), so a shared axis would flatten all but the largest.
    ncols = min(4, len(curves))
    nrows = -(-len(curves) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.4 * nrows), dpi=100)
    FigureCanvasAgg(fig)
    for i, (k, (xs, ys)) in enumerate(curves.items()):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.plot(xs, ys, linewidth=1, color=f"C{i % 10}")
        ax.set_title(k, fontsize="medium")
        ax.grid(True, alpha=0.3)
        if i >= len(curves) - ncols:
            ax.set_xlabel("epoch")
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
