"""Never crash on bad input: non-finite losses, resume conflicts, unwritable output folders, bad
data, and HTML in file names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import test as test_script
import train
from models.checkpoint import safe_load
from models.pix2pix_attn_model import Pix2PixAttnModel
from models.template_model import TemplateModel
from tests.helpers import expect_error, make_triplets, snapshot, test_argv, train_argv

NETS = ("G", "G2", "A", "D")


def checkpoint_files(folder: Path) -> dict[str, bytes]:
    """Every checkpoint file (``*.pth``, hidden temporaries included) by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.pth*"))} | {
        p.name: p.read_bytes() for p in sorted(folder.glob(".*"))
    }


def resume_argv(trained, exp: Path, *extra: str) -> list[str]:
    """Resume the copied experiment for a second epoch."""
    return train_argv(
        trained / "data",
        exp.parent,
        "tiny",
        "--continue_train",
        "--n_epochs",
        "2",
        "--lr_policy",
        "step",
        *extra,
    )


# ---------------------------------------------------------------- 1. non-finite losses
def poison(monkeypatch, method: str, loss: str, at: set[int]) -> list[int]:
    """Make ``loss`` NaN in the given calls (1-based) of ``Pix2PixAttnModel.<method>``."""
    original = getattr(Pix2PixAttnModel, method)
    calls: list[int] = []

    def poisoned(self, *args, **kwargs):
        losses = original(self, *args, **kwargs)
        calls.append(len(calls) + 1)
        if calls[-1] in at:
            losses[loss] = losses[loss] * float("nan")
        return losses

    monkeypatch.setattr(Pix2PixAttnModel, method, poisoned)
    return calls


def test_nan_loss_stops_training_and_keeps_the_last_checkpoint(trained, exp, monkeypatch, capfd):
    before = checkpoint_files(exp)
    poison(monkeypatch, "generator_losses", "G_L1", at={2})
    expect_error(
        capfd,
        train.main,
        resume_argv(trained, exp),
        "loss G_L1",
        "non-finite",
        "epoch 2, iteration 2",
        "checkpoint is intact",
    )
    assert checkpoint_files(exp) == before
    assert safe_load(exp / "latest_train_state.pth")["progress"]["epoch"] == 1


def test_absurd_learning_rate_stops_with_one_line(tmp_path, capfd):
    make_triplets(tmp_path / "data", "train", n=3)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "lr", "--lr", "1e30", "--n_epochs", "2")
    expect_error(capfd, train.main, argv, "non-finite at epoch 1, iteration 2", "G_L1", "--nonfinite skip")
    assert not list((tmp_path / "ckpt" / "lr").glob("*.pth"))  # nothing non-finite was saved


def state_of(model) -> dict[str, torch.Tensor]:
    """Every parameter and optimiser statistic of ``model``, cloned."""
    out = {
        f"{n}.{k}": v.detach().clone() for n, net in model.nets.items() for k, v in net.state_dict().items()
    }
    for name, optimizer in model.optimizers.items():
        for i, state in enumerate(optimizer.state_dict()["state"].values()):
            out.update({f"opt.{name}.{i}.{k}": torch.as_tensor(v).clone() for k, v in state.items()})
    return out


def test_skip_policy_steps_nothing_on_a_nan_iteration_and_goes_on(tmp_path, monkeypatch, capfd):
    make_triplets(tmp_path / "data", "train", n=3)
    poison(monkeypatch, "generator_losses", "G_L1", at={2})  # a generator loss
    poison(monkeypatch, "discriminator_losses", "D_fake", at={4})  # a discriminator loss only
    original = Pix2PixAttnModel.optimize_parameters
    steps: list[tuple[bool, list[str], list[str]]] = []  # (changed?, skipped_step, unchanged)
    models = []

    def watched(self):
        before = state_of(self)
        losses = original(self)
        after = state_of(self)
        changed = [k for k in after if k not in before or not torch.equal(after[k], before[k])]
        unchanged = [k for k in before if k.split(".")[0] in NETS and torch.equal(after[k], before[k])]
        steps.append((bool(changed), list(self.skipped_step), unchanged))
        models[:] = [self]
        return losses

    monkeypatch.setattr(Pix2PixAttnModel, "optimize_parameters", watched)
    argv = train_argv(
        tmp_path / "data",
        tmp_path / "ckpt",
        "skip",
        "--nonfinite",
        "skip",
        "--n_epochs",
        "2",
        "--print_freq",
        "1",
        "--display_freq",
        "1",
        "--serial_batches",
    )
    capfd.readouterr()
    assert train.main(argv) == 0
    out, err = capfd.readouterr()

    assert len(steps) == 6
    for i, (changed, skipped, unchanged) in enumerate(steps, start=1):
        if i == 2:
            assert not changed and skipped == ["G_L1"], i
        elif i == 4:
            assert not changed and skipped == ["D_fake"], i  # D's loss also holds back G's step
        else:
            assert changed and not skipped and not unchanged, (i, unchanged[:3])
    warnings = [line for line in err.splitlines() if "optimiser steps skipped" in line]
    assert warnings == [
        "warning: loss G_L1 non-finite at epoch 1, iteration 2 (2 images seen): optimiser steps skipped "
        "(1 skipped so far)",
        "warning: loss D_fake non-finite at epoch 2, iteration 1 (4 images seen): optimiser steps skipped "
        "(2 skipped so far)",
    ]
    assert "Traceback" not in err and "end of epoch 2 / 2" in out
    # The image pool never received the non-finite fake; printed losses and saved weights are finite.
    assert all(bool(torch.isfinite(im).all()) for im in models[0].fake_pool.images)
    assert "nan" not in (tmp_path / "ckpt" / "skip" / "loss_log.txt").read_text()
    for net in NETS:
        weights = safe_load(tmp_path / "ckpt" / "skip" / f"2_net_{net}.pth")
        assert all(bool(torch.isfinite(v).all()) for v in weights.values())


def test_skip_policy_refuses_a_model_that_cannot_skip(tmp_path, monkeypatch, capfd):
    make_triplets(tmp_path / "data", "train", n=2)
    original = TemplateModel.optimize_parameters

    def nan_after_step(self):
        losses = original(self)
        losses["G_L1"] = losses["G_L1"] * float("nan")
        return losses

    monkeypatch.setattr(TemplateModel, "optimize_parameters", nan_after_step)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "t", "--model", "template", "--nonfinite", "skip")
    expect_error(capfd, train.main, argv, "G_L1", "cannot skip steps")


# ---------------------------------------------------------------- 2. resume conflicts
@pytest.mark.parametrize(("flag", "value", "saved"), [("--ngf", "8", "4"), ("--norm", "batch", "instance")])
def test_resume_with_another_architecture_is_refused_and_changes_nothing(
    trained, exp, capfd, flag, value, saved
):
    before = snapshot(exp.parent)
    expect_error(
        capfd, train.main, resume_argv(trained, exp, flag, value), f"{flag} {saved} (saved) vs {value} (now)"
    )
    assert snapshot(exp.parent) == before


def test_continue_train_of_a_missing_experiment_names_the_folder(trained, tmp_path, capfd):
    argv = train_argv(trained / "data", tmp_path / "ckpt", "typo", "--continue_train")
    expect_error(capfd, train.main, argv, "--continue_train", str(tmp_path / "ckpt" / "typo"), "latest")
    assert not (tmp_path / "ckpt").exists()


# ---------------------------------------------------------------- 5. unwritable output folders
def test_checkpoints_dir_that_cannot_be_created(trained, tmp_path, capfd):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    argv = train_argv(trained / "data", tmp_path / "file.txt" / "ckpt", "x")
    expect_error(capfd, train.main, argv, str(tmp_path / "file.txt" / "ckpt"), "Not a directory")


def test_results_dir_that_cannot_be_created(trained, tmp_path, capfd):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    argv = test_argv(trained / "data", trained / "ckpt", tmp_path / "file.txt" / "res", "tiny")
    expect_error(capfd, test_script.main, argv, str(tmp_path / "file.txt" / "res"), "--results_dir")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folders(trained, tmp_path, capfd):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        expect_error(capfd, train.main, train_argv(trained / "data", locked / "ckpt", "x"), str(locked))
        argv = test_argv(trained / "data", trained / "ckpt", locked / "res", "tiny")
        expect_error(capfd, test_script.main, argv, str(locked))
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------- 6. data
def test_image_smaller_than_the_crop(tmp_path, capfd):
    make_triplets(tmp_path, stems=["big"], size=64)
    make_triplets(tmp_path, stems=["small"], size=32, seed=1)
    argv = train_argv(
        tmp_path,
        tmp_path / "ckpt",
        "c",
        "--preprocess",
        "crop",
        "--crop_size",
        "64",
        "--netG",
        "unet_64",
        "--serial_batches",
    )
    expect_error(
        capfd,
        train.main,
        argv,
        str(tmp_path / "trainA" / "small.png"),
        "32x32",
        "smaller than --crop_size 64",
    )


def test_band_count_a_png_cannot_give(tmp_path, capfd):
    make_triplets(tmp_path, n=1)
    argv = train_argv(tmp_path, tmp_path / "ckpt", "b", "--sar_nc", "2")
    expect_error(capfd, train.main, argv, str(tmp_path / "trainC" / "000.png"), "1 or 3 bands", "2")


# ---------------------------------------------------------------- 8. HTML in file names
def test_html_in_image_names_is_escaped_on_the_results_page(trained, tmp_path):
    evil = "<img src=x onerror=alert(1)>"
    data = tmp_path / "data"
    make_triplets(data, "test", stems=[evil, 'a&b"c'])
    assert test_script.main(test_argv(data, trained / "ckpt", tmp_path / "res", "tiny")) == 0
    web = tmp_path / "res" / "tiny" / "test_latest"
    html = (web / "index.html").read_text()
    assert "<img src=x" not in html and "onerror=alert(1)>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the header shows the name, as text
    assert 'src="images/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E_fake_B.png"' in html
    assert (web / "images" / f"{evil}_fake_B.png").is_file()
    assert 'a&amp;b"c' in html or "a&amp;b&quot;c" in html
