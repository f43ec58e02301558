"""Native SEN12MS-CR GeoTIFFs (``--dataset_mode sen12mscr``): cloudy S2, cloud-free S2 and S1 triplets.

``--dataroot`` is the root of the original tree (see :mod:`data.sen12mscr`); ``--phase``
``train|val|test`` picks the scenes of the official split, or of UnCRtainTS' with
``--split_scheme uncrtaints`` (``uncrtaints_loader``: as its loader selects them; see
:mod:`data.sen12mscr_splits`). Preprocessing is the field standard
(:mod:`data.sentinel`): S2 DN clipped to [0, 10000] / 10000, S1 dB clipped per ``--sar_scaling``
and mapped to [0, 1]; then [0, 1] -> [-1, 1].

Options: ``--s2_bands all|rgb|B2,B3,...`` (also sets ``--input_nc``/``--output_nc`` to the band
count; ``--sar_nc`` becomes 2), ``--sar_scaling standard|dsen2cr``, ``--seasons spring,winter``,
``--skip_incomplete``. The default ``--preprocess`` is ``crop``: a random ``--crop_size`` crop
(and flip, unless ``--no_flip``) in training, the centre crop in testing; one draw per sample,
applied to all three images. With the default crop of 256 the whole patch is used.

Each item: 'A' (cloudy, selected bands), 'B' (cloud-free, selected bands), 'C' (S1 VV, VH):
float32 tensors in [-1, 1]; 'A_paths', 'B_paths', 'C_paths', 'stem' (``ROIs1158_spring_106_p30``);
'crs' (WKT string) and 'transform' (float64 tensor of the 6 affine coefficients
``(a, b, c, d, e, f)``, adjusted to the crop, resize and flip), so the default collate gives a list
of strings and a (batch, 6) tensor; 'nonfinite': how many NaN / no-data values were replaced by 0.

Previews (:meth:`SEN12MSCRDataset.preview`): optical visuals in natural colour (B4, B3, B2,
reflectance [0, 0.3] -> 0..255) found among the SELECTED bands; when B4, B3 and B2 are not all
selected, the first three selected bands (or, with fewer than three, the first band as grey),
with the same stretch. SAR (``real_C``) in false colour: VV, VH, mean.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from util.errors import UserError
from util.geotiff import window_transform, write_geotiff
from util.util import to_unit

from .base_dataset import BaseDataset
from .sen12mscr import list_triplets, parse_seasons, read_triplet
from .sen12mscr_splits import SPLIT_SCHEMES
from .sentinel import S1_BANDS, S1_CLIP, S2_BANDS, S2_RGB, parse_bands, s1_preview, s2_preview


def finalize_options(opt: argparse.Namespace) -> None:
    """Derive ``--input_nc``/``--output_nc`` from ``--s2_bands`` and ``--sar_nc`` (2), or refuse a contradiction."""
    n = len(parse_bands(opt.s2_bands))
    for key, want, why in (
        ("input_nc", n, f"--s2_bands {opt.s2_bands}"),
        ("output_nc", n, f"--s2_bands {opt.s2_bands}"),
        ("sar_nc", len(S1_BANDS), "Sentinel-1 (VV, VH)"),
    ):
        value = getattr(opt, key, None)
        if value is None:
            setattr(opt, key, want)
        elif int(value) != want:
            raise UserError(
                f"--{key} {value} contradicts {why}, which gives {want} band(s); "
                f"leave --{key} out with --dataset_mode sen12mscr (it follows the data)"
            )
    if opt.sar_scaling not in S1_CLIP:
        raise UserError(f"--sar_scaling {opt.sar_scaling!r}: choose one of {', '.join(S1_CLIP)}")
    parse_seasons(opt.seasons)


def rgb_positions(bands: tuple[int, ...]) -> tuple[int, int, int] | None:
    """Positions of B4, B3, B2 within the selected bands, or None if any of them is not selected."""
    if all(b in bands for b in S2_RGB):
        return tuple(bands.index(b) for b in S2_RGB)  # type: ignore[return-value]
    return None


class SEN12MSCRDataset(BaseDataset):
    """Cloudy / cloud-free Sentinel-2 and Sentinel-1 triplets from the native SEN12MS-CR tree."""

    finalize_options = staticmethod(finalize_options)

    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        g = parser.add_argument_group("SEN12MS-CR (--dataset_mode sen12mscr; --phase train|val|test)")
        g.add_argument(
            "--s2_bands",
            default="all",
            help="Sentinel-2 bands of A and B: 'all' (13), 'rgb' (B4,B3,B2) or a comma list of names "
            "(B1..B12, B8A) or 1-based numbers; --input_nc/--output_nc follow (leave them out)",
        )
        g.add_argument(
            "--sar_scaling",
            default="standard",
            choices=tuple(S1_CLIP),
            help="S1 dB clip before mapping to [0, 1]: 'standard' VV and VH in [-25, 0]; "
            "'dsen2cr' VH in [-32.5, 0]",
        )
        g.add_argument(
            "--seasons",
            default="all",
            help="'all' or a comma list of spring, summer, fall, winter (e.g. spring,winter)",
        )
        g.add_argument(
            "--split_scheme",
            default="official",
            choices=SPLIT_SCHEMES,
            help="scenes of each --phase: 'official' (the official test scenes, UnCRtainTS' validation "
            "scenes, the rest train), 'uncrtaints' (UnCRtainTS' SEN12MS-CR-TS-based lists, scenes taken "
            "exactly), 'uncrtaints_loader' (those lists as its loader applies them: a listed number also "
            "selects the scenes it is a prefix of, so train overlaps val and test)",
        )
        g.add_argument(
            "--skip_incomplete",
            action="store_true",
            help="leave out patches that lack a partner file (printing how many) instead of stopping",
        )
        # None: set from the band choice by finalize_options; --preprocess crop: no resampling of the data.
        parser.set_defaults(input_nc=None, output_nc=None, sar_nc=None, preprocess="crop")
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.bands = parse_bands(opt.s2_bands)
        self.band_names = tuple(S2_BANDS[b] for b in self.bands)
        self.rgb_bands = rgb_positions(self.bands)  # for the 'field_rgb' metrics; None if not all selected
        if self.rgb_bands is not None:
            self.preview_bands: tuple[int, int, int] = self.rgb_bands
        elif len(self.bands) >= 3:
            self.preview_bands = (0, 1, 2)
        else:
            self.preview_bands = (0, 0, 0)
        triplets = list_triplets(
            opt.dataroot,
            opt.phase,
            parse_seasons(opt.seasons),
            skip_incomplete=opt.skip_incomplete,
            scheme=getattr(opt, "split_scheme", "official"),
        )
        self.triplets = triplets[: int(min(opt.max_dataset_size, len(triplets)))]

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, index: int) -> dict:
        opt = self.opt
        t = self.triplets[index]
        data = read_triplet(t, self.bands, opt.sar_scaling)
        info = data["info"]
        w, h = info.width, info.height
        params = self.transform.draw((w, h), t.s2)
        tw, th = params["size"]
        x, y = params["crop"] if params["crop"] is not None else (0, 0)
        side = opt.crop_size if params["crop"] is not None else tw
        transform = window_transform(
            info.transform, scale=(w / tw, h / th), offset=(x, y), flip_width=side if params["flip"] else None
        )
        item: dict = {
            key: torch.from_numpy(self.transform.apply_array(data[key], params) * 2.0 - 1.0)
            for key in ("A", "B", "C")
        }
        item.update(
            {
                "A_paths": str(t.s2_cloudy),
                "B_paths": str(t.s2),
                "C_paths": str(t.s1),
                "stem": t.stem,
                "crs": info.crs,
                "transform": torch.tensor(transform, dtype=torch.float64),
                "nonfinite": data["nonfinite"],
            }
        )
        return item

    # ------------------------------------------------------------------ outputs
    def preview(self, name: str, tensor: torch.Tensor, kind: str | None = None) -> np.ndarray | None:
        """(H, W, 3) uint8 preview of a visual (first of the batch); None: not ours, use the default.

        ``kind`` 'sar' or 'optical' (from the model's roles); None: the batch convention, where
        ``real_C`` is the SAR input."""
        unit = to_unit(tensor)
        sar = (name == "real_C") if kind is None else kind == "sar"
        if sar and unit.shape[0] == len(S1_BANDS):
            return s1_preview(unit)
        if unit.shape[0] == len(self.bands):
            return s2_preview(unit, self.preview_bands)
        return None

    def write_output(
        self, folder: Path, stem: str, name: str, tensor: torch.Tensor, batch: dict, i: int
    ) -> Path:
        """Write a visual (first of ``tensor``) as ``<stem>_<name>.tif``: float32 reflectance with the
        georeference of sample ``i``."""
        path = Path(folder) / f"{stem}_{name}.tif"
        write_geotiff(
            path,
            to_unit(tensor).astype(np.float32),
            batch["crs"][i],
            [float(v) for v in batch["transform"][i]],
            band_names=self.band_names,
        )
        return path
