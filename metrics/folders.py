"""Scoring two folders of outputs and ground truth paired by file stem (the library behind
`scripts/evaluate.py`, which replaces the official ``metrics.py``: that one paired by sorted listdir).

RGB images are scored under the paper and the field protocol; multiband rasters (13-band GeoTIFF or
``.npy``, see `metrics.readers`) under the field protocol over all bands, plus ``field_rgb`` on B4, B3,
B2 when a raster has the 13 Sentinel-2 bands, so the outputs of any method are scored exactly as ours.
With the cloudy inputs (``input_dir``), each image's cloud mask (`metrics.cloud_masks`, the detector
``detector``) gives its cloud coverage and every protocol's metrics over its cloudy and its clear
pixels (`metrics.coverage`), summarised per coverage bin, exactly as ``test.py`` does. With a folder
of predicted variances (``var_dir``: one ``.npy`` or GeoTIFF per output, see
`metrics.uncertainty.read_variance`), each output also gets the 'uncertainty' statistics and the
table UnCRtainTS' calibration scores.
Every problem (missing or empty folder, folders that do not pair up, unreadable file, size or band-count
mismatch, an image paired with a raster) raises a one-line `UserError`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from metrics.cloud_masks import CloudMasker, MissingDependency
from metrics.coverage import DEFAULT_BINS, measure_split
from metrics.protocols import field_metrics, paper_metrics, to_unit_chw
from metrics.readers import (
    IMAGE_EXTENSIONS,
    KINDS,
    RASTER_EXTENSIONS,
    file_kind,
    read_image,
    read_reflectance,
    to_uint8,
)
from metrics.table import MetricsTable
from metrics.uncertainty import PROTOCOL as UNCERTAINTY
from metrics.uncertainty import read_variance, uncertainty_metrics
from util.errors import UserError

__all__ = ["FORMATS", "PROTOCOLS", "check_pairing", "collect_files", "evaluate_folders"]

FORMATS = ("auto", *KINDS)
PROTOCOLS = ("auto", "paper", "field", "both")


def _extensions(fmt: str) -> frozenset[str]:
    return {"image": IMAGE_EXTENSIONS, "multiband": RASTER_EXTENSIONS}.get(
        fmt, IMAGE_EXTENSIONS | RASTER_EXTENSIONS
    )


def collect_files(folder: str | os.PathLike, suffix: str, flag: str, fmt: str = "auto") -> dict[str, Path]:
    """Map stem (``suffix`` stripped) -> path for the files of format ``fmt`` directly in ``folder``.

    Hidden files and other extensions are ignored; with a ``suffix`` only stems ending with it count.
    """
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"{flag} folder not found: {folder}")
    if not folder.is_dir():
        raise UserError(f"{flag} is not a folder: {folder}")
    extensions = _extensions(fmt)
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in extensions or not path.is_file():
            continue
        stem = path.stem
        if suffix:
            if not stem.endswith(suffix) or stem == suffix:
                continue
            stem = stem[: -len(suffix)]
        if stem in found:
            raise UserError(f"{flag}: stem '{stem}' matches several files: {found[stem].name}, {path.name}")
        found[stem] = path
    if not found:
        which = f" whose name ends with '{suffix}'" if suffix else ""
        raise UserError(f"no images{which} in {flag} folder {folder}")
    return found


def _examples(stems: list[str]) -> str:
    shown = ", ".join(stems[:5])
    return shown + (", ..." if len(stems) > 5 else "")


def check_pairing(a: dict[str, Path], b: dict[str, Path], name_a: str, name_b: str) -> list[str]:
    """Sorted common stems; raises `UserError` if the two sets of stems differ."""
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} of {len(a)} {name_a} stems have no {name_b} ({_examples(only_a)})")
        if only_b:
            parts.append(f"{len(only_b)} of {len(b)} {name_b} stems have no {name_a} ({_examples(only_b)})")
        hint = " (hint: --pred_suffix/--gt_suffix strip name suffixes)" if not set(a) & set(b) else ""
        raise UserError(f"folders do not pair up by stem: {'; '.join(parts)}{hint}")
    return sorted(a)


def _load(path: Path, fmt: str) -> tuple[str, np.ndarray]:
    """(kind, array): ``(H, W, 3)`` uint8/uint16 for images, ``(C, H, W)`` float64 for rasters."""
    kind = file_kind(path) if fmt == "auto" else fmt
    if kind == "multiband":
        return kind, read_reflectance(path)
    try:
        return kind, read_image(path)
    except Exception as e:  # any decoding failure means "unreadable"
        raise UserError(f"cannot read image {path}: {e}") from None


def _describe(kind: str, arr: np.ndarray) -> str:
    if kind == "image":
        return f"an image of {arr.shape[1]}x{arr.shape[0]}"
    return f"a {arr.shape[0]}-band raster of {arr.shape[2]}x{arr.shape[1]}"


def _check_match(
    stem: str, path: Path, kind: str, arr: np.ndarray, ref_path: Path, ref_kind: str, ref: np.ndarray
) -> None:
    if kind != ref_kind:
        raise UserError(
            f"stem '{stem}': {path} is {_describe(kind, arr)} but {ref_path} is {_describe(ref_kind, ref)}; "
            "pair images with images and rasters with rasters (or set --format)"
        )
    if kind == "multiband" and arr.shape[0] != ref.shape[0]:
        raise UserError(
            f"band-count mismatch for stem '{stem}': {path} has {arr.shape[0]} bands, "
            f"{ref_path} has {ref.shape[0]}; score outputs with all the ground truth's bands"
        )
    size, ref_size = (arr.shape[:2], ref.shape[:2]) if kind == "image" else (arr.shape[1:], ref.shape[1:])
    if size != ref_size:
        raise UserError(
            f"size mismatch for stem '{stem}': {path} is {size[1]}x{size[0]}, "
            f"{ref_path} is {ref_size[1]}x{ref_size[0]} (width x height)"
        )


def _score(
    table: MetricsTable,
    stem: str,
    name: str,
    kind: str,
    img: np.ndarray,
    ref: np.ndarray,
    protocol: str,
    path: Path,
    mask: np.ndarray | None = None,
) -> None:
    """Add one comparison's metrics: paper + field for images, field (+ field_rgb) for rasters;
    with a cloud ``mask``, paper and field over the cloudy and over the clear pixels too."""

    def add(protocol_name: str, metric, pred: np.ndarray, gt: np.ndarray) -> None:
        table.add(stem, name, protocol_name, metric(pred, gt))
        if mask is not None:
            measure_split(table, stem, name, protocol_name, metric, pred, gt, mask)

    try:
        if kind == "image":
            if protocol in ("auto", "both", "paper"):
                add("paper", paper_metrics, to_uint8(img), to_uint8(ref))
            if protocol in ("auto", "both", "field"):
                add("field", field_metrics, to_unit_chw(img), to_unit_chw(ref))
            return
        if protocol in ("paper", "both"):
            raise UserError(
                f"--protocol {protocol}: the paper protocol needs 8-bit RGB images and {path} is a "
                f"{img.shape[0]}-band raster; use --protocol field (or auto)"
            )
        add("field", field_metrics, img, ref)
        from data.sentinel import S2_BANDS, S2_RGB  # B4, B3, B2 among the 13 bands

        if img.shape[0] == len(S2_BANDS):
            rgb = list(S2_RGB)
            table.add(stem, name, "field_rgb", field_metrics(img[rgb], ref[rgb]))
    except ValueError as e:
        raise UserError(f"cannot compute metrics for {path}: {e}") from None


def _cloud_mask(
    masks: dict, detector: str, kind: str, img: np.ndarray, path: Path
) -> tuple[np.ndarray | None, str]:
    """The cloud mask of one cloudy input and the detector that made it (None, "none": the detector
    resolves to none for such data)."""
    from data.sentinel import S2_BANDS

    unit = to_unit_chw(img) if kind == "image" else img
    key = (kind, unit.shape[0])
    if key not in masks:
        names = None if kind == "image" else (S2_BANDS if unit.shape[0] == len(S2_BANDS) else None)
        try:
            masks[key] = CloudMasker(detector, names, unit.shape[0])
        except (MissingDependency, ValueError) as err:
            raise UserError(f"--cloud_detector {detector} on {path}: {err}") from None
    masker = masks[key]
    return (masker(unit) if masker.active else None), masker.name


def evaluate_folders(
    pred: str | os.PathLike,
    gt: str | os.PathLike,
    *,
    input_dir: str | os.PathLike | None = None,
    pred_suffix: str = "",
    gt_suffix: str = "",
    input_suffix: str = "",
    protocol: str = "auto",
    fmt: str = "auto",
    detector: str = "auto",
    bins: tuple[float, ...] = DEFAULT_BINS,
    var_dir: str | os.PathLike | None = None,
    var_suffix: str = "",
) -> MetricsTable:
    """Score every output in ``pred`` (and cloudy input in ``input_dir``) against ``gt``, paired by stem.

    ``protocol``: ``auto`` (paper + field for images, field (+ field_rgb) for rasters), ``paper``,
    ``field`` or ``both``. ``fmt``: ``auto`` (per file, see `metrics.readers.file_kind`), ``image``
    or ``multiband``. ``detector``: the cloud detector run on the cloudy inputs (``none``: no cloud
    masks); ``bins``: coverage-bin edges in percent; ``var_dir`` / ``var_suffix``: the outputs' predicted
    variances, paired by stem. Comparisons are labelled by the suffixes (``fake_B``) or ``pred`` / ``input``,
    the reference by ``gt_suffix`` or ``gt``. Reads every file once; raises `UserError` on any problem.
    """
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    preds = collect_files(pred, pred_suffix, "--pred", fmt)
    gts = collect_files(gt, gt_suffix, "--gt", fmt)
    stems = check_pairing(preds, gts, "pred", "gt")
    sources = [(pred_suffix.lstrip("_") or "pred", preds)]
    if input_dir is not None:
        inputs = collect_files(input_dir, input_suffix, "--input", fmt)
        check_pairing(inputs, gts, "input", "gt")
        sources.append((input_suffix.lstrip("_") or "input", inputs))
        if sources[0][0] == sources[1][0]:
            raise UserError(
                f"--pred and --input get the same label '{sources[0][0]}': use different suffixes"
            )
    variances = None
    if var_dir is not None:
        variances = collect_files(var_dir, var_suffix, "--var", "multiband")
        check_pairing(variances, preds, "var", "pred")
    notes = {sources[1][0]: "cloudy input"} if len(sources) > 1 else {}
    table = MetricsTable(reference=gt_suffix.lstrip("_") or "gt", notes=notes)
    table.bins = tuple(bins)
    maskers: dict = {}
    for stem in stems:
        ref_kind, ref = _load(gts[stem], fmt)
        loaded = []
        for name, files in sources:
            kind, img = _load(files[stem], fmt)
            _check_match(stem, files[stem], kind, img, gts[stem], ref_kind, ref)
            loaded.append((name, kind, img, files[stem]))
        mask = None
        if input_dir is not None and detector != "none":
            _, kind, img, path = loaded[-1]
            mask, used = _cloud_mask(maskers, detector, kind, img, path)
            if mask is not None:
                table.set_coverage(stem, float(mask.mean()), used)
        for name, kind, img, path in loaded:
            _score(table, stem, name, kind, img, ref, protocol, path, mask)
        if variances is not None:
            _, kind, img, path = loaded[0]
            _score_variance(table, stem, sources[0][0], kind, img, ref, variances[stem])
    return table


def _score_variance(
    table: MetricsTable, stem: str, name: str, kind: str, img: np.ndarray, ref: np.ndarray, path: Path
) -> None:
    """The output's 'uncertainty' statistics with its predicted variance file ``path``."""
    pred, truth = (to_unit_chw(img), to_unit_chw(ref)) if kind == "image" else (img, ref)
    var = read_variance(path)
    if var.shape[1:] != pred.shape[1:]:
        raise UserError(
            f"size mismatch for stem '{stem}': the variance {path} is {var.shape[2]}x{var.shape[1]}, "
            f"the output {pred.shape[2]}x{pred.shape[1]} (width x height)"
        )
    table.add(stem, name, UNCERTAINTY, uncertainty_metrics(pred, truth, var))
