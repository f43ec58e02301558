"""Turn ``--gpu_ids`` into a ``torch.device``: the one place where the device is chosen."""

from __future__ import annotations

import os
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


def default_loader_workers(device: torch.device) -> int:
    """Data-loading worker processes when ``--num_threads`` is not given: 4, or the number of CPU
    cores if fewer; none for a run on a CPU of at most 2 cores, where workers compete with the
    networks' threads for the cores (the paper's training step on 2 cores: 1.01 s with the loader
    in the main process and 1.38 s with 2 workers in one benchmark run, equal in another)."""
    cores = os.cpu_count() or 1
    if device.type == "cpu" and cores <= 2:
        return 0
    return min(4, cores)


# --amp names -> autocast dtypes (None: full float32, the faithful default).
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
TF32_CHOICES = ("default", "on", "off")


def configure_backends(device: torch.device, *, tf32: str = "default", cudnn_benchmark: bool = False) -> None:
    """Set the process-wide backend switches for ``device``; refuse those that do not apply.

    ``tf32`` (TensorFloat-32, Ampere and newer: 10 mantissa bits instead of 23): 'default' keeps
    PyTorch's defaults (cuDNN convolutions may use TF32, matrix multiplications do not), 'on'
    allows it for both, 'off' for neither (strict float32). ``cudnn_benchmark``: cuDNN times its
    algorithms for each new input shape and keeps the fastest (fixed training shapes gain; results
    are not bit-reproducible). Both are CUDA settings: on the CPU, 'on'/'off' and the benchmark
    are refused rather than silently ignored. Every switch is set each time, so one run's choice
    never leaks into the next in the same process.
    """
    cuda = device.type == "cuda"
    if tf32 not in TF32_CHOICES:
        raise UserError(f"--tf32 {tf32!r}: choose one of {', '.join(TF32_CHOICES)}")
    if not cuda and tf32 != "default":
        raise UserError(f"--tf32 {tf32} is a CUDA setting but this run is on the {device.type}; drop --tf32")
    if not cuda and cudnn_benchmark:
        raise UserError(
            f"--cudnn_benchmark is a CUDA setting but this run is on the {device.type}; drop --cudnn_benchmark"
        )
    torch.backends.cuda.matmul.allow_tf32 = tf32 == "on"
    torch.backends.cudnn.allow_tf32 = tf32 != "off"
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
