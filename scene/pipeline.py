"""The streaming pipeline of whole-scene inference: read, scale, run, blend, write.

:func:`predict_scene` runs a forward function over every window of a :class:`scene.reader.BatchReader`'s
grid: it scales each batch on the device (:mod:`scene.scaling`), blends the predictions
(:class:`scene.windows.Blender`), converts the finished rows to the output type
(:class:`scene.output.OutputFormat`) and writes them. Reading threads (on a GPU) and a writing
thread (on a GPU by default; ``write_thread`` on the CPU too) run beside the device's work; the
queue to the writer is bounded, so memory stays flat whatever the scene size.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

import rasterio
import torch
from tqdm import tqdm

from scene.keep_clear import Compositor
from scene.output import OutputFormat
from scene.reader import Batch, BatchReader
from scene.scaling import InputScaling, as_float, s1_unit, s2_unit
from scene.windows import Blender, WindowGrid

# ``(cloudy, sar)`` (B, C, w, w) and (B, C', w, w) in [0, 1] on the device -> (B, bands, w, w) in [0, 1].
Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
WRITE_QUEUE = 4  # finished pieces waiting for the writer (each at most bands x window x batch width)


def default_workers(device: torch.device) -> int:
    """Reading threads: up to 6 beside a GPU; none on the CPU, whose cores the network uses."""
    return max(1, min(6, (os.cpu_count() or 2) - 2)) if device.type == "cuda" else 0


def batches(grid: WindowGrid, batch_size: int) -> list[list[tuple[int, int]]]:
    """The grid's windows in raster order, ``batch_size`` at a time."""
    windows = grid.windows()
    return [windows[i : i + batch_size] for i in range(0, len(windows), batch_size)]


def predict_scene(
    reader: BatchReader,
    forward: Forward,
    bands: int,
    dst: rasterio.io.DatasetWriter,
    device: torch.device,
    batch_size: int = 8,
    fmt: OutputFormat | None = None,
    scaling: InputScaling | None = None,
    progress: bool = True,
    workers: int | None = None,
    write_thread: bool | None = None,
    maps: Sequence[rasterio.io.DatasetWriter] = (),
    keep: Compositor | None = None,
) -> int:
    """Run ``forward`` over every window of the reader's grid, blend, and write ``dst`` in the
    output type of ``fmt`` (float32 reflectance by default); returns the windows run.

    ``maps``: one-band float32 writers for the channels ``forward`` returns after the ``bands``
    of the output (e.g. the attention map), blended the same way. ``scaling``: how the stored
    values become [0, 1] (default: Sentinel-2 DN without offset, Sentinel-1 dB, the standard clip).
    ``keep``: composite the output with the input by the blended weight that ``forward`` returns as
    its last channel (``--keep_clear``, see :mod:`scene.keep_clear`; the output bands are the input's).

    On a GPU three stages overlap: ``workers`` threads read batches, this thread scales them, runs
    the network, blends and converts on the device, and a thread writes the finished rows once the
    device has produced them. On the CPU reading runs in this thread (``workers`` 0: the network
    already uses every core, and threads beside it only make its threads wait for each other);
    ``write_thread`` (default: when there are reading threads) overlaps writing with the network there too.
    """
    grid, cuda = reader.grid, device.type == "cuda"
    fmt, scaling = fmt or OutputFormat(), scaling or InputScaling()
    if workers is None:
        workers = default_workers(device)
    if write_thread is None:
        write_thread = workers > 0
    blender = Blender(grid, bands + len(maps), batch_size, device, fmt.fill)
    last_col, ran = len(grid.cols) - 1, 0
    row_size = grid.window * blender.buf.shape[-1]
    held: dict[int, tuple] = {}  # strip -> its box in this batch: (x0, inputs in [0, 1], missing, valid)
    with (
        _Consumer(
            lambda item: _write(grid, *item), depth=WRITE_QUEUE * (1 + len(maps)), thread=write_thread
        ) as sink,
        tqdm(total=len(grid), unit="win", desc="predict", file=sys.stderr, disable=not progress) as bar,
    ):

        def finish(k: int, upto: int) -> None:
            c0, out = blender.finish(k, upto)
            if out is None:
                return
            if keep is not None and keep.keep:
                x0, given, missing, valid = held[k]
                rows, cols, off = out.shape[1], out.shape[2], c0 - x0
                part = (slice(0, rows), slice(off, off + cols))
                out[:bands] = keep.compose(
                    out[:bands], out[-1], given[:, part[0], part[1]], missing[part], valid[part] > 0
                )
            pieces = [(dst, fmt.dtype, fmt.encode(out[:bands]))]
            pieces += [(m, "float32", out[bands + i : bands + i + 1]) for i, m in enumerate(maps)]
            for target, dtype, piece in pieces:
                event = None
                if cuda:  # always the same size of page-locked buffer, which the allocator then reuses
                    host = torch.empty(len(piece) * row_size, dtype=piece.dtype, pin_memory=True)
                    host = host[: piece.numel()].view(piece.shape)
                    host.copy_(piece, non_blocking=True)
                    event, piece = torch.cuda.Event(), host
                    event.record()
                sink.put((target, dtype, k, c0, piece, event))

        strip = 0
        for batch, tensors in ordered_map(partial(read_batch, reader), batches(grid, batch_size), workers):
            units: list | None = [] if keep is not None and keep.keep else None
            a, c, valid = device_inputs(batch, tensors, grid, reader.nodata, scaling, device, units)
            if units is not None:
                held = {box.k: (box.x0, *unit) for box, unit in zip(batch.boxes, units)}
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


def read_batch(reader: BatchReader, windows: list[tuple[int, int]]) -> tuple[Batch, list]:
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


def device_inputs(
    batch: Batch,
    tensors: list,
    grid: WindowGrid,
    nodata: tuple[float | None, float | None],
    scaling: InputScaling,
    device: torch.device,
    units: list | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The active windows of ``batch`` on ``device``: cloudy (n, C, w, w) and SAR (n, C', w, w) in
    [0, 1], and (n, w, w) validity (0 where both inputs are missing or outside the scene).

    ``units``: a list that receives each box's ``(cloudy (C, w, width) in [0, 1], (w, width) cloudy
    missing, (w, width) validity)``, for compositing with the input."""
    w, parts = grid.window, []
    active = iter(batch.active)
    offset, gain = scaling.s2_terms(device)
    for box, ((raw_a, unsigned_a), (raw_c, unsigned_c)) in zip(batch.boxes, tensors):
        a, miss_a = s2_unit(
            as_float(raw_a.to(device, non_blocking=True), unsigned_a), nodata[0], offset, gain
        )
        c, miss_c = s1_unit(
            as_float(raw_c.to(device, non_blocking=True), unsigned_c),
            nodata[1],
            scaling.sar_clip,
            scaling.sar_units,
        )
        valid = (~(miss_a & miss_c)).float()
        valid[box.inside[0] :], valid[:, box.inside[1] :] = 0.0, 0.0
        if units is not None:
            units.append((a, miss_a, valid))
        for off in range(0, raw_a.shape[-1] - w + 1, grid.stride):
            if next(active):
                parts.append((a[:, :, off : off + w], c[:, :, off : off + w], valid[:, off : off + w]))
    if not parts:
        return torch.empty(0, device=device), torch.empty(0, device=device), torch.empty(0, device=device)
    return tuple(torch.stack([part[i] for part in parts]) for i in range(3))


def _write(
    grid: WindowGrid,
    dst: rasterio.io.DatasetWriter,
    dtype: str,
    k: int,
    c0: int,
    out: torch.Tensor,
    event: torch.cuda.Event | None,
) -> None:
    if event is not None:
        event.synchronize()
    data = OutputFormat.host_view(out, dtype)
    dst.write(data, window=rasterio.windows.Window(c0, grid.rows[k], data.shape[2], data.shape[1]))


# ---------------------------------------------------------------------------- threads
def ordered_map(fn: Callable, items: list, workers: int) -> Iterator:
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
