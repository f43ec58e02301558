"""UnCRtainTS' published checkpoints (``github.com/PatrickTUM/UnCRtainTS``): their file layout in, our
network's weights and options out.

The authors' training (``model/src/model_utils.py: save_model``) writes ``<name>.pth.tar``::

    {"epoch": int, "state_dict": {"netG.<name>": tensor, ...},   # the whole model: the generator, prefixed
     "state_dict_G": {"<name>": tensor, ...},                     # the generator alone
     "optimizer_G": Adam state, "scheduler_G": ExponentialLR state}

and ``conf.json`` beside it: every training flag, which their test script reads back to rebuild
the network (:mod:`.uncrtaints_flags`). Files from an older version of their code name the blocks
``in_block1``, ``out_block1`` ... ``out_block5`` (one module each) where the current code has the
lists ``in_block.0``, ``out_block.0`` ... ``.4``; their loader renames them, and so does this one.
The optimiser and scheduler states hold tensors, numbers and lists only, so the file loads with
``torch.load(weights_only=True)`` like every other weight file here; they are not used.

Only the mono-temporal network (trained with ``--pretrain`` on SEN12MS-CR) is ours; a
multi-temporal checkpoint (SEN12MS-CR-TS, with temporal attention) is refused with a one-line
error, as is a file whose weights are not exactly the network its flags describe.

Two doors: :data:`UNCRTAINTS_PTH_TAR`, the format of :mod:`models.weight_sets` (``--weights``, the
API, torch.hub), and :func:`read_uncrtaints_checkpoint` (the weights, options and variant at once).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from util.errors import UserError

from .base import StateDicts, WeightFormat, WeightSet
from .domain import InputDomain
from .registry import uncrtaints_domain
from .uncrtaints_flags import conf_path, network_from_options, options_from_flags, read_flags

_OLD_BLOCK = re.compile(r"^(in_block|out_block)(\d+)\.")
PREFIX = "netG."


@dataclass(frozen=True)
class UncrtaintsCheckpoint:
    """What a checkpoint holds, in our terms.

    ``state_dict``: the weights under :class:`~models.networks.uncrtaints.UnCRtainTSNet`'s names
    (``*_net_G.pth`` of ``--model uncrtaints``); ``options``: the ``--model uncrtaints`` options
    (and band counts) that build that network; ``variant``: SAR or not, the head, the loss it was
    trained with; ``epoch``: the training epoch saved; ``input_domain``: what its inputs must be.
    """

    state_dict: dict[str, torch.Tensor]
    options: dict
    variant: dict
    epoch: int | None
    input_domain: InputDomain


def read_uncrtaints_checkpoint(
    path: str | os.PathLike, conf: str | os.PathLike | None = None
) -> UncrtaintsCheckpoint:
    """Read the authors' ``.pth.tar`` at ``path`` and its training flags (``conf``; default: the
    ``conf.json`` beside it, else ``<stem>.json``); check that the weights are exactly the network
    the flags describe. Every problem raises a one-line UserError naming the file."""
    path = Path(path)
    flags_path = conf_path(path, conf)
    options, variant = options_from_flags(read_flags(flags_path), flags_path)
    checkpoint = _load(path)
    state = checked_state(checkpoint, path, options, flags_path)
    return UncrtaintsCheckpoint(
        state_dict=state,
        options=options,
        variant=variant,
        epoch=_epoch(checkpoint),
        input_domain=uncrtaints_domain(variant["sar"]),
    )


def checked_state(checkpoint: dict, path: Path, options: dict, flags_path: Path) -> dict[str, torch.Tensor]:
    """The generator's weights, checked to be exactly the network ``options`` describe (every name
    and shape, finite values), in that network's order."""
    state = generator_state(checkpoint, path)
    expected = network_from_options(options, flags_path).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise UserError(
            f"{path} does not hold the UnCRtainTS network {flags_path.name} describes: "
            f"{len(missing)} weight(s) missing (e.g. {', '.join(missing[:3]) or '-'}), "
            f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3]) or '-'})"
        )
    wrong = [k for k in expected if state[k].shape != expected[k].shape]
    if wrong:
        k = wrong[0]
        raise UserError(
            f"{path}: {k} has shape {tuple(state[k].shape)} but {flags_path.name} describes "
            f"{tuple(expected[k].shape)} ({len(wrong)} weight(s) differ); the file and its flags do not belong together"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(
            f"{path}: weights {', '.join(bad[:3])} hold NaN or infinite values; the file is damaged"
        )
    return {k: state[k] for k in expected}


def generator_state(checkpoint: dict, path: Path) -> dict[str, torch.Tensor]:
    """The generator's weights under the current names: ``state_dict`` without its ``netG.`` prefix
    (what their test script loads), else ``state_dict_G``; older block names renamed."""
    if isinstance(checkpoint.get("state_dict"), dict):
        whole = checkpoint["state_dict"]
        state = {k[len(PREFIX) :]: v for k, v in whole.items() if isinstance(k, str) and k.startswith(PREFIX)}
        if not state:
            raise UserError(f"{path}: its state_dict holds no generator weights (netG.*)")
    elif isinstance(checkpoint.get("state_dict_G"), dict):
        state = dict(checkpoint["state_dict_G"])
    else:
        raise UserError(
            f"{path} is not an UnCRtainTS checkpoint: it has no state_dict or state_dict_G "
            f"(keys: {', '.join(map(str, list(checkpoint)[:5]))})"
        )
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: its generator weights are not all tensors; the file is damaged")
    return {_current_name(k): v for k, v in state.items()}


def _current_name(key: str) -> str:
    """``in_block1.x`` -> ``in_block.0.x`` (the older layout, one module per block, numbered from 1)."""
    match = _OLD_BLOCK.match(key)
    if match is None:
        return key
    return f"{match.group(1)}.{int(match.group(2)) - 1}.{key[match.end() :]}"


def _epoch(checkpoint: dict) -> int | None:
    epoch = checkpoint.get("epoch")
    return int(epoch) if isinstance(epoch, int) else None


def _load(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"no checkpoint {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: torch raises several kinds
        raise UserError(f"cannot read {path} as a PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(checkpoint, dict):
        raise UserError(f"{path} is not an UnCRtainTS checkpoint (it holds a {type(checkpoint).__name__})")
    return checkpoint


def experiment_file(folder: Path) -> Path | None:
    """The checkpoint of one of their experiment folders (``conf.json`` and ``model.pth.tar``, the file
    their test script loads; not one of our experiments, which hold ``train_opt.json``), else None."""
    path = folder / "model.pth.tar"
    if path.is_file() and (folder / "conf.json").is_file() and not (folder / "train_opt.json").exists():
        return path
    return None


# ---------------------------------------------------------------------------- the weight-set format
def recognise(content: Any) -> bool:
    """Their layout: ``state_dict_G``, or a ``state_dict`` of ``netG.``-prefixed weights."""
    if not isinstance(content, dict):
        return False
    if isinstance(content.get("state_dict_G"), dict):
        return True
    whole = content.get("state_dict")
    return isinstance(whole, dict) and any(isinstance(k, str) and k.startswith(PREFIX) for k in whole)


def _read(content: Any, path: Path) -> tuple[dict, dict, dict[str, torch.Tensor], Path]:
    flags_path = conf_path(path)
    flags = read_flags(flags_path)
    options, variant = options_from_flags(flags, flags_path)
    variant["name"] = _experiment_name(flags, path)
    return options, variant, checked_state(content, path, options, flags_path), flags_path


def _experiment_name(flags: dict, path: Path) -> str:
    """Their experiment's name (the flags' ``experiment_name``, else the folder's), with the file's
    epoch tag for ``model_epoch_N.pth.tar``."""
    name = flags.get("experiment_name")
    if not (isinstance(name, str) and re.fullmatch(r"[\w.-]+", name)):  # a folder name, nothing else
        name = path.parent.name or "uncrtaints"
    stem = path.name.split(".")[0]
    return name if stem == "model" else f"{name}_{stem.removeprefix('model_')}"


def inspect(content: Any, path: Path) -> WeightSet:
    options, variant, _, flags_path = _read(content, path)
    parameters = sum(int(p.numel()) for p in network_from_options(options).parameters())
    sar = variant["sar"]
    head = "diagonal variance head" if variant["head"] == "diag" else "mean only (no variance)"
    loss = f", {variant['loss']} loss" if variant["loss"] else ""
    epoch = _epoch(content)
    saved = f", epoch {epoch}" if epoch is not None else ""
    blocks = f"{options['uncrtaints_in_blocks']} + {options['uncrtaints_out_blocks']} blocks"
    bands = (
        f"{options['input_nc']} + {options['sar_nc']} bands"
        if sar
        else f"{options['input_nc']} bands, no SAR"
    )
    return WeightSet(
        path=path,
        format=UNCRTAINTS_PTH_TAR.name,
        model="uncrtaints",
        settings={k: v for k, v in options.items() if k != "model"},
        description=(
            f"UnCRtainTS (the authors' checkpoint and {flags_path.name}{saved}), mono-temporal, {bands}, "
            f"{head}{loss}, width {options['uncrtaints_width']}, {blocks}"
        ),
        parameters=parameters,
        variant="with SAR" if sar else "without SAR",
        domain=uncrtaints_domain(sar),
        details={**variant, "epoch": epoch, "flags": str(flags_path)},
    )


def state_dicts(content: Any, path: Path) -> StateDicts:
    return {"G": _read(content, path)[2]}


UNCRTAINTS_PTH_TAR = WeightFormat(
    name="uncrtaints_pth_tar",
    container="torch",
    summary="UnCRtainTS' checkpoint (model.pth.tar with state_dict / state_dict_G, and its conf.json beside it)",
    recognise=recognise,
    inspect=inspect,
    state_dicts=state_dicts,
)
