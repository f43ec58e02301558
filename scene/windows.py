"""The window grid over a scene and the blending of overlapping windows.

The scene is covered by square windows of side ``window`` placed every ``stride = window -
overlap`` pixels from the top-left corner; the last row/column of windows may run past the
bottom/right border, and that part is filled by reflecting the scene (so every window the
network sees is full-size, and all seams are alike). Each window's prediction is weighted by a
separable profile that is 1 in the middle and rises as sin^2 over the overlap on every side that
has a neighbour (sides on the scene border stay at 1); in the overlap the rising and the falling
ramps sum to exactly 1, so the blend is a smooth cross-fade, and the accumulated weights are
divided out in any case.

Windows are processed in raster order, strip by strip; :class:`Blender` sums them on the device
and hands out each strip's first ``stride`` rows as soon as no later window touches them,
carrying only the last ``overlap`` rows to the next strip, so memory does not grow with the
scene height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from util.errors import UserError


@dataclass(frozen=True)
class WindowGrid:
    """Windows of side ``window`` every ``window - overlap`` pixels over a ``height x width`` scene."""

    height: int
    width: int
    window: int
    overlap: int

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.window:
            raise UserError(
                f"--overlap {self.overlap} must be at least 0 and less than --window {self.window}"
            )

    @property
    def stride(self) -> int:
        return self.window - self.overlap

    def origins(self, length: int) -> list[int]:
        count = 1 if length <= self.window else math.ceil((length - self.window) / self.stride) + 1
        return [i * self.stride for i in range(count)]

    @cached_property
    def rows(self) -> list[int]:
        """Top rows of the strips of windows."""
        return self.origins(self.height)

    @cached_property
    def cols(self) -> list[int]:
        """Left columns of the windows in a strip."""
        return self.origins(self.width)

    @property
    def padded_width(self) -> int:
        return self.cols[-1] + self.window

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def windows(self) -> list[tuple[int, int]]:
        """(strip k, column j) of every window, in raster order."""
        return [(k, j) for k in range(len(self.rows)) for j in range(len(self.cols))]

    def final_rows(self, k: int) -> int:
        """Rows of strip ``k`` (from its top) that no later strip touches."""
        return self.stride if k < len(self.rows) - 1 else self.height - self.rows[k]

    def ramp(self, index: int, count: int) -> np.ndarray:
        """1-D blend weight (window,) of window ``index`` of ``count`` along one axis (all > 0)."""
        weight = np.ones(self.window, np.float64)
        r = self.overlap
        if r:
            up = np.sin(0.5 * np.pi * (np.arange(r) + 0.5) / r) ** 2  # up[i] + up[r-1-i] == 1
            if index > 0:
                weight[:r] *= up
            if index < count - 1:
                weight[-r:] *= up[::-1]
        return weight.astype(np.float32)


class Blender:
    """The device side of the window blending (the scheme is in this module's docstring).

    ``buf`` holds the weighted sums (bands) and weights (last channel) of the current strip's
    windows for columns ``[c0, c0 + capacity)``; ``carry`` holds the sums for the rows the next
    strip shares with this one. :meth:`finish` returns columns no later window of the strip
    touches, with the carry added, divided by the weights (nodata where there are none), for the
    rows that are final.
    """

    def __init__(
        self,
        grid: WindowGrid,
        bands: int,
        batch_size: int,
        device: torch.device,
        nodata: float = float("nan"),
    ) -> None:
        self.grid, self.bands, self.nodata = grid, bands, nodata
        w, o = grid.window, grid.overlap
        self.buf = torch.zeros(bands + 1, w, w + batch_size * grid.stride, device=device)
        self.carry = torch.zeros(bands + 1, o, grid.padded_width, device=device)
        self.c0 = self.end = 0  # scene columns of buf[..., 0] and one past the last window added
        ramps = {}
        for axis, n in (("y", len(grid.rows)), ("x", len(grid.cols))):
            ramps[axis] = [torch.from_numpy(grid.ramp(i, n)).to(device) for i in range(n)]
        self.ramps = ramps
        self._weights: dict[tuple[int, int], torch.Tensor] = {}

    def weight(self, k: int, j: int) -> torch.Tensor:
        """(window, window) blend weight of window (k, j); only a few distinct ones exist."""
        key = (min(k, 1) + (k == len(self.grid.rows) - 1) * 2, min(j, 1) + (j == len(self.grid.cols) - 1) * 2)
        if key not in self._weights:
            self._weights[key] = self.ramps["y"][k][:, None] * self.ramps["x"][j][None, :]
        return self._weights[key]

    def add(self, j0: int, count: int, contrib: torch.Tensor | None) -> None:
        """Add windows j0 .. j0+count-1 of the strip: ``contrib`` (count, bands + 1, w, w) holds each
        one's weighted prediction and its weight; None: windows without data."""
        g, w = self.grid, self.grid.window
        x = g.cols[j0] - self.c0
        if contrib is not None:
            span = w + (count - 1) * g.stride
            # One fold sums the overlapping windows (instead of one addition per window).
            cols = contrib.reshape(count, -1).t().unsqueeze(0)
            self.buf[:, :, x : x + span] += F.fold(cols, (w, span), (w, w), stride=(1, g.stride))[0]
        self.end = g.cols[j0 + count - 1] + w

    def finish(self, k: int, upto: int) -> tuple[int, torch.Tensor | None]:
        """Columns ``[c0, upto)`` of strip k: ``(c0, (bands, rows, cols) reflectance)``; None if past the edge."""
        g, o, c0 = self.grid, self.grid.overlap, self.c0
        n, rest = upto - c0, max(0, self.end - upto)
        piece = self.buf[:, :, :n]
        if k > 0 and o:
            piece[:, :o] += self.carry[:, :, c0:upto]
        rows, cols = g.final_rows(k), min(upto, g.width) - c0
        if k < len(g.rows) - 1 and o:
            self.carry[:, :, c0:upto] = piece[:, rows : rows + o]
        out = None
        if cols > 0:
            acc = piece[:, :rows, :cols]
            weight = acc[self.bands]
            out = (acc[: self.bands] / weight).masked_fill_(weight <= 0, self.nodata)
        if rest:
            self.buf[:, :, :rest] = self.buf[:, :, n : n + rest].clone()
        self.buf[:, :, rest : n + rest].zero_()
        self.c0 = upto
        return c0, out

    def reset(self) -> None:
        self.c0 = self.end = 0
