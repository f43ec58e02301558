"""Name -> class look-up by file convention: ``<package>/<name>_<kind>.py`` defines ``<Name><Kind>``."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from .errors import UserError


def discover(package_dir: str | Path, kind: str, exclude: tuple[str, ...] = ("base",)) -> tuple[str, ...]:
    """Sorted names ``X`` of the modules ``X_<kind>.py`` in ``package_dir``."""
    suffix = f"_{kind}"
    names = (
        m.name[: -len(suffix)] for m in pkgutil.iter_modules([str(package_dir)]) if m.name.endswith(suffix)
    )
    return tuple(sorted(n for n in names if n not in exclude))


def find_class(package: str, name: str, kind: str, base: type, option: str, choices: tuple[str, ...]) -> type:
    """The subclass of ``base`` in ``<package>/<name>_<kind>.py`` whose name is ``name`` + ``kind``,
    compared without underscores and case (``pix2pix_attn`` -> ``Pix2PixAttnModel``).

    Raises :class:`UserError` naming ``option`` and the valid ``choices`` for an unknown name.
    """
    if name not in choices:
        raise UserError(f"unknown {option} {name!r}; choose one of {', '.join(choices)}")
    module = importlib.import_module(f"{package}.{name}_{kind}")
    target = (name + kind).replace("_", "").lower()
    for attr, cls in vars(module).items():
        if attr.lower() == target and isinstance(cls, type) and issubclass(cls, base):
            return cls
    raise UserError(f"{package}/{name}_{kind}.py defines no {base.__name__} subclass named like {target!r}")
