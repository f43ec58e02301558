"""Checkpoint files: atomic writes, safe loads, and loading (official) weights with clear errors."""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator
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
    :class:`UserError` naming the path; the previous file is untouched. Temporary files are
    hidden (``.<name>.tmp<pid>``), so nothing mistakes them for checkpoints; those left by a
    killed process are removed by the next successful save of the same file.
    """
    path = Path(path)
    tmp = path.with_name(f"{_TMP_PREFIX.format(name=path.name)}{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if _group is not None:  # inside saved_together(): renamed when the group is complete
            _group[path] = tmp
            return
        os.replace(tmp, path)
    except BaseException as err:  # also Ctrl-C: leave no temporary file behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if not isinstance(err, OSError):
            raise
        raise UserError(
            f"could not write checkpoint {path}: {err.strerror or err}; the previous file is kept"
        ) from err
    _fsync_dir(path.parent)
    _remove_stale_temporaries(path)


_TMP_PREFIX = ".{name}.tmp"
_group: dict[Path, Path] | None = None  # target -> temporary file, while saved_together() runs


@contextlib.contextmanager
def saved_together() -> Iterator[None]:
    """Make the :func:`atomic_save` calls of a block replace their files together, at its end.

    Every file is written to its temporary first; only when all succeeded are they renamed
    (a rename needs no space), so a save that fails part-way (disk full) or raises keeps every
    previous file of the group, e.g. all of a checkpoint's weights and its training state.
    """
    global _group
    if _group is not None:  # nested: the outer block renames
        yield
        return
    _group = {}
    try:
        yield
        group = _group
    except BaseException:
        for tmp in _group.values():
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        raise
    finally:
        pending, _group = _group, None
    for path, tmp in group.items():
        try:
            os.replace(tmp, path)
        except OSError as err:
            for rest in pending.values():
                with contextlib.suppress(OSError):
                    rest.unlink(missing_ok=True)
            raise UserError(f"could not write checkpoint {path}: {err.strerror or err}") from err
    for folder in {path.parent for path in group}:
        _fsync_dir(folder)
    for path in group:
        _remove_stale_temporaries(path)


def _remove_stale_temporaries(path: Path) -> None:
    """Delete ``.<name>.tmp<pid>`` files of ``path`` whose writer is gone (or is this process)."""
    prefix = _TMP_PREFIX.format(name=path.name)
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
    if os.name == "nt":  # os.kill would terminate it there; keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


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
        raise UserError(
            f"checkpoint {path} is corrupted or not a PyTorch checkpoint ({type(err).__name__})"
        ) from None


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
