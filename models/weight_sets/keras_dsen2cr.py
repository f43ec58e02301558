"""DSen2-CR's published Keras HDF5 files (``github.com/ameraner/dsen2-cr``), read with h5py alone.

Keras 2 writes a whole model (``ModelCheckpoint``: weights under ``model_weights/``, beside the
configuration and often ``optimizer_weights/``, whose tensors have the kernels' shapes) or the
weights alone (``save_weights``: the layer groups at the root). Either way, the group lists its
layers in the network's order (attribute ``layer_names``; split into ``layer_names0``,
``layer_names1`` ... when long) and each layer group lists its tensors (``weight_names``), e.g.
``conv2d_1/kernel:0`` (Keras 2) or ``conv2d_1/kernel`` (Keras 3's legacy writer).

Layer names are numbered by Keras as it builds layers in a session (``conv2d_35`` .. when a
network was built before), and ``conv2d_10`` sorts before ``conv2d_2``: the convolutions are
therefore taken in the order the file lists them (the network's order), never by name, and
checked by shape: head (3x3, optical + SAR bands -> F), 2 B residual convolutions (F -> F), tail
(F -> optical bands). A file without SAR input has a head of optical bands only. Kernels are
stored HWIO and become PyTorch's OIHW. Nothing but convolutions holds weights in this network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from util.errors import UserError

from ..networks.dsen2cr import parameter_count
from .base import StateDicts, WeightFormat, WeightSet

WHOLE_MODEL = "model_weights"


def _strings(values: Any) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values)]


def attribute_list(group: Any, name: str) -> list[str] | None:
    """A list attribute as Keras writes it: whole, or in chunks ``name0``, ``name1`` ... (None: absent)."""
    if name in group.attrs:
        return _strings(group.attrs[name]) if np.asarray(group.attrs[name]).size else []
    chunks, i = [], 0
    while f"{name}{i}" in group.attrs:
        chunks += _strings(group.attrs[f"{name}{i}"])
        i += 1
    return chunks if i else None


def _root(f: Any) -> tuple[Any, str]:
    if WHOLE_MODEL in f and attribute_list(f[WHOLE_MODEL], "layer_names") is not None:
        return f[WHOLE_MODEL], "whole model"
    return f, "weights only"


def recognise(f: Any) -> bool:
    return attribute_list(_root(f)[0], "layer_names") is not None


def keras_tensors(f: Any, path: Path) -> list[tuple[str, np.ndarray]]:
    """Every weight tensor of the file, layer by layer in the file's (the network's) order."""
    root, _ = _root(f)
    out = []
    for layer in attribute_list(root, "layer_names") or []:
        if layer not in root:
            raise UserError(f"{path} lists a layer {layer} that it does not hold: the file is damaged")
        group = root[layer]
        for name in attribute_list(group, "weight_names") or []:
            try:
                out.append((f"{layer}/{name}", np.asarray(group[name])))
            except (KeyError, OSError) as err:
                raise UserError(
                    f"{path}: cannot read {layer}/{name} ({err}); the file is truncated or damaged"
                ) from None
    return out


def _convolutions(tensors: list[tuple[str, np.ndarray]], path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel HWIO, bias) pairs, in order; a one-line error for anything else."""
    convs, i = [], 0
    while i < len(tensors):
        name, kernel = tensors[i]
        bias = tensors[i + 1][1] if i + 1 < len(tensors) else None
        if kernel.ndim != 4 or bias is None or bias.shape != (kernel.shape[3],):
            raise UserError(
                f"{path} is a Keras file but not a DSen2-CR network: {name} {kernel.shape} is not a "
                "convolution kernel followed by its bias (DSen2-CR holds convolutions only)"
            )
        convs.append((kernel, bias))
        i += 2
    return convs


def _architecture(convs: list, path: Path) -> dict[str, Any]:
    not_dsen2cr = f"{path} is a Keras file but not DSen2-CR's network"
    if len(convs) < 3 or len(convs) % 2:
        raise UserError(
            f"{not_dsen2cr}: {len(convs)} convolution(s), not a head, 2 B residual ones and a tail"
        )
    head, tail = convs[0][0], convs[-1][0]
    features, optical, in_nc = head.shape[3], tail.shape[3], head.shape[2]
    expected = [(3, 3, in_nc, features)] + [(3, 3, features, features)] * (len(convs) - 2)
    expected.append((3, 3, features, optical))
    for n, ((kernel, _), want) in enumerate(zip(convs, expected)):
        if kernel.shape != want:
            raise UserError(
                f"{not_dsen2cr}: convolution {n + 1} has a kernel {kernel.shape}, expected {want}"
            )
    if in_nc < optical:
        raise UserError(f"{not_dsen2cr}: its head takes {in_nc} bands but its tail gives {optical}")
    sar_nc = in_nc - optical
    return {
        "input_nc": int(optical),
        "output_nc": int(optical),
        "sar_nc": int(sar_nc) if sar_nc else 2,
        "dsen2cr_feature_sizes": int(features),
        "dsen2cr_num_layers": (len(convs) - 2) // 2,
        "dsen2cr_no_sar": sar_nc == 0,
    }


def inspect(f: Any, path: Path) -> WeightSet:
    _, layout = _root(f)
    convs = _convolutions(keras_tensors(f, path), path)
    arch = _architecture(convs, path)
    use_sar = not arch["dsen2cr_no_sar"]
    count = parameter_count(
        optical_nc=arch["input_nc"],
        sar_nc=arch["sar_nc"],
        feature_sizes=arch["dsen2cr_feature_sizes"],
        num_layers=arch["dsen2cr_num_layers"],
        use_sar=use_sar,
    )
    assert count == sum(k.size + b.size for k, b in convs)
    bands = f"{arch['input_nc']} + {arch['sar_nc']} bands" if use_sar else f"{arch['input_nc']} bands, no SAR"
    version = f.attrs.get("keras_version", None)
    version = f", Keras {_strings(version)[0]}" if version is not None else ""
    return WeightSet(
        path=path,
        format=KERAS_DSEN2CR.name,
        model="dsen2cr",
        settings=arch,
        description=(
            f"DSen2-CR (Keras HDF5, {layout}{version}), {bands}, F {arch['dsen2cr_feature_sizes']}, "
            f"{arch['dsen2cr_num_layers']} blocks; {len(convs)} convolutions mapped in network order"
        ),
        parameters=count,
        variant="with SAR" if use_sar else "without SAR",
        details={"layout": layout},
    )


def state_dicts(f: Any, path: Path) -> StateDicts:
    convs = _convolutions(keras_tensors(f, path), path)
    _architecture(convs, path)
    names = ["head"]
    names += [f"body.{i}.conv{j}" for i in range((len(convs) - 2) // 2) for j in (1, 2)]
    names.append("tail")
    state = {}
    for name, (kernel, bias) in zip(names, convs):
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()
        state[f"{name}.bias"] = torch.from_numpy(np.array(bias)).float()
    return {"G": state}


KERAS_DSEN2CR = WeightFormat(
    name="keras_h5_dsen2cr",
    container="hdf5",
    summary="DSen2-CR's Keras HDF5 file (whole model or weights only, Keras 2 or 3)",
    recognise=recognise,
    inspect=inspect,
    state_dicts=state_dicts,
)
