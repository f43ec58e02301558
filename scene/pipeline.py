"""The machinery of ``predict.py``: scaling and blending on the device, and the threads around it.

:func:`predict_scene` runs a forward function over every window of a :class:`util.scene_io.BatchReader`'s
grid: it scales each batch on the device (:func:`s2_unit`, :func:`s1_unit`), blends the predictions
(:class:`Blender`) and writes the finished rows; on a GPU, reading and writing run in threads beside it.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

import rasterio
import torch
import torch.nn.functional as F
from tqdm import tqdm

from data.sentinel import S1_CLIP, S2_MAX
from util.errors import UserError
from util.scene_io import Batch, BatchReader, WindowGrid


# ---------------------------------------------------------------------------- scaling, on the device
def _as_float(raw: torch.Tensor, unsigned: bool) -> torch.Tensor:
    """Integers as stored -> float32; ``unsigned``: ``raw`` holds uint16/uint32 bits viewed as int16/int32."""
    if unsigned:
        wide, mask = (torch.int32, 0xFFFF) if raw.dtype == torch.int16 else (torch.int64, 0xFFFFFFFF)
        raw = raw.to(wide) & mask
    return raw.float()


def _missing(x: torch.Tensor, nodata: float | None, finite: bool) -> torch.Tensor | None:
    """Values that are missing (NaN/inf unless ``finite``, or the nodata value); None when none can be."""
    bad = None if finite else ~torch.isfinite(x)
    if nodata is not None and not math.isnan(nodata):
        bad = (x == nodata) if bad is None else bad | (x == nodata)
    return bad


def s2_unit(x: torch.Tensor, nodata: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``data.sentinel.s2_to_unit`` on the device (same float32 operations, same results) for
    DN (C, H, W) as float32: (reflectance in [0, 1], (H, W) True where every band is missing).

    Missing values become 0 (what a DN-0 nodata pixel of a Sentinel-2 product becomes anyway).
    """
    bad = _missing(x, nodata, finite=True)  # integers: no NaN
    unit = x.clamp(0.0, S2_MAX).div_(S2_MAX)
    return _fill(unit, bad)


def s1_unit(x: torch.Tensor, nodata: float | None, variant: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``data.sentinel.s1_to_unit`` on the device for dB (C, H, W) float32, plus the missing mask.

    Missing values become 0 (the clip floor).
    """
    if variant not in S1_CLIP:
        raise UserError(f"unknown SAR scaling {variant!r}; choose one of {', '.join(S1_CLIP)}")
    bad = _missing(x, nodata, finite=False)
    unit = torch.empty_like(x)
    for band in range(x.shape[0]):
        lo, hi = S1_CLIP[variant][min(band, 1)]
        torch.clamp(x[band], lo, hi, out=unit[band])
        unit[band].sub_(lo).div_(hi - lo)
    return _fill(unit, bad)


def _fill(unit: torch.Tensor, bad: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if bad is None:
        return unit, torch.zeros(unit.shape[1:], dtype=torch.bool, device=unit.device)
    return unit.masked_fill_(bad, 0.0), bad.all(dim=0)


class Blender:
    """The device side of the window blending (see ``util/scene_io.py`` for the scheme).

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


def predict_scene(
    reader: BatchReader,
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    bands: int,
    dst: rasterio.io.DatasetWriter,
    device: torch.device,
    batch_size: int = 8,
    nodata: float = float("nan"),
    sar_scaling: str = "standard",
    progress: bool = True,
    workers: int | None = None,
) -> int:
    """Run ``forward`` over every window of the reader's grid, blend, and write ``dst``; returns the windows run.

    On a GPU three stages overlap: ``workers`` threads read batches, this thread scales them, runs
    the network and blends on the device, and a thread writes the finished rows once the device
    has produced them. On the CPU the stages run one after the other (``workers`` 0): the network
    already uses every core, and threads beside it only make its threads wait for each other.
    """
    grid, cuda = reader.grid, device.type == "cuda"
    if workers is None:
        workers = max(1, min(6, (os.cpu_count() or 2) - 2)) if cuda else 0
    blender = Blender(grid, bands, batch_size, device, nodata)
    windows = grid.windows()
    chunks = [windows[i : i + batch_size] for i in range(0, len(windows), batch_size)]
    last_col, ran = len(grid.cols) - 1, 0
    piece_size = bands * grid.window * blender.buf.shape[-1]
    with (
        _Consumer(lambda item: _write(dst, grid, *item), depth=4, thread=workers > 0) as sink,
        tqdm(total=len(grid), unit="win", desc="predict", file=sys.stderr, disable=not progress) as bar,
    ):

        def finish(k: int, upto: int) -> None:
            c0, out = blender.finish(k, upto)
            if out is None:
                return
            event = None
            if cuda:  # always the same size of page-locked buffer, which the allocator then reuses
                host = torch.empty(piece_size, dtype=out.dtype, pin_memory=True)[: out.numel()].view(
                    out.shape
                )
                host.copy_(out, non_blocking=True)
                event, out = torch.cuda.Event(), host
                event.record()
            sink.put((k, c0, out, event))

        strip = 0
        for batch, tensors in _ordered_map(partial(_read, reader), chunks, workers):
            a, c, valid = _inputs(batch, tensors, grid, reader.nodata, sar_scaling, device)
            contrib = None
            if len(a):
                todo = [win for win, act in zip(batch.windows, batch.active) if act]
                weight = torch.stack([blender.weight(k, j) for k, j in todo]).unsqueeze(1) * valid.unsqueeze(
                    1
                )
                contrib = torch.cat([forward(a, c) * weight, weight], 1)
                ran += len(todo)
            first = done = 0
            for box in batch.boxes:  # the batch's windows of one strip, consecutive
                count = (box.cloudy.shape[-1] - grid.window) // grid.stride + 1
                acts = batch.active[first : first + count]
                (k, j0), j1 = batch.windows[first], batch.windows[first + count - 1][1]
                first += count
                if k != strip:
                    finish(strip, grid.padded_width)
                    blender.reset()
                    strip = k
                part = None
                if any(acts):
                    part, done = contrib[done : done + sum(acts)], done + sum(acts)
                    if not all(acts):  # windows without data add nothing
                        full = part.new_zeros((count, *part.shape[1:]))
                        full[[i for i, act in enumerate(acts) if act]] = part
                        part = full
                blender.add(j0, count, part)
                if j1 == last_col:
                    finish(k, grid.padded_width)
                    blender.reset()
                    strip = k + 1
            if j1 != last_col:
                finish(k, grid.cols[j1 + 1])
            bar.update(len(batch.windows))
    return ran


def _read(reader: BatchReader, windows: list[tuple[int, int]]) -> tuple[Batch, list]:
    """A batch, and its boxes' inputs as torch tensors ``((cloudy, unsigned), (sar, unsigned))``.

    Unsigned integers travel as the signed type of their size (torch has few unsigned kernels).
    """
    batch, tensors = reader.read(windows), []
    for box in batch.boxes:
        pair = []
        for raw, owner in zip((box.cloudy, box.sar), box.owners):
            unsigned = raw.dtype.kind == "u"
            if owner is not None:  # a page-locked buffer: keep the torch tensor that owns it
                tensor = owner[: raw.size].view(raw.shape)
            else:
                tensor = torch.from_numpy(raw.view(raw.dtype.str.replace("u", "i")) if unsigned else raw)
            pair.append((tensor, unsigned))
        tensors.append(pair)
    return batch, tensors


def _inputs(
    batch: Batch,
    tensors: list,
    grid: WindowGrid,
    nodata: tuple[float | None, float | None],
    sar_scaling: str,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The active windows of ``batch`` on ``device``: cloudy (n, C, w, w) and SAR (n, C', w, w) in
    [0, 1], and (n, w, w) validity (0 where both inputs are missing or outside the scene)."""
    w, parts = grid.window, []
    active = iter(batch.active)
    for box, ((raw_a, unsigned_a), (raw_c, unsigned_c)) in zip(batch.boxes, tensors):
        a, miss_a = s2_unit(_as_float(raw_a.to(device, non_blocking=True), unsigned_a), nodata[0])
        c, miss_c = s1_unit(
            _as_float(raw_c.to(device, non_blocking=True), unsigned_c), nodata[1], sar_scaling
        )
        valid = (~(miss_a & miss_c)).float()
        valid[box.inside[0] :], valid[:, box.inside[1] :] = 0.0, 0.0
        for off in range(0, raw_a.shape[-1] - w + 1, grid.stride):
            if next(active):
                parts.append((a[:, :, off : off + w], c[:, :, off : off + w], valid[:, off : off + w]))
    if not parts:
        return torch.empty(0, device=device), torch.empty(0, device=device), torch.empty(0, device=device)
    return tuple(torch.stack([part[i] for part in parts]) for i in range(3))


def _write(
    dst: rasterio.io.DatasetWriter,
    grid: WindowGrid,
    k: int,
    c0: int,
    out: torch.Tensor,
    event: torch.cuda.Event | None,
) -> None:
    if event is not None:
        event.synchronize()
    data = out.numpy()
    dst.write(data, window=rasterio.windows.Window(c0, grid.rows[k], data.shape[2], data.shape[1]))


# ---------------------------------------------------------------------------- threads
def _ordered_map(fn: Callable, items: list, workers: int) -> Iterator:
    """``fn(item)`` for each item, computed by ``workers`` threads a few items ahead, yielded in order.

    With 0 workers, each item is computed when it is asked for, in the calling thread.
    """
    if workers == 0:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="predict-reader") as pool:
        pending: deque[Future] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


class _Consumer:
    """Apply ``fn`` to items in a background thread (or at once if not ``thread``), in order;
    its first error is raised here."""

    def __init__(self, fn: Callable, depth: int, thread: bool = True) -> None:
        self.fn, self.q, self.error = fn, queue.Queue(depth), None
        self.thread = (
            threading.Thread(target=self._work, daemon=True, name="predict-writer") if thread else None
        )

    def _work(self) -> None:
        while (item := self.q.get()) is not None:
            if self.error is None:
                try:
                    self.fn(item)
                except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
                    self.error = err

    def put(self, item) -> None:
        if self.thread is None:
            self.fn(item)
            return
        if self.error is not None:
            raise self.error
        self.q.put(item)

    def __enter__(self) -> _Consumer:
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.thread is None:
            return
        self.q.put(None)
        self.thread.join()
        if exc_type is None and self.error is not None:
            raise self.error


# ---------------------------------------------------------------------------- memory
def keep_heap_flat() -> None:
    """Have glibc map blocks of 16 MiB and more (batches, pieces, the network's images) on their own.

    By default glibc raises its threshold for that after such blocks are freed (up to 32 MiB),
    then serves them from the heap, whose fragments make the resident memory creep up with the
    number of batches (+15% from a 1k to a 4k scene); a fixed threshold keeps it flat (+1.5%).
    """
    if sys.platform.startswith("linux") and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").mallopt(-3, 16 << 20)  # -3: M_MMAP_THRESHOLD
