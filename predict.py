"""Remove clouds from a whole Sentinel-2 scene with a trained model, window by window.

    python predict.py --cloudy S2.tif --sar S1.tif --name realcloud_21 --out S2_clear.tif

Inputs: the cloudy Sentinel-2 image (digital numbers, uint16, reflectance x 10000) and the
Sentinel-1 image (backscatter in dB, float) on the same grid, any size up to a full
10980 x 10980 tile. The model's configuration (bands, widths, U-Net depth, preprocessing) is read
from the experiment's ``train_opt.json``, so no training flag is repeated here.
Output: a float32 GeoTIFF of reflectance in [0, 1] (all output bands) on the input grid; nodata
where both inputs are nodata. Overlapping windows are cross-faded (see ``util/scene_io.py``);
memory stays flat as the scene grows; an existing output is only replaced by a complete file.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from tqdm import tqdm

import data
import models
from data.sentinel import S1_CLIP, S2_BANDS, S2_MAX, parse_bands
from models.networks import unet_min_size
from options.parser import OneLineParser, positive_int
from options.test_options import TestOptions
from util.device import resolve_device
from util.errors import UserError, run_cli
from util.scene_io import (
    S1_DTYPES,
    S2_DTYPES,
    AtomicOutput,
    Batch,
    BatchReader,
    WindowGrid,
    check_dtype,
    check_same_grid,
    open_raster,
    output_profile,
    parse_nodata,
)

PNG_DATASETS = ("triplet", "simcloud")  # trained on 8-bit PNGs, not on Sentinel GeoTIFFs
GDAL_CACHE_MB = 64  # GDAL's block cache, fixed so that memory does not depend on the scene


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="predict.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--cloudy", required=True, help="cloudy Sentinel-2 GeoTIFF (uint16 digital numbers)")
    p.add_argument("--sar", required=True, help="Sentinel-1 GeoTIFF on the same grid (float dB: VV, VH)")
    p.add_argument("--out", required=True, help="output GeoTIFF (float32 reflectance)")
    p.add_argument("--name", required=True, help="experiment: <checkpoints_dir>/<name>/ with train_opt.json")
    p.add_argument("--checkpoints_dir", default="./checkpoints", help="where experiments are saved (%(default)s)")
    p.add_argument("--epoch", "--which_epoch", dest="epoch", default="latest",
                   help="'latest' (the default) or an epoch number")
    p.add_argument("--gpu_ids", default="auto", help="'auto' (the default: first GPU if any), -1 for the CPU, or e.g. 0")
    p.add_argument("--window", type=positive_int, default=256,
                   help="window side in pixels (%(default)s); a multiple of the U-Net's 2**depth (256 for unet_256)")
    p.add_argument("--overlap", type=int, default=64,
                   help="pixels shared by neighbouring windows, cross-faded (%(default)s)")
    p.add_argument("--batch_size", type=positive_int, default=8, help="windows per forward pass (%(default)s)")
    p.add_argument("--num_threads", type=int, default=None,
                   help="threads reading the inputs while a GPU runs (default: up to 6; on the CPU 0: reading, "
                        "the network and writing take turns)")
    p.add_argument("--s2_bands", default=None,
                   help="bands of a 13-band scene to use ('all', 'rgb', names or numbers; default: the training's)")
    p.add_argument("--cloudy_nodata", default=None,
                   help="nodata value of the cloudy image (a number, 'nan' or 'none'; default: the file's)")
    p.add_argument("--sar_nodata", default=None, help="nodata value of the SAR image (default: the file's)")
    p.add_argument("--nodata", default="nan", help="nodata value written to the output (a number or 'nan': %(default)s)")
    p.add_argument("--compress", default="none", choices=("none", "zstd", "deflate", "lzw"),
                   help="output compression (%(default)s; float reflectance shrinks by only 10-25%%)")
    return p


# ---------------------------------------------------------------------------- the model
def load_options(checkpoints_dir: str, name: str) -> argparse.Namespace:
    """The training options of experiment ``name`` on top of today's defaults (for older files)."""
    folder = Path(checkpoints_dir) / name
    if not folder.is_dir():
        raise UserError(f"no experiment {folder}; check --name and --checkpoints_dir")
    path = folder / "train_opt.json"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing: predict.py reads the model's configuration from it "
                        "(train.py writes it)") from None
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if not isinstance(saved, dict):
        raise UserError(f"{path} does not hold a JSON object of options")
    argv = ["--model", str(saved.get("model", "pix2pix_attn"))]
    if saved.get("dataset_mode") in data.DATASET_CHOICES:
        argv += ["--dataset_mode", saved["dataset_mode"]]
    try:
        defaults = vars(TestOptions().build_parser(argv).parse_args(argv))
    except SystemExit:
        raise UserError(f"{path} names a model or dataset this code does not have ({' '.join(argv)})") from None
    return argparse.Namespace(**{**defaults, **saved})


def load_model(opt: argparse.Namespace, checkpoints_dir: str, epoch: str, gpu_ids: str) -> models.BaseModel:
    """Build the model of the saved options in test mode on the chosen device and load its weights."""
    if epoch != "latest" and not str(epoch).isdigit():
        raise UserError(f"--epoch {epoch!r}: expected 'latest' or an epoch number")
    opt.checkpoints_dir, opt.epoch, opt.load_iter = checkpoints_dir, epoch, 0
    opt.is_train, opt.verbose = False, False
    opt.device, opt.gpu_list = resolve_device(gpu_ids)
    model = models.create_model(opt)
    model.setup()
    model.eval()  # deterministic: no dropout, whatever the training used
    torch.backends.cudnn.benchmark = True  # one window size: let cuDNN pick its fastest kernels
    return model


def model_forward(model: models.BaseModel) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(cloudy, sar)`` in [0, 1] on the model's device -> cloud-free reflectance in [0, 1]."""
    same_bands = model.opt.input_nc == model.opt.output_nc

    def forward(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        a, c = a * 2 - 1, c * 2 - 1
        b = a if same_bands else a.new_zeros((a.shape[0], model.opt.output_nc, *a.shape[2:]))
        model.set_input({"A": a, "B": b, "C": c})
        out = model.test()["fake_B"].float()
        # The model keeps its inputs and every intermediate image for display; here they would
        # stay alive through the next batch, doubling the memory a batch needs.
        for name in {*model.visual_names, *model.visuals, "real_A", "real_B", "real_C"}:
            if hasattr(model, name):
                setattr(model, name, None)
        model.visuals = {}
        return out.add_(1).div_(2)

    return forward


def window_multiple(opt: argparse.Namespace) -> int:
    try:
        return unet_min_size(opt.netG)
    except ValueError:
        return 1  # not a U-Net: any side


# ---------------------------------------------------------------------------- the scene
@dataclass
class Scene:
    """The two inputs, which of their bands to read (1-based) and how to scale them."""

    cloudy: rasterio.io.DatasetReader
    sar: rasterio.io.DatasetReader
    s2_indexes: list[int]
    s1_indexes: list[int]
    s2_nodata: float | None
    s1_nodata: float | None
    sar_scaling: str = "standard"
    band_names: tuple[str, ...] = ()

    def batch_reader(self, grid: WindowGrid, batch_size: int = 1, pin: bool = False) -> BatchReader:
        """Reader of batches; ``pin``: into page-locked memory, for fast asynchronous copies to a GPU."""
        return BatchReader(self.cloudy.name, self.sar.name, self.s2_indexes, self.s1_indexes, self.s2_nodata,
                           self.s1_nodata, grid, batch_size, _pinned if pin else None)

    def close(self) -> None:
        self.cloudy.close()
        self.sar.close()


def _pinned(n: int, dtype: np.dtype) -> tuple[np.ndarray, torch.Tensor]:
    """A page-locked torch buffer of n values (unsigned integers as the signed type of their size,
    which torch supports fully) and a numpy view of it in ``dtype``."""
    signed = np.dtype(dtype.str.replace("u", "i"))
    tensor = torch.empty(n, dtype=torch.from_numpy(np.empty(0, signed)).dtype, pin_memory=True)
    return tensor.numpy().view(dtype), tensor


def open_scene(args: argparse.Namespace, opt: argparse.Namespace) -> Scene:
    cloudy = open_raster(args.cloudy, "cloudy")
    sar = open_raster(args.sar, "SAR")
    check_dtype(cloudy, S2_DTYPES, "Sentinel-2 digital numbers (reflectance x 10000)")
    check_dtype(sar, S1_DTYPES, "Sentinel-1 backscatter in dB")
    check_same_grid(cloudy, sar)
    spec = args.s2_bands or getattr(opt, "s2_bands", None)
    n, need = cloudy.count, opt.input_nc
    if spec and n == len(S2_BANDS):
        picked = parse_bands(str(spec))
    elif n == need:
        picked = tuple(range(n))
    else:
        hint = " (give --s2_bands to choose them from a 13-band scene)" if n == len(S2_BANDS) else ""
        raise UserError(f"{args.cloudy} has {n} band(s) but the model takes {need}{hint}")
    if len(picked) != need:
        raise UserError(f"--s2_bands {spec} selects {len(picked)} band(s) but the model takes {need}")
    if sar.count != opt.sar_nc:
        raise UserError(f"{args.sar} has {sar.count} band(s) but the model takes {opt.sar_nc} SAR band(s)")
    names = tuple(S2_BANDS[i] for i in picked) if n == len(S2_BANDS) else tuple(
        d or f"band_{i + 1}" for i, d in enumerate(cloudy.descriptions))
    return Scene(
        cloudy, sar, [i + 1 for i in picked], list(range(1, sar.count + 1)),
        parse_nodata(args.cloudy_nodata) if args.cloudy_nodata is not None else cloudy.nodata,
        parse_nodata(args.sar_nodata) if args.sar_nodata is not None else sar.nodata,
        str(getattr(opt, "sar_scaling", None) or "standard"), names,
    )


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

    def __init__(self, grid: WindowGrid, bands: int, batch_size: int, device: torch.device,
                 nodata: float = float("nan")) -> None:
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
            self.buf[:, :, x:x + span] += F.fold(cols, (w, span), (w, w), stride=(1, g.stride))[0]
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
            self.carry[:, :, c0:upto] = piece[:, rows:rows + o]
        out = None
        if cols > 0:
            acc = piece[:, :rows, :cols]
            weight = acc[self.bands]
            out = (acc[:self.bands] / weight).masked_fill_(weight <= 0, self.nodata)
        if rest:
            self.buf[:, :, :rest] = self.buf[:, :, n:n + rest].clone()
        self.buf[:, :, rest:n + rest].zero_()
        self.c0 = upto
        return c0, out

    def reset(self) -> None:
        self.c0 = self.end = 0


def predict_scene(reader: BatchReader, forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], bands: int,
                  dst: rasterio.io.DatasetWriter, device: torch.device, batch_size: int = 8,
                  nodata: float = float("nan"), sar_scaling: str = "standard", progress: bool = True,
                  workers: int | None = None) -> int:
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
    chunks = [windows[i:i + batch_size] for i in range(0, len(windows), batch_size)]
    last_col, ran = len(grid.cols) - 1, 0
    piece_size = bands * grid.window * blender.buf.shape[-1]
    with _Consumer(lambda item: _write(dst, grid, *item), depth=4, thread=workers > 0) as sink, \
            tqdm(total=len(grid), unit="win", desc="predict", file=sys.stderr, disable=not progress) as bar:

        def finish(k: int, upto: int) -> None:
            c0, out = blender.finish(k, upto)
            if out is None:
                return
            event = None
            if cuda:  # always the same size of page-locked buffer, which the allocator then reuses
                host = torch.empty(piece_size, dtype=out.dtype, pin_memory=True)[:out.numel()].view(out.shape)
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
                weight = torch.stack([blender.weight(k, j) for k, j in todo]).unsqueeze(1) * valid.unsqueeze(1)
                contrib = torch.cat([forward(a, c) * weight, weight], 1)
                ran += len(todo)
            first = done = 0
            for box in batch.boxes:  # the batch's windows of one strip, consecutive
                count = (box.cloudy.shape[-1] - grid.window) // grid.stride + 1
                acts = batch.active[first:first + count]
                (k, j0), j1 = batch.windows[first], batch.windows[first + count - 1][1]
                first += count
                if k != strip:
                    finish(strip, grid.padded_width)
                    blender.reset()
                    strip = k
                part = None
                if any(acts):
                    part, done = contrib[done:done + sum(acts)], done + sum(acts)
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
                tensor = owner[:raw.size].view(raw.shape)
            else:
                tensor = torch.from_numpy(raw.view(raw.dtype.str.replace("u", "i")) if unsigned else raw)
            pair.append((tensor, unsigned))
        tensors.append(pair)
    return batch, tensors


def _inputs(batch: Batch, tensors: list, grid: WindowGrid, nodata: tuple[float | None, float | None],
            sar_scaling: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The active windows of ``batch`` on ``device``: cloudy (n, C, w, w) and SAR (n, C', w, w) in
    [0, 1], and (n, w, w) validity (0 where both inputs are missing or outside the scene)."""
    w, parts = grid.window, []
    active = iter(batch.active)
    for box, ((raw_a, unsigned_a), (raw_c, unsigned_c)) in zip(batch.boxes, tensors):
        a, miss_a = s2_unit(_as_float(raw_a.to(device, non_blocking=True), unsigned_a), nodata[0])
        c, miss_c = s1_unit(_as_float(raw_c.to(device, non_blocking=True), unsigned_c), nodata[1], sar_scaling)
        valid = (~(miss_a & miss_c)).float()
        valid[box.inside[0]:], valid[:, box.inside[1]:] = 0.0, 0.0
        for off in range(0, raw_a.shape[-1] - w + 1, grid.stride):
            if next(active):
                parts.append((a[:, :, off:off + w], c[:, :, off:off + w], valid[:, off:off + w]))
    if not parts:
        return torch.empty(0, device=device), torch.empty(0, device=device), torch.empty(0, device=device)
    return tuple(torch.stack([part[i] for part in parts]) for i in range(3))


def _write(dst: rasterio.io.DatasetWriter, grid: WindowGrid, k: int, c0: int, out: torch.Tensor,
           event: torch.cuda.Event | None) -> None:
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
        self.thread = threading.Thread(target=self._work, daemon=True, name="predict-writer") if thread else None

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


# ---------------------------------------------------------------------------- the command
def keep_heap_flat() -> None:
    """Have glibc map blocks of 16 MiB and more (batches, pieces, the network's images) on their own.

    By default glibc raises its threshold for that after such blocks are freed (up to 32 MiB),
    then serves them from the heap, whose fragments make the resident memory creep up with the
    number of batches (+15% from a 1k to a 4k scene); a fixed threshold keeps it flat (+1.5%).
    """
    if sys.platform.startswith("linux") and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").mallopt(-3, 16 << 20)  # -3: M_MMAP_THRESHOLD


def check_paths(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'clear.tif'}")
    if not out.parent.is_dir():
        raise UserError(f"the folder of --out {out} does not exist")
    for role in ("cloudy", "sar"):
        src = Path(getattr(args, role))
        if out.exists() and src.exists() and out.samefile(src):
            raise UserError(f"--out {out} is the --{role} input; choose another file name")


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_paths(args)
    keep_heap_flat()
    opt = load_options(args.checkpoints_dir, args.name)
    if getattr(opt, "dataset_mode", None) in PNG_DATASETS:
        print(f"warning: experiment {args.name} was trained on 8-bit PNGs ({opt.dataset_mode}); its inputs were "
              "not Sentinel reflectance / dB scaled as here", file=sys.stderr)
    if parse_nodata(args.nodata) is None:
        raise UserError("--nodata must be a number or 'nan'")
    if args.num_threads is not None and args.num_threads < 0:
        raise UserError(f"--num_threads {args.num_threads}: expected 0 or more")
    if not 0 <= args.overlap < args.window:
        raise UserError(f"--overlap {args.overlap} must be at least 0 and less than --window {args.window}")
    side = window_multiple(opt)
    if args.window % side:
        raise UserError(f"--window {args.window} does not fit --netG {opt.netG} of the model: the side must be a "
                        f"multiple of {side}, e.g. {max(side, args.window // side * side)}")
    with rasterio.Env(GDAL_CACHEMAX=os.environ.get("GDAL_CACHEMAX", GDAL_CACHE_MB)):
        scene = open_scene(args, opt)  # input errors before the model is built
        try:
            model = load_model(opt, args.checkpoints_dir, args.epoch, args.gpu_ids)
            ran, grid, seconds = write_prediction(args, opt, model, scene)
        finally:
            scene.close()
    print(f"wrote {args.out}: {grid.width}x{grid.height} px, {opt.output_nc} band(s), {ran} of {len(grid)} windows "
          f"run, {seconds:.1f} s ({grid.height * grid.width / 1e6 / seconds:.2f} Mpx/s)")
    return 0


def write_prediction(args: argparse.Namespace, opt: argparse.Namespace, model: models.BaseModel,
                     scene: Scene, progress: bool = True) -> tuple[int, WindowGrid, float]:
    """Predict ``scene`` into ``args.out`` (atomically): ``(windows run, grid, seconds)``."""
    nodata = parse_nodata(args.nodata)
    start = time.perf_counter()
    grid = WindowGrid(scene.cloudy.height, scene.cloudy.width, args.window, args.overlap)
    profile = output_profile(scene.cloudy, opt.output_nc, nodata, args.compress, grid.stride)
    with AtomicOutput(args.out, profile) as dst:
        for i, band in enumerate(scene.band_names[:opt.output_nc], start=1):
            dst.set_band_description(i, band)
        dst.update_tags(experiment=args.name, epoch=str(args.epoch), model=opt.model,
                        content="cloud-free reflectance in [0, 1]")
        reader = scene.batch_reader(grid, args.batch_size, pin=model.device.type == "cuda")
        try:
            ran = predict_scene(reader, model_forward(model), opt.output_nc, dst, model.device, args.batch_size,
                                nodata, scene.sar_scaling, progress, args.num_threads)
        finally:
            reader.close()
    return ran, grid, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
