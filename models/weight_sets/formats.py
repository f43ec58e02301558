"""Weight files recognised from their content: the formats this code reads, and reading them.

:data:`FORMATS` lists them; :func:`read_weight_set` opens a file (HDF5 with h5py, anything else
with ``torch.load(weights_only=True)``: no code in a file ever runs), asks each format of that
container whether the content is its own, and returns what the file is; :func:`read_state_dicts`
also returns its weights, under our keys. Folders of ``.pth`` files (our experiments, the
official Zhang et al. release) are not read here but by :mod:`scene.model` and ``Checkpoints``;
a folder in a published layout (UnCRtainTS' experiment folders) stands for its weight file
(:func:`folder_weight_file`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from util.errors import UserError

from .base import StateDicts, WeightFormat, WeightSet
from .glf_cr_file import GLF_CR_PTH
from .keras_dsen2cr import KERAS_DSEN2CR
from .uncrtaints_file import UNCRTAINTS_PTH_TAR, experiment_file

# Every format this code reads; a new one goes here (see models/weight_sets/base.py).
FORMATS: list[WeightFormat] = [GLF_CR_PTH, KERAS_DSEN2CR, UNCRTAINTS_PTH_TAR]


def folder_weight_file(folder: str | Path) -> Path | None:
    """The weight file of a folder in a published layout (UnCRtainTS': an experiment's folder with
    ``model.pth.tar`` and ``conf.json``), or None (e.g. one of our experiments)."""
    folder = Path(folder).expanduser()
    return experiment_file(folder) if folder.is_dir() else None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextlib.contextmanager
def opened(path: Path) -> Iterator[tuple[str, Any]]:
    """``(container, content)`` of a weight file: ('hdf5', an open h5py.File) or ('torch', the object)."""
    import h5py

    if not path.is_file():
        raise UserError(f"weights {path} do not exist; give a weight file (see docs/weights.md)")
    if h5py.is_hdf5(path):
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise UserError(
                f"{path} is an HDF5 file that cannot be opened ({_first_line(err)}): it is truncated or "
                "damaged; download it again"
            ) from None
        with f:
            yield "hdf5", f
        return
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler fails on truncated or foreign bytes with any error type
        raise UserError(
            f"{path} is neither a Keras HDF5 file nor a complete PyTorch file ({_first_line(err)}): it is "
            "truncated, damaged or of another kind; download it again or check the path"
        ) from None
    yield "torch", content


def _unknown(path: Path, container: str, content: Any) -> UserError:
    """What a file of no known format seems to be, and what to do."""
    kinds = "; ".join(f.summary for f in FORMATS)
    if container == "hdf5":
        return UserError(
            f"{path} is an HDF5 file but not a Keras model or weights file; the formats read here: {kinds}"
        )
    keys = [k.removeprefix("module.") for k in content] if isinstance(content, dict) else []
    if keys and all(isinstance(v, torch.Tensor) for v in content.values()):
        return UserError(
            f"{path} is one network of a checkpoint folder (a bare state_dict, e.g. latest_net_G.pth): give "
            "its folder instead (predict.py --name, test.py --name, CloudRemover(folder)), which holds "
            "every network and the options"
        )
    found = f"keys {', '.join(map(str, keys[:4]))}" if keys else type(content).__name__
    return UserError(
        f"{path} is a PyTorch file of a kind this code does not read ({found}); the formats: {kinds}"
    )


def _identify(path: Path, container: str, content: Any) -> WeightFormat:
    for fmt in FORMATS:
        if fmt.container == container and fmt.recognise(content):
            return fmt
    raise _unknown(path, container, content)


def _check_model(ws: WeightSet, model: str | None) -> None:
    if model is not None and ws.model != model:
        raise UserError(
            f"{ws.path} is {ws.description}, a weight file of --model {ws.model}, not {model}; "
            f"run it with --model {ws.model}"
        )


def read_weight_set(path: str | Path, model: str | None = None) -> WeightSet:
    """What the weight file ``path`` is (``model``: refuse a file of another model)."""
    path = Path(path)
    with opened(path) as (container, content):
        ws = _identify(path, container, content).inspect(content, path)
    _check_model(ws, model)
    return ws


def read_state_dicts(path: str | Path, model: str | None = None) -> tuple[WeightSet, StateDicts]:
    """What the file is, and its weights: ``{net name: state_dict}`` under our keys, on the CPU."""
    path = Path(path)
    with opened(path) as (container, content):
        fmt = _identify(path, container, content)
        ws = fmt.inspect(content, path)
        _check_model(ws, model)
        return ws, fmt.state_dicts(content, path)
