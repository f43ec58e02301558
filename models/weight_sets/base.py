"""The two types every weight format deals in: :class:`WeightSet` (what a file is) and
:class:`WeightFormat` (how to recognise and read one kind of file).

Adding a format (e.g. a ``.pth.tar`` of another model) is one module with three functions and
one line in :data:`models.weight_sets.formats.FORMATS`; see ``docs/weights.md``:

- ``recognise(content) -> bool``: whether the opened content is of this format, from the
  content alone (an ``h5py.File`` for HDF5 containers, the unpickled object for PyTorch files);
- ``inspect(content, path) -> WeightSet``: what the file holds (model, the option values that
  build its networks, a one-line description, the parameter count), or a one-line
  :class:`util.errors.UserError` naming the file when it is of the format but not usable;
- ``state_dicts(content, path) -> {net name: state_dict}``: the weights under our keys and
  layouts, every format quirk (renamed keys, Keras kernels, buffers to drop) handled here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .domain import InputDomain

StateDicts = dict[str, dict[str, torch.Tensor]]


@dataclass(frozen=True)
class WeightSet:
    """A weight file recognised from its content.

    ``settings``: option values that build the networks for it (``input_nc``, ``sar_nc`` and the
    model's architecture options such as ``glf_feats``); ``variant``: e.g. 'with SAR';
    ``domain``: what it expects at its input (from the registry of published sets); ``entry``:
    the registry name when the file was asked for by name.
    """

    path: Path
    format: str
    model: str
    settings: dict[str, Any]
    description: str
    parameters: int
    variant: str = ""
    domain: InputDomain | None = None
    entry: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def with_record(self, domain: InputDomain | None, entry: str | None) -> WeightSet:
        return replace(self, domain=domain, entry=entry)

    @property
    def name(self) -> str:
        """A short name for results folders and output tags: the registry name, the name the format
        reads from the file (``details['name']``), or the file's stem."""
        return self.entry or self.details.get("name") or self.path.stem

    def loaded_line(self) -> str:
        """What loading prints: the file, what it is, its parameter count."""
        return f"loaded {self.path}: {self.description}, {self.parameters:,} parameters"


@dataclass(frozen=True)
class WeightFormat:
    """One kind of weight file (see the module docstring)."""

    name: str
    container: str  # 'hdf5' or 'torch'
    summary: str  # what such a file is, for messages and docs
    recognise: Callable[[Any], bool]
    inspect: Callable[[Any, Path], WeightSet]
    state_dicts: Callable[[Any, Path], StateDicts]


def count_parameters(state: dict[str, torch.Tensor]) -> int:
    return sum(int(v.numel()) for v in state.values())
