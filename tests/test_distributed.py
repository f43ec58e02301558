"""Distributed training without starting processes: sharded sample order, one device per process,
the ``--gpu_ids`` refusals, and the SLURM script's torchrun command line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

import test as test_script
import train
from data.sampler import EpochSampler
from models.checkpoint import Checkpoints
from tests.helpers import expect_error, make_triplets, test_argv, train_argv
from util import distributed
from util.device import resolve_device

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")


# ---------------------------------------------------------------------- sample order
@pytest.mark.parametrize("n, world, batch", [(8, 2, 2), (7, 2, 1), (10, 3, 2), (2, 4, 1)])
def test_shards_cover_the_global_order_and_batches_match_one_process(n, world, batch):
    one = EpochSampler(n, shuffle=True, seed=3)
    shards = [EpochSampler(n, shuffle=True, seed=3, rank=r, world_size=world) for r in range(world)]
    for s in [one, *shards]:
        s.set_epoch(4)
    order = [i for i, _ in one]
    per_rank = [list(s) for s in shards]
    assert len({len(p) for p in per_rank}) == 1 and all(len(s) == len(p) for s, p in zip(shards, per_rank))
    padded = -(-n // world) * world
    assert len(per_rank[0]) * world == padded
    # Every sample once (a few repeated to fill the last global batch), with its own seed.
    flat = [key for step in zip(*per_rank) for key in step]
    assert [i for i, _ in flat] == [order[k % n] for k in range(padded)]
    assert dict(flat) == dict(iter(one))
    # Batch k of all ranks together = batch k of one process with batch size world x batch.
    for k in range(len(per_rank[0]) // batch):
        together = sorted(i for p in per_rank for i, _ in p[k * batch : (k + 1) * batch])
        assert together == sorted(order[(k * world * batch + j) % n] for j in range(world * batch))


def test_a_shard_resumes_mid_epoch_where_it_stopped():
    full, resumed = (EpochSampler(9, shuffle=True, seed=1, rank=1, world_size=3) for _ in range(2))
    full.set_epoch(2)
    resumed.set_epoch(2, start=6)  # two global steps of 3 images done
    assert list(resumed) == list(full)[2:] and len(resumed) == len(full) - 2
    # Another world size: still equal shares, and every remaining sample is seen.
    others = [EpochSampler(9, shuffle=True, seed=1, rank=r, world_size=2) for r in range(2)]
    for s in others:
        s.set_epoch(2, start=3)
    assert len(others[0]) == len(others[1]) == 4  # 6 samples left, padded as the epoch (to 10), then to 8
    one = EpochSampler(9, shuffle=True, seed=1)
    one.set_epoch(2)
    assert set(one.order()[3:]) <= {i for s in others for i, _ in s}


def test_one_process_order_is_unchanged():
    s = EpochSampler(6, shuffle=True, seed=2)
    s.set_epoch(3, start=2)
    assert [i for i, _ in s] == s.order()[2:] and len(s) == 4


# ---------------------------------------------------------------------- devices
@pytest.fixture
def two_gpus(monkeypatch):
    """Pretend there are two CUDA devices (nothing here runs on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    return chosen


def _as_process(monkeypatch, rank: int, world: int, local_world: int | None = None) -> None:
    local_world = world if local_world is None else local_world
    env = {
        "RANK": rank,
        "LOCAL_RANK": rank % local_world,
        "WORLD_SIZE": world,
        "LOCAL_WORLD_SIZE": local_world,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))


def test_several_gpus_without_torchrun_stop_with_the_torchrun_command(tmp_path, capfd, two_gpus):
    make_triplets(tmp_path / "data", "train", n=2)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "two", "--gpu_ids", "0,1")
    err = expect_error(
        capfd, train.main, argv, "--gpu_ids 0,1 asks for 2 GPUs", "--batch_size is per process"
    )
    command = err.split("): ", 1)[-1].strip()
    assert command.startswith("torchrun --standalone --nproc_per_node=2 train.py --dataroot ")
    assert command.endswith("--gpu_ids 0,1")
    assert not (tmp_path / "ckpt").exists() and two_gpus == []


def test_each_process_takes_its_gpu(monkeypatch, two_gpus):
    _as_process(monkeypatch, rank=3, world=4, local_world=2)  # second node, second process
    assert distributed.training_device("0,1", []) == (torch.device("cuda", 1), [1])
    assert distributed.training_device("auto", []) == (torch.device("cuda", 1), [1])
    assert distributed.training_device("-1", []) == (torch.device("cpu"), [])
    assert two_gpus == [1, 1]


@pytest.mark.parametrize(
    "gpu_ids, local_world, fragment",
    [
        ("0", 2, "--gpu_ids 0 names 1 GPU(s) but torchrun started 2 process(es)"),
        ("auto", 3, "torchrun started 3 processes on this node but only 2 GPU(s) exist"),
        ("1,1", 2, "names a GPU twice"),
    ],
)
def test_gpus_that_do_not_fit_the_processes_are_refused(
    tmp_path, capfd, monkeypatch, two_gpus, gpu_ids, local_world, fragment
):
    _as_process(monkeypatch, rank=0, world=local_world)
    make_triplets(tmp_path / "data", "train", n=2)
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "bad", "--gpu_ids", gpu_ids)
    expect_error(capfd, train.main, argv, fragment)


def test_without_torchrun_everything_is_one_process():
    if distributed.launched():
        pytest.skip("the test suite itself runs under torchrun")
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    flags = torch.tensor([False, True])
    assert distributed.any_over_ranks(flags) is flags
    assert distributed.gather_to_main({"a": 1}) == [{"a": 1}]
    assert distributed.mean_over_ranks({"x": 2.0}, torch.device("cpu")) == {"x": 2.0}


def test_test_py_under_torchrun_is_refused(tmp_path, capfd, monkeypatch):
    _as_process(monkeypatch, rank=1, world=2)
    make_triplets(tmp_path / "data", "test", n=1)
    argv = test_argv(tmp_path / "data", tmp_path / "ckpt", tmp_path / "results", "t")
    expect_error(capfd, test_script.main, argv, "test.py runs as one process: start it with python")


def test_test_py_on_several_gpus_says_it_uses_one(capfd, two_gpus):
    assert resolve_device("0,1") == (torch.device("cuda", 0), [0, 1])
    assert "this program runs on one GPU, cuda:0" in capfd.readouterr().err and two_gpus == [0]


@pytest.mark.parametrize("rank", [0, 1])
def test_resume_with_another_number_of_processes_warns(monkeypatch, capfd, rank):
    state = {"rng": "rng0", "extra": {"pool": 0}}
    _as_process(monkeypatch, rank=rank, world=2)
    own = Checkpoints.rank_state(state, "x.pth")
    assert own == ({"rng": "rng0", "extra": {"pool": 0}} if rank == 0 else {"rng": None, "extra": {}})
    err = capfd.readouterr().err
    assert ("x.pth was saved by 1 process(es) and this run has 2" in err) == (rank == 0)
    saved = {**state, "ranks": [{"rng": "a", "extra": 1}, {"rng": "b", "extra": 2}]}
    assert Checkpoints.rank_state(saved, "x.pth") == saved["ranks"][rank]
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------------- SLURM
@pytest.mark.parametrize("resume", [False, True])
def test_slurm_script_starts_torchrun_on_every_node(tmp_path, resume):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "srun_args"
    (bin_dir / "srun").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {calls}\n')
    (bin_dir / "scontrol").write_text("#!/bin/sh\nprintf 'gpu-a1\\ngpu-a2\\n'\n")
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    ckpt = tmp_path / "ckpt"
    if resume:
        (ckpt / "exp").mkdir(parents=True)
        (ckpt / "exp" / "latest_train_state.pth").write_bytes(b"")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "gpu-a[1-2]",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_ID": "77",
        "SLURM_GPUS_ON_NODE": "4",
        "PYTHON": "python3",
        "CHECKPOINTS_DIR": str(ckpt),
    }
    argv = ["bash", "scripts/slurm_train.sh", str(tmp_path / "data"), "exp", "--lr", "0.001"]
    subprocess.run(argv, cwd=ROOT, env=env, check=True, timeout=60)
    args = calls.read_text().splitlines()
    split = args.index("train.py")
    assert args[:split] == [
        "--ntasks-per-node=1",
        "python3",
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=4",
        "--max-restarts=1",
        "--rdzv_id=77",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=gpu-a1:29500",
    ]
    options = args[split + 1 :]
    assert options[-4:] == ["--continue_train", "auto", "--lr", "0.001"]  # the same command on a requeue
    opt = train.TrainOptions().parse(options, save=False)  # the options train.py receives are valid
    assert (opt.name, opt.lr, opt.n_epochs, opt.lr_policy, opt.pool_size) == ("exp", 0.001, 210, "step", 50)
