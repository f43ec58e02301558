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


class RenameTogether:
    """Several files written under temporary names, then renamed onto their targets together.

    Write each file to :meth:`path` (its hidden temporary); :meth:`commit` renames them all. A
    rename needs no disk space, so once every file is written the set is replaced as a whole; a
    failed or interrupted write (:meth:`discard`, or leaving the ``with`` block by an exception)
    removes every temporary and keeps all previous files. ``durable``: fsync the files and their
    folders before returning from :meth:`commit`.
    """

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self._pending: dict[Path, Path] = {}  # target -> temporary

    def path(self, target: str | os.PathLike) -> Path:
        """The temporary file to write ``target``'s content to (renamed at :meth:`commit`)."""
        target = Path(target)
        tmp = temporary_path(target)
        self._pending[target] = tmp
        return tmp

    def forget(self, target: str | os.PathLike) -> None:
        """Drop ``target`` from the set (its temporary, if any, is removed)."""
        tmp = self._pending.pop(Path(target), None)
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove every temporary written so far; no target changes."""
        pending, self._pending = self._pending, {}
        for tmp in pending.values():
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def commit(self) -> list[Path]:
        """Rename every temporary onto its target; return the targets.

        Temporaries of the same targets left by killed processes are removed afterwards.
        """
        targets = list(self._pending)
        try:
            if self.durable:
                for tmp in self._pending.values():
                    fsync_file(tmp)
            for target in targets:
                os.replace(self._pending.pop(target), target)
        except BaseException:
            self.discard()
            raise
        if self.durable:
            for folder in dict.fromkeys(target.parent for target in targets):
                fsync_dir(folder)
        for target in targets:
            remove_stale_temporaries(target)
        return targets

    def __enter__(self) -> RenameTogether:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Delete ``path``'s temporaries (see :func:`temporary_path`) whose writer is gone or is us.

    A process killed while writing leaves its temporary behind; a live writer's is kept.
    """
    path = Path(path)
    prefix = TMP_PREFIX.format(name=path.name)
    try:
        leftovers = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    for tmp in leftovers:
        pid = tmp.name[len(prefix) :]
        if pid.isdigit() and (int(pid) == os.getpid() or not _process_alive(int(pid))):
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate the process there: keep its file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True
