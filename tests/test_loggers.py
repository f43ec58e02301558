"""TensorBoard and Weights & Biases logging (--use_tensorboard, --use_wandb): what a training run
logged is read back from the event files and the W&B offline run folder; a logger that fails
warns once and training completes."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import train
from display import loggers
from display.loggers import TensorBoardLogger, WandbLogger, create_loggers
from models.pix2pix_attn_model import Pix2PixAttnModel
from tests.helpers import expect_error, make_triplets, train_argv

LOSSES = {"G_GAN", "G_L1", "G_SSIM", "G_attn", "G2_L1", "G2_SSIM", "D_real", "D_fake"}
OPTIMISERS = {"G", "G2", "A", "D"}
VISUALS = {"real_A", "fake_B", "real_B", "real_C", "fake_C", "g_B", "att_A", "att_overlay"}
DISABLED = "logging disabled"


def logged_argv(tmp_path, name: str, *extra: str) -> list[str]:
    """3 images, 2 epochs: losses printed at every image (steps 1..6), images at steps 2, 4, 6."""
    make_triplets(tmp_path / "data", "train", n=3)
    return train_argv(
        tmp_path / "data",
        tmp_path / "ckpt",
        name,
        "--n_epochs",
        "2",
        "--print_freq",
        "1",
        "--display_freq",
        "2",
        *extra,
    )


def warnings_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if DISABLED in line]


# ---------------------------------------------------------------------------- TensorBoard


def read_events(log_dir: Path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_tensorboard_logs_every_loss_the_learning_rates_and_the_images(tmp_path, capfd):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    assert train.main(logged_argv(tmp_path, "tb", "--use_tensorboard")) == 0
    assert not warnings_in(capfd.readouterr().out)
    acc = read_events(tmp_path / "ckpt" / "tb" / "tensorboard")
    tags = acc.Tags()
    assert set(tags["scalars"]) == {f"loss/{k}" for k in LOSSES} | {f"lr/{k}" for k in OPTIMISERS}
    for tag in tags["scalars"]:
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2, 3, 4, 5, 6], tag
        assert all(np.isfinite(e.value) for e in events)
    assert acc.Scalars("lr/G")[0].value == pytest.approx(0.0002)
    # the same numbers as loss_log.txt (printed with 3 decimals)
    log = (tmp_path / "ckpt" / "tb" / "loss_log.txt").read_text().splitlines()
    first = next(line for line in log if line.startswith("(epoch: 1, iters: 1,"))
    g_l1 = float(first.split("G_L1: ")[1].split()[0])
    assert acc.Scalars("loss/G_L1")[0].value == pytest.approx(g_l1, abs=5e-4)
    assert set(tags["images"]) == {f"visuals/{k}" for k in VISUALS}
    shots = acc.Images("visuals/fake_B")
    assert [e.step for e in shots] == [2, 4, 6]
    assert (shots[0].width, shots[0].height) == (32, 32)
    assert shots[0].encoded_image_string.startswith(b"\x89PNG")


def test_tensorboard_dir_option(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    target = tmp_path / "elsewhere"
    argv = logged_argv(tmp_path, "tb2", "--use_tensorboard", "--tensorboard_dir", str(target))
    assert train.main(argv) == 0
    assert "loss/G_L1" in read_events(target).Tags()["scalars"]
    assert not (tmp_path / "ckpt" / "tb2" / "tensorboard").exists()


def test_tensorboard_missing_warns_once_and_training_completes(tmp_path, monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` raises ImportError
    assert train.main(logged_argv(tmp_path, "tbm", "--use_tensorboard")) == 0
    out, err = capfd.readouterr()
    lines = warnings_in(out)
    assert len(lines) == 1 and "TensorBoard" in lines[0] and "pip install tensorboard" in lines[0], out
    assert "Traceback" not in err and "end of epoch 2 / 2" in out


def test_tensorboard_unwritable_dir_warns_once_and_training_completes(tmp_path, capfd):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # a folder cannot be made here, even by root
    argv = logged_argv(tmp_path, "tbu", "--use_tensorboard", "--tensorboard_dir", str(blocker / "tb"))
    assert train.main(argv) == 0
    out, err = capfd.readouterr()
    lines = warnings_in(out)
    assert len(lines) == 1 and "TensorBoard" in lines[0], out
    assert "Traceback" not in err and (tmp_path / "ckpt" / "tbu" / "2_net_G.pth").is_file()


# ---------------------------------------------------------------------------- W&B


def wandb_records(path: Path):
    """The protobuf records of a W&B run file (``run-<id>.wandb``: a LevelDB-style log of 32 KiB
    blocks after a 7-byte ':W&B' header; each record a 7-byte header - crc32, length, type - and
    its data; types 1 full, 2 first, 3 middle, 4 last, 0 padding)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if kind == 0:
            pos += left - 7
            continue
        if pos + length > len(data):
            return  # a record still being written
        chunk, pos = data[pos : pos + length], pos + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + chunk if kind == 4 else chunk)
            pending = b""
            yield record
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk


def wandb_history(run_dir: Path, timeout: float = 60.0) -> list[dict]:
    """The logged rows (step and values) of the one offline run under ``run_dir/wandb``.

    W&B's service process writes the file; ``run.finish()`` can return before its last records are
    on disk on a busy machine, so this waits (up to ``timeout``) for the run's closing record.
    """
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    (run_file,) = runs[0].glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        records = list(wandb_records(run_file))
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            rows.append(
                {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in items}
            )
    return rows


def needs_wandb():
    return pytest.importorskip("wandb", reason="wandb is not installed (pip install wandb)")


def test_wandb_offline_run_holds_losses_learning_rates_and_images(tmp_path, monkeypatch, capfd):
    needs_wandb()
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    argv = logged_argv(tmp_path, "wb", "--use_wandb", "--wandb_mode", "offline", "--wandb_project_name", "p1")
    assert train.main(argv) == 0
    assert not warnings_in(capfd.readouterr().out)
    rows = wandb_history(tmp_path / "ckpt" / "wb")
    assert [r["_step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for row in rows:
        assert {f"loss/{k}" for k in LOSSES} | {f"lr/{k}" for k in OPTIMISERS} <= set(row)
        assert row["lr/G"] == pytest.approx(0.0002)
    with_images = [r["_step"] for r in rows if "visuals/fake_B/_type" in r]
    assert with_images == [2, 4, 6]
    run_files = next((tmp_path / "ckpt" / "wb" / "wandb").glob("offline-run-*")) / "files"
    assert (run_files / rows[1]["visuals/fake_B/path"]).is_file()
    assert rows[1]["visuals/fake_B/width"] == 32


def test_wandb_mode_from_the_environment(tmp_path, monkeypatch, capfd):
    needs_wandb()
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert train.main(logged_argv(tmp_path, "wbe", "--use_wandb", "--n_epochs", "1")) == 0
    assert not warnings_in(capfd.readouterr().out)
    assert [r["_step"] for r in wandb_history(tmp_path / "ckpt" / "wbe")] == [1, 2, 3]


def test_wandb_init_failure_warns_once_and_training_completes(tmp_path, monkeypatch, capfd):
    wandb = needs_wandb()

    def refuse(**kwargs):
        raise RuntimeError("api_key not configured (no-tty)")

    monkeypatch.setattr(wandb, "init", refuse)
    assert train.main(logged_argv(tmp_path, "wbf", "--use_wandb")) == 0
    out, err = capfd.readouterr()
    lines = warnings_in(out)
    assert len(lines) == 1 and "Weights & Biases" in lines[0] and "api_key not configured" in lines[0], out
    assert "Traceback" not in err and "end of epoch 2 / 2" in out


def test_a_logger_failing_mid_run_warns_once_and_stops_logging(tmp_path, monkeypatch, capfd):
    calls = []

    class Flaky(TensorBoardLogger):
        def _open(self):
            pass

        def _scalars(self, step, values):
            calls.append(step)
            if step == 2:
                raise OSError("disk full")

        def _images(self, step, images):
            calls.append(("img", step))

        def _close(self):
            calls.append("closed")

    monkeypatch.setattr(loggers, "TensorBoardLogger", Flaky)
    assert train.main(logged_argv(tmp_path, "flaky", "--use_tensorboard")) == 0
    out, err = capfd.readouterr()
    lines = warnings_in(out)
    assert len(lines) == 1 and "OSError: disk full" in lines[0], out
    assert calls == [1, ("img", 2), 2, "closed"]  # nothing after the failure at step 2
    assert "Traceback" not in err and "end of epoch 2 / 2" in out


def test_loggers_are_closed_when_training_stops_with_an_error(tmp_path, monkeypatch):
    closed = []

    class Recorder(TensorBoardLogger):
        def _open(self):
            pass

        def _scalars(self, step, values):
            pass

        def _images(self, step, images):
            pass

        def _close(self):
            closed.append(True)

    def explode(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(loggers, "TensorBoardLogger", Recorder)
    monkeypatch.setattr(Pix2PixAttnModel, "optimize_parameters", explode)
    assert train.main(logged_argv(tmp_path, "stop", "--use_tensorboard")) == 130
    assert closed == [True]


def test_create_loggers_default_is_none_and_close_is_idempotent(tmp_path):
    assert create_loggers(str(tmp_path), "x") == []
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    (logger,) = create_loggers(str(tmp_path), "x", use_tensorboard=True)
    logger.log_scalars(1, {"loss/a": 1.0})
    logger.log_images(1, {"gray": np.zeros((4, 5), np.uint8)})  # (H, W) becomes RGB
    logger.close()
    logger.close()
    logger.log_scalars(2, {"loss/a": 2.0})  # after close: ignored, no error
    acc = read_events(tmp_path / "tensorboard")
    assert [e.step for e in acc.Scalars("loss/a")] == [1]
    assert acc.Images("visuals/gray")[0].width == 5


def test_wandb_logger_keeps_options_as_plain_config(tmp_path, monkeypatch):
    wandb = needs_wandb()
    seen = {}

    class FakeRun:
        def log(self, values, step):
            pass

        def finish(self):
            pass

    def fake_init(**kwargs):
        seen.update(kwargs)
        return FakeRun()

    monkeypatch.setattr(wandb, "init", fake_init)
    argv = logged_argv(tmp_path, "cfg", "--use_wandb", "--wandb_project_name", "proj", "--n_epochs", "1")
    assert train.main(argv) == 0
    assert seen["project"] == "proj" and seen["name"] == "cfg" and "mode" not in seen
    assert seen["dir"] == str(tmp_path / "ckpt" / "cfg")
    assert seen["config"]["lambda_L1"] == 1000.0
    json.dumps(seen["config"])  # plain values only (the device is its name)


def test_a_bad_wandb_mode_is_one_error_line(tmp_path, capfd):
    argv = logged_argv(tmp_path, "bad", "--use_wandb", "--wandb_mode", "cloud")
    expect_error(capfd, train.main, argv, "--wandb_mode", "invalid choice: 'cloud'")


def test_no_logger_module_is_imported_by_default(tmp_path):
    make_triplets(tmp_path / "data", "train", n=1)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "plain")
    code = (
        "import sys, train; assert train.main(sys.argv[1:]) == 0; "
        "print(sorted(m for m in ('wandb', 'tensorboard', 'torch.utils.tensorboard') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(train.__file__).parent,
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert not (tmp_path / "ckpt" / "plain" / "tensorboard").exists()
    assert not (tmp_path / "ckpt" / "plain" / "wandb").exists()


def test_wandb_logger_class_is_importable_without_wandb(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)
    logger = WandbLogger("p", "n", run_dir="unused")
    assert not logger.active and "pip install wandb" in capsys.readouterr().out
