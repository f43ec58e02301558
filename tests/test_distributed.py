"""Distributed training (torchrun, DDP): sharded sample order, one device per process, the
``--gpu_ids`` refusal, and 2-process CPU runs (gloo, 127.0.0.1): identical weights on every rank,
rank 0 alone writes, exact mid-epoch resume, and without image pool the same training as one
process with the global batch."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import models
import test as test_script
import train
from data.sampler import EpochSampler
from models import create_model, networks
from models.base_model import BaseModel
from models.checkpoint import Checkpoints, safe_load
from options.train_options import TrainOptions
from tests.helpers import expect_error, make_triplets, run_main, test_argv, train_argv
from util import distributed
from util.device import resolve_device

ROOT = Path(__file__).resolve().parents[1]
NETS = ("G", "G2", "A", "D")
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


# ---------------------------------------------------------------------- 2 processes, gloo
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _every_model(root: Path) -> list[tuple[str, ...]]:
    """Every registered model with its tiny flags, plus sf_gan's simulation stage with its own D."""
    runs = [(name, *models.find_model_using_name(name).tiny_flags) for name in models.MODEL_NAMES]
    return [*runs, ("sf_gan", "--sim_epochs", "1", "--lambda_sim_gan", "1")]


def _ranks_agree(module: nn.Module) -> bool:
    flat = torch.cat([p.detach().flatten() for p in module.parameters()])
    both = [torch.zeros_like(flat) for _ in range(2)]
    dist.all_gather(both, flat)
    return torch.equal(both[0], both[1])


def _two_ranks(rank: int, port: int, root: Path) -> None:
    """Body of one of 2 spawned processes (gloo, 127.0.0.1): the collectives answer the same on every
    rank, and every model's DDP steps leave the same parameters on both ranks."""
    env = {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": 2, "LOCAL_WORLD_SIZE": 2}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "GLOO_SOCKET_IFNAME": "lo"}
    os.environ.update({k: str(v) for k, v in env.items()})
    torch.set_num_threads(1)
    distributed.init(torch.device("cpu"))
    try:
        assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (rank, 2, rank == 0)
        # A loss non-finite on rank 1 only: both ranks skip the step (their all-reduces must match).
        losses = {"a": torch.tensor(1.0), "b": torch.tensor(float("nan") if rank else 2.0)}
        assert BaseModel.nonfinite_losses(losses) == ["b"]
        assert BaseModel.nonfinite_losses({"a": torch.tensor(1.0)}) == []
        assert distributed.mean_over_ranks({"x": float(rank)}, torch.device("cpu")) == {"x": 0.5}
        gathered = distributed.gather_to_main({"rank": rank})
        assert gathered == ([{"rank": 0}, {"rank": 1}] if rank == 0 else None)
        torch.manual_seed(rank)  # different weights: DDP starts every rank from rank 0's
        nets = {"n": nn.Linear(2, 1)}
        distributed.wrap_networks(nets, torch.device("cpu"))
        assert isinstance(nets["n"], nn.parallel.DistributedDataParallel) and _ranks_agree(nets["n"])

        # Every model: a different batch on each rank, three steps, the same parameters after each.
        for name, *flags in _every_model(root):
            argv = train_argv(root / "data", root / "ckpt", name, "--model", name, *flags)
            model = create_model(TrainOptions().parse(argv, save=False))
            model.setup()
            distributed.wrap_networks(model.nets, model.device, find_unused=model.unused_parameters)
            for step in range(3):
                g = torch.Generator().manual_seed(10 * step + rank)
                bands = model.band_counts()
                model.set_input({k: torch.rand(1, n, 32, 32, generator=g) * 2 - 1 for k, n in bands.items()})
                model.optimize_parameters()
                differ = [net for net, module in model.nets.items() if not _ranks_agree(module)]
                assert not differ, f"{' '.join([name, *flags])}: step {step}: ranks differ in {differ}"
    finally:
        dist.destroy_process_group()


def test_every_model_trains_alike_on_every_rank_and_collectives_agree(tmp_path):
    make_triplets(tmp_path / "data", "train", n=2)
    context = mp.start_processes(
        _two_ranks, args=(_free_port(), tmp_path), nprocs=2, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + 300
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for proc in context.processes:
                proc.kill()
            pytest.fail("the 2 processes did not finish in 300 s")


def torchrun(argv: list[str], audit: Path, out: Path, nodes: int = 1) -> tuple[list[dict], str]:
    """Train with 2 CPU processes on 127.0.0.1, on one node or as ``nodes`` nodes (one torchrun
    each, meeting through a c10d rendezvous); return each rank's record (tests/ddp_worker.py) and
    the output of all processes."""
    port = _free_port()
    if nodes == 1:
        where = ["--nnodes=1", "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={port}"]
    else:
        where = [
            f"--nnodes={nodes}",
            f"--nproc_per_node={2 // nodes}",
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}",
            "--rdzv_id=test",
            "--local_addr=127.0.0.1",
        ]
    cmd = [sys.executable, "-m", "torch.distributed.run", *where, "-m", "tests.ddp_worker", *argv]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "PYTHONUNBUFFERED": "1",
        "DDP_OUT": str(out),
        "DDP_AUDIT_ROOT": str(audit),
    }
    # Each agent leads a process group of its own: on a timeout its workers are stopped with it.
    agents = [
        subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for _ in range(nodes)
    ]
    try:
        logs = [agent.communicate(timeout=300)[0] for agent in agents]
    finally:
        for agent in agents:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()
    assert all(a.returncode == 0 for a in agents), "\n".join(log[-3000:] for log in logs)
    records = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert all(r["rc"] == 0 for r in records)
    return records, "\n".join(logs)


def _options(data: Path, ckpt: Path, name: str, *extra: str) -> list[str]:
    # 8 images, 1 per process and step: 4 global steps of 2 images per epoch, 2 epochs.
    return train_argv(data, ckpt, name, "--n_epochs", "2", "--seed", "5", "--print_freq", "2", *extra)


RUN = ("--pool_size", "3", "--save_latest_freq", "6", "--save_by_iter", "--update_html_freq", "4")
RUN = (*RUN, "--display_freq", "4")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """One 2-process run with an image pool, mid-epoch checkpoints and HTML pages."""
    root = tmp_path_factory.mktemp("ddp")
    make_triplets(root / "data", "train", n=8, size=32, seed=2)
    ckpt = root / "ckpt"
    records, log = torchrun(_options(root / "data", ckpt, "run", *RUN), ckpt, root / "out")
    return root, ckpt / "run", records, log


def _latest(folder: Path, label: str = "latest") -> dict[str, dict[str, torch.Tensor]]:
    return {n: safe_load(folder / f"{label}_net_{n}.pth") for n in NETS}


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[n][k], b[n][k]) for n in NETS for k in a[n])


@pytest.mark.slow  # starts torchrun with 2 processes: 12-20 s on 2 idle cores, 30-50 s on busy ones
def test_ranks_hold_identical_weights_and_rank0_alone_writes(ddp_run):
    _, folder, (rank0, rank1), log = ddp_run
    assert _equal(rank0["nets"], rank1["nets"])
    assert _equal(rank0["nets"], _latest(folder))
    start = safe_load(folder / "iter_6_train_state.pth")["nets"]
    assert not _equal({n: start[n] for n in NETS}, rank0["nets"])  # it trained
    assert rank1["writes"] == []
    assert log.count("----------------- Options") == log.count("end of epoch 2 / 2") == 1  # rank 0 prints
    wrote = " ".join(rank0["writes"])
    assert all(f in wrote for f in ("train_opt.json", "loss_log.txt", "latest_train_state.pth", "index.html"))
    # Frequencies count global images: 16 images, losses printed every 2 (one line per global step).
    log = (folder / "loss_log.txt").read_text().splitlines()
    assert sum(line.startswith("(epoch") for line in log) == 8
    assert [p.name for p in sorted(folder.glob("iter_*_train_state.pth"))] == [
        "iter_12_train_state.pth",
        "iter_6_train_state.pth",
    ]


@pytest.mark.slow  # starts torchrun with 2 processes: 12-20 s on 2 idle cores, 30-50 s on busy ones
def test_checkpoint_keeps_each_ranks_generator_and_pool(ddp_run):
    folder = ddp_run[1]
    state = safe_load(folder / "iter_6_train_state.pth")
    assert state["progress"] == {"epoch": 0, "epoch_iter": 6, "total_iters": 6}
    ranks = state["ranks"]
    assert len(ranks) == 2 and torch.equal(ranks[0]["rng"]["torch"], state["rng"]["torch"])
    assert not torch.equal(ranks[0]["rng"]["torch"], ranks[1]["rng"]["torch"])
    pools = [r["extra"]["fake_pool"]["images"] for r in ranks]
    assert [len(p) for p in pools] == [3, 3]
    assert not any(torch.equal(a, b) for a in pools[0] for b in pools[1])  # each rank its own fakes


@pytest.mark.slow  # starts torchrun with 2 processes: 12-20 s on 2 idle cores, 30-50 s on busy ones
def test_resume_mid_epoch_under_ddp_continues_exactly(ddp_run):
    root, folder, (rank0, _), _ = ddp_run
    resumed = folder.parent / "resumed"
    resumed.mkdir()
    for path in folder.iterdir():
        if path.name.startswith("iter_6_") or path.name.startswith("train_opt"):
            shutil.copy2(path, resumed / path.name)
    argv = _options(root / "data", folder.parent, "resumed", *RUN, "--continue_train", "--load_iter", "6")
    records, log = torchrun(argv, folder.parent / "resumed", root / "out_resumed")
    assert "resuming after epoch 0, 6 images into epoch 1 (6 images seen)" in log
    assert _equal(records[0]["nets"], records[1]["nets"])
    assert _equal(_latest(resumed), _latest(folder)) and _equal(_latest(resumed), rank0["nets"])
    assert _equal(_latest(resumed, "2"), _latest(folder, "2"))
    assert records[1]["writes"] == []


@pytest.mark.slow  # starts torchrun with 2 processes: 12-20 s on 2 idle cores, 30-50 s on busy ones
def test_without_pool_two_nodes_train_as_one_process_with_the_global_batch(tmp_path):
    make_triplets(tmp_path / "data", "train", n=8, size=32, seed=4)
    ckpt = tmp_path / "ckpt"
    common = ("--pool_size", "0", "--save_latest_freq", "1000")
    # Two nodes of one process each (two torchrun agents on 127.0.0.1): the multi-node path.
    records, _ = torchrun(_options(tmp_path / "data", ckpt, "ddp", *common), ckpt, tmp_path / "out", nodes=2)
    assert sorted(r["env"]["GROUP_RANK"] for r in records) == ["0", "1"]
    assert all(r["env"]["LOCAL_WORLD_SIZE"] == "1" and r["env"]["WORLD_SIZE"] == "2" for r in records)
    assert _equal(records[0]["nets"], records[1]["nets"])
    one = _options(tmp_path / "data", ckpt, "one", *common, "--batch_size", "2")
    assert run_main(train.main, one) == 0
    ddp, single = _latest(ckpt / "ddp"), _latest(ckpt / "one")
    # D's convolutions followed by an instance norm have biases without effect (the norm removes
    # them) and a zero gradient, whose rounding noise Adam turns into steps of +-lr: those biases
    # are compared through D's output; every other weight directly.
    d = networks.define_D(6, ndf=4, netD="basic", n_layers_D=3, norm="instance")
    free = {
        f"model.{i}.bias"
        for i, m in enumerate(d.model[:-1])
        if isinstance(m, nn.Conv2d) and isinstance(d.model[i + 1], nn.InstanceNorm2d)
    }
    assert free
    for n in NETS:
        for key, value in single[n].items():
            if not (n == "D" and key in free):
                torch.testing.assert_close(ddp[n][key], value, rtol=1e-4, atol=1e-5, msg=f"{n}.{key}")
    probe = torch.rand(2, 6, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    outputs = []
    for state in (ddp["D"], single["D"]):
        d.load_state_dict(state)
        outputs.append(d(probe).detach())
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)


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
        "--rdzv_id=77",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=gpu-a1:29500",
    ]
    options = args[split + 1 :]
    assert ("--continue_train" in options) == resume and options[-2:] == ["--lr", "0.001"]
    opt = train.TrainOptions().parse(options, save=False)  # the options train.py receives are valid
    assert (opt.name, opt.lr, opt.n_epochs, opt.lr_policy, opt.pool_size) == ("exp", 0.001, 210, "step", 50)
