"""A weight set as option values (what test.py and predict.py build its model and data with), and the
check that the data a run is given fits the weights."""

from __future__ import annotations

import argparse
from typing import Any

from data.sentinel import S2_BANDS
from util.errors import UserError

from .base import WeightSet
from .domain import PNG_DATASETS

BAND_COUNTS = ("input_nc", "output_nc", "sar_nc")


def option_values(ws: WeightSet) -> dict[str, Any]:
    """Options for running ``ws``: its model and architecture, and for Sentinel weights the
    SEN12MS-CR data settings of its domain (bands, SAR clip; band counts then follow the data)."""
    values: dict[str, Any] = {"model": ws.model, "weights": str(ws.path), "name": ws.name, **ws.settings}
    d = ws.domain
    if d is not None and d.scaling == "unit" and d.band_indexes is not None:
        values = {k: v for k, v in values.items() if k not in BAND_COUNTS}
        bands = "all" if d.bands == S2_BANDS else ",".join(d.bands)
        values.update(dataset_mode="sen12mscr", s2_bands=bands, sar_scaling=d.sar_scaling)
    return values


def check_weight_options(ws: WeightSet, opt: argparse.Namespace) -> None:
    """Refuse data options that do not fit ``ws`` (one line naming the file, what it is, what to do)."""
    d = ws.domain
    what = f"{ws.path} ({ws.description})"
    if d is not None and d.scaling == "unit" and opt.dataset_mode in PNG_DATASETS:
        raise UserError(
            f"{what} takes Sentinel-2 digital numbers ({d.describe()}), but --dataset_mode {opt.dataset_mode} "
            "gives 8-bit PNGs: use --dataset_mode sen12mscr with a SEN12MS-CR folder"
        )
    for key in BAND_COUNTS:
        want = ws.settings.get(key)
        if key == "sar_nc" and ws.settings.get("dsen2cr_no_sar"):
            continue
        if want is not None and int(getattr(opt, key)) != int(want):
            hint = (
                f"drop --s2_bands (the weights take {', '.join(d.bands)})"
                if d is not None and key != "sar_nc"
                else f"give data with {want} band(s)"
            )
            raise UserError(
                f"{what} takes {want} band(s) as --{key}, but the data gives {getattr(opt, key)}: {hint}"
            )
