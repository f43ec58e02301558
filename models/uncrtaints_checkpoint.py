"""UnCRtainTS' published checkpoints: their file layout in, our network's weights and options out.

The authors' training (``model/src/model_utils.py: save_model``) writes ``<name>.pth.tar``::

    {"epoch": int, "state_dict": {"netG.<name>": tensor, ...},   # the whole model: the generator, prefixed
     "state_dict_G": {"<name>": tensor, ...},                     # the generator alone
     "optimizer_G": Adam state, "scheduler_G": ExponentialLR state}

and ``conf.json`` beside it: every training flag (``vars(config)`` after their script's
adjustments), which their test script reads back to rebuild the network. Files from an older
version of their code name the blocks ``in_block1``, ``out_block1`` ... ``out_block5`` (one
module each) where the current code has the lists ``in_block.0``, ``out_block.0`` ... ``.4``; their
loader renames them, and so does :func:`read_uncrtaints_checkpoint`.

Only the mono-temporal network (trained with ``--pretrain`` on SEN12MS-CR) is ours; a
multi-temporal checkpoint (SEN12MS-CR-TS, with temporal attention) is refused with a one-line
error, as is anything else this code does not build (another block type, a covariance other than
the diagonal, separate output layers).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from util.errors import UserError

from .networks.uncrtaints import NORMS, UnCRtainTSNet

S2_BANDS, S1_BANDS = 13, 2
_OLD_BLOCK = re.compile(r"^(in_block|out_block)(\d+)\.")
# What the authors' networks were trained on (their data/dataLoader.py, SEN12MS-CR, Level-1C).
INPUT_DOMAIN = {
    "optical": "Sentinel-2 Level-1C, 13 bands B1..B12 (with B8A and B10), DN clipped to [0, 10000] / 10000",
    "sar": "Sentinel-1 GRD sigma0 in dB, VV and VH, each clipped to [-25, 0] and mapped to [0, 1]",
    "sar_scaling": "standard",
    "trained_on": "SEN12MS-CR (mono-temporal, the authors' split)",
}


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
    epoch: int | None = None
    input_domain: dict = field(default_factory=lambda: dict(INPUT_DOMAIN))


def read_uncrtaints_checkpoint(
    path: str | os.PathLike, conf: str | os.PathLike | None = None
) -> UncrtaintsCheckpoint:
    """Read the authors' ``.pth.tar`` at ``path`` and its training flags (``conf``; default: the
    ``conf.json`` beside it, else ``<stem>.json``); check that the weights are exactly the network
    the flags describe. Every problem raises a one-line UserError naming the file."""
    path = Path(path)
    flags_path = _conf_path(path, conf)
    flags = _read_flags(flags_path)
    options, variant = options_from_flags(flags, flags_path)
    checkpoint = _load(path)
    state = generator_state(checkpoint, path)
    net = network_from_options(options)
    expected = net.state_dict()
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
    epoch = checkpoint.get("epoch")
    return UncrtaintsCheckpoint(
        state_dict={k: state[k] for k in expected},
        options=options,
        variant=variant,
        epoch=int(epoch) if isinstance(epoch, int) else None,
    )


def generator_state(checkpoint: dict, path: Path) -> dict[str, torch.Tensor]:
    """The generator's weights under the current names: ``state_dict`` without its ``netG.`` prefix
    (what their test script loads), else ``state_dict_G``; older block names renamed."""
    if isinstance(checkpoint.get("state_dict"), dict):
        whole = checkpoint["state_dict"]
        state = {k[len("netG.") :]: v for k, v in whole.items() if k.startswith("netG.")}
        if not state:
            raise UserError(f"{path}: its state_dict holds no generator weights (netG.*)")
    elif isinstance(checkpoint.get("state_dict_G"), dict):
        state = dict(checkpoint["state_dict_G"])
    else:
        raise UserError(
            f"{path} is not an UnCRtainTS checkpoint: it has no state_dict or state_dict_G "
            f"(keys: {', '.join(map(str, list(checkpoint)[:5]))})"
        )
    return {_current_name(k): v for k, v in state.items()}


def _current_name(key: str) -> str:
    """``in_block1.x`` -> ``in_block.0.x`` (the older layout, one module per block, numbered from 1)."""
    match = _OLD_BLOCK.match(key)
    if match is None:
        return key
    return f"{match.group(1)}.{int(match.group(2)) - 1}.{key[match.end() :]}"


def options_from_flags(flags: dict, source: Path) -> tuple[dict, dict]:
    """``--model uncrtaints`` options and the variant from the authors' training flags."""

    def need(condition: bool, what: str) -> None:
        if not condition:
            raise UserError(f"{source}: {what}")

    need(
        flags.get("model", "uncrtaints") == "uncrtaints",
        f"describes a {flags.get('model')!r} model, not uncrtaints",
    )
    need(
        bool(flags.get("pretrain", False)),
        "describes a multi-temporal UnCRtainTS (SEN12MS-CR-TS, temporal attention); only the mono-temporal "
        "network (trained with --pretrain on SEN12MS-CR) runs here",
    )
    need(
        flags.get("block_type", "mbconv") == "mbconv",
        f"block_type {flags.get('block_type')!r}: only mbconv runs here",
    )
    need(
        not flags.get("separate_out", False),
        "separate_out: separate mean and variance layers do not run here",
    )
    need(
        flags.get("padding_mode", "reflect") == "reflect",
        f"padding_mode {flags.get('padding_mode')!r}: only reflect",
    )
    encoder, decoder = _widths(flags, "encoder_widths", source), _widths(flags, "decoder_widths", source)
    need(
        len(set(encoder + decoder)) == 1,
        f"widths {encoder} / {decoder}: the mono-temporal network has one width",
    )
    out = _widths(flags, "out_conv", source)[-1]
    covmode = flags.get("covmode")
    if out == S2_BANDS:
        head = "plain"
    else:
        need(
            out == 2 * S2_BANDS and covmode == "diag",
            f"out_conv {out} with covmode {covmode!r}: only diag runs here",
        )
        head = "diag"
    norms = flags.get("encoder_norm", "group"), flags.get("decoder_norm", "batch")
    need(all(n in NORMS for n in norms), f"norms {norms}: choose among {', '.join(NORMS)}")
    var_act = flags.get("var_nonLinearity", "softplus")
    need(
        head == "plain" or var_act in ("softplus", "elu"),
        f"var_nonLinearity {var_act!r}: softplus or elu only",
    )
    use_sar = bool(flags.get("use_sar", False))
    options = {
        "model": "uncrtaints",
        "input_nc": S2_BANDS,
        "output_nc": S2_BANDS,
        "sar_nc": S1_BANDS,
        "sar_scaling": "standard",
        "uncrtaints_width": encoder[0],
        "uncrtaints_in_blocks": len(encoder),
        "uncrtaints_out_blocks": len(decoder),
        "uncrtaints_head": head,
        "uncrtaints_scale_by": float(flags.get("scale_by", 1.0)),
        "uncrtaints_encoder_norm": norms[0],
        "uncrtaints_decoder_norm": norms[1],
        "uncrtaints_mean_activation": "sigmoid" if flags.get("mean_nonLinearity", True) else "none",
        "uncrtaints_var_activation": var_act if var_act in ("softplus", "elu") else "softplus",
        "uncrtaints_no_sar": not use_sar,
    }
    variant = {
        "sar": use_sar,
        "head": head,
        "loss": flags.get("loss"),
        "scale_by": options["uncrtaints_scale_by"],
    }
    return options, variant


def network_from_options(options: dict) -> UnCRtainTSNet:
    """The (uninitialised) network that ``options`` (from :func:`options_from_flags`) describe."""
    sar = 0 if options["uncrtaints_no_sar"] else options["sar_nc"]
    return UnCRtainTSNet(
        in_nc=options["input_nc"] + sar,
        out_nc=options["output_nc"],
        width=options["uncrtaints_width"],
        in_blocks=options["uncrtaints_in_blocks"],
        out_blocks=options["uncrtaints_out_blocks"],
        head=options["uncrtaints_head"],
        scale_by=options["uncrtaints_scale_by"],
        encoder_norm=options["uncrtaints_encoder_norm"],
        decoder_norm=options["uncrtaints_decoder_norm"],
        mean_activation=options["uncrtaints_mean_activation"],
        var_activation=options["uncrtaints_var_activation"],
    )


def _widths(flags: dict, key: str, source: Path) -> list[int]:
    """A list flag as their parser leaves it: a list, or the string ``"[128,128]"`` before conversion."""
    value = flags.get(key)
    if isinstance(value, str):
        value = [v for v in value.strip("[] ").split(",") if v.strip()]
    try:
        widths = [int(v) for v in value]
    except (TypeError, ValueError):
        raise UserError(f"{source}: {key} is {value!r}, not a list of integers") from None
    if not widths or min(widths) < 1:
        raise UserError(f"{source}: {key} is {value!r}, not a list of positive integers")
    return widths


def _conf_path(path: Path, conf: str | os.PathLike | None) -> Path:
    if conf is not None:
        return Path(conf)
    for candidate in (path.parent / "conf.json", path.with_name(path.name.split(".")[0] + ".json")):
        if candidate.is_file():
            return candidate
    raise UserError(
        f"{path}: no conf.json beside it; UnCRtainTS checkpoints come with the JSON of their training flags "
        "(it says whether the model takes SAR and which head it has): put it beside the file"
    )


def _read_flags(path: Path) -> dict:
    try:
        flags = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the training flags {path}: {err}") from None
    if not isinstance(flags, dict):
        raise UserError(f"{path} does not hold a JSON object of training flags")
    return flags


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
