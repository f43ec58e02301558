"""Turn ``--gpu_ids`` into a ``torch.device``: the one place where the device is chosen."""

from __future__ import annotations

import sys

import torch

from .errors import UserError


def parse_gpu_ids(text: str) -> list[int] | None:
    """``'0,1'`` -> ``[0, 1]``; ``'-1'`` -> ``[]`` (CPU); ``'auto'`` -> ``None`` (first GPU if any)."""
    text = str(text).strip()
    if text.lower() == "auto":
        return None
    try:
        ids = [int(part) for part in text.split(",") if part.strip() != ""]
    except ValueError:
        raise UserError(
            f"--gpu_ids {text!r}: expected 'auto', -1 (CPU) or GPU indices such as 0 or 0,1"
        ) from None
    return [i for i in ids if i >= 0]


def resolve_device(gpu_ids: str) -> tuple[torch.device, list[int]]:
    """Return ``(device, usable_gpu_ids)`` for the ``--gpu_ids`` text.

    A requested GPU that does not exist (no CUDA, or an index past the last GPU) gives one
    warning and the CPU, so the official command lines (``--gpu_ids 0``) run anywhere.
    """
    ids = parse_gpu_ids(gpu_ids)
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if ids is None:
        ids = [0] if available else []
    if not ids:
        return torch.device("cpu"), []
    missing = [i for i in ids if i >= available]
    if missing:
        where = "no CUDA device is available" if available == 0 else f"only {available} CUDA device(s) exist"
        print(f"warning: --gpu_ids {gpu_ids}: {where}; running on the CPU", file=sys.stderr)
        return torch.device("cpu"), []
    if len(ids) > 1:
        # Training refuses several GPUs without torchrun (util.distributed.training_device).
        print(f"warning: --gpu_ids {gpu_ids}: this program runs on one GPU, cuda:{ids[0]}", file=sys.stderr)
    torch.cuda.set_device(ids[0])
    return torch.device("cuda", ids[0]), ids
