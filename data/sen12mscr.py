"""The native SEN12MS-CR tree: layout, official split, triplet listing and checked reading.

Layout (Ebel et al., TGRS 2020; 256 x 256 patches)::

    ROOT/ROIs1158_spring_s1/s1_106/ROIs1158_spring_s1_106_p30.tif                S1, float32 dB, VV and VH
    ROOT/ROIs1158_spring_s2/s2_106/ROIs1158_spring_s2_106_p30.tif                S2 cloud-free, uint16, 13 bands
    ROOT/ROIs1158_spring_s2_cloudy/s2_cloudy_106/ROIs1158_spring_s2_cloudy_106_p30.tif   S2 cloudy

Split by scene: the official test scenes, the validation scenes that UnCRtainTS
holds out, everything else train. Scene numbers are compared as exact strings (``s1_1`` is not
``s1_106``). Other split schemes (UnCRtainTS' own): :mod:`data.sen12mscr_splits`. Shared by ``--dataset_mode sen12mscr`` and ``scripts/convert_sen12mscr.py``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from util.errors import UserError
from util.geotiff import GeoInfo, read_geotiff, same_crs, same_transform

from .sen12mscr_splits import SPLIT_SCHEMES, in_uncrtaints_split
from .sentinel import S1_BANDS, S2_BANDS, s1_to_unit, s2_to_unit

SEASONS = ("ROIs1158_spring", "ROIs1868_summer", "ROIs1970_fall", "ROIs2017_winter")
SPLITS = ("train", "val", "test")
TEST_SCENES = {
    "ROIs1158_spring": ("106", "123", "140", "31", "44"),
    "ROIs1868_summer": ("119", "73"),
    "ROIs1970_fall": ("139",),
    "ROIs2017_winter": ("108", "63"),
}
VAL_SCENES = {
    "ROIs2017_winter": ("22", "107", "130", "84"),
    "ROIs1868_summer": ("19", "80", "127", "17"),
    "ROIs1970_fall": ("65",),
    "ROIs1158_spring": ("17",),
}
# Modality -> (season folder suffix, scene folder prefix, file infix).
MODALITIES = {
    "s1": ("_s1", "s1_", "_s1_"),
    "s2": ("_s2", "s2_", "_s2_"),
    "s2_cloudy": ("_s2_cloudy", "s2_cloudy_", "_s2_cloudy_"),
}
_SCENE_DIR = {m: re.compile(rf"^{re.escape(p)}(\d+)$") for m, (_, p, _) in MODALITIES.items()}
_PATCH = re.compile(r"_p(\d+)\.tif$")


def split_of(season: str, scene: str) -> str:
    """'test', 'val' or 'train' for a season (e.g. ``ROIs1158_spring``) and a scene number string."""
    if scene in TEST_SCENES.get(season, ()):
        return "test"
    if scene in VAL_SCENES.get(season, ()):
        return "val"
    return "train"


def in_split(season: str, scene: str, split: str, scheme: str = "official") -> bool:
    """Whether a scene belongs to ``split`` under the split ``scheme`` (see :mod:`data.sen12mscr_splits`)."""
    if scheme == "official":
        return split_of(season, scene) == split
    if scheme not in SPLIT_SCHEMES:
        raise UserError(f"--split_scheme {scheme!r}: choose one of {', '.join(SPLIT_SCHEMES)}")
    return in_uncrtaints_split(season, scene, split, as_loader=scheme == "uncrtaints_loader")


def parse_seasons(spec: str) -> tuple[str, ...] | None:
    """A comma list of seasons (``spring`` or ``ROIs1158_spring``) -> full season names; ``'all'`` -> None."""
    if spec.strip().lower() == "all":
        return None
    out = []
    for part in spec.split(","):
        key = part.strip().lower()
        match = [s for s in SEASONS if key in (s.lower(), s.split("_")[1])]
        if not match:
            raise UserError(
                f"unknown season {part.strip()!r} in --seasons {spec!r}; use 'all' or a comma list "
                f"of spring, summer, fall, winter (or {', '.join(SEASONS)})"
            )
        if match[0] not in out:
            out.append(match[0])
    return tuple(out)


@dataclass(frozen=True)
class Triplet:
    """One patch: its season, scene and patch numbers (strings) and its three files."""

    season: str
    scene: str
    patch: str
    s1: Path
    s2: Path
    s2_cloudy: Path

    @property
    def stem(self) -> str:
        """E.g. ``ROIs1158_spring_106_p30``."""
        return f"{self.season}_{self.scene}_p{self.patch}"


def expected_path(root: Path, modality: str, season: str, scene: str, patch: str) -> Path:
    suffix, prefix, infix = MODALITIES[modality]
    return root / f"{season}{suffix}" / f"{prefix}{scene}" / f"{season}{infix}{scene}_p{patch}.tif"


def _scenes(root: Path, season: str, modality: str) -> dict[str, Path]:
    folder = root / f"{season}{MODALITIES[modality][0]}"
    if not folder.is_dir():
        return {}
    out = {}
    for entry in os.scandir(folder):
        m = _SCENE_DIR[modality].match(entry.name)
        if m and entry.is_dir():
            out[m.group(1)] = Path(entry.path)
    return out


def _patches(folder: Path | None, season: str, modality: str, scene: str) -> set[str]:
    if folder is None:
        return set()
    prefix = f"{season}{MODALITIES[modality][2]}{scene}_p"
    return {
        m.group(1)
        for name in os.listdir(folder)
        if name.startswith(prefix) and (m := _PATCH.search(name)) and name == f"{prefix}{m.group(1)}.tif"
    }


def list_triplets(
    root: str | os.PathLike,
    split: str,
    seasons: tuple[str, ...] | None = None,
    *,
    skip_incomplete: bool = False,
    option: str = "--dataroot",
    scheme: str = "official",
) -> list[Triplet]:
    """The complete triplets of ``split`` under ``root``, sorted by season, scene and patch number.

    ``seasons``: those to read (each must be present); None: every season present. ``option``
    names the root in error messages; ``scheme``: the split scheme (:func:`in_split`).

    A patch that lacks one of its three files raises a ``UserError`` listing a few, unless
    ``skip_incomplete``, which leaves them out and prints how many.
    """
    root = Path(root)
    if split not in SPLITS:
        raise UserError(f"--phase {split!r} has no SEN12MS-CR split; use one of {', '.join(SPLITS)}")
    if not root.is_dir():
        raise UserError(f"{option} {root} does not exist")
    present = [s for s in SEASONS if any((root / f"{s}{MODALITIES[m][0]}").is_dir() for m in MODALITIES)]
    if not present:
        raise UserError(
            f"{option} {root} is not a SEN12MS-CR tree: no ROIs*_s1, ROIs*_s2 or ROIs*_s2_cloudy "
            f"folders (expected e.g. {root}/ROIs1158_spring_s1/s1_106/ROIs1158_spring_s1_106_p30.tif)"
        )
    seasons = tuple(present) if seasons is None else seasons
    absent = [s for s in seasons if s not in present]
    if absent:
        raise UserError(f"{option} {root} holds no season {', '.join(absent)} (it has {', '.join(present)})")
    found: list[Triplet] = []
    gaps: list[str] = []
    for season in seasons:
        scene_dirs = {m: _scenes(root, season, m) for m in MODALITIES}
        scenes = sorted(set().union(*scene_dirs.values()), key=int)
        for scene in (s for s in scenes if in_split(season, s, split, scheme)):
            patches = {m: _patches(scene_dirs[m].get(scene), season, m, scene) for m in MODALITIES}
            for patch in sorted(set().union(*patches.values()), key=int):
                paths = {m: expected_path(root, m, season, scene, patch) for m in MODALITIES}
                lacking = [m for m in MODALITIES if patch not in patches[m]]
                if lacking:
                    gaps.append(
                        f"{season}_{scene}_p{patch} lacks {' and '.join(str(paths[m]) for m in lacking)}"
                    )
                else:
                    found.append(Triplet(season, scene, patch, paths["s1"], paths["s2"], paths["s2_cloudy"]))
    if gaps:
        examples = "; ".join(gaps[:3]) + ("; ..." if len(gaps) > 3 else "")
        if not skip_incomplete:
            raise UserError(
                f"{len(gaps)} {split} patch(es) under {root} lack a partner ({examples}); "
                "add --skip_incomplete to leave them out"
            )
        print(f"--skip_incomplete: left out {len(gaps)} incomplete {split} patch(es) ({examples})")
    if not found:
        scheme_note = "" if scheme == "official" else f" under --split_scheme {scheme}"
        raise UserError(
            f"{option} {root} holds no complete {split} triplets for seasons {', '.join(seasons)}{scheme_note}"
        )
    return found


def _check(path: Path, info: GeoInfo, what: str, bands: int, kinds: str, ref: GeoInfo | None) -> None:
    """One-line UserError naming ``path`` when its header is not what a SEN12MS-CR file of ``what`` has."""
    if info.count != bands:
        raise UserError(f"{path} has {info.count} band(s); a SEN12MS-CR {what} file has {bands}")
    if np.dtype(info.dtype).kind not in kinds:
        want = "floating point (dB)" if kinds == "f" else "unsigned integers (uint16 DN)"
        raise UserError(f"{path} holds {info.dtype} data; a SEN12MS-CR {what} file holds {want}")
    if ref is None:
        return
    if (info.width, info.height) != (ref.width, ref.height):
        raise UserError(
            f"{path} is {info.width}x{info.height} px but its cloud-free S2 partner is "
            f"{ref.width}x{ref.height}"
        )
    if not same_crs(info.crs, ref.crs) or not same_transform(info.transform, ref.transform):
        raise UserError(
            f"{path} is not georeferenced like its cloud-free S2 partner (CRS or transform differ)"
        )


def _missing(arr: np.ndarray, nodata: float | None) -> np.ndarray:
    """Mask of NaN, infinite and no-data values."""
    bad = ~np.isfinite(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, dtype=bool)
    if nodata is not None and np.isfinite(nodata):
        bad |= arr == nodata
    return bad


def read_triplet(t: Triplet, bands: tuple[int, ...], sar_scaling: str = "standard") -> dict:
    """Read, check and scale one triplet.

    Returns ``{"A": cloudy, "B": cloud-free}`` reflectance ``(len(bands), H, W)`` float32 in [0, 1],
    ``"C"``: SAR ``(2, H, W)`` float32 in [0, 1] (``sar_scaling`` clip), ``"nonfinite"``: how many
    NaN / infinite / no-data values were replaced by 0 after scaling, and ``"info"``: the
    cloud-free file's :class:`GeoInfo` (the triplet's georeference).
    """
    s2, ref = read_geotiff(t.s2)
    _check(t.s2, ref, "S2", len(S2_BANDS), "u", None)
    s2c, info_c = read_geotiff(t.s2_cloudy)
    _check(t.s2_cloudy, info_c, "S2 cloudy", len(S2_BANDS), "u", ref)
    s1, info_1 = read_geotiff(t.s1)
    _check(t.s1, info_1, "S1", len(S1_BANDS), "f", ref)
    out: dict = {"info": ref, "nonfinite": 0}
    index = list(bands)
    for key, raw, nodata in (
        ("A", s2c[index], info_c.nodata),
        ("B", s2[index], ref.nodata),
        ("C", s1, info_1.nodata),
    ):
        bad = _missing(raw, nodata)
        unit = s1_to_unit(raw, sar_scaling) if key == "C" else s2_to_unit(raw)
        if bad.any():
            unit[bad] = 0.0
            out["nonfinite"] += int(bad.sum())
        out[key] = unit
    return out
