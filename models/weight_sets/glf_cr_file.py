"""GLF-CR's published checkpoint (``CR_net.pth``, ``github.com/xufangchn/GLF-CR``).

The authors' ``codes/model_base.py`` saves ``{"network": net.state_dict()}`` of
``RDN_residual_CR(input_size)`` (torch 1.4: the legacy serialisation; ``module.`` prefixes when
trained with DataParallel). Our :class:`~models.networks.glf_cr.GLFCRNet` has the same parameter
names. The file also holds two buffers per dense Swin layer that the authors' network derives
from its geometry: ``relative_position_index`` (checked here against ours: a file whose indexing
differs was not written by that network) and ``attn_mask``, which depends on the input size the
network was built for (128 for the published file): ours computes its masks for whatever window
it is given, so that buffer is dropped and the weights run at any window size.
The architecture (widths, blocks, layers, heads, window, filter size) is read from the shapes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from util.errors import UserError

from ..networks.glf_cr_blocks import relative_position_index
from .base import StateDicts, WeightFormat, WeightSet, count_parameters

DERIVED_BUFFERS = ("relative_position_index", "attn_mask")
FIRST_KEY = "SFENet1.weight"


def _network(content: Any) -> dict[str, torch.Tensor]:
    state = content["network"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def recognise(content: Any) -> bool:
    if not isinstance(content, dict) or not isinstance(content.get("network"), dict):
        return False
    return FIRST_KEY in {k.removeprefix("module.") for k in content["network"]}


def _count(state: dict, pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _architecture(state: dict, path: Path) -> dict[str, Any]:
    """GLFCRNet's options from the shapes (a one-line error if the file is not that network)."""
    try:
        feats, in4 = state["SFENet1.weight"].shape[:2]
        sar4 = state["SFENet1_SAR.weight"].shape[1]
        growth = state["RDBs.0.convs.0.conv.0.weight"].shape[0]
        table = state["RDBs.0.convs.0.attn.relative_position_bias_table"].shape
        hidden = state["RDBs.0.convs.0.mlp.fc1.weight"].shape[0]
        filters = state["DF.0.fac_warp.3.0.weight"].shape[0]
        up4 = state["UPNet.0.weight"].shape[0]
    except (KeyError, IndexError, AttributeError) as err:
        raise UserError(
            f"{path} holds a 'network' whose layers are not GLF-CR's (no {err}); it is not the authors' "
            "CR_net.pth or was written by another version of their code"
        ) from None
    window = (math.isqrt(int(table[0])) + 1) // 2
    kernel = math.isqrt(int(filters) // int(feats))
    return {
        "input_nc": int(in4) // 4,
        "output_nc": int(in4) // 4,
        "sar_nc": int(sar4) // 4,
        "glf_feats": int(feats),
        "glf_growth": int(growth),
        "glf_blocks": _count(state, r"RDBs\.(\d+)\."),
        "glf_layers": _count(state, r"RDBs\.0\.convs\.(\d+)\."),
        "glf_heads": int(table[1]),
        "glf_window": window,
        "glf_mlp_ratio": float(hidden) / float(growth),
        "glf_kernel": kernel,
        "glf_up_feats": int(up4) // 4,
    }


def _check_buffers(state: dict, window: int, path: Path) -> None:
    want = relative_position_index(window)
    for key, value in state.items():
        if key.endswith("relative_position_index") and not torch.equal(value.long(), want):
            raise UserError(
                f"{path}: {key} is not the relative-position indexing of a {window} x {window} window that "
                "GLF-CR's network builds; the file was not written by the authors' code"
            )


def inspect(content: Any, path: Path) -> WeightSet:
    state = _network(content)
    arch = _architecture(state, path)
    _check_buffers(state, arch["glf_window"], path)
    params = {k: v for k, v in state.items() if not k.endswith(DERIVED_BUFFERS)}
    blocks = f"{arch['glf_blocks']} blocks x {arch['glf_layers']} layers"
    return WeightSet(
        path=path,
        format=GLF_CR_PTH.name,
        model="glf_cr",
        settings=arch,
        description=(
            f"GLF-CR (the authors' checkpoint format), {arch['input_nc']} + {arch['sar_nc']} bands, "
            f"F {arch['glf_feats']}, {blocks}, window {arch['glf_window']}"
        ),
        parameters=count_parameters(params),
        variant="with SAR",
    )


def state_dicts(content: Any, path: Path) -> StateDicts:
    state = _network(content)
    return {"G": {k: v for k, v in state.items() if not k.endswith(DERIVED_BUFFERS)}}


GLF_CR_PTH = WeightFormat(
    name="glf_cr_pth",
    container="torch",
    summary="GLF-CR's checkpoint ({'network': state_dict} of RDN_residual_CR, e.g. CR_net.pth)",
    recognise=recognise,
    inspect=inspect,
    state_dicts=state_dicts,
)
