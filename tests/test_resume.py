"""Never lose a run: a training killed with SIGKILL and resumed ends with the same weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from models.checkpoint import safe_load
from tests.helpers import make_triplets, train_argv

ROOT = Path(__file__).resolve().parents[1]
NETS = ("G", "G2", "A", "D")


def _env() -> dict:
    # One thread: identical floating-point reduction order in every process.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _train_cmd(data: Path, ckpt: Path, name: str, *extra: str) -> list[str]:
    argv = train_argv(
        data,
        ckpt,
        name,
        "--n_epochs",
        "2",
        "--n_epochs_decay",
        "1",
        "--seed",
        "7",
        "--batch_size",
        "2",
        "--print_freq",
        "4",
        "--pool_size",
        "3",
        *extra,
    )
    return [sys.executable, str(ROOT / "train.py"), *argv]


def _weights(folder: Path, label: str = "latest") -> dict[str, dict[str, torch.Tensor]]:
    return {n: safe_load(folder / f"{label}_net_{n}.pth") for n in NETS}


def _progress(folder: Path) -> dict | None:
    path = folder / "latest_train_state.pth"
    if not path.is_file():
        return None
    try:
        return safe_load(path)["progress"]
    except Exception:  # noqa: BLE001 - a file being replaced is not an error here
        return None


@pytest.mark.slow
@pytest.mark.parametrize("where", ["after an epoch", "mid-epoch"])
def test_sigkill_then_resume_gives_identical_weights(tmp_path, where):
    data = tmp_path / "data"
    make_triplets(data, "train", n=24, size=32, seed=3)
    ckpt = tmp_path / "ckpt"
    # Mid-epoch: a checkpoint every 2 batches (saving draws no random numbers, so the reference
    # run with the same option is the uninterrupted version of the killed one).
    extra = ["--save_latest_freq", "4"] if where == "mid-epoch" else []

    ref = subprocess.run(
        _train_cmd(data, ckpt, "ref", *extra), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert ref.returncode == 0, ref.stderr

    proc = subprocess.Popen(
        _train_cmd(data, ckpt, "killed", *extra),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and _progress(ckpt / "killed") is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    progress = _progress(ckpt / "killed")
    if progress is None or progress["epoch"] >= 3:
        pytest.fail(f"could not kill the run before its end (progress: {progress})")
    if where == "mid-epoch" and not progress.get("epoch_iter"):
        pytest.fail(f"the kill did not land after a mid-epoch checkpoint (progress: {progress})")
    killed_at = progress["epoch"]

    resumed = subprocess.run(
        _train_cmd(data, ckpt, "killed", "--continue_train", *extra),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {killed_at}" in resumed.stdout

    expected, got = _weights(ckpt / "ref"), _weights(ckpt / "killed")
    for net in NETS:
        for key, tensor in expected[net].items():
            assert torch.equal(tensor, got[net][key]), f"net {net} key {key} differs after resume"
    # Per-epoch files of the last epoch agree too, and the loss log records both sessions.
    assert torch.equal(
        _weights(ckpt / "ref", "3")["G"]["model.model.0.weight"],
        _weights(ckpt / "killed", "3")["G"]["model.model.0.weight"],
    )
    assert (ckpt / "killed" / "loss_log.txt").read_text().count("Training Loss") == 2
