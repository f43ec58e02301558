"""UnCRtainTS' training flags (the ``conf.json`` beside each of its checkpoints) as our options.

The authors' training script writes ``vars(config)`` after its own adjustments (for ``--pretrain``,
the mono-temporal case: one time point, no positional encoding; for the MGNLL loss, 13 more output
channels and softplus variances), and their test script rebuilds the network from it. Here the
same file gives the ``--model uncrtaints`` options that build that network
(:func:`options_from_flags`) and the network itself (:func:`network_from_options`). What this code
does not build (a multi-temporal network, another block type or covariance, separate output
layers) is refused in one line naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from util.errors import UserError

from ..networks.uncrtaints import NORMS, UnCRtainTSNet

S2_BANDS, S1_BANDS = 13, 2


def conf_path(path: Path, conf: str | os.PathLike | None = None) -> Path:
    """The training flags of the checkpoint ``path``: ``conf``, else ``conf.json`` beside it (their
    layout: one folder per experiment), else ``<name>.json`` beside it."""
    if conf is not None:
        return Path(conf)
    for candidate in (path.parent / "conf.json", path.with_name(path.name.split(".")[0] + ".json")):
        if candidate.is_file():
            return candidate
    raise UserError(
        f"{path}: no conf.json beside it; UnCRtainTS checkpoints come with the JSON of their training flags "
        "(it says whether the model takes SAR and which head it has): put it beside the file"
    )


def read_flags(path: Path) -> dict[str, Any]:
    """The JSON object of training flags at ``path`` (a one-line error if it is not one)."""
    try:
        flags = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the training flags {path}: {err}") from None
    if not isinstance(flags, dict):
        raise UserError(f"{path} does not hold a JSON object of training flags")
    return flags


def options_from_flags(flags: dict, source: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--model uncrtaints`` options (with the band counts) and the variant (``sar``, ``head``,
    ``loss``, ``scale_by``) from the authors' training flags read from ``source``."""

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
    scale_by = flags.get("scale_by", 1.0)
    need(
        isinstance(scale_by, (int, float)) and not isinstance(scale_by, bool) and scale_by > 0,
        f"scale_by {scale_by!r}: a positive number",
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
        "uncrtaints_scale_by": float(scale_by),
        "uncrtaints_encoder_norm": norms[0],
        "uncrtaints_decoder_norm": norms[1],
        "uncrtaints_mean_activation": "sigmoid" if flags.get("mean_nonLinearity", True) else "none",
        "uncrtaints_var_activation": var_act if var_act in ("softplus", "elu") else "softplus",
        "uncrtaints_no_sar": not use_sar,
    }
    variant = {"sar": use_sar, "head": head, "loss": flags.get("loss"), "scale_by": float(scale_by)}
    return options, variant


def network_from_options(options: dict, source: Path | None = None) -> UnCRtainTSNet:
    """The (uninitialised) network that ``options`` (from :func:`options_from_flags`) describe;
    ``source``: the flags file named when they describe no network that can be built."""
    sar = 0 if options["uncrtaints_no_sar"] else options["sar_nc"]
    try:
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
    except ValueError as err:  # e.g. a width GroupNorm's 4 groups do not divide
        raise UserError(
            f"{source or 'the training flags'} describe no network that can be built: {err}"
        ) from None


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
