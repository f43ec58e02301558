"""A scene's inputs: the cloudy Sentinel-2 and the Sentinel-1 product, checked to fit each other and
the model, with the bands to read and how to scale them (:class:`Scene`).

The inputs are read through :mod:`scene.products` (a stacked GeoTIFF, a SAFE product, a STAC
item: the scene does not know which); their bands are picked by name in the model's order, and
every band is read on the optical product's 10 m grid (20/60 m bands and a SAR product on another
grid resampled on the fly). A model without SAR input reads a :class:`~scene.arrays.BlankRaster`
in the SAR's place. Windows are read from a scene in batches by :class:`scene.reader.BatchReader`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
from rasterio.windows import Window

from data.sentinel import S1_BANDS, S2_BANDS, parse_bands
from scene.arrays import BlankRaster
from scene.domain import InputReport
from scene.products import BandStack, Filled, Grid, Product, ReadOptions, open_product
from scene.products.base import Band, check_overlap, common
from scene.reader import BatchReader, pinned
from scene.scaling import InputScaling
from scene.windows import WindowGrid
from util.errors import UserError

SAR_RESAMPLING = "bilinear"  # the SAR onto the optical grid, as before products had readers
SAMPLE = 512  # side of the central window whose values are checked against the scaling


def sar_bands_wanted(n: int) -> str:
    """What the ``n`` SAR bands a model takes are, for messages: VV, VH (Sentinel-1 dB), and for
    three the mean of the two, as in the SAR PNGs (see scripts/convert_sen12mscr.py)."""
    if n == 2:
        return "VV, VH in dB"
    if n == 3:
        return "VV, VH and their mean, in dB, the channels of the SAR PNGs it was trained on"
    return f"{n} Sentinel-1 band(s) in dB"


def parse_nodata(text: str | None) -> float | None:
    """``--*_nodata`` text -> value: a number, 'nan', or 'none' (no nodata value)."""
    if text is None or str(text).lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"nodata value {text!r}: expected a number, 'nan' or 'none'") from None


# ---------------------------------------------------------------------------- the scene
@dataclass
class Scene:
    """The two products (``sar`` None: a model without SAR input), the bands to read from each (in
    the model's order) and how to scale them; ``mapping``: how the model is given the scene
    (:mod:`scene.domain`: 'unit' or 'png8'); ``notes``: what the log says about the inputs."""

    optical: Product
    sar: Product | None
    s2_slots: list[Band | Filled]
    s1_slots: list[Band | Filled]
    s2_nodata: float | None
    s1_nodata: float | None
    scaling: InputScaling
    band_names: tuple[str, ...]
    s2_resampling: str = "nearest"
    notes: list[str] = field(default_factory=list)
    mapping: str = "unit"

    @property
    def grid(self) -> Grid:
        """The grid everything is read on and written to: the optical product's finest bands."""
        return self.optical.grid

    @property
    def height(self) -> int:
        return self.grid.height

    @property
    def width(self) -> int:
        return self.grid.width

    @property
    def sar_scaling(self) -> str:
        return self.scaling.sar_clip

    def open_optical(self) -> BandStack:
        """A new reader of the optical bands on the grid."""
        dtype = _dtype(self.s2_slots)
        return BandStack(self.s2_slots, self.grid, self.s2_resampling, "cloudy", self.s2_nodata, dtype)

    def open_inputs(self) -> tuple[list, list]:
        """New readers of the two inputs on the optical grid, and the handles to close."""
        optical = self.open_optical()
        if self.sar is None:  # a model without SAR input: nothing to open
            return [optical, BlankRaster(self.height, self.width)], [optical]
        try:
            sar = BandStack(
                self.s1_slots, self.grid, SAR_RESAMPLING, "SAR", self.s1_nodata, _dtype(self.s1_slots)
            )
        except BaseException:
            optical.close()
            raise
        return [optical, sar], [optical, sar]

    def batch_reader(self, grid: WindowGrid, batch_size: int = 1, pin: bool = False) -> BatchReader:
        """Reader of batches; ``pin``: into page-locked memory, for fast asynchronous copies to a GPU."""
        sar_count = len(self.s1_slots) if self.sar is not None else BlankRaster.count
        return BatchReader(
            self.open_inputs,
            list(range(1, len(self.s2_slots) + 1)),
            list(range(1, sar_count + 1)),
            self.s2_nodata,
            self.s1_nodata,
            grid,
            batch_size,
            pinned if pin else None,
        )

    def report(self) -> InputReport:
        """What the inputs give, for the check against the model's input domain."""
        real = [s for s in self.s2_slots if isinstance(s, Band)]
        sar = self.sar
        return InputReport(
            self.optical.format,
            self.optical.level,
            tuple(sorted({s.offset for s in real})),
            self.band_names,
            tuple((s.name, s.value) for s in self.s2_slots if isinstance(s, Filled)),
            None if sar is None else sar.format,
            None if sar is None else sar.units,
            None if sar is None else sar.quantity,
        )

    def close(self) -> None:
        """Nothing stays open between runs: each reading thread opens and closes its own handles."""

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _dtype(slots: list[Band | Filled]) -> str:
    return common([s.dtype for s in slots if isinstance(s, Band)], "data type", "an input") or "float32"


def open_products(
    cloudy: str | os.PathLike, sar: str | os.PathLike | None, read: ReadOptions | None = None
) -> tuple[Product, Product | None]:
    """The cloudy Sentinel-2 and the Sentinel-1 product (None when ``sar`` is), read as ``read`` says."""
    read = read or ReadOptions()
    optical = open_product(cloudy, "cloudy", "S2", read)
    return optical, (open_product(sar, "SAR", "S1", read) if sar is not None else None)


def open_scene(
    cloudy: str | os.PathLike,
    sar: str | os.PathLike | None,
    *,
    read: ReadOptions | None = None,
    **settings,
) -> Scene:
    """Open the products ``cloudy`` and ``sar`` (None: a model without SAR input) and check them
    for a model (``settings``: those of :func:`check_scene`)."""
    read = read or ReadOptions()
    optical, radar = open_products(cloudy, sar, read)
    return check_scene(optical, radar, read=read, **settings)


def check_scene(
    optical: Product,
    radar: Product | None,
    *,
    input_nc: int,
    sar_nc: int,
    s2_bands: str | None = None,
    cloudy_nodata: str | float | None = None,
    sar_nodata: str | float | None = None,
    sar_scaling: str = "standard",
    s2_dn_offset: float = 0.0,
    read: ReadOptions | None = None,
    what: str = "the model",
) -> Scene:
    """Check a cloudy Sentinel-2 and a Sentinel-1 product for a model of ``input_nc`` optical and
    ``sar_nc`` SAR bands (``radar`` None and ``sar_nc`` 0: a model without SAR input).

    ``s2_bands`` names the model's bands ('all', 'rgb', names or numbers; None: unknown, taken by
    position); the nodata values default to the products' own ('none': no nodata value); ``read``:
    how products are read (offset, resampling, SAR units, the B10 fill); ``s2_dn_offset``: the
    offset the model's training digital numbers carried (added after the products' own are taken
    out); ``what``: the model in messages.
    """
    read = read or ReadOptions()
    model_names = tuple(S2_BANDS[i] for i in parse_bands(str(s2_bands))) if s2_bands else None
    s2_slots, names = _pick_optical(optical, input_nc, model_names, read.b10_fill, what)
    s1_slots = _pick_sar(radar, sar_nc, what) if radar is not None else []
    s2_nodata = parse_nodata(cloudy_nodata) if cloudy_nodata is not None else _nodata(s2_slots)
    if radar is None:
        s1_nodata = BlankRaster.nodata
    else:
        s1_nodata = parse_nodata(sar_nodata) if sar_nodata is not None else _nodata(s1_slots)
    notes = list(optical.notes) + (list(radar.notes) if radar is not None else [])
    grid = optical.grid
    for role, slots in (("cloudy", s2_slots), ("SAR", s1_slots)):
        for slot in slots:
            if isinstance(slot, Band) and not slot.grid.same(grid):
                check_overlap(grid, slot, role)
    warped = next((s for s in s1_slots if isinstance(s, Band) and not s.grid.same(grid)), None)
    if warped is not None:
        notes.append(
            f"note: the SAR image {radar.path} ({warped.grid.describe()}) is resampled onto the grid of "
            f"{optical.path} ({grid.describe()}) on the fly ({SAR_RESAMPLING})"
        )
    coarse = [s.name for s in s2_slots if isinstance(s, Band) and not s.grid.same(grid)]
    if coarse:
        notes.append(
            f"note: bands {', '.join(coarse)} are resampled onto the 10 m grid ({read.s2_resampling})"
        )
    real = [s if isinstance(s, Band) else None for s in s2_slots]
    scaling = InputScaling(
        str(sar_scaling or "standard"),
        tuple((s.offset + s2_dn_offset / s.gain) if s else s2_dn_offset for s in real),
        tuple(s.gain if s else 1.0 for s in real),
        radar.units if radar is not None else "dB",
    )
    scene = Scene(
        optical, radar, s2_slots, s1_slots, s2_nodata, s1_nodata, scaling, names, read.s2_resampling, notes
    )
    check_optical_values(scene, what)
    return scene


def _nodata(slots: list[Band | Filled]) -> float | None:
    return common([s.nodata for s in slots if isinstance(s, Band)], "nodata value", "an input")


def check_optical_values(scene: Scene, what: str) -> None:
    """Warn about an optical image of 8-bit values (a picture, not digital numbers), which would
    give the dark output of a mis-scaled input (read from the central window, at most SAMPLE^2)."""
    real = [i + 1 for i, s in enumerate(scene.s2_slots) if isinstance(s, Band)]
    if not real:
        return
    h, w = min(SAMPLE, scene.height), min(SAMPLE, scene.width)
    stack = scene.open_optical()
    try:
        raw = stack.read(real, Window((scene.width - w) // 2, (scene.height - h) // 2, w, h))
    finally:
        stack.close()
    ok = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
    if scene.s2_nodata is not None and not math.isnan(scene.s2_nodata):
        ok &= raw != scene.s2_nodata
    values = raw[ok]
    if values.size and float(values.max()) <= 255:
        scene.notes.append(
            f"warning: {scene.optical.path} holds values up to {float(values.max()):g} only: an 8-bit "
            f"picture, not Sentinel-2 digital numbers (reflectance x 10000) as {what} takes; its output will be dark"
        )


def _pick_optical(
    product: Product, input_nc: int, model_names: tuple[str, ...] | None, b10_fill: float, what: str
) -> tuple[list[Band | Filled], tuple[str, ...]]:
    """The product's bands the model takes, in its order, and their names."""
    n = len(product.bands)
    if product.positional or model_names is None:
        if n != input_nc:
            hint = ""
            if n == len(S2_BANDS):
                hint = " (give --s2_bands to choose them from a 13-band scene)"
            elif input_nc == len(S2_BANDS):
                hint = ": give all 13 bands of a Sentinel-2 Level-1C image, B1 to B12 in order"
            elif not product.positional:
                hint = f" (give --s2_bands to name the model's {input_nc} bands; {', '.join(product.bands)} are here)"
            raise UserError(f"{product.path} has {n} band(s) but {what} takes {input_nc}{hint}")
        slots = list(product.bands.values())
        return slots, tuple(model_names or product.band_names)
    if len(model_names) != input_nc:
        raise UserError(f"--s2_bands selects {len(model_names)} band(s) but {what} takes {input_nc}")
    return product.select(model_names, {"B10": b10_fill}), model_names


def _pick_sar(product: Product, sar_nc: int, what: str) -> list[Band | Filled]:
    n = len(product.bands)
    refusal = (
        f"{product.path} has {n} band(s) but {what} takes {sar_nc} SAR band(s) ({sar_bands_wanted(sar_nc)})"
    )
    if product.positional or sar_nc > len(S1_BANDS):
        if n != sar_nc:
            raise UserError(refusal)
        return list(product.bands.values())
    if n != sar_nc and not set(S1_BANDS[:sar_nc]) <= set(product.bands):
        raise UserError(refusal)
    return product.select(S1_BANDS[:sar_nc])
