"""Many scenes over many workers (scene.shard): shares from torchrun's and SLURM's environment, and
predict.py run by several CPU processes at once, killed and rerun."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from scene.shard import Worker, this_worker
from tests.scene_fixtures import make_experiment, predict_flags, write_scene
from util.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, Worker(0, 1, "")),
        ({"RANK": "1", "WORLD_SIZE": "3"}, Worker(1, 3, "torchrun")),
        (
            {
                "SLURM_ARRAY_TASK_ID": "7",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_ARRAY_TASK_MIN": "5",
                "SLURM_ARRAY_TASK_STEP": "2",
            },
            Worker(1, 4, "SLURM array"),
        ),  # fmt: skip
        (
            {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "RANK": "1", "WORLD_SIZE": "2"},
            Worker(5, 6, "SLURM array x torchrun"),
        ),  # fmt: skip
    ],
)
def test_the_worker_comes_from_the_launchers_environment(env, expected):
    assert this_worker(env) == expected


def test_shares_are_disjoint_cover_the_list_and_bad_environments_are_refused():
    items = list(range(11))
    shares = [Worker(i, 3, "x").share(items) for i in range(3)]
    assert sorted(sum(shares, [])) == items and shares[1] == [1, 4, 7, 10]
    with pytest.raises(UserError, match="RANK=2 lies outside WORLD_SIZE=2"):
        this_worker({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(UserError, match="not an integer"):
        this_worker({"SLURM_ARRAY_TASK_ID": "a", "SLURM_ARRAY_TASK_COUNT": "2"})


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Five scenes in a pair list, a tiny experiment, and predict.py's command for them."""
    root = tmp_path_factory.mktemp("job")
    make_experiment(root / "ck", "tiny")
    lines = []
    for i in range(5):
        folder = root / f"in{i}"
        folder.mkdir()
        s2, s1 = write_scene(folder, 64, 64, seed=i, s2_bands=3)
        lines.append(f"{s2.relative_to(root).parent / f'tile{i}.tif'} {s1.relative_to(root)}")
        s2.rename(folder / f"tile{i}.tif")
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    flags = ["predict.py", "--pairs", str(root / "pairs.txt"), *predict_flags(root / "ck", "tiny")]
    return root, flags


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **env}
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip


def finish(procs: list[subprocess.Popen]) -> list[str]:
    try:
        logs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert [p.returncode for p in procs] == [0] * len(procs), logs
    return logs


def outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("tile*.tif"))


@pytest.mark.slow
def test_a_slurm_array_of_two_tasks_shares_the_scenes(job):
    """scripts/slurm_predict.sh as a 2-task array starts it: both tasks at once, one share each."""
    root, flags = job
    out = root / "slurm" / "clear"  # the script makes it
    script = ["bash", "scripts/slurm_predict.sh", str(root / "pairs.txt"), str(out), "tiny"]
    env = {"PYTHON": sys.executable, "CHECKPOINTS_DIR": str(root / "ck"), "SLURM_ARRAY_TASK_COUNT": "2"}
    procs = [
        start(
            [*script, "--gpu_ids", "-1", "--window", "32", "--overlap", "8"],
            {**env, "SLURM_ARRAY_TASK_ID": str(i)},
        )  # fmt: skip
        for i in range(2)
    ]
    logs = finish(procs)
    assert "worker 1 of 2 (SLURM array): 3 of 5 scene(s)" in logs[0]
    assert "worker 2 of 2 (SLURM array): 2 of 5 scene(s)" in logs[1]
    assert "wrote " + str(out / "tile1.tif") in logs[1] and "tile1.tif" not in logs[0]
    assert outputs(out) == [f"tile{i}.tif" for i in range(5)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_processes_share_the_scenes_and_a_killed_one_loses_only_its_scene(job):
    root, flags = job
    out = root / "torchrun"
    out.mkdir()
    where = ["--nnodes=1", "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}"]
    logs = finish(
        [start([sys.executable, "-m", "torch.distributed.run", *where, *flags, "--out", str(out)], {})]
    )
    assert "worker 1 of 2 (torchrun): 3 of 5 scene(s)" in logs[0] and "worker 2 of 2 (torchrun)" in logs[0]
    assert outputs(out) == [f"tile{i}.tif" for i in range(5)]

    # One worker killed while it writes a scene: the scenes it finished stay, the one it was writing
    # leaves only a hidden temporary, and the same command run again finishes the rest.
    killed = root / "killed"
    killed.mkdir()
    proc = start([sys.executable, *flags, "--out", str(killed), "--window", "32", "--overlap", "28"], {})
    deadline = time.time() + 120
    while time.time() < deadline and not list(killed.glob(".tile1.tif.tmp*")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = outputs(killed)  # tile0, and tile1 if it was renamed just before the kill
    assert done[:1] == ["tile0.tif"] and done == [f"tile{i}.tif" for i in range(len(done))] and len(done) < 5
    for name in done:
        with rasterio.open(killed / name) as src:
            assert np.isfinite(src.read()).all()
    before = os.stat(killed / "tile0.tif").st_mtime_ns
    logs = finish([start([sys.executable, *flags, "--out", str(killed)], {})])
    assert f"{len(done)} of 5 scene(s) already done" in logs[0]
    assert outputs(killed) == [f"tile{i}.tif" for i in range(5)]
    assert os.stat(killed / "tile0.tif").st_mtime_ns == before
    assert not list(killed.glob(".*.tmp*"))  # the killed worker's temporary is gone
