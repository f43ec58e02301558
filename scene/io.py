"""A scene's inputs: the cloudy Sentinel-2 and the Sentinel-1 product, checked to fit each other and
the model, with the bands to read and how to scale them (:class:`Scene`).

The inputs are read through :mod:`scene.products` (a stacked GeoTIFF, a SAFE product, a STAC
item: the scene does not know which); their bands are picked by name in the model's order, and
every band is read on the optical product's 10 m grid (20/60 m bands and a SAR product on another
grid resampled on the fly). Windows are read from a scene in batches by :class:`scene.reader.BatchReader`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from data.sentinel import S1_BANDS, S2_BANDS, parse_bands
from scene.products import BandStack, Filled, Grid, Product, ReadOptions, open_product
from scene.products.base import Band, check_overlap, common
from scene.products.domain import InputReport
from scene.reader import BatchReader, pinned
from scene.scaling import InputScaling
from scene.windows import WindowGrid
from util.errors import UserError

SAR_RESAMPLING = "bilinear"  # the SAR onto the optical grid, as before products had readers


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
    """The two products, the bands to read from each (in the model's order) and how to scale them."""

    optical: Product
    sar: Product
    s2_slots: list[Band | Filled]
    s1_slots: list[Band | Filled]
    s2_nodata: float | None
    s1_nodata: float | None
    scaling: InputScaling
    band_names: tuple[str, ...]
    s2_resampling: str = "nearest"
    notes: list[str] = field(default_factory=list)

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

    def open_inputs(self) -> tuple[list, list]:
        """New readers of the two inputs on the optical grid, and the handles to close."""
        optical = BandStack(
            self.s2_slots, self.grid, self.s2_resampling, "cloudy", self.s2_nodata, _dtype(self.s2_slots)
        )
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
        return BatchReader(
            self.open_inputs,
            list(range(1, len(self.s2_slots) + 1)),
            list(range(1, len(self.s1_slots) + 1)),
            self.s2_nodata,
            self.s1_nodata,
            grid,
            batch_size,
            pinned if pin else None,
        )

    def report(self) -> InputReport:
        """What the inputs give, for the check against the model's input domain."""
        real = [s for s in self.s2_slots if isinstance(s, Band)]
        return InputReport(
            self.optical.format,
            self.optical.level,
            tuple(sorted({s.offset for s in real})),
            self.band_names,
            tuple((s.name, s.value) for s in self.s2_slots if isinstance(s, Filled)),
            self.sar.format,
            self.sar.units,
            self.sar.quantity,
        )

    def close(self) -> None:
        """Nothing stays open between runs: each reading thread opens and closes its own handles."""

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _dtype(slots: list[Band | Filled]) -> str:
    return common([s.dtype for s in slots if isinstance(s, Band)], "data type", "an input") or "float32"


def open_scene(
    cloudy: str | os.PathLike,
    sar: str | os.PathLike,
    *,
    input_nc: int,
    sar_nc: int,
    s2_bands: str | None = None,
    cloudy_nodata: str | float | None = None,
    sar_nodata: str | float | None = None,
    sar_scaling: str = "standard",
    read: ReadOptions | None = None,
) -> Scene:
    """Open and check a cloudy Sentinel-2 and a Sentinel-1 product for a model of ``input_nc``
    optical and ``sar_nc`` SAR bands.

    ``s2_bands`` names the model's bands ('all', 'rgb', names or numbers; None: unknown, taken by
    position); the nodata values default to the products' own ('none': no nodata value); ``read``:
    how products are read (offset, resampling, SAR units, the B10 fill).
    """
    read = read or ReadOptions()
    optical = open_product(cloudy, "cloudy", "S2", read)
    radar = open_product(sar, "SAR", "S1", read)
    model_names = tuple(S2_BANDS[i] for i in parse_bands(str(s2_bands))) if s2_bands else None
    s2_slots, names = _pick_optical(optical, input_nc, model_names, read.b10_fill)
    s1_slots = _pick_sar(radar, sar_nc)
    s2_nodata = parse_nodata(cloudy_nodata) if cloudy_nodata is not None else _nodata(s2_slots)
    s1_nodata = parse_nodata(sar_nodata) if sar_nodata is not None else _nodata(s1_slots)
    notes = list(optical.notes) + list(radar.notes)
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
        tuple(s.offset if s else 0.0 for s in real),
        tuple(s.gain if s else 1.0 for s in real),
        radar.units,
    )
    return Scene(
        optical, radar, s2_slots, s1_slots, s2_nodata, s1_nodata, scaling, names, read.s2_resampling, notes
    )


def _nodata(slots: list[Band | Filled]) -> float | None:
    return common([s.nodata for s in slots if isinstance(s, Band)], "nodata value", "an input")


def _pick_optical(
    product: Product, input_nc: int, model_names: tuple[str, ...] | None, b10_fill: float
) -> tuple[list[Band | Filled], tuple[str, ...]]:
    """The product's bands the model takes, in its order, and their names."""
    n = len(product.bands)
    if product.positional or model_names is None:
        if n != input_nc:
            hint = ""
            if n == len(S2_BANDS):
                hint = " (give --s2_bands to choose them from a 13-band scene)"
            elif not product.positional:
                hint = f" (give --s2_bands to name the model's {input_nc} bands; {', '.join(product.bands)} are here)"
            raise UserError(f"{product.path} has {n} band(s) but the model takes {input_nc}{hint}")
        slots = list(product.bands.values())
        return slots, tuple(model_names or product.band_names)
    if len(model_names) != input_nc:
        raise UserError(f"--s2_bands selects {len(model_names)} band(s) but the model takes {input_nc}")
    return product.select(model_names, {"B10": b10_fill}), model_names


def _pick_sar(product: Product, sar_nc: int) -> list[Band | Filled]:
    n = len(product.bands)
    if product.positional or sar_nc > len(S1_BANDS):
        if n != sar_nc:
            raise UserError(f"{product.path} has {n} band(s) but the model takes {sar_nc} SAR band(s)")
        return list(product.bands.values())
    if n != sar_nc and not set(S1_BANDS[:sar_nc]) <= set(product.bands):
        raise UserError(f"{product.path} has {n} band(s) but the model takes {sar_nc} SAR band(s)")
    return product.select(S1_BANDS[:sar_nc])
