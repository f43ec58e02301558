"""Reproduce the paper's comparison: train and test every model on the same data, one protocol.

    make compare                                        # light setting on the demo data (2-core CPU: < 1 h)
    python -m scripts.compare --setting smoke           # a minute: proves the pipeline
    python -m scripts.compare --dataroot DATA --name real --setting paper --gpu_ids 0
    python -m scripts.compare --dataroot DATA --name table --setting zhang2023 --gpu_ids 0
    python -m scripts.compare --setting smoke --protocols glf_cr,dsen2cr,allclear,uncrtaints

Settings (see docs/comparison.md): ``smoke``, ``light`` (equal budgets: each model keeps its own
optimiser and schedule shape, compressed), ``paper`` (each model at its authors' settings) and
``zhang2023`` (the conditions of Zhang et al.'s table, its four baselines and their model).

``DATA`` holds ``train/`` and ``test/`` in the official PNG layout (or, with ``--dataset_mode
sen12mscr``, is the SEN12MS-CR root). Writes ``results/compare/<name>/``: ``plan.json`` (every
row's command lines, data settings, test mode, schedule and budget), ``table.csv``,
``table.md``, ``figure.png`` and ``index.html``; checkpoints go to ``checkpoints/compare_<name>/``.
``--protocols`` adds other papers' evaluation protocols to the tables, beside ours.
Running it again reuses finished models and resumes an interrupted one; a run of the same name
with other flags or another budget is refused (``--overwrite`` deletes the old one and starts again).
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.compare")

import contextlib
import io
import shlex
import sys
from pathlib import Path

import data
from comparison import SETTINGS, make_plan, run_comparison
from comparison.plan import parse_models, parse_variants
from comparison.reuse import check_name
from metrics.authors import AUTHOR_PROTOCOLS, parse_author_protocols
from options.parser import DefaultsHelpFormatter, OneLineParser, add_gpu_ids_option, positive_int
from options.train_options import TrainOptions
from scripts.demo import ROOT, ensure_data
from util.errors import UserError, run_cli

DEMO_DATA = ROOT / "datasets" / "demo"


def build_parser() -> OneLineParser:
    p = OneLineParser(
        prog="python -m scripts.compare",
        description=__doc__.split("\n\n")[0],
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument(
        "--dataroot",
        type=Path,
        default=DEMO_DATA,
        help="data with train/ and test/ (default: the demo data, made if absent)",
    )
    p.add_argument(
        "--dataset_mode",
        default="triplet",
        choices=data.DATASET_CHOICES,
        help="how --dataroot is read: PNG triplets, simulated clouds or native SEN12MS-CR",
    )
    p.add_argument(
        "--name",
        default=None,
        help="comparison name, one folder name (default: the setting's name); running a name again "
        "resumes it when its flags and budget are the same, and is refused otherwise",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete an earlier comparison of this name (its results and its models) and start again",
    )
    p.add_argument("--setting", default="light", choices=tuple(SETTINGS), help="network sizes and budget")
    p.add_argument(
        "--models", default="all", help="comma list of models (default: every model of the paper's figure)"
    )
    p.add_argument(
        "--images",
        type=positive_int,
        default=None,
        help="training images seen per model, an equal budget for all (default: the setting's; "
        "paper and zhang2023: each model's own)",
    )
    p.add_argument(
        "--zhang_variant",
        default=None,
        help="zhang2023: which of Zhang et al.'s implementations of a model runs, as MODEL=NAME "
        "(pix2pix=pix2pix_model3: their plain pix2pix; default pix2pix_model, what their registry runs)",
    )
    p.add_argument(
        "--protocols",
        default="",
        help="other papers' evaluation protocols to report beside ours, a comma list of "
        f"{', '.join(AUTHOR_PROTOCOLS)} (see docs/metrics.md)",
    )
    p.add_argument("--rows", type=positive_int, default=4, help="example rows in figure.png")
    add_gpu_ids_option(p)
    p.add_argument("--seed", type=int, default=0, help="seed of every model's run and of the demo data")
    p.add_argument(
        "--checkpoints_dir",
        default=str(ROOT / "checkpoints"),
        help="the models go to <checkpoints_dir>/compare_<name>/",
    )
    p.add_argument(
        "--results_dir",
        default=str(ROOT / "results"),
        help="tables and figures go to <results_dir>/compare/<name>/",
    )
    return p


def count_training_samples(dataroot: Path, dataset_mode: str) -> int:
    """Training samples of the data, read by the dataset class itself (so pairing rules apply)."""
    mode = data.canonical_name(dataset_mode)
    train_root = dataroot if mode == "sen12mscr" else dataroot / "train"
    if not train_root.is_dir():
        raise UserError(f"--dataroot {dataroot} lacks {train_root.name}/: it must hold train/ and test/")
    argv = ["--dataroot", str(train_root), "--dataset_mode", mode, "--name", "count", "--gpu_ids", "-1"]
    with contextlib.redirect_stdout(io.StringIO()):
        opt = TrainOptions().parse(argv, save=False)
        return len(data.find_dataset_using_name(mode)(opt))


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    parse_models(args.models)  # a bad name stops here, before any data is made
    variants = parse_variants(args.zhang_variant, args.setting)
    try:
        protocols = parse_author_protocols(args.protocols)
    except ValueError as err:
        raise UserError(f"--protocols: {err}") from None
    check_name(args.name or args.setting)
    if args.dataroot == DEMO_DATA and ensure_data(DEMO_DATA, args.seed):
        return 2
    plan = make_plan(
        name=args.name or args.setting,
        dataroot=args.dataroot,
        setting=args.setting,
        models_text=args.models,
        images=args.images,
        train_size=count_training_samples(args.dataroot, args.dataset_mode),
        dataset_mode=data.canonical_name(args.dataset_mode),
        checkpoints_dir=args.checkpoints_dir,
        results_dir=args.results_dir,
        command=shlex.join(["python", "-m", "scripts.compare", *(sys.argv[1:] if argv is None else argv)]),
        variants=variants,
        protocols=protocols,
    )
    run_comparison(plan, gpu_ids=args.gpu_ids, seed=args.seed, rows=args.rows, overwrite=args.overwrite)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
