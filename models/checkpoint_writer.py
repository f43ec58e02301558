"""All-or-nothing checkpoint writes: the files of one checkpoint replace their predecessors
together, or none does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from util.errors import UserError
from util.fileio import RenameTogether


class CheckpointWriter:
    """One all-or-nothing checkpoint write.

    Inside ``with CheckpointWriter() as writer:`` each :meth:`save` goes to a hidden temporary
    (``.<file>.tmp<pid>``); at the block's end all are renamed onto their files together. A
    failed write (a full disk: :class:`UserError` naming the file) or any exception removes the
    temporaries and leaves every previous file as it was; temporaries of killed processes are
    removed by the next successful save of the same file.
    """

    def __init__(self) -> None:
        self._files = RenameTogether(durable=True)

    def save(self, obj: Any, path: str | os.PathLike) -> Path:
        """``torch.save(obj)`` for ``path``, which appears when the transaction commits."""
        path = Path(path)
        tmp = self._files.path(path)
        try:
            with open(tmp, "wb") as fh:
                torch.save(obj, fh)
        except BaseException as err:  # also Ctrl-C: leave no temporary file behind
            self._files.discard()
            if isinstance(err, OSError):
                raise UserError(
                    f"could not write checkpoint {path}: {err.strerror or err}; the previous checkpoint is kept"
                ) from err
            raise
        return path

    def link(self, source: str | os.PathLike, path: str | os.PathLike) -> bool:
        """Make ``path`` (at commit) a hard link to the committed file ``source``: the same bytes,
        nothing written. False where the file system has no hard links (nothing staged then)."""
        tmp = self._files.path(path)
        try:
            os.link(source, tmp)
        except OSError:
            self._files.forget(Path(path))
            return False
        return True

    def commit(self) -> list[Path]:
        """Rename every written file onto its target; return the targets."""
        try:
            return self._files.commit()
        except OSError as err:
            raise UserError(f"could not replace checkpoint {err.filename}: {err.strerror or err}") from err

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self._files.discard()


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` one file atomically (a one-file :class:`CheckpointWriter`)."""
    with CheckpointWriter() as writer:
        return writer.save(obj, path)
