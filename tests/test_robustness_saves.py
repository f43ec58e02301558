"""Never lose a run: a process killed, an interrupt or a full disk during a save keeps the previous
checkpoint, and stale temporaries are removed only when their writer is gone."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import test as test_script
import train
from display.visualizer import Visualizer
from models.checkpoint import atomic_save, safe_load
from tests.helpers import expect_error, test_argv
from tests.test_robustness import NETS, checkpoint_files, resume_argv

ROOT = Path(__file__).resolve().parents[1]


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# ---------------------------------------------------------------- 3. a crash during a save
_DIE_DURING_SAVE = """
import io, os, signal, sys
import torch
real_save = torch.save
def save_half_then_die(obj, f, *args, **kwargs):
    buf = io.BytesIO()
    real_save(obj, buf, *args, **kwargs)
    f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
    f.flush()
    os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = save_half_then_die
import train
sys.exit(train.main(sys.argv[1:]))
"""


def test_process_killed_while_saving_keeps_the_previous_checkpoint(trained, exp, tmp_path, capfd):
    before = checkpoint_files(exp)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # `-c` in cwd=ROOT imports the repository
    proc = subprocess.Popen(
        [sys.executable, "-c", _DIE_DURING_SAVE, *resume_argv(trained, exp)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]

    # The end-of-epoch save died half-way through its first file: a hidden temporary is left.
    leftovers = temporaries(exp)
    assert leftovers == [f".latest_net_G.pth.tmp{proc.pid}"]
    assert 0 < (exp / leftovers[0]).stat().st_size < len(before["latest_net_G.pth"])
    after = checkpoint_files(exp)
    del after[leftovers[0]]
    assert after == before  # every checkpoint file is byte-identical and still loads
    for net in NETS:
        assert safe_load(exp / f"latest_net_{net}.pth").keys() == safe_load(exp / f"1_net_{net}.pth").keys()

    # Nothing takes the temporary for a checkpoint: test.py runs, listing only real labels ...
    capfd.readouterr()
    results = tmp_path / "results"
    assert test_script.main(test_argv(trained / "data", exp.parent, results, "tiny")) == 0
    expect_error(
        capfd,
        test_script.main,
        test_argv(trained / "data", exp.parent, results, "tiny", "--epoch", "9"),
        "saved checkpoints: 1, latest",
    )
    # ... and resuming works, and its first successful save of that file removes the leftover.
    assert train.main(resume_argv(trained, exp)) == 0
    assert "resuming after epoch 1 (2 images seen)" in capfd.readouterr().out
    assert temporaries(exp) == []
    assert safe_load(exp / "latest_train_state.pth")["progress"]["epoch"] == 2
    assert (exp / "latest_net_G.pth").read_bytes() != before["latest_net_G.pth"]  # the epoch trained


def test_interrupted_save_leaves_no_temporary_and_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    atomic_save({"x": torch.zeros(3)}, path)
    old = path.read_bytes()

    def interrupted(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"x": torch.ones(3)}, path)
    assert path.read_bytes() == old and temporaries(tmp_path) == []


def test_stale_temporaries_are_removed_only_when_their_writer_is_gone(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = os.getppid()  # the process that started this test is running
    path = tmp_path / "latest_net_G.pth"
    names = {
        f".latest_net_G.pth.tmp{dead.pid}": False,
        f".latest_net_G.pth.tmp{os.getpid()}": False,
        f".latest_net_G.pth.tmp{live}": True,
        ".latest_net_G.pth.tmpx": True,
        f".other.pth.tmp{dead.pid}": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
    atomic_save({"x": torch.zeros(1)}, path)
    assert {name: (tmp_path / name).exists() for name in names} == names
    assert torch.equal(safe_load(path)["x"], torch.zeros(1))


# ---------------------------------------------------------------- 4. disk full
def full_disk_after(monkeypatch, n_ok: int) -> list[str]:
    """``torch.save`` writes ``n_ok`` files, then fails with ENOSPC part-way through a file."""
    real_save = torch.save
    written: list[str] = []

    def save(obj, f, *args, **kwargs):
        if len(written) >= n_ok:
            f.write(b"\0" * 64)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(getattr(f, "name", str(f)))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    return written


@pytest.mark.parametrize(
    ("n_ok", "failing"), [(0, "latest_net_G.pth"), (3, "latest_net_D.pth"), (4, "latest_train_state.pth")]
)
def test_disk_full_during_the_end_of_epoch_save(trained, exp, monkeypatch, capfd, n_ok, failing):
    before = checkpoint_files(exp)
    full_disk_after(monkeypatch, n_ok)
    expect_error(capfd, train.main, resume_argv(trained, exp), str(exp / failing), "No space left on device")
    monkeypatch.undo()
    # The files written before the disk filled up never replaced their predecessors.
    assert checkpoint_files(exp) == before and temporaries(exp) == []
    assert safe_load(exp / "latest_train_state.pth")["progress"]["epoch"] == 1
    for net in NETS:
        safe_load(exp / f"latest_net_{net}.pth")


def test_disk_full_while_writing_the_loss_log(trained, exp, monkeypatch, capfd):
    log = exp / "loss_log.txt"

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(log))

    monkeypatch.setattr(Visualizer, "print_current_losses", full)
    before = checkpoint_files(exp)
    expect_error(
        capfd, train.main, resume_argv(trained, exp, "--print_freq", "1"), "No space left on device", str(log)
    )
    assert checkpoint_files(exp) == before
