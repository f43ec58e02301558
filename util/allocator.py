"""The process's C heap allocator (``--malloc``): glibc's malloc tuned for large tensors.

PyTorch allocates CPU tensors with ``malloc``. glibc serves blocks of 32 MiB and more (its
dynamic threshold tops out there) with a fresh ``mmap`` and returns them to the system on
``free``, so every such tensor costs a page fault per 4 KiB page the first time it is written:
12 ms for a 32 MiB block against 1.3 ms to copy one into memory already mapped (2-core x86_64
machine). A training step of the paper's model allocates and frees many of them (the
innermost U-Net layers' weight gradients, oneDNN's reordered weights), and test.py as many per
image. ``tuned`` raises glibc's threshold for mapping blocks on their own to 1 GiB and keeps
freed memory in the process up to 256 MiB at the top of the heap (``M_MMAP_THRESHOLD``,
``M_TRIM_THRESHOLD``), so a block freed in one iteration is reused by the next without faulting
(measured with glibc 2.36: blocks up to 32 MiB, the size of the paper's largest weights, come
back without a fault; larger ones still fault afresh). Nothing computed changes: the same memory
holds the same numbers, only the system calls differ. The cost is memory that stays mapped
between iterations (the paper's model: peak resident memory +0.05-0.09 GB).

``system`` leaves the allocator as it is. glibc offers no way back to its dynamic thresholds
once they are set, so a tuned process stays tuned. A ``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_`` in the environment (glibc's own switches) wins over both. Other C
libraries (musl) and other systems (macOS, Windows) are left alone.

Whole-scene inference (``predict.py``) wants the opposite: memory flat over thousands of
windows, so :func:`keep_heap_flat` maps blocks of 16 MiB and more on their own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MALLOC_CHOICES = ("tuned", "system")

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TUNED = {M_TRIM_THRESHOLD: 256 << 20, M_MMAP_THRESHOLD: 1 << 30}
FLAT = {M_MMAP_THRESHOLD: 16 << 20}
ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _glibc_mallopt():
    """glibc's ``mallopt``, or None on another system or C library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: not glibc
            return None
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def _apply(settings: dict[int, int]) -> bool:
    if any(name in os.environ for name in ENVIRONMENT):
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    return all([bool(mallopt(param, value)) for param, value in settings.items()])


def configure_malloc(mode: str) -> bool:
    """Apply ``--malloc mode``; True when the allocator was tuned."""
    if mode not in MALLOC_CHOICES:
        raise ValueError(f"--malloc {mode!r}: choose one of {', '.join(MALLOC_CHOICES)}")
    return mode == "tuned" and _apply(TUNED)


def keep_heap_flat() -> bool:
    """Have glibc map blocks of 16 MiB and more (batches, pieces, the network's images) on their own.

    By default glibc raises its threshold for that after such blocks are freed (up to 32 MiB),
    then serves them from the heap, whose fragments make the resident memory creep up with the
    number of batches (+15% from a 1k to a 4k scene); a fixed threshold keeps it flat (+1.5%).
    """
    return _apply(FLAT)
