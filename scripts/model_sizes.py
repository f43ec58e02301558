"""Parameter counts of every model at its paper's settings, for 3-band PNG and 13-band SEN12MS-CR data.

    python -m scripts.model_sizes [--models all] [--json]

The networks are built on PyTorch's 'meta' device: shapes only, no memory, no initialisation.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.model_sizes")

import contextlib
import io
import json
import sys

import torch

import models
from comparison.plan import PAPER_ORDER, label, parse_models
from options.parser import OneLineParser
from options.train_options import TrainOptions
from util.errors import run_cli

DATA = {"png": ("3", "3", "3"), "sen12mscr": ("13", "13", "2")}  # input_nc, output_nc, sar_nc


def parameter_counts(model: str, data: str = "png", extra: tuple[str, ...] = ()) -> dict[str, int]:
    """Network name -> parameters of ``model`` at its defaults (the paper's settings) for ``data``,
    with the training flags ``extra`` (e.g. ``("--dsen2cr_no_sar",)``) on top."""
    a, b, c = DATA[data]
    argv = ["--dataroot", "unused", "--name", "sizes", "--model", model, "--gpu_ids", "-1"]
    argv += ["--input_nc", a, "--output_nc", b, "--sar_nc", c, *extra]
    with contextlib.redirect_stdout(io.StringIO()):
        opt = TrainOptions().parse(argv, save=False)
    opt.device = torch.device("meta")
    with torch.device("meta"), contextlib.redirect_stdout(io.StringIO()):
        built = models.find_model_using_name(model)(opt)
    return {name: sum(p.numel() for p in net.parameters()) for name, net in built.nets.items()}


def run(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m scripts.model_sizes", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="all", help="comma list (default: every model of the paper's figure)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    names = parse_models(args.models)
    counts = {m: {d: parameter_counts(m, d) for d in DATA} for m in names}
    if args.json:
        print(json.dumps(counts, indent=2))
        return 0
    print("| model | networks | 3-band PNG | 13-band S2 + 2-band S1 |")
    print("|---|---|---|---|")
    for m in names:
        nets = counts[m]["png"]
        cells = [", ".join(f"{n} {v:,}" for n, v in counts[m][d].items()) for d in DATA]
        print(f"| {label(m)} | {len(nets)} | {cells[0]} | {cells[1]} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["PAPER_ORDER", "parameter_counts"]
