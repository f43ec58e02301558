"""Network weight files: plain CPU state_dicts with the official keys, loaded safely and strictly.

Official checkpoints (``{label}_net_{G,G2,A,D}.pth``) load into our networks: their unused
instance-norm running statistics are ignored; anything else that does not fit is
a one-line error naming the keys and shapes. Loading uses ``weights_only=True``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from util.errors import UserError

# Buffers of the official InstanceNorm layers (built with running statistics that were never
# used by the official code). Our instance norms keep none, so these keys are dropped on load.
_NORM_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def unwrap(net: nn.Module) -> nn.Module:
    """The bare network inside a DataParallel / DistributedDataParallel wrapper."""
    return net.module if hasattr(net, "module") else net


def cpu_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """The bare network's state_dict on the CPU (device-independent files, official keys)."""
    return {k: v.detach().cpu() for k, v in unwrap(net).state_dict().items()}


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
        raise UserError(
            f"checkpoint {path} is corrupted or not a PyTorch checkpoint ({type(err).__name__})"
        ) from None


def load_weights(net: nn.Module, state: Any, source: str | os.PathLike) -> None:
    """Load ``state`` into ``net`` strictly, naming what differs if it does not fit.

    ``module.`` prefixes (DataParallel/DDP files) are stripped; norm running-stat buffers present
    in the file but absent from ``net`` (official instance norms) are ignored; any other missing,
    unexpected or mis-shaped key is an error.
    """
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{source} is not a network weight file (expected a state_dict of tensors)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
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
