"""The published weight sets: one entry each, data not code (like torchvision's ``WeightsEnum``).

An entry names where its authors publish it, the file, its format (a name in
:data:`models.weight_sets.formats.FORMATS`), its licence, what its authors report for it on
SEN12MS-CR, the parameter count of its network (checked when the file is loaded by name) and its
:class:`~models.weight_sets.domain.InputDomain`. ``docs/weights.md`` is this table for people.

A name given where a weight file is expected (``--weights dsen2cr_carl_sar``) is looked up in
:func:`cache_dir`; ``--download`` (``download=True``) fetches it there first. Adding an entry is
one :class:`PublishedWeights` in :data:`PUBLISHED`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from util.errors import UserError

from .domain import InputDomain, sentinel_domain

DSEN2CR_PAGE = "https://github.com/ameraner/dsen2-cr"
GLF_CR_PAGE = "https://github.com/xufangchn/GLF-CR"
DSEN2CR_LICENCE = (
    "GPL-3.0 (the repository's LICENSE; its README states no separate terms for the checkpoints)"
)
GLF_CR_LICENCE = (
    "none stated: the repository has no licence file, so its authors keep every right; ask them "
    "before you redistribute the file"
)
SEN12MSCR = "SEN12MS-CR (Ebel et al., TGRS 2020), Sentinel-2 Level-1C and Sentinel-1 GRD, 2017-2018"
UNCRTAINTS_PAGE = "https://github.com/PatrickTUM/UnCRtainTS"
# Their README: "here's where you can find the checkpoints" (one shared folder; it names no file).
UNCRTAINTS_FOLDER = "https://u.pcloud.link/publink/show?code=kZsdbk0Z5Y2Y2UEm48XLwOvwSVlL8R2L3daV"
UNCRTAINTS_LICENCE = (
    "MIT (the headers of the authors' network and training code; the repository has no licence file and "
    "its README states no separate terms for the checkpoints)"
)


@dataclass(frozen=True)
class PublishedWeights:
    """One published weight set."""

    name: str  # the registry name, e.g. 'dsen2cr_carl_sar'
    model: str  # the --model that runs it
    variant: str  # 'with SAR' / 'without SAR' (what the file's shapes say) and the training loss
    paper: str
    source: str  # the page where its authors publish it
    url: str  # the download link their page gives
    file_name: str  # the file's name in the cache (and the authors' name where they give one)
    format: str
    licence: str
    reported: str  # what the authors report for it on SEN12MS-CR
    parameters: int
    domain: InputDomain

    @property
    def sar(self) -> str:
        return "with SAR" if self.domain.uses_sar else "without SAR"


GLF_CR_DOMAIN = sentinel_domain(
    sar_scaling="dsen2cr",
    network_units="optical DN clipped to [0, 10000] / 10000; SAR clipped to VV [-25, 0], VH [-32.5, 0] dB, "
    "minus the floor, / the range: [0, 1]",
    training_data=f"{SEN12MSCR}; the train split of the authors' data.csv, 128 x 128 crops",
)


def _dsen2cr_domain(sar: bool) -> InputDomain:
    return sentinel_domain(
        sar_scaling="dsen2cr",
        sar_bands=("VV", "VH") if sar else (),
        network_units="optical DN clipped to [0, 10000] / 2000 (reflectance x 5)"
        + ("; SAR clipped to VV [-25, 0], VH [-32.5, 0] dB, mapped to [0, 2]" if sar else ""),
        training_data=f"{SEN12MSCR}, as the authors processed it (WGS84); their train split, 128 x 128 crops",
    )


def uncrtaints_domain(sar: bool) -> InputDomain:
    """What UnCRtainTS' mono-temporal checkpoints expect: their SEN12MS-CR loader's scaling
    (``data/dataLoader.py``, ``rescale_method='default'``), SAR VV and VH or none."""
    return sentinel_domain(
        sar_scaling="standard",
        sar_bands=("VV", "VH") if sar else (),
        network_units="optical DN clipped to [0, 10000] / 10000"
        + ("; SAR clipped to [-25, 0] dB on both bands, mapped to [0, 1]" if sar else "")
        + "; both x scale_by (10), SAR first",
        training_data=f"{SEN12MSCR}; the authors' split (SEN12MS-CR-TS's regions), whole 256 x 256 patches",
    )


def _dsen2cr(name: str, loss: str, sar: bool, drive_id: str, reported: str) -> PublishedWeights:
    return PublishedWeights(
        name=name,
        model="dsen2cr",
        variant=f"{'with' if sar else 'without'} SAR, {loss} loss",
        paper="Meraner, Ebel, Zhu, Schmitt, ISPRS J. P&RS 166, 333-346, 2020",
        source=DSEN2CR_PAGE,
        url=f"https://drive.google.com/file/d/{drive_id}/view?usp=sharing",
        file_name=f"{name}.hdf5",
        format="keras_h5_dsen2cr",
        licence=DSEN2CR_LICENCE,
        reported=reported,
        parameters=18_947_341 if sar else 18_942_733,
        domain=_dsen2cr_domain(sar),
    )


NOT_RESTATED = "its paper's Table 1 lists this ablation (its own test split); not restated here"
PUBLISHED: dict[str, PublishedWeights] = {
    e.name: e
    for e in (
        PublishedWeights(
            name="glf_cr",
            model="glf_cr",
            variant="with SAR, L1 loss",
            paper="Xu, Shi, Ebel, Yu, Xia, Yang, Zhu, ISPRS J. P&RS 192, 268-278, 2022",
            source=GLF_CR_PAGE,
            url="https://drive.google.com/file/d/11EYrrqLzlqrDgrJNgIW7IY0nSz_S5y9Z/view?usp=sharing",
            file_name="CR_net.pth",
            format="glf_cr_pth",
            licence=GLF_CR_LICENCE,
            reported="SEN12MS-CR test split, 13 bands: PSNR 28.64, SSIM 0.885, SAM 8.98, MAE 0.028",
            parameters=14_827_373,
            domain=GLF_CR_DOMAIN,
        ),
        _dsen2cr(
            "dsen2cr_carl_sar",
            "CARL",
            True,
            "1L3YUVOnlg67H5VwlgYO9uC9iuNlq7VMg",
            "its paper's Table 1 (its own test split): PSNR 28.7, SSIM 0.875; on the shared SEN12MS-CR "
            "split (UnCRtainTS's re-evaluation): PSNR 27.76, SSIM 0.874, SAM 9.47, MAE 0.031",
        ),
        _dsen2cr(
            "dsen2cr_l1_sar",
            "L1",
            True,
            "1zv4_91Yr2IYyYDoqhZw8KpnfvfLhkuBB",
            "its paper's Table 1 (its own test split): PSNR 29.3, SSIM 0.878",
        ),
        _dsen2cr("dsen2cr_carl_nosar", "CARL", False, "1VHZa5-lX68mA2FbHeCiQsUq13oECw9DA", NOT_RESTATED),
        _dsen2cr("dsen2cr_l1_nosar", "L1", False, "11Th6UwKMXla7LGxsFJXwj-Jx9bSKlWUH", NOT_RESTATED),
    )
}


def domain_of(fmt: str, variant: str) -> InputDomain | None:
    """The input domain of a file of format ``fmt`` whose shapes say ``variant`` ('with SAR'...):
    that of the published sets of that format and variant (their data pipeline)."""
    for entry in PUBLISHED.values():
        if entry.format == fmt and entry.variant.startswith(variant):
            return entry.domain
    return None


def cache_dir() -> Path:
    """Where published files are looked for and downloaded: ``<torch hub dir>/cloud_removal``
    (``$TORCH_HOME/hub``, by default ``~/.cache/torch/hub``)."""
    return Path(torch.hub.get_dir()) / "cloud_removal"


def resolve(spec: str | os.PathLike, download: bool = False) -> tuple[Path, PublishedWeights | None]:
    """A weight file's path (and its registry entry when ``spec`` is a registry name)."""
    path = Path(spec).expanduser()
    if path.exists():
        return path, None
    entry = PUBLISHED.get(str(spec))
    if entry is None:
        raise UserError(
            f"--weights {spec}: no such file, and not a published weight set ({', '.join(PUBLISHED)}); "
            "see docs/weights.md"
        )
    cached = cache_dir() / entry.file_name
    if cached.is_file():
        return cached, entry
    if download:
        return fetch(entry, cached), entry
    raise UserError(
        f"the {entry.name} weights are not here: download {entry.file_name} from {entry.url} (the page: "
        f"{entry.source}) and give its path to --weights, or save it as {cached}, or add --download"
    )


def fetch(entry: PublishedWeights, cached: Path) -> Path:
    """Download ``entry`` to ``cached`` (Google Drive, with ``gdown``), checked before it is kept."""
    from .formats import read_weight_set

    cached.parent.mkdir(parents=True, exist_ok=True)
    part = cached.with_name(cached.name + ".part")
    try:
        download_file(entry.url, part)
        ws = read_weight_set(part, entry.model)
        if ws.parameters != entry.parameters:
            raise UserError(
                f"the download of {entry.name} holds {ws.parameters:,} parameters, not {entry.parameters:,}; "
                f"it is not the published file: download it by hand from {entry.url}"
            )
        os.replace(part, cached)
    finally:
        part.unlink(missing_ok=True)
    print(f"downloaded {entry.name} to {cached}")
    return cached


def download_file(url: str, dest: Path) -> None:
    """Fetch a Google Drive link with gdown (an optional dependency: pip install gdown)."""
    try:
        import gdown
    except ImportError:
        raise UserError(
            f"--download needs gdown (pip install gdown) for Google Drive links; or download {url} yourself"
        ) from None
    match = re.search(r"/d/([\w-]+)", url)
    if match is None or gdown.download(id=match.group(1), output=str(dest), quiet=False) is None:
        raise UserError(f"the download of {url} failed; download it by hand and give its path to --weights")
