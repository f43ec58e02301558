"""Saved options as input and record: ``--config FILE`` defaults, and what a run ran on."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import torch

from util.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
RUN_KEY = "_run"  # the record of the run in <phase>_opt.json, never an option
# Saved values that are not inputs: --suffix is already part of the saved --name;
# --continue_train belongs to the run that resumed, not to the experiment.
NOT_INPUTS = ("config", "suffix", "continue_train")


def config_path(argv: list[str] | None) -> str | None:
    """The ``--config`` value of ``argv`` (None without one), read before the full parser exists."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    return known.config


def read_config(path: str) -> dict:
    """The options saved in ``path`` (a ``train_opt.json``), as a dict of option -> value."""
    try:
        saved = json.loads(Path(path).read_text())
    except OSError as err:
        raise UserError(f"--config {path}: cannot read it ({err.strerror or err})") from None
    except ValueError as err:
        raise UserError(f"--config {path}: not a JSON file of options ({err})") from None
    if not isinstance(saved, dict):
        raise UserError(f"--config {path}: expected a JSON object of options, such as a saved train_opt.json")
    return {key: value for key, value in saved.items() if key != RUN_KEY and key not in NOT_INPUTS}


def apply_config(parser: argparse.ArgumentParser, config: dict) -> None:
    """Make the saved values the parser's defaults, for the options this parser has (so far)."""
    known = vars(parser.parse_known_args([])[0])
    parser.set_defaults(**{key: value for key, value in config.items() if key in known})


def unused_config_keys(parser: argparse.ArgumentParser, config: dict) -> list[str]:
    known = vars(parser.parse_known_args([])[0])
    return sorted(key for key in config if key not in known)


def git_commit() -> str | None:
    """The code's git commit, with '+modified' when tracked files differ from it; None outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        modified = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+modified" if modified else "")


def run_record(device) -> dict:
    """What a run ran on, saved beside its options."""
    return {"git_commit": git_commit(), "torch": torch.__version__, "device": str(device)}
