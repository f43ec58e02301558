"""Preemption-safe training: a run killed before its first training state resumes, the same
command line restarts or resumes (``--continue_train auto``), and SIGTERM / SIGUSR1 save the state at
an iteration's end and stop (SLURM: SIGUSR1 requeues the job)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train
from models.checkpoint import Checkpoints, safe_load
from models.pix2pix_attn_model import Pix2PixAttnModel
from tests.helpers import make_triplets, run_main, train_argv
from util.preemption import requeue_on_slurm

ROOT = Path(__file__).resolve().parents[1]
NETS = ("G", "G2", "A", "D")


def _weights(folder: Path, label: str = "latest") -> dict[str, dict[str, torch.Tensor]]:
    return {n: safe_load(folder / f"{label}_net_{n}.pth") for n in NETS}


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[n][k], b[n][k]) for n in NETS for k in a[n])


# ---------------------------------------------------------------- killed before a training state
_KILL_AFTER_EPOCH_2 = """
import os, signal, sys
from models.checkpoint import Checkpoints
import train
save_weights = Checkpoints.save_weights
def then_die(self, nets, label, *args, **kwargs):
    save_weights(self, nets, label, *args, **kwargs)
    if str(label) == "2" and not args:  # train.py's call, committed (not the nested one)
        os.kill(os.getpid(), signal.SIGKILL)
Checkpoints.save_weights = then_die
sys.exit(train.main(sys.argv[1:]))
"""


def test_run_killed_after_epoch_2_weights_resumes_with_the_default_flags(tmp_path, capfd):
    make_triplets(tmp_path / "data", "train", n=3)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "k", "--n_epochs", "3", "--save_epoch_freq", "1")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _KILL_AFTER_EPOCH_2, *argv], cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    exp = tmp_path / "ckpt" / "k"
    assert (exp / "2_net_D.pth").is_file() and not (exp / "3_net_G.pth").exists()
    assert (exp / "latest_train_state.pth").is_file()  # the first end-of-epoch state is always saved
    capfd.readouterr()
    assert train.main([*argv, "--continue_train"]) == 0
    assert "resuming after epoch" in capfd.readouterr().out
    assert safe_load(exp / "latest_train_state.pth")["progress"]["epoch"] == 3


def test_continue_train_without_a_state_resumes_from_the_newest_complete_epoch_weights(tmp_path, capfd):
    make_triplets(tmp_path / "data", "train", n=2)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "w", "--n_epochs", "3", "--save_epoch_freq", "1")
    assert train.main(argv[:-1] + ["1", "--n_epochs", "2"]) == 0
    exp = tmp_path / "ckpt" / "w"
    for path in exp.glob("latest_*"):
        path.unlink()
    (exp / "2_net_D.pth").unlink()  # epoch 2 is incomplete: epoch 1 is the newest complete set
    capfd.readouterr()
    assert train.main([*argv, "--continue_train"]) == 0
    out, err = capfd.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "resuming from the weights of epoch 1" in warnings[0]
    assert "optimisers' moments, the image pool" in warnings[0] and "not continue bit-exactly" in warnings[0]
    assert f"loaded {exp / '1_net_G.pth'}" in out and "end of epoch 2 / 3" in out
    assert safe_load(exp / "latest_train_state.pth")["progress"] == {"epoch": 3, "total_iters": 6}


def test_continue_train_auto_starts_afresh_then_resumes(tmp_path, capfd):
    make_triplets(tmp_path / "data", "train", n=2)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "a", "--continue_train", "auto")
    capfd.readouterr()
    assert train.main(argv) == 0
    assert "nothing to resume" in capfd.readouterr().out
    assert train.main([*argv, "--n_epochs", "2"]) == 0
    assert "resuming after epoch 1 (2 images seen)" in capfd.readouterr().out
    assert run_main(train.main, [*argv, "--continue_train", "always"]) == 2
    assert "invalid choice: 'always'" in capfd.readouterr().err


# ---------------------------------------------------------------- SIGTERM / SIGUSR1
@pytest.fixture
def unhandled_signals_fail():
    """A stop signal that train.py did not catch fails the test instead of ending pytest."""

    def fail(signum, frame):
        raise AssertionError(f"signal {signum} reached the test: train.py installed no handler")

    previous = {sig: signal.signal(sig, fail) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def signal_in_step(monkeypatch, at: int, signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to this process in the ``at``-th optimisation step (1-based)."""
    step = Pix2PixAttnModel.optimize_parameters
    calls = [0]

    def signalled(self):
        calls[0] += 1
        if calls[0] == at:
            os.kill(os.getpid(), signum)
        return step(self)

    monkeypatch.setattr(Pix2PixAttnModel, "optimize_parameters", signalled)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Data and an uninterrupted run: 2 epochs of 3 batches of 2 images, an image pool."""
    root = tmp_path_factory.mktemp("preempt")
    make_triplets(root / "data", "train", n=6, seed=3)
    assert train.main(_argv(root, "ref")) == 0
    return root


def _argv(root: Path, name: str) -> list[str]:
    extra = ("--n_epochs", "2", "--batch_size", "2", "--pool_size", "3", "--seed", "7", "--lr_policy", "step")
    return train_argv(root / "data", root / "ckpt", name, *extra, "--continue_train", "auto")


@pytest.mark.parametrize("second_signal_while_saving", [False, True])
def test_sigterm_mid_epoch_then_the_same_command_ends_as_an_uninterrupted_run(
    reference, monkeypatch, capfd, unhandled_signals_fail, second_signal_while_saving
):
    name = f"term{int(second_signal_while_saving)}"
    exp = reference / "ckpt" / name
    signal_in_step(monkeypatch, at=5)  # epoch 2, step 2: 4 + 2 images seen when the step ends
    if second_signal_while_saving:
        save = Checkpoints.save
        saves = []

        def interrupted_save(self, *args, **kwargs):
            saves.append(args[1])
            if len(saves) == 2:  # the first is epoch 1's end, the second the signal's
                os.kill(os.getpid(), signal.SIGTERM)
            return save(self, *args, **kwargs)

        monkeypatch.setattr(Checkpoints, "save", interrupted_save)
    capfd.readouterr()
    assert train.main(_argv(reference, name)) == 128 + signal.SIGTERM
    err = capfd.readouterr().err
    assert "stopped by SIGTERM 4 images into epoch 2" in err and "--continue_train auto" in err
    state = safe_load(exp / "latest_train_state.pth")  # whole, also after a second signal
    assert state["progress"] == {"epoch": 1, "epoch_iter": 4, "total_iters": 10}
    assert not any(".tmp" in p.name for p in exp.iterdir())
    if second_signal_while_saving:
        assert saves == ["latest", "latest"]
    monkeypatch.undo()
    assert train.main(_argv(reference, name)) == 0
    assert "resuming after epoch 1, 4 images into epoch 2 (10 images seen)" in capfd.readouterr().out
    assert _same(_weights(exp), _weights(reference / "ckpt" / "ref"))


def test_sigusr1_on_slurm_saves_and_requeues_the_job(
    reference, tmp_path, monkeypatch, capfd, unhandled_signals_fail
):
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "bin" / "scontrol"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    signal_in_step(monkeypatch, at=2, signum=signal.SIGUSR1)
    capfd.readouterr()
    assert train.main(_argv(reference, "usr1")) == 128 + signal.SIGUSR1
    assert "SLURM job 4242 requeued" in capfd.readouterr().err
    assert calls.read_text() == "requeue 4242\n"
    assert safe_load(reference / "ckpt" / "usr1" / "latest_train_state.pth")["progress"]["epoch_iter"] == 4


def test_requeue_only_after_sigusr1_inside_slurm_with_scontrol(tmp_path, monkeypatch):
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "scontrol"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert requeue_on_slurm(signal.SIGUSR1) == ""  # not on SLURM
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert requeue_on_slurm(signal.SIGTERM) == ""  # preempted or cancelled: SLURM decides
    assert not calls.exists()
    assert requeue_on_slurm(signal.SIGUSR1) == "SLURM job 7: scontrol requeue failed (status 1)"
    assert calls.read_text() == "requeue 7\n"
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert "scontrol is not on PATH" in requeue_on_slurm(signal.SIGUSR1)
