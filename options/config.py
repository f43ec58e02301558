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
TRAIN_COMMAND = "train.py"  # the one command whose saved options --config takes
# Options that only one command has: they tell apart files saved before _run named the command.
TEST_ONLY_KEYS = frozenset({"results_dir", "num_test", "cloud_detector", "test_mode"})
TRAIN_ONLY_KEYS = frozenset({"n_epochs", "n_epochs_decay", "lr", "lr_policy"})


def config_path(argv: list[str] | None) -> str | None:
    """The ``--config`` value of ``argv`` (None without one), read before the full parser exists."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    return known.config


def read_config(path: str) -> dict:
    """The options saved in ``path`` (a ``train_opt.json``), as a dict of option -> value.

    A JSON file that another command wrote (test.py's ``test_opt.json``, a metrics summary, a
    comparison plan...) is refused with one line naming it and the file to give instead.
    """
    try:
        saved = json.loads(Path(path).read_text())
    except OSError as err:
        raise UserError(f"--config {path}: cannot read it ({err.strerror or err})") from None
    except ValueError as err:
        raise UserError(f"--config {path}: not a JSON file of options ({err})") from None
    if not isinstance(saved, dict):
        raise UserError(f"--config {path}: expected a JSON object of options, such as a saved train_opt.json")
    what = written_by(saved)
    if what != TRAIN_COMMAND:
        raise UserError(
            f"--config {path}: {what}, not a training configuration; give {train_options_file(saved)} "
            f"instead (the options {TRAIN_COMMAND} saved)"
        )
    return {key: value for key, value in saved.items() if key != RUN_KEY and key not in NOT_INPUTS}


def written_by(saved: dict) -> str:
    """``TRAIN_COMMAND`` for options train.py saved; otherwise a few words saying what ``saved`` is.

    Options files carry the command that wrote them (``_run.command``); files saved before that mark
    existed are told apart by the options only one command has.
    """
    record = saved.get(RUN_KEY)
    command = record.get("command") if isinstance(record, dict) else None
    if command == TRAIN_COMMAND:
        return TRAIN_COMMAND
    if isinstance(command, str):
        return f"the options {command} saved for its run"
    if "protocols" in saved and "results" in saved:
        return "a metrics summary (metrics_summary.json of test.py or scripts.evaluate)"
    if "rows" in saved and "setting" in saved:
        return "a comparison plan (plan.json of scripts.compare)"
    if "converter" in saved:
        return "the manifest of a converted data set (scripts.convert_sen12mscr)"
    if TEST_ONLY_KEYS & saved.keys():
        return "the options test.py saved for its run"
    if TRAIN_ONLY_KEYS <= saved.keys():
        return TRAIN_COMMAND
    return "not a file of options that train.py saved"


def train_options_file(saved: dict) -> str:
    """Where train.py saved the options of the experiment ``saved`` names, when it names one."""
    name, folder = saved.get("name"), saved.get("checkpoints_dir")
    if isinstance(name, str) and isinstance(folder, str) and name:
        return str(Path(folder) / name / "train_opt.json")
    return "checkpoints/<name>/train_opt.json"


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


def run_record(device, command: str) -> dict:
    """What a run ran on and which command it was (e.g. ``train.py``), saved beside its options."""
    return {"command": command, "git_commit": git_commit(), "torch": torch.__version__, "device": str(device)}
