"""Checkpoint files: atomic writes, safe loads, and loading (official) weights with clear errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError

# Buffers of the official InstanceNorm layers (built with running statistics that were never
# used, see SPEC section 1). Our instance norms keep none, so these keys are dropped on load.
_NORM_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, flush to disk, then rename.

    A crash at any instant leaves either the old file or the new one, never a torn file.
    A failed write (disk full, permission) removes the temporary file and raises
    :class:`UserError` naming the path; the previous file is untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"could not write checkpoint {path}: {err.strerror or err}; the previous file is kept") from err
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True`` (no code from the file ever runs).

    Raises :class:`UserError` for a missing, truncated, corrupted or unsafe file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; check --name, --checkpoints_dir and --epoch")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise UserError(
            f"checkpoint {path} was refused: it holds objects other than tensors and plain data ({first})"
        ) from None
    except Exception as err:  # the unpickler fails on arbitrary bytes with any error type (KeyError...)
        raise UserError(f"checkpoint {path} is corrupted or not a PyTorch checkpoint ({type(err).__name__})") from None


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip ``module.`` prefixes (DataParallel/DDP) and the unused norm running-stat buffers."""
    out = {}
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module.") :]
        out[key] = value
    return out


def load_weights(net: nn.Module, state: Any, source: str | os.PathLike) -> None:
    """Load ``state`` into ``net`` strictly, naming what differs if it does not fit.

    Norm running-stat buffers present in the file but absent from ``net`` (official instance
    norms) are ignored; any other missing, unexpected or mis-shaped key is an error.
    """
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{source} is not a network weight file (expected a state_dict of tensors)")
    state = clean_state_dict(state)
    own = net.state_dict()
    unexpected = [k for k in state if k not in own and not k.endswith(_NORM_BUFFER_SUFFIXES)]
    missing = [k for k in own if k not in state]
    shapes = [
        f"{k} {tuple(state[k].shape)} in file vs {tuple(v.shape)} here"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es), e.g. {'; '.join(shapes[:3])}")
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {', '.join(unexpected[:3])}")
    if problems:
        raise UserError(
            f"{source} does not fit this network ({'; '.join(problems)}); "
            "check --netG/--ngf/--ndf/--input_nc/--output_nc/--sar_nc against the trained model"
        )
    net.load_state_dict({k: state[k] for k in own}, strict=True)
