"""Atomic file writes: the one helper every writer of results, pages, options and checkpoints uses.

A file is written under a hidden temporary name in its own folder (``.<name>.tmp<pid>``), flushed
to disk and renamed onto its final name, so a crash at any instant leaves the previous file or the
new one, never a torn file; a failed write removes the temporary and keeps the previous file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".{name}.tmp"


def temporary_path(path: str | os.PathLike) -> Path:
    """The hidden temporary name used while ``path`` is written by this process."""
    path = Path(path)
    return path.with_name(f"{TMP_PREFIX.format(name=path.name)}{os.getpid()}")


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; rename it onto ``path`` on success.

    On any exception (also Ctrl-C) the temporary file is removed and ``path`` is untouched.
    ``durable``: fsync the file and its folder (for checkpoints; pages and images need not).
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
