"""Generate the synthetic SAR / optical cloud-removal demo data set.

Example (from the repository root)::

    python -m scripts.make_demo_data --out datasets/demo --n_train 160 --n_test 40 --size 256 --seed 0

writes ``OUT/train/train{A,B,C}`` and ``OUT/test/test{A,B,C}`` PNG triplets
(A = cloudy optical, B = cloud-free optical, C = SAR as RGB: VV, VH, VV/VH ratio in dB).
The same arguments always give byte-identical files. See ``data/synthetic.py``.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.make_demo_data")

import argparse
import sys
from pathlib import Path

from data.synthetic import write_dataset
from options.parser import OneLineParser
from util.errors import UserError, run_cli


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the script."""
    p = OneLineParser(description="Write synthetic SAR/optical cloud-removal triplets (PNG).")
    p.add_argument(
        "--out", type=Path, default=Path("datasets/demo"), help="output folder (default datasets/demo)"
    )
    p.add_argument("--n_train", type=int, default=160, help="number of training triplets")
    p.add_argument("--n_test", type=int, default=40, help="number of test triplets")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0, help="data set seed (sample i depends only on seed and i)")
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument(
        "--cloud_cover",
        type=float,
        nargs=2,
        default=(0.2, 0.7),
        metavar=("LOW", "HIGH"),
        help="thick-cloud cover fraction drawn uniformly in [LOW, HIGH]",
    )
    p.add_argument("--thickness", type=float, default=1.0, help="max opacity of thick clouds in [0, 1]")
    p.add_argument("--no_haze", action="store_true", help="no thin haze layer")
    p.add_argument("--no_shadows", action="store_true", help="no cloud shadows")
    p.add_argument("--prefix", default="demo", help="file stem prefix (stems are PREFIX_00000 ...)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace train/ and test/ of an existing output folder"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    lo, hi = args.cloud_cover
    if args.size < 16:
        raise UserError(f"--size must be at least 16, got {args.size}")
    if args.n_train < 0 or args.n_test < 0 or args.n_train + args.n_test < 1:
        raise UserError("--n_train and --n_test must be >= 0 with at least one sample")
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    if not (0.0 <= lo <= hi <= 1.0):
        raise UserError(f"--cloud_cover needs 0 <= LOW <= HIGH <= 1, got {lo} {hi}")
    if not (0.0 <= args.thickness <= 1.0):
        raise UserError(f"--thickness must be in [0, 1], got {args.thickness}")
    try:
        counts = write_dataset(
            args.out,
            args.n_train,
            args.n_test,
            size=args.size,
            seed=args.seed,
            workers=args.workers,
            overwrite=args.overwrite,
            prefix=args.prefix,
            progress=not args.quiet,
            cover=(lo, hi),
            thickness=args.thickness,
            haze=not args.no_haze,
            shadows=not args.no_shadows,
        )
    except (ValueError, FileExistsError) as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {counts['train']} train and {counts['test']} test triplets to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the generator; returns the exit status (0 ok, 2 bad options / refused output)."""
    try:
        return run_cli(lambda: run(argv))
    except SystemExit as exc:  # --help, or a bad option reported by the parser
        return int(exc.code or 0)


if __name__ == "__main__":
    sys.exit(main())
