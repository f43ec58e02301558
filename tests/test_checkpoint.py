"""The checkpoint owner (models/checkpoint.py): labels, file names, refusals, all-or-nothing
writes, training-state versions, and closed-form schedules that resume exactly."""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from models import create_model
from models.checkpoint import FORMAT_VERSION, Checkpoints, CheckpointWriter, load_weights, safe_load
from models.networks import LR_POLICIES, EpochSchedule, get_scheduler, lr_factor
from options.base_options import saved_options
from options.train_options import TrainOptions
from tests.helpers import train_argv
from util.errors import UserError
from util.fileio import RenameTogether


def temporaries(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def options(**kw) -> argparse.Namespace:
    base = {"epoch": "latest", "load_iter": 0, "continue_train": False}
    return argparse.Namespace(**(base | kw))


# ---------------------------------------------------------------- labels and file names
@pytest.mark.parametrize(
    ("epoch", "load_iter", "label"), [("latest", 0, "latest"), ("40", 0, "40"), ("40", 1200, "iter_1200")]
)
def test_the_label_that_epoch_and_load_iter_select(epoch, load_iter, label):
    assert Checkpoints.selected_label(options(epoch=epoch, load_iter=load_iter)) == label


def test_file_names_are_the_official_ones(tmp_path):
    ckpt = Checkpoints(tmp_path)
    assert ckpt.weight_path("latest", "G2") == tmp_path / "latest_net_G2.pth"
    assert ckpt.weight_path(40, "D") == tmp_path / "40_net_D.pth"
    assert ckpt.state_path(Checkpoints.iter_label(12)) == tmp_path / "iter_12_train_state.pth"


def test_saved_labels_in_order_without_temporaries(tmp_path):
    for name in (
        "latest_net_G.pth",
        "10_net_G.pth",
        "2_net_G.pth",
        "iter_12_net_G.pth",
        "iter_3_train_state.pth",
        ".latest_net_G.pth.tmp123",
        "train_opt.json",
    ):
        (tmp_path / name).write_bytes(b"")
    assert Checkpoints(tmp_path).labels() == ["2", "10", "iter_3", "iter_12", "latest"]
    assert Checkpoints(tmp_path / "missing").labels() == []


# ---------------------------------------------------------------- refusals
def test_a_fresh_run_into_a_folder_holding_a_model_is_refused(tmp_path):
    Checkpoints(tmp_path / "new").check_start(options())  # nothing there: fine
    (tmp_path / "1_net_G.pth").write_bytes(b"")
    (tmp_path / "latest_net_G.pth").write_bytes(b"")
    with pytest.raises(
        UserError, match=r"already holds a trained model \(checkpoints: 1, latest\).*--continue_train"
    ):
        Checkpoints(tmp_path).check_start(options())
    Checkpoints(tmp_path).check_start(options(continue_train=True))
    Checkpoints(tmp_path).check_start(options(continue_train=True, epoch="1"))


def test_continue_train_needs_the_selected_checkpoint(tmp_path):
    (tmp_path / "latest_train_state.pth").write_bytes(b"")
    Checkpoints(tmp_path).check_start(options(continue_train=True))
    with pytest.raises(UserError, match=f"no checkpoint 'iter_8' to resume in {tmp_path}"):
        Checkpoints(tmp_path).check_start(options(continue_train=True, load_iter=8))
    with pytest.raises(UserError, match="no checkpoint 'latest'"):
        Checkpoints(tmp_path / "typo").check_start(options(continue_train=True))


def test_architecture_options_must_match_on_resume():
    saved = {"ngf": 64, "netG": "unet_256", "lr": 0.1}
    Checkpoints.check_compatible(saved, argparse.Namespace(ngf=64, netG="unet_256", lr=0.5), "x.json")
    with pytest.raises(UserError, match=r"cannot resume from x.json: --ngf 64 \(saved\) vs 32 \(now\)"):
        Checkpoints.check_compatible(saved, argparse.Namespace(ngf=32, netG="unet_256", lr=0.1), "x.json")


# ---------------------------------------------------------------- the transaction
def test_files_of_a_transaction_appear_together(tmp_path):
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    with CheckpointWriter() as writer:
        writer.save({"x": torch.zeros(1)}, a)
        writer.save({"x": torch.ones(1)}, b)
        assert not a.exists() and not b.exists()  # nothing is renamed before the end
        assert len(temporaries(tmp_path)) == 2
    assert torch.equal(safe_load(a)["x"], torch.zeros(1)) and torch.equal(safe_load(b)["x"], torch.ones(1))
    assert temporaries(tmp_path) == []


def test_an_exception_in_a_transaction_keeps_every_previous_file(tmp_path):
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    a.write_bytes(b"old a")
    b.write_bytes(b"old b")
    with pytest.raises(RuntimeError), CheckpointWriter() as writer:
        writer.save({"x": torch.zeros(1)}, a)
        writer.save({"x": torch.zeros(1)}, b)
        raise RuntimeError("interrupted between the writes and the renames")
    assert (a.read_bytes(), b.read_bytes()) == (b"old a", b"old b") and temporaries(tmp_path) == []


def test_a_full_disk_names_the_file_and_keeps_the_previous_set(tmp_path, monkeypatch):
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    a.write_bytes(b"old a")
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if "b.pth" in f.name:
            f.write(b"\0" * 8)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(UserError, match=f"could not write checkpoint {b}: No space left on device"):
        with CheckpointWriter() as writer:
            writer.save({"x": torch.zeros(1)}, a)
            writer.save({"x": torch.zeros(1)}, b)
    assert a.read_bytes() == b"old a" and not b.exists() and temporaries(tmp_path) == []


def test_rename_together_is_generic_and_cleans_temporaries_of_dead_writers(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".t.txt.tmp{dead.pid}").write_text("left by a killed process")
    with RenameTogether() as files:
        files.path(tmp_path / "t.txt").write_text("new")
        files.path(tmp_path / "u.txt").write_text("new too")
    assert (tmp_path / "t.txt").read_text() == (tmp_path / "u.txt").read_text()[:3] == "new"
    assert temporaries(tmp_path) == []


# ---------------------------------------------------------------- schedules: one formula each
def lr_after_steps(policy: str, n: int, **kw) -> list[float]:
    """The lr after 0..n epochs of stepping the schedule, with --lr 2e-4."""
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=2e-4)
    schedule = get_scheduler(optimizer, lr_policy=policy, **kw)
    out = [optimizer.param_groups[0]["lr"]]
    for _ in range(n):
        schedule.step()
        out.append(optimizer.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize(
    ("policy", "kw"),
    [
        ("linear", {"n_epochs": 3, "n_epochs_decay": 4}),
        ("lambda", {"n_epochs": 3, "n_epochs_decay": 4, "epoch_count": 2}),
        ("step", {"lr_decay_iters": 3}),
        ("cosine", {"n_epochs": 2, "n_epochs_decay": 3}),
    ],
)
def test_the_lr_after_n_epochs_is_lr_times_the_factor(policy, kw):
    stepped = lr_after_steps(policy, 9, **kw)
    assert stepped == [2e-4 * lr_factor(n, lr_policy=policy, **kw) for n in range(10)]  # bit-exact
    for n in range(10):  # setting the epoch directly gives the very same lr
        optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=2e-4)
        schedule = get_scheduler(optimizer, lr_policy=policy, **kw)
        schedule.set_epoch(n)
        assert optimizer.param_groups[0]["lr"] == stepped[n]
        assert schedule.state_dict() == {"epochs_done": n}


def test_every_policy_is_covered_and_plateau_has_no_closed_form():
    assert set(LR_POLICIES) == {"linear", "lambda", "step", "cosine", "plateau"}
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1.0)
    assert isinstance(
        get_scheduler(optimizer, lr_policy="plateau"), torch.optim.lr_scheduler.ReduceLROnPlateau
    )
    assert isinstance(get_scheduler(optimizer, lr_policy="step"), EpochSchedule)
    with pytest.raises(ValueError, match="plateau"):
        lr_factor(3, lr_policy="plateau")


# ---------------------------------------------------------------- training state
def build(tmp_path, *extra: str):
    opt = TrainOptions().parse(train_argv(tmp_path / "data", tmp_path / "ckpt", "m", *extra), save=False)
    model = create_model(opt)
    model.setup()
    return model


def test_save_writes_weights_and_state_together(tmp_path):
    model = build(tmp_path)
    path = model.checkpoints.save(model, "latest", {"epoch": 3, "total_iters": 6}, saved_options(model.opt))
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "latest_net_A.pth",
        "latest_net_D.pth",
        "latest_net_G.pth",
        "latest_net_G2.pth",
        "latest_train_state.pth",
    ]
    state = safe_load(path)
    assert state["format_version"] == FORMAT_VERSION and state["progress"] == {"epoch": 3, "total_iters": 6}
    assert state["options"]["ngf"] == 4 and set(state["nets"]) == {"G", "G2", "A", "D"}


def test_a_changed_schedule_on_resume_follows_the_new_schedule(tmp_path, capsys):
    model = build(tmp_path, "--lr_policy", "step", "--lr_decay_iters", "1")
    for _ in range(2):
        model.update_learning_rate()
    model.checkpoints.save(model, "latest", {"epoch": 2, "total_iters": 4}, saved_options(model.opt))
    other = build(tmp_path, "--lr_policy", "cosine", "--n_epochs", "2", "--n_epochs_decay", "2")
    assert other.checkpoints.load_training_state(other, "latest", other.opt)["epoch"] == 2
    assert "schedule changed on resume (--lr_policy step -> cosine" in capsys.readouterr().out
    expected = 2e-4 * lr_factor(2, lr_policy="cosine", n_epochs=2, n_epochs_decay=2)
    assert other.current_lrs() == {n: expected for n in ("G", "G2", "A", "D")}
    other.update_learning_rate()  # and it goes on along the new schedule
    assert other.current_lrs()["G"] == 2e-4 * lr_factor(3, lr_policy="cosine", n_epochs=2, n_epochs_decay=2)


def test_plateau_keeps_its_restored_state_and_learning_rates(tmp_path):
    model = build(tmp_path, "--lr_policy", "plateau")
    for _ in range(8):
        model.update_learning_rate(metric=1.0)  # no improvement: one reduction x0.2
    assert model.current_lrs()["G"] == pytest.approx(2e-4 * 0.2)
    model.checkpoints.save(model, "latest", {"epoch": 8, "total_iters": 8}, saved_options(model.opt))
    other = build(tmp_path, "--lr_policy", "plateau", "--n_epochs", "20")
    other.checkpoints.load_training_state(other, "latest", other.opt)
    assert other.current_lrs() == model.current_lrs()
    assert other.schedulers[0].state_dict() == model.schedulers[0].state_dict()


def test_format_1_files_still_resume_and_unknown_formats_are_refused(tmp_path):
    model = build(tmp_path, "--lr_policy", "step", "--lr_decay_iters", "1")
    model.update_learning_rate()
    path = model.checkpoints.save(model, "latest", {"epoch": 1, "total_iters": 2}, saved_options(model.opt))
    state = safe_load(path)
    # Format 1 held torch StepLR states; the schedule is now recomputed from the epoch reached.
    old = state | {"format_version": 1, "schedulers": [{"step_size": 1, "last_epoch": 1}] * 4}
    torch.save(old, path)
    other = build(tmp_path, "--lr_policy", "step", "--lr_decay_iters", "1")
    assert other.checkpoints.load_training_state(other, "latest", other.opt)["epoch"] == 1
    assert other.current_lrs() == model.current_lrs()
    torch.save(state | {"format_version": 99}, path)
    with pytest.raises(UserError, match="format 99.*resume with the code that wrote it, or retrain"):
        other.checkpoints.load_training_state(other, "latest", other.opt)
    torch.save({k: v for k, v in state.items() if k != "rng"}, path)
    with pytest.raises(UserError, match="incomplete training-state file"):
        other.checkpoints.load_training_state(other, "latest", other.opt)


def test_weights_saved_from_a_data_parallel_wrapper_load(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.InstanceNorm2d(2))
    state = {f"module.{k}": v for k, v in net.state_dict().items()} | {"1.running_mean": torch.zeros(2)}
    other = nn.Sequential(nn.Conv2d(1, 2, 3), nn.InstanceNorm2d(2))
    load_weights(other, state, "x.pth")
    assert torch.equal(other[0].weight, net[0].weight)
    with pytest.raises(
        UserError, match=r"x.pth does not fit.*0.weight \(2, 1, 3, 3\) in file vs \(3, 1, 3, 3\)"
    ):
        load_weights(nn.Sequential(nn.Conv2d(1, 3, 3)), net.state_dict(), "x.pth")


# ---------------------------------------------------------------- epoch weights linked to latest
@pytest.mark.parametrize("links", [True, False])
def test_epoch_weights_are_the_weights_of_that_epoch(tmp_path, monkeypatch, links):
    """Epoch checkpoints are hard links to the 'latest' files just written (nothing written twice)
    and keep their bytes when later saves replace 'latest'; without hard links they are written."""
    import train
    from tests.helpers import make_triplets

    if not links:

        def no_link(*args, **kwargs):
            raise OSError(errno.EPERM, "no hard links here")

        monkeypatch.setattr(os, "link", no_link)
    make_triplets(tmp_path / "data", "train", n=2)
    every = ("--save_epoch_freq", "1", "--save_budget", "1")
    one = train_argv(tmp_path / "data", tmp_path / "c", "one", *every)
    two = train_argv(tmp_path / "data", tmp_path / "c", "two", *every, "--n_epochs", "2")
    assert train.main(one) == 0 and train.main(two) == 0
    exp = tmp_path / "c" / "two"
    for name in ("G", "G2", "A", "D"):
        after_one = safe_load(tmp_path / "c" / "one" / f"latest_net_{name}.pth")
        epoch_one = safe_load(exp / f"1_net_{name}.pth")
        assert after_one.keys() == epoch_one.keys()
        assert all(torch.equal(after_one[k], epoch_one[k]) for k in after_one), name
        latest, second = exp / f"latest_net_{name}.pth", exp / f"2_net_{name}.pth"
        assert latest.read_bytes() == second.read_bytes()
        assert os.path.samefile(latest, second) == links
        assert not os.path.samefile(latest, exp / f"1_net_{name}.pth")
    assert temporaries(exp) == []
