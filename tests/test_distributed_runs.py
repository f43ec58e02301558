"""2-process CPU runs (gloo, 127.0.0.1): identical weights on every rank, rank 0 alone writes, exact
mid-epoch resume, and without image pool the same training as one process with the global batch."""

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
import train
from models import create_model, networks
from models.base_model import BaseModel
from models.checkpoint import safe_load
from options.train_options import TrainOptions
from tests.helpers import make_triplets, run_main, train_argv
from util import distributed

ROOT = Path(__file__).resolve().parents[1]
NETS = ("G", "G2", "A", "D")


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


def torchrun(
    argv: list[str], audit: Path, out: Path, nodes: int = 1, **faults: str
) -> tuple[list[dict], str]:
    """Train with 2 CPU processes on 127.0.0.1, on one node or as ``nodes`` nodes (one torchrun
    each, meeting through a c10d rendezvous); return each rank's record (tests/ddp_worker.py) and
    the output of all processes. ``faults``: see :func:`launch`."""
    codes, logs = launch(argv, audit, out, nodes, **faults)
    assert all(code == 0 for code in codes), "\n".join(log[-3000:] for log in logs)
    records = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert all(r["rc"] == 0 for r in records)
    return records, "\n".join(logs)


def launch(
    argv: list[str], audit: Path, out: Path, nodes: int = 1, restarts: int = 0, **faults: str
) -> tuple[list[int], list[str]]:
    """Start the torchrun agents of :func:`torchrun`; return their exit statuses and outputs.
    ``restarts``: torchrun's --max-restarts; ``faults``: environment variables of tests/ddp_worker.py
    (DDP_DIE, DDP_EXTRA_RANK1, ...)."""
    port = _free_port()
    if nodes == 1 and not restarts:
        where = ["--nnodes=1", "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={port}"]
    else:  # a c10d rendezvous: also what a restarted group meets through
        where = [
            f"--nnodes={nodes}",
            f"--nproc_per_node={2 // nodes}",
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}",
            "--rdzv_id=test",
            "--local_addr=127.0.0.1",
        ]
    where.append(f"--max-restarts={restarts}")
    cmd = [sys.executable, "-m", "torch.distributed.run", *where, "-m", "tests.ddp_worker", *argv]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "PYTHONUNBUFFERED": "1",
        "DDP_OUT": str(out),
        "DDP_AUDIT_ROOT": str(audit),
        **faults,
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
    return [agent.returncode for agent in agents], logs


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


# ---------------------------------------------------------------------- a rank that dies or cannot start
@pytest.mark.slow  # torchrun, one worker killed, the group restarted: 20-30 s on 2 busy cores
def test_a_rank_killed_mid_epoch_is_restarted_and_ends_as_an_uninterrupted_run(ddp_run):
    root, folder, _, _ = ddp_run
    argv = _options(root / "data", folder.parent, "restarted", *RUN, "--continue_train", "auto")
    # Rank 1 dies with SIGKILL in its 4th step, after the mid-epoch checkpoint at 6 images.
    codes, logs = launch(argv, folder.parent, root / "out_restarted", restarts=1, DDP_DIE="1:4")
    log = "\n".join(logs)
    assert codes == [0], log[-3000:]
    assert "exitcode: -9" in log and "resuming after epoch 0, 6 images into epoch 1 (6 images seen)" in log
    restarted = folder.parent / "restarted"
    assert _equal(_latest(restarted), _latest(folder)) and _equal(
        _latest(restarted, "2"), _latest(folder, "2")
    )
    records = [torch.load(root / "out_restarted" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert all(r["rc"] == 0 for r in records) and _equal(records[0]["nets"], records[1]["nets"])


@pytest.mark.slow  # starts torchrun with 2 processes: 8-15 s each on 2 busy cores
@pytest.mark.parametrize("fault", ["missing data", "other data"])
def test_a_rank_that_cannot_start_or_sees_other_data_stops_every_rank_in_one_line(tmp_path, fault):
    make_triplets(tmp_path / "data", "train", n=4, size=32, seed=2)
    if fault == "other data":
        make_triplets(tmp_path / "other", "train", n=3, size=32, seed=2)
    rank1 = tmp_path / ("missing" if fault == "missing data" else "other")
    argv = _options(tmp_path / "data", tmp_path / "ckpt", "x")
    codes, logs = launch(argv, tmp_path / "ckpt", tmp_path / "out", DDP_EXTRA_RANK1=f"--dataroot {rank1}")
    log = "\n".join(logs)
    assert codes != [0]
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    if fault == "missing data":
        assert sorted(errors) == [
            f"error: --dataroot {rank1} does not exist",
            f"error: starting failed on rank(s) 1 (rank 1: --dataroot {rank1} does not exist)",
        ]
    else:
        assert len(errors) == 2 and all("(rank 0: 4, rank 1: 3)" in e for e in errors), errors
    assert "[rank0]: Traceback" not in log and "[rank1]: Traceback" not in log
    records = [torch.load(tmp_path / "out" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [r["rc"] for r in records] == [2, 2]
