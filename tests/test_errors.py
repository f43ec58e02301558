"""Every promised user error: exit status 2, one line on stderr starting 'error:', no traceback."""

from __future__ import annotations

import gc
import shutil

import pytest
import torch

import test as test_script
import train
from tests.helpers import expect_error, make_triplets, test_argv, train_argv


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained tiny experiment (labels 1 and latest) and test data; copy it before damaging it."""
    root = tmp_path_factory.mktemp("errors")
    make_triplets(root / "data", "train", n=2)
    make_triplets(root / "data", "test", n=2)
    assert train.main(train_argv(root / "data", root / "ckpt", "tiny")) == 0
    return root


@pytest.fixture
def exp(trained, tmp_path):
    shutil.copytree(trained / "ckpt", tmp_path / "ckpt")
    return tmp_path / "ckpt" / "tiny"


def run_test(trained, tmp_path, *extra: str) -> list[str]:
    return test_argv(trained / "data", tmp_path / "ckpt", tmp_path / "results", "tiny", *extra)


# ---------------------------------------------------------------- data
def test_missing_dataroot(tmp_path, capfd):
    argv = train_argv(tmp_path / "nowhere", tmp_path / "ckpt")
    expect_error(capfd, train.main, argv, "nowhere does not exist")


def test_missing_phase_folder(tmp_path, capfd):
    make_triplets(tmp_path, roles="AB")
    expect_error(capfd, train.main, train_argv(tmp_path, tmp_path / "ckpt"), "trainC", "SAR")


def test_empty_folder(tmp_path, capfd):
    make_triplets(tmp_path, roles="AB")
    (tmp_path / "trainC").mkdir()
    (tmp_path / "trainC" / "readme.txt").write_text("no images here")
    expect_error(capfd, train.main, train_argv(tmp_path, tmp_path / "ckpt"), "trainC holds no images")


def test_unpaired_triplets(tmp_path, capfd):
    make_triplets(tmp_path, stems=["a", "b", "c"])
    (tmp_path / "trainB" / "b.png").rename(tmp_path / "trainB" / "bb.png")
    expect_error(capfd, train.main, train_argv(tmp_path, tmp_path / "ckpt"), "do not pair up", "(b)", "(bb)")


@pytest.mark.parametrize("threads", ["0", "2"])
@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated"])
def test_bad_image_file(tmp_path, capfd, monkeypatch, damage, threads):
    make_triplets(tmp_path, stems=["a", "b"])
    bad = tmp_path / "trainB" / "b.png"
    content = bad.read_bytes()
    damaged = {"garbage": b"this is no PNG" * 10, "empty": b"", "truncated": content[: len(content) // 2]}
    bad.write_bytes(damaged[damage])
    argv = train_argv(tmp_path, tmp_path / "ckpt", "tiny", "--num_threads", threads, "--serial_batches")
    reason = "empty (0 bytes)" if damage == "empty" else "cannot read image"
    expect_error(capfd, train.main, argv, str(bad), reason)
    if threads != "0":
        # torch re-raises a worker's error from a frame that its traceback references, so the failed
        # loader lives in a reference cycle; reap its workers now, without the 5 s join per worker.
        monkeypatch.setattr(torch.utils.data._utils, "MP_STATUS_CHECK_INTERVAL", 0.05)
        gc.collect()


@pytest.mark.parametrize(
    "damage", ["empty image anywhere", "garbage first image", "sizes of the first triplet"]
)
def test_bad_images_found_at_start_up_stop_before_anything_is_written(tmp_path, capfd, damage):
    make_triplets(tmp_path, stems=["a", "b", "c"])
    if damage == "empty image anywhere":
        bad, words = tmp_path / "trainC" / "c.png", ("is empty (0 bytes)",)
        bad.write_bytes(b"")
    elif damage == "garbage first image":
        bad, words = tmp_path / "trainA" / "a.png", ("cannot read image",)
        bad.write_bytes(b"this is no PNG" * 10)
    else:
        make_triplets(tmp_path, stems=["a"], size=48, roles="B")
        bad, words = tmp_path / "trainB" / "a.png", ("different sizes",)
    argv = train_argv(tmp_path, tmp_path / "ckpt", "tiny", "--serial_batches")
    expect_error(capfd, train.main, argv, bad.name, *words)
    assert not (tmp_path / "ckpt").exists()


def test_triplet_of_different_sizes(tmp_path, capfd):
    make_triplets(tmp_path, stems=["a"])
    make_triplets(tmp_path, stems=["a"], size=48, roles="C")
    expect_error(capfd, train.main, train_argv(tmp_path, tmp_path / "ckpt"), "different sizes")


# ---------------------------------------------------------------- names
@pytest.mark.parametrize("flag", ["--model", "--dataset_mode", "--netG", "--netD"])
def test_unknown_names_in_test_py(trained, tmp_path, capfd, flag):
    argv = run_test(trained, tmp_path, flag, "nonsense")
    expect_error(capfd, test_script.main, argv, flag, "invalid choice")


def test_unknown_lr_policy(tmp_path, capfd):
    expect_error(
        capfd,
        train.main,
        train_argv(tmp_path, tmp_path / "ckpt", "x", "--lr_policy", "exp"),
        "--lr_policy",
        "step",
        "linear",
    )


# ---------------------------------------------------------------- checkpoints
def test_missing_experiment_and_epoch(trained, exp, tmp_path, capfd):
    expect_error(capfd, test_script.main, run_test(trained, tmp_path, "--name", "other"), "no experiment")
    expect_error(
        capfd,
        test_script.main,
        run_test(trained, tmp_path, "--epoch", "7"),
        "7_net_G.pth",
        "--epoch 7",
        "saved checkpoints: 1, latest",
    )


def test_corrupted_checkpoint(trained, exp, tmp_path, capfd):
    path = exp / "latest_net_G.pth"
    path.write_bytes(path.read_bytes()[:300])
    expect_error(capfd, test_script.main, run_test(trained, tmp_path), str(path), "corrupted")


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", b""])
def test_file_that_is_no_checkpoint(trained, exp, tmp_path, capfd, content):
    (exp / "latest_net_A.pth").write_bytes(content)
    expect_error(capfd, test_script.main, run_test(trained, tmp_path), "latest_net_A.pth")


def test_checkpoint_holding_something_else(trained, exp, tmp_path, capfd):
    torch.save([torch.zeros(3)], exp / "latest_net_G2.pth")
    expect_error(
        capfd, test_script.main, run_test(trained, tmp_path), "latest_net_G2.pth", "not a network weight file"
    )


def test_flags_that_contradict_the_trained_model_are_refused(trained, exp, tmp_path, capfd):
    opts = str(exp / "train_opt.json")
    test = test_script.main
    expect_error(
        capfd, test, run_test(trained, tmp_path, "--ngf", "8"), "--ngf 8 contradicts", "--ngf 4", opts
    )
    expect_error(
        capfd, test, run_test(trained, tmp_path, "--dropout"), "--dropout contradicts", "--no_dropout"
    )
    expect_error(
        capfd,
        test,
        run_test(trained, tmp_path, "--model", "pix2pix"),
        "holds a pix2pix_attn model, not pix2pix",
        "--model pix2pix_attn",
    )
    assert not (tmp_path / "results").exists()


def test_weights_of_another_architecture(trained, exp, tmp_path, capfd):
    # Weight files alone (as the official release): the command line says the architecture.
    (exp / "train_opt.json").unlink()
    expect_error(
        capfd,
        test_script.main,
        run_test(trained, tmp_path, "--ngf", "8"),
        "latest_net_G.pth",
        "model.model.0.weight (4, 6, 4, 4) in file vs (8, 6, 4, 4) here",
        "--ngf",
    )
    deeper = run_test(trained, tmp_path, "--netG", "unet_64", "--crop_size", "64", "--load_size", "64")
    expect_error(capfd, test_script.main, deeper, "missing key(s)")
    shutil.copy(exp / "latest_net_G2.pth", exp / "latest_net_G.pth")
    expect_error(capfd, test_script.main, run_test(trained, tmp_path), "(4, 3, 4, 4) in file vs (4, 6, 4, 4)")


class RunsCode:
    """Unpickling this calls ``open(marker, 'w')``: a checkpoint that would run code when loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_code_carrying_pickles_are_refused(trained, exp, tmp_path, capfd):
    weights, marker = exp / "latest_net_G.pth", tmp_path / "code_ran"
    torch.save({"model.model.0.weight": RunsCode(marker)}, weights)
    expect_error(capfd, test_script.main, run_test(trained, tmp_path), str(weights), "refused")
    assert not marker.exists()

    state = exp / "latest_train_state.pth"
    torch.save({"format_version": 1, "payload": RunsCode(marker)}, state)
    argv = train_argv(trained / "data", tmp_path / "ckpt", "tiny", "--continue_train", "--n_epochs", "2")
    expect_error(capfd, train.main, argv, str(state), "refused")
    assert not marker.exists()

    torch.load(weights, weights_only=False)  # the file really would have run code
    assert marker.exists()


def test_an_error_line_is_one_write_and_a_reported_error_is_not_printed_again(capsys, monkeypatch):
    """torchrun's ranks share one stderr: each error line leaves in one write (so two ranks' lines
    never interleave mid-line), and a line a rank already printed is not printed twice."""
    import sys

    from util.errors import ReportedError, UserError, run_cli

    writes = []
    monkeypatch.setattr(sys.stderr, "write", lambda text: writes.append(text) or len(text))

    def fail(err):
        raise err

    assert run_cli(lambda: fail(UserError("bad --ngf"))) == 2
    assert writes == ["error: bad --ngf\n"]
    assert run_cli(lambda: fail(ReportedError("bad --ngf"))) == 2
    assert writes == ["error: bad --ngf\n"]
