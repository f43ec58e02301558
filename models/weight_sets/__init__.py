"""Weight sets from outside this code: the field's published weights, read exactly, with their records.

One door for every weight file: :func:`open_weight_set` takes a path or a registry name
(:data:`PUBLISHED`), recognises the file's kind from its content (:data:`FORMATS`) and returns a
:class:`WeightSet` with its :class:`InputDomain`; :func:`load_weight_file` puts its weights into a
model's networks (``BaseModel.setup`` calls it when the options name ``weights``).

Modules: :mod:`.domain` (the input-domain record), :mod:`.base` (the two types a format deals
in), :mod:`.formats` (recognising and reading), one module per format (:mod:`.glf_cr_file`,
:mod:`.keras_dsen2cr`, :mod:`.uncrtaints_file` with :mod:`.uncrtaints_flags`), :mod:`.registry`
(the published sets, the cache, ``--download``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from torch import nn

from util.errors import UserError

from ..weights import load_weights, unwrap
from .base import WeightFormat, WeightSet
from .domain import InputDomain, domain_from_options
from .formats import FORMATS, folder_weight_file, read_state_dicts, read_weight_set
from .options import check_weight_options, option_values
from .registry import PUBLISHED, PublishedWeights, cache_dir, domain_of, resolve

__all__ = [
    "FORMATS",
    "PUBLISHED",
    "InputDomain",
    "PublishedWeights",
    "WeightFormat",
    "WeightSet",
    "cache_dir",
    "check_weight_options",
    "domain_from_options",
    "folder_weight_file",
    "load_weight_file",
    "open_weight_set",
    "option_values",
    "read_weight_set",
]


def open_weight_set(
    spec: str | os.PathLike, *, model: str | None = None, download: bool = False
) -> WeightSet:
    """The weight file ``spec`` (a path, or the name of a published set), recognised and checked,
    with its input domain. ``model``: refuse a file of another model; ``download``: fetch a
    published set that is not in :func:`cache_dir` yet."""
    path, entry = resolve(spec, download)
    if path.is_dir() and folder_weight_file(path) is not None:
        path = folder_weight_file(path)
    if path.is_dir():
        raise UserError(
            f"{path} is a folder; give a weight file here, or the folder as an experiment "
            "(predict.py --name, CloudRemover(folder))"
        )
    ws = read_weight_set(path, model)
    if entry is not None and (ws.parameters != entry.parameters or not entry.variant.startswith(ws.variant)):
        raise UserError(
            f"{path} is {ws.description} ({ws.variant}, {ws.parameters:,} parameters), but the published "
            f"{entry.name} is {entry.variant} with {entry.parameters:,}: it is another file or a damaged "
            f"download; download it again from {entry.url}"
        )
    # The registry's record of the set; else the one the format reads from the file (UnCRtainTS' flags).
    return ws.with_record(domain_of(ws.format, ws.variant) or ws.domain, entry.name if entry else None)


def load_weight_file(nets: Mapping[str, nn.Module], path: str | os.PathLike, model: str) -> WeightSet:
    """Load the weight file ``path`` (of ``model``) into ``nets`` by network name, strictly."""
    ws, states = read_state_dicts(path, model)
    lacking = [name for name in nets if name not in states]
    if lacking:
        raise UserError(f"{path} holds no weights for the network(s) {', '.join(lacking)} of --model {model}")
    for name, net in nets.items():
        load_weights(unwrap(net), states[name], path)
    print(ws.loaded_line())
    return ws
