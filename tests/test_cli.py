"""train.py and test.py end to end, in-process: the official command lines and the promised files."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import test as test_script
import train
from tests.helpers import make_triplets, read_rgb, run_main, snapshot, test_argv, train_argv

NETS = ("G", "G2", "A", "D")
VISUALS = ("real_A", "fake_B", "real_B", "real_C", "fake_C", "g_B", "att_A", "att_overlay")


def official_train(data, ckpt) -> list[str]:
    """The official training command, epochs shortened and networks narrowed."""
    return (
        ["--dataroot", str(data / "train"), "--name", "realcloud_21"]
        + (
            "--model pix2pix_attn --niter 210 --lr_policy step --pool_size 50 --display_freq 2000 "
            "--no_dropout --display_id 0 --batchSize 1 --gpu_ids 0 --dataset_mode unaligned_sar "
            "--no_flip --display_freq 500 --save_epoch_freq 40"
        ).split()
        + [
            "--niter",
            "1",
            "--niter_decay",
            "1",
            "--ngf",
            "4",
            "--ndf",
            "4",
            "--checkpoints_dir",
            str(ckpt),
            "--num_threads",
            "0",
            "--print_freq",
            "1",
        ]
    )


def official_test(data, ckpt, results, *extra: str) -> list[str]:
    return (
        ["--dataroot", str(data / "test"), "--name", "realcloud_21"]
        + (
            "--model pix2pix_attn --no_dropout --display_id 0 --batchSize 1 --gpu_ids 0 "
            "--dataset_mode unaligned_sar --no_flip"
        ).split()
        + [
            "--ngf",
            "4",
            "--checkpoints_dir",
            str(ckpt),
            "--results_dir",
            str(results),
            "--num_threads",
            "0",
            *extra,
        ]
    )


def test_official_command_lines(tmp_path, capfd):
    data, ckpt, results = tmp_path / "DATA", tmp_path / "checkpoints", tmp_path / "results"
    make_triplets(data / "train", "train", n=2, size=256)
    stems = make_triplets(data / "test", "test", n=2, size=256, seed=1)
    assert train.main(official_train(data, ckpt)) == 0
    out, err = capfd.readouterr()
    if not torch.cuda.is_available():  # --gpu_ids 0 on a machine without CUDA: one warning, then the CPU
        assert err.count("warning: --gpu_ids 0") == 1 and "Traceback" not in err
    exp = ckpt / "realcloud_21"
    for label in ("latest", "2"):
        for net in NETS:
            assert (exp / f"{label}_net_{net}.pth").is_file()
    assert not (exp / "1_net_G.pth").exists()  # --save_epoch_freq 40: only the last epoch is kept
    assert (exp / "latest_train_state.pth").is_file()
    log = (exp / "loss_log.txt").read_text()
    assert re.search(r"\(epoch: 1, iters: 1, .*G_GAN: .*D_fake: ", log)
    assert "(epoch: 2, iters: 2, " in log
    assert json.loads((exp / "train_opt.json").read_text())["n_epochs"] == 1
    assert "[default: 100]" in (exp / "train_opt.txt").read_text()
    assert "end of epoch 2 / 2" in out

    assert test_script.main(official_test(data, ckpt, results)) == 0
    web = results / "realcloud_21" / "test_latest"
    html = (web / "index.html").read_text()
    for stem in stems:
        for visual in VISUALS:
            path = web / "images" / f"{stem}_{visual}.png"
            assert read_rgb(path).shape == (256, 256, 3)
            assert f"{stem}_{visual}.png" in html
    with open(web / "metrics_per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["stem"] for r in rows} == set(stems) and {r["comparison"] for r in rows} == {"fake_B", "real_A"}
    # Both protocols over whole images, and over the cloudy and the clear pixels of the RGB cloud mask.
    protocols = set(json.loads((web / "metrics_summary.json").read_text())["results"])
    assert {"paper", "field"} <= protocols
    assert protocols - {"paper", "field"} <= {"paper_cloudy", "paper_clear", "field_cloudy", "field_clear"}


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    """One trained tiny experiment shared by the read-only test.py checks."""
    root = tmp_path_factory.mktemp("cli")
    make_triplets(root / "data", "train", n=3)
    stems = make_triplets(root / "data", "test", n=3, seed=2)
    assert train.main(train_argv(root / "data", root / "ckpt", "tiny")) == 0
    return root, stems


@pytest.mark.parametrize("flag", ["--num_test", "--how_many"])
def test_number_of_test_images(tiny_experiment, tmp_path, flag):
    root, stems = tiny_experiment
    assert test_script.main(test_argv(root / "data", root / "ckpt", tmp_path, "tiny", flag, "2")) == 0
    images = sorted(p.name for p in (tmp_path / "tiny" / "test_latest" / "images").iterdir())
    assert images == sorted(f"{s}_{v}.png" for s in stems[:2] for v in VISUALS)
    with open(tmp_path / "tiny" / "test_latest" / "metrics_per_image.csv") as f:
        assert {r["stem"] for r in csv.DictReader(f)} == set(stems[:2])


def test_eval_mode_gives_the_same_results(tiny_experiment, tmp_path):
    root, stems = tiny_experiment
    for sub, extra in (("plain", []), ("eval", ["--eval"])):
        assert test_script.main(test_argv(root / "data", root / "ckpt", tmp_path / sub, "tiny", *extra)) == 0
    for stem in stems:
        for visual in ("fake_B", "att_A", "fake_C"):
            name = f"tiny/test_latest/images/{stem}_{visual}.png"
            assert np.array_equal(read_rgb(tmp_path / "plain" / name), read_rgb(tmp_path / "eval" / name))


def test_continue_train_resumes_at_the_next_epoch(tmp_path, capsys):
    make_triplets(tmp_path / "data", "train", n=2)
    assert train.main(train_argv(tmp_path / "data", tmp_path / "ckpt", "r", "--print_freq", "1")) == 0
    capsys.readouterr()
    argv = train_argv(
        tmp_path / "data", tmp_path / "ckpt", "r", "--print_freq", "1", "--n_epochs", "2", "--continue_train"
    )
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert "resuming after epoch 1 (2 images seen)" in out
    assert "(epoch: 2, iters: 1," in out and "(epoch: 1," not in out and "end of epoch 2 / 2" in out
    log = (tmp_path / "ckpt" / "r" / "loss_log.txt").read_text()
    epochs = [int(m) for m in re.findall(r"\(epoch: (\d+), iters", log)]
    assert epochs == [1, 1, 2, 2]
    assert (tmp_path / "ckpt" / "r" / "2_net_G.pth").is_file()


def test_continue_train_auto_on_a_finished_run_says_so_and_trains_nothing(tmp_path, capsys):
    make_triplets(tmp_path / "data", "train", n=2)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "done")
    assert train.main(argv) == 0
    before = snapshot(tmp_path / "ckpt")
    capsys.readouterr()
    for resume in (["--continue_train", "auto"], ["--continue_train"]):
        assert train.main([*argv, *resume]) == 0
        out = capsys.readouterr().out
        assert "has finished training: all 1 epochs (2 images seen); nothing to do" in out, out
        assert "end of epoch" not in out
        assert snapshot(tmp_path / "ckpt") == before


def test_the_readme_test_command_reads_the_architecture_from_train_opt_json(tmp_path):
    data, ckpt, results = tmp_path / "DATA", tmp_path / "checkpoints", tmp_path / "results"
    make_triplets(data / "train", "train", n=2, size=64)
    stems = make_triplets(data / "test", "test", n=1, size=64, seed=1)
    where = ["--checkpoints_dir", str(ckpt), "--gpu_ids", "-1", "--num_threads", "0"]
    trained = ["--netG", "unet_64", "--ngf", "8", "--ndf", "8", "--crop_size", "64", "--load_size", "64"]
    argv = ["--dataroot", str(data / "train"), "--name", "realcloud_21", "--model", "pix2pix_attn"]
    argv += ["--n_epochs", "1", "--n_epochs_decay", "0", "--display_id", "0", *trained, *where]
    assert train.main(argv) == 0
    # README: python test.py --dataroot DATA/test --name realcloud_21 --model pix2pix_attn --no_dropout --display_id 0
    readme = ["--dataroot", str(data / "test"), "--name", "realcloud_21", "--model", "pix2pix_attn"]
    readme += ["--no_dropout", "--display_id", "0", *where, "--results_dir", str(results)]
    assert test_script.main(readme) == 0
    web = results / "realcloud_21" / "test_latest"
    assert (web / "images" / f"{stems[0]}_fake_B.png").is_file()
    saved = json.loads((web / "test_opt.json").read_text())
    assert (saved["netG"], saved["ngf"], saved["ndf"]) == ("unet_64", 8, 8)


def test_fresh_run_into_existing_experiment_is_refused(tmp_path, capsys):
    make_triplets(tmp_path / "data", "train", n=2)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "x")
    assert train.main(argv) == 0
    before = snapshot(tmp_path / "ckpt")
    capsys.readouterr()
    assert run_main(train.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "--continue_train" in err
    assert snapshot(tmp_path / "ckpt") == before


def test_frequencies_fire_with_batch_size_3(tmp_path, capsys):
    make_triplets(tmp_path / "data", "train", n=6)
    argv = train_argv(
        tmp_path / "data",
        tmp_path / "ckpt",
        "f",
        "--batch_size",
        "3",
        "--n_epochs",
        "2",
        "--print_freq",
        "2",
        "--save_latest_freq",
        "4",
        "--save_by_iter",
        "--display_freq",
        "5",
        "--update_html_freq",
        "5",
    )
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    # images seen after each step: 3, 6 | 9, 12. print every 2 -> all four steps; latest every 4 -> 6, 9, 12.
    printed = re.findall(r"\(epoch: (\d+), iters: (\d+),", out)
    assert printed == [("1", "3"), ("1", "6"), ("2", "3"), ("2", "6")]
    saved = re.findall(r"saving the latest model \(epoch (\d+), images (\d+)\)", out)
    assert saved == [("1", "6"), ("2", "9"), ("2", "12")]
    exp = tmp_path / "ckpt" / "f"
    for n in (6, 9, 12):
        assert (exp / f"iter_{n}_net_G.pth").is_file() and (exp / f"iter_{n}_train_state.pth").is_file()
    assert not (exp / "iter_3_net_G.pth").exists()
    assert (exp / "web" / "index.html").is_file()


def test_extending_a_finished_run_follows_the_new_schedule(tmp_path, capsys):
    # One epoch of 'linear' with no decay ends at lr 0; asking for 2 epochs must train epoch 2 at
    # the new schedule's lr, not at the finished run's 0.
    make_triplets(tmp_path / "data", "train", n=2)
    assert train.main(train_argv(tmp_path / "data", tmp_path / "ckpt", "e")) == 0
    first = torch.load(tmp_path / "ckpt" / "e" / "latest_net_G.pth", weights_only=True)
    capsys.readouterr()
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "e", "--n_epochs", "2", "--continue_train")
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert "schedule changed on resume (--n_epochs 1 -> 2): learning rate now 0.0002000" in out
    second = torch.load(tmp_path / "ckpt" / "e" / "latest_net_G.pth", weights_only=True)
    assert any(not torch.equal(first[k], second[k]) for k in first)


def test_official_shell_scripts(tmp_path):
    # scripts/{train,test}.sh run the official command lines; extra options are passed on (last wins).
    root = Path(__file__).resolve().parents[1]
    make_triplets(tmp_path / "DATA" / "train", "train", n=2, size=256)
    make_triplets(tmp_path / "DATA" / "test", "test", n=1, size=256)
    small = [
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--gpu_ids",
        "-1",
        "--checkpoints_dir",
        str(tmp_path / "ckpt"),
        "--num_threads",
        "0",
    ]
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    train_cmd = [
        "sh",
        str(root / "scripts" / "train.sh"),
        str(tmp_path / "DATA" / "train"),
        "exp",
        "--niter",
        "1",
        "--niter_decay",
        "0",
        *small,
    ]
    done = subprocess.run(train_cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ckpt" / "exp" / "1_net_G.pth").is_file()
    saved = json.loads((tmp_path / "ckpt" / "exp" / "train_opt.json").read_text())
    assert saved["lr_policy"] == "step" and saved["pool_size"] == 50 and saved["save_epoch_freq"] == 40
    test_cmd = [
        "sh",
        str(root / "scripts" / "test.sh"),
        str(tmp_path / "DATA" / "test"),
        "exp",
        *small,
        "--results_dir",
        str(tmp_path / "results"),
    ]
    done = subprocess.run(test_cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "results" / "exp" / "test_latest" / "index.html").is_file()
