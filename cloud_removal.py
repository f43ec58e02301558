"""Remove clouds from arrays in Python (a notebook, a pipeline of your own) with a trained model.

    import numpy as np
    from cloud_removal import CloudRemover

    remover = CloudRemover("checkpoints/demo", device="cpu")
    result = remover(cloudy, sar)          # cloudy (C, H, W) S2 digital numbers, sar (C', H, W) dB
    clear, attention = result.image, result.attention   # (C, H, W) reflectance, (H, W) in [0, 1]
    glf = CloudRemover("CR_net.pth")       # a published weight file (or set name), docs/weights.md

Conventions (checked; a mismatch raises a one-line :class:`util.errors.UserError`):

* Arrays are band-first, ``(C, H, W)`` (or ``(1, C, H, W)``), numpy arrays or torch tensors of any
  size; the cloudy image and the SAR image cover the same pixels.
* Cloudy bands in the model's order (:attr:`CloudRemover.bands`): all 13 Sentinel-2 bands B1..B12
  for a 13-band model, or just its bands; a 13-band array is cut to the bands a model was trained on.
  Each model is given the arrays as it was trained (:attr:`CloudRemover.domain`): a model of 8-bit
  PNG triplets through the PNG conversion's mapping (:attr:`CloudRemover.notes` says how).
* ``cloudy_units``: 'dn' (the default: Sentinel-2 digital numbers, reflectance x 10000, as in
  the products) or 'reflectance' (floats in [0, 1]).
* SAR: Sentinel-1 backscatter (VV, VH) in dB, or ``sar_units='linear'`` power (turned into dB as
  predict.py does); ``None`` for a model without SAR input (DSen2-CR's published no-SAR variants).
* NaN marks missing pixels (``cloudy_nodata``/``sar_nodata`` add a value); where both inputs are
  missing the output is NaN.

The result: :attr:`Prediction.image` (C, H, W) cloud-free reflectance in [0, 1] (float32, the type
of the input: numpy or a CPU tensor), :attr:`Prediction.maps` the model's maps in [0, 1]
(pix2pix_attn: its attention map ``att_A``; DSen2-CR: ``cloud_mask``), each (H, W), and
:attr:`Prediction.uncertainty` the per-pixel predicted variance of a model that gives one
(UnCRtainTS; None for the others): (H, W), reflectance^2, averaged over the bands. The image is
covered by overlapping windows that are cross-faded, exactly as ``predict.py`` does for a GeoTIFF
(:mod:`scene.windows`), so both give the same numbers.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from data.sentinel import S2_BANDS, S2_MAX, parse_bands
from models.weight_sets import PUBLISHED, InputDomain
from models.weight_sets.formats import folder_weight_file
from scene.arrays import ArrayRaster, ArrayWriter, BlankRaster
from scene.domain import check_sar_given
from scene.io import sar_bands_wanted
from scene.output import OutputFormat
from scene.pipeline import predict_scene
from scene.predictor import ScenePredictor
from scene.reader import BatchReader, pinned
from scene.scaling import InputScaling
from scene.windows import WindowGrid
from util.errors import UserError

CLOUDY_UNITS = ("dn", "reflectance")
SAR_UNITS = ("db", "linear")
MISSING_DN = -65536.5  # stands for NaN in cloudy floats: no digital number or reflectance x 10000 is this


@dataclass
class Prediction:
    """The cloud-free image (C, H, W) in [0, 1], the model's maps, each (H, W) in [0, 1], and its
    predicted variance (H, W) in reflectance^2 (None for a model without one)."""

    image: np.ndarray | torch.Tensor
    maps: dict[str, np.ndarray | torch.Tensor] = field(default_factory=dict)
    uncertainty: np.ndarray | torch.Tensor | None = None

    @property
    def attention(self) -> np.ndarray | torch.Tensor | None:
        """The model's first map (pix2pix_attn: the attention map; DSen2-CR: its cloud mask), or None."""
        return next(iter(self.maps.values()), None)


def gpu_ids_of(device: str | int | torch.device) -> str:
    """A device ('auto', 'cpu', 'cuda', 'cuda:1', 1, torch.device) as ``--gpu_ids`` text; a CUDA
    device that this machine does not have is refused (the command lines fall back to the CPU)."""
    text = str(device)
    if text in ("auto", "cpu"):
        return "auto" if text == "auto" else "-1"
    index = "0" if text == "cuda" else text.removeprefix("cuda:")
    if not index.isdigit():
        raise UserError(f"device={device!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or a GPU index")
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(index) >= available:
        where = "no CUDA device is available" if not available else f"only {available} CUDA device(s) exist"
        raise UserError(f"device={device!r}: {where}; pass device='cpu' (or 'auto': a GPU if there is one)")
    return index


class CloudRemover:
    """A trained model ready to remove clouds from arrays of any size.

    ``checkpoint``: an experiment folder (``checkpoints/<name>/`` with ``train_opt.json``), a
    folder of weight files alone (e.g. the official ``latest_net_{G,G2,A,D}.pth``: the paper's
    configuration of ``model``), a published weight file (GLF-CR's ``CR_net.pth``, UnCRtainTS'
    ``model.pth.tar`` or its experiment folder with ``conf.json``, a DSen2-CR
    HDF5 file) or the name of a published set (``docs/weights.md``; ``download``: fetch it if it
    is not in the cache). ``model``: refuse weights of another model (and the model of weight
    files alone; default pix2pix_attn). ``epoch``: 'latest' or a number. ``device``: 'auto' (the
    first GPU if any), 'cpu', 'cuda', 'cuda:N'.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        *,
        model: str | None = None,
        epoch: str | int = "latest",
        device: str | int | torch.device = "auto",
        download: bool = False,
    ) -> None:
        if str(epoch) != "latest" and not str(epoch).isdigit():
            raise UserError(f"epoch={epoch!r}: expected 'latest' or an epoch number")
        folder = Path(checkpoint).expanduser()
        if folder.is_dir() and folder_weight_file(folder) is None:
            folder = folder.resolve()
            self.scene = ScenePredictor(
                folder.parent, folder.name, epoch, gpu_ids=gpu_ids_of(device), model=model
            )
        elif folder.exists() or str(checkpoint) in PUBLISHED:  # a weight file (or its folder), a set's name
            self.scene = ScenePredictor(
                weights=checkpoint, gpu_ids=gpu_ids_of(device), model=model, download=download
            )
        else:
            raise UserError(
                f"checkpoint={str(checkpoint)!r}: no such folder or file; give an experiment folder "
                "(checkpoints/<name>), a folder of weight files, a weight file or a published set's name"
            )
        self.opt = self.scene.opt
        picked = parse_bands(str(self.opt.s2_bands)) if getattr(self.opt, "s2_bands", None) else None
        if self.domain.scaling == "png8":
            picked = self.domain.band_indexes
        self._picked = picked if picked and len(picked) == self.scene.band_counts()[0] else None

    @property
    def model_name(self) -> str:
        return str(self.opt.model)

    @property
    def domain(self) -> InputDomain:
        """What the model expects at its input (bands, level, SAR clip, scaling, training data)."""
        return self.scene.domain

    @property
    def notes(self) -> tuple[str, ...]:
        """How arrays are given to the model, where it is not plain Sentinel scaling (the PNG mapping)."""
        return self.scene.notes

    @property
    def bands(self) -> tuple[str, ...]:
        """Names of the cloudy bands the model takes, in order (Sentinel-2 names where known)."""
        if self._picked is not None:
            return tuple(S2_BANDS[i] for i in self._picked)
        n = self.scene.band_counts()[0]
        if n == len(S2_BANDS):
            return S2_BANDS
        return tuple(f"band_{i + 1}" for i in range(n))

    @property
    def map_names(self) -> tuple[str, ...]:
        """The maps a prediction returns (e.g. ('att_A',); a predicted variance, e.g. ('uncertainty',),
        comes as :attr:`Prediction.uncertainty`); empty for models without one."""
        return self.scene.map_names

    @property
    def device(self) -> torch.device:
        return self.scene.model.device

    @property
    def warning(self) -> str | None:
        """Why predictions may be off (a model trained on 8-bit PNGs), or None."""
        return self.scene.warning

    def __call__(
        self,
        cloudy: np.ndarray | torch.Tensor,
        sar: np.ndarray | torch.Tensor | None,
        *,
        cloudy_units: str = "dn",
        cloudy_nodata: float | None = None,
        sar_nodata: float | None = None,
        sar_units: str = "db",
        window: int = 256,
        overlap: int = 64,
        batch_size: int = 8,
        maps: bool = True,
        progress: bool = False,
    ) -> Prediction:
        """Remove the clouds of ``cloudy`` with ``sar`` (conventions: this module's docstring);
        ``window``/``overlap``/``batch_size`` as predict.py's options; ``maps``: also return the maps
        and the predicted variance."""
        as_tensor = isinstance(cloudy, torch.Tensor)
        check_sar_given(self.domain, self.scene.described, None if sar is None else "sar")
        a = band_first(cloudy, "cloudy")
        c = band_first(sar, "sar") if sar is not None else None
        if c is not None and a.shape[1:] != c.shape[1:]:
            raise UserError(
                f"the cloudy image is {a.shape[1]}x{a.shape[2]} px but the SAR image {c.shape[1]}x{c.shape[2]}; "
                "give both on the same pixels"
            )
        mapping = self.scene.mapping_for(None if c is None else c.shape[0])
        optical_nc, sar_nc = self.scene.band_counts(mapping)
        indexes = self._band_indexes(a.shape[0], optical_nc)
        if c is not None and c.shape[0] != sar_nc:
            raise UserError(
                f"sar has {c.shape[0]} band(s) but the model takes {sar_nc} ({sar_bands_wanted(sar_nc)})"
            )
        a, a_nodata = cloudy_dn(a, cloudy_units, cloudy_nodata)
        c = sar_db(c, sar_nodata, sar_units) if c is not None else None
        self.scene.check_settings(window=window, overlap=overlap, batch_size=batch_size, arguments=True)
        names = self.scene.chosen_maps(maps) if maps and self.map_names else ()
        grid = WindowGrid(a.shape[1], a.shape[2], window, overlap)
        device = self.device
        sar_raster = ArrayRaster(c, "sar") if c is not None else BlankRaster(a.shape[1], a.shape[2])
        inputs = [ArrayRaster(a, "cloudy"), sar_raster]
        reader = BatchReader(
            lambda: (inputs, []),
            indexes,
            list(range(1, sar_raster.count + 1)),
            a_nodata,
            sar_nodata if c is not None else BlankRaster.nodata,
            grid,
            batch_size,
            pinned if device.type == "cuda" else None,
        )
        image = ArrayWriter(self.scene.bands, grid.height, grid.width)
        writers = [ArrayWriter(1, grid.height, grid.width) for _ in names]
        scaling = InputScaling(
            self.domain.sar_scaling,
            (float(self.domain.s2_dn_offset),) * len(indexes),
            sar_units="linear" if sar_units == "linear" else "dB",
        )
        predict_scene(
            reader,
            self.scene.forward_with(names, mapping),
            self.scene.bands,
            image,
            device,
            batch_size,
            OutputFormat(),
            scaling,
            progress,
            maps=writers,
        )
        wrap = torch.from_numpy if as_tensor else (lambda x: x)
        made = {n: wrap(w.data[0]) for n, w in zip(names, writers)}
        variances = self.scene.roles.uncertainty
        return Prediction(
            wrap(image.data),
            {n: m for n, m in made.items() if n not in variances},
            next((made[n] for n in variances if n in made), None),
        )

    def _band_indexes(self, count: int, takes: int) -> list[int]:
        """1-based bands of a ``count``-band cloudy array to feed the model, which ``takes`` bands."""
        if count == takes:
            return list(range(1, count + 1))
        if count == len(S2_BANDS) and self._picked is not None:
            return [i + 1 for i in self._picked]
        raise UserError(
            f"cloudy has {count} band(s) but {self.scene.described} takes {takes} ({', '.join(self.bands)})"
        )


def band_first(x: np.ndarray | torch.Tensor, role: str) -> np.ndarray:
    """``x`` as a (C, H, W) numpy array (a (1, C, H, W) batch of one is accepted)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise UserError(f"{role} has shape {x.shape}; expected (bands, height, width)")
    if x.shape[-1] <= len(S2_BANDS) < x.shape[0]:
        raise UserError(
            f"{role} has shape {x.shape}, which looks like (height, width, bands); give (bands, height, width), "
            "e.g. np.moveaxis(x, -1, 0)"
        )
    if x.dtype.kind not in "uif":
        raise UserError(f"{role} has data type {x.dtype}; expected numbers")
    return x


def cloudy_dn(a: np.ndarray, units: str, nodata: float | None) -> tuple[np.ndarray, float | None]:
    """The cloudy array as digital numbers (integers as given, floats as float32), and its nodata value."""
    if units not in CLOUDY_UNITS:
        raise UserError(f"cloudy_units {units!r}: choose one of {', '.join(CLOUDY_UNITS)}")
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    top = float(finite.max()) if finite.size else 0.0
    if units == "reflectance":
        if a.dtype.kind != "f" or top > 2.0:
            raise UserError(
                f"cloudy_units='reflectance' expects floats in [0, 1], but the cloudy values reach {top:g} "
                f"({a.dtype}); these look like digital numbers: pass cloudy_units='dn'"
            )
        a = a.astype(np.float32) * np.float32(S2_MAX)
        nodata = None if nodata is None else float(nodata) * S2_MAX
    elif a.dtype.kind == "f" and 0 < top <= 2.0:
        raise UserError(
            f"cloudy values reach only {top:g}: this looks like reflectance in [0, 1], not digital numbers "
            "(reflectance x 10000); pass cloudy_units='reflectance'"
        )
    if a.dtype.kind == "f":
        a = a.astype(np.float32)
        missing = np.isnan(a)
        if missing.any():  # the scaling takes one nodata value; NaN is not one it compares with
            if nodata is not None and not math.isnan(nodata):
                a = np.where(missing, np.float32(nodata), a)
            else:
                a, nodata = np.where(missing, np.float32(MISSING_DN), a), MISSING_DN
    return a, nodata


def sar_db(c: np.ndarray, nodata: float | None, units: str = "db") -> np.ndarray:
    """The SAR array as float32 in ``units`` ('db', or 'linear' power, turned into dB on the device);
    refuses linear backscatter given as dB (all values >= 0)."""
    if units not in SAR_UNITS:
        raise UserError(f"sar_units={units!r}: choose one of {', '.join(SAR_UNITS)}")
    c = c.astype(np.float32)
    if units == "linear":
        return c
    valid = np.isfinite(c)
    if nodata is not None and not math.isnan(nodata):
        valid &= c != nodata
    values = c[valid]
    if values.size and float(values.min()) >= 0:
        raise UserError(
            "sar values are all >= 0, which looks like linear backscatter; give dB, e.g. 10 * np.log10(linear), "
            "or pass sar_units='linear'"
        )
    return c
