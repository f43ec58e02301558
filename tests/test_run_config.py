"""Saved options: what they mark, what they record, ``--config`` to run an experiment again, and
nothing written (or dumped) when a run fails before training starts."""

from __future__ import annotations

import json

import pytest
import torch

import test as test_script
import train
from options.config import git_commit
from options.train_options import TrainOptions
from tests.helpers import expect_error, make_triplets, run_main, snapshot, test_argv, train_argv


def saved_json(folder):
    return json.loads((folder / "train_opt.json").read_text())


def marked(folder) -> set[str]:
    """Options marked as changed in train_opt.txt."""
    lines = (folder / "train_opt.txt").read_text().splitlines()
    return {line.split(":")[0].strip() for line in lines if "[default:" in line}


def test_saved_options_mark_only_what_the_user_changed_and_record_the_run(tmp_path, capsys):
    make_triplets(tmp_path / "data", "train", n=2)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "tiny", "--batch_size", "1")
    assert train.main(argv) == 0
    folder = tmp_path / "ckpt" / "tiny"
    changes = marked(folder)
    # Given and different from the default: marked. --batch_size 1 is the default: not a change.
    assert {"dataroot", "name", "checkpoints_dir", "n_epochs", "n_epochs_decay", "load_size"} <= changes
    assert "batch_size" not in changes
    assert not changes & {"dataset_mode", "phase", "lr", "pool_size"}
    record = saved_json(folder)["_run"]
    assert record["command"] == "train.py"
    assert record["torch"] == torch.__version__
    assert record["device"] == "cpu"
    commit = git_commit()
    assert record["git_commit"] == commit and (commit is None or len(commit.split("+")[0]) == 40)


def test_derived_values_are_not_marked(tmp_path):
    options = TrainOptions()
    opt = options.parse(["--dataroot", "x", "--dataset_mode", "unaligned_sar"], save=False, show=False)
    assert opt.num_threads is not None and opt.dataset_mode == "triplet"  # derived / canonical
    text = options.format_options(opt, options.parser)
    marks = {line.split(":")[0].strip() for line in text.splitlines() if "[default:" in line}
    # 'unaligned_sar' is the official name of the default 'triplet': given, but no change.
    assert marks == {"dataroot"}


def test_config_reruns_an_experiment_and_the_command_line_overrides_it(tmp_path):
    make_triplets(tmp_path / "data", "train", n=2)
    ckpt = tmp_path / "ckpt"
    assert train.main(train_argv(tmp_path / "data", ckpt, "first", "--lr", "0.0005", "--seed", "3")) == 0
    first = saved_json(ckpt / "first")
    argv = ["--config", str(ckpt / "first" / "train_opt.json"), "--name", "again", "--seed", "4"]
    assert train.main(argv) == 0
    again = saved_json(ckpt / "again")
    assert again["lr"] == 0.0005 and again["netG"] == first["netG"] and again["dataroot"] == first["dataroot"]
    assert again["seed"] == 4 and again["name"] == "again"
    skip = {"_run", "seed", "name", "config"}
    assert {k: v for k, v in again.items() if k not in skip} == {
        k: v for k, v in first.items() if k not in skip
    }
    # What came from the file counts as changed too, against the parser's own default.
    assert (
        "lr" in marked(ckpt / "again")
        and "[default: 0.0002]" in (ckpt / "again" / "train_opt.txt").read_text()
    )


@pytest.fixture(scope="module")
def tested(tmp_path_factory):
    """A tiny experiment, trained and tested: ckpt/tiny/train_opt.json, results/tiny/test_latest/test_opt.json."""
    root = tmp_path_factory.mktemp("tested")
    make_triplets(root / "data", "train", n=2)
    make_triplets(root / "data", "test", n=1, seed=1)
    assert train.main(train_argv(root / "data", root / "ckpt", "tiny")) == 0
    assert test_script.main(test_argv(root / "data", root / "ckpt", root / "results", "tiny")) == 0
    return root


def test_test_options_say_which_command_saved_them(tested):
    saved = json.loads((tested / "results" / "tiny" / "test_latest" / "test_opt.json").read_text())
    assert saved["_run"]["command"] == "test.py"


def test_config_saved_by_another_command_is_refused_before_anything_is_written(tested, tmp_path, capfd):
    """test.py's options (even those of a test run with --phase train, saved as train_opt.json), a
    metrics summary and files saved before options named their command: one line naming what the
    file is and the train_opt.json to give instead; no checkpoints folder appears."""
    saved = json.loads((tested / "results" / "tiny" / "test_latest" / "test_opt.json").read_text())
    phase_train = tmp_path / "train_latest" / "train_opt.json"  # what test.py --phase train writes
    phase_train.parent.mkdir()
    phase_train.write_text(json.dumps({**saved, "phase": "train"}))
    unmarked = tmp_path / "old_test_opt.json"  # written before _run named the command
    unmarked.write_text(json.dumps({**saved, "_run": {"torch": "2.0"}}))
    ckpt = tmp_path / "ckpt"
    want = str(tested / "ckpt" / "tiny" / "train_opt.json")
    for path in (tested / "results" / "tiny" / "test_latest" / "test_opt.json", phase_train, unmarked):
        argv = ["--config", str(path), "--name", "again", "--checkpoints_dir", str(ckpt)]
        expect_error(capfd, train.main, argv, f"--config {path}", "test.py saved", f"give {want} instead")
        assert not ckpt.exists()
    summary = tested / "results" / "tiny" / "test_latest" / "metrics_summary.json"
    argv = ["--config", str(summary), "--name", "again", "--checkpoints_dir", str(ckpt)]
    expect_error(capfd, train.main, argv, "metrics summary", "checkpoints/<name>/train_opt.json")
    assert not ckpt.exists()


def test_config_saved_by_train_is_taken_also_from_before_the_command_mark(tested, tmp_path):
    """A train_opt.json from before options named their command is still a training configuration."""
    saved = json.loads((tested / "ckpt" / "tiny" / "train_opt.json").read_text())
    del saved["_run"]["command"]
    old = tmp_path / "train_opt.json"
    old.write_text(json.dumps(saved))
    before = snapshot(tested / "ckpt" / "tiny")
    argv = ["--config", str(old), "--name", "again", "--checkpoints_dir", str(tmp_path / "ckpt")]
    assert train.main(argv) == 0
    assert saved_json(tmp_path / "ckpt" / "again")["_run"]["command"] == "train.py"
    assert snapshot(tested / "ckpt" / "tiny") == before


def test_config_errors_are_one_line(tmp_path, capfd):
    expect_error(capfd, train.main, ["--config", str(tmp_path / "none.json")], "--config", "cannot read")
    (tmp_path / "bad.json").write_text("[1, 2]")
    expect_error(capfd, train.main, ["--config", str(tmp_path / "bad.json")], "JSON object of options")


def test_an_error_before_training_prints_one_line_and_writes_nothing(tmp_path, capfd):
    # The data folder holds unpaired files: found when the dataset is built, after the options parse.
    make_triplets(tmp_path / "data", "train", n=2)
    (tmp_path / "data" / "trainC" / "000.png").unlink()
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "tiny")
    capfd.readouterr()
    assert run_main(train.main, argv) == 2
    out, err = capfd.readouterr()
    assert "Options" not in out and err.startswith("error:") and err.count("\n") == 1, (out, err)
    assert not (tmp_path / "ckpt" / "tiny").exists()


def test_bad_gpu_ids_is_refused_while_parsing(capfd):
    expect_error(
        capfd, TrainOptions().parse, ["--dataroot", "x", "--gpu_ids", "banana"], "--gpu_ids", "banana"
    )


def test_help_shows_each_default_once_and_flags_without_one(capsys):
    parser = TrainOptions().build_parser(["--model", "pix2pix_attn"])
    text = " ".join(parser.format_help().split())
    assert "(default: True)" not in text and "(default: False)" not in text
    assert "(default: main) (default: main)" not in text and "visdom environment (default: main)" in text
    assert "(default: None)" not in text
    groups = {g.title: {a.dest for a in g._group_actions} for g in parser._action_groups}
    assert "phase" in groups["data"] and "phase" not in groups["saving"]
