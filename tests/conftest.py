"""Shared pytest fixtures."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator

import pytest
import torch

import train
from tests.helpers import make_triplets, train_argv

# Tests run tiny tensors: with several intra-op threads on a busy 2-core machine, OpenMP spinning
# makes a 32-px training step ~100x slower. One thread keeps the suite fast and deterministic.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def visdom_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real visdom server on a free loopback port, started offline (no asset download).

    Yields ``(host, port)``; the server's env files live in a temporary folder
    and the process is stopped at the end of the session. Tests using it are
    skipped when visdom is not installed.
    """
    if importlib.util.find_spec("visdom") is None:
        pytest.skip(
            "visdom is not installed (pip install 'setuptools<81' && pip install --no-build-isolation visdom)"
        )
    from display.visdom_server import find_free_port, start_visdom_server, stop_visdom_server

    host = "127.0.0.1"
    port = find_free_port(host)
    root = tmp_path_factory.mktemp("visdom_server")
    try:
        proc = start_visdom_server(port, str(root / "env"), host=host, log_path=str(root / "server.log"))
    except RuntimeError as exc:
        log = (root / "server.log").read_text(errors="replace")[-2000:]
        pytest.fail(f"{exc}\n--- server log ---\n{log}")
    try:
        yield host, port
    finally:
        stop_visdom_server(proc)


# The trained experiment of tests/test_robustness.py and tests/test_robustness_saves.py (one per module);
# tests/test_errors.py defines its own.
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny experiment trained for one epoch (labels 1 and latest), plus test data.

    A constant learning rate ('step' policy: x0.1 after 100 epochs), so that a resumed epoch
    changes the weights (the 'linear' policy of a 1-epoch run ends at lr 0).
    """
    root = tmp_path_factory.mktemp("robust")
    make_triplets(root / "data", "train", n=2)
    make_triplets(root / "data", "test", n=1, seed=1)
    assert train.main(train_argv(root / "data", root / "ckpt", "tiny", "--lr_policy", "step")) == 0
    return root


@pytest.fixture
def exp(trained, tmp_path):
    """A private copy of the trained experiment: ``tmp_path/ckpt/tiny``."""
    shutil.copytree(trained / "ckpt", tmp_path / "ckpt")
    return tmp_path / "ckpt" / "tiny"
