"""--malloc: glibc's allocator tuned for large tensors (fewer page faults), or left alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import train
from options.train_options import TrainOptions
from tests.helpers import expect_error, train_argv
from util import allocator

ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    def __init__(self, result: int = 1):
        self.calls: list[tuple[int, int]] = []
        self.result = result

    def __call__(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result


@pytest.fixture
def mallopt(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: recorder)
    for name in allocator.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    return recorder


def test_tuned_sets_both_thresholds(mallopt):
    assert allocator.configure_malloc("tuned") is True
    assert dict(mallopt.calls) == {
        allocator.M_TRIM_THRESHOLD: 256 << 20,
        allocator.M_MMAP_THRESHOLD: 1 << 30,
    }


def test_system_touches_nothing(mallopt):
    assert allocator.configure_malloc("system") is False
    assert mallopt.calls == []


def test_glibc_refusing_a_value_reports_untuned(mallopt):
    mallopt.result = 0
    assert allocator.configure_malloc("tuned") is False


def test_glibc_environment_switches_win(mallopt, monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert allocator.configure_malloc("tuned") is False
    assert allocator.keep_heap_flat() is False
    assert mallopt.calls == []


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: None)
    assert allocator.configure_malloc("tuned") is False
    assert allocator.keep_heap_flat() is False


def test_flat_heap_for_whole_scenes(mallopt):
    assert allocator.keep_heap_flat() is True
    assert mallopt.calls == [(allocator.M_MMAP_THRESHOLD, 16 << 20)]


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="--malloc 'fast'"):
        allocator.configure_malloc("fast")


def test_option_default_and_choices(tmp_path, mallopt, capfd):
    opt = TrainOptions().parse(train_argv(tmp_path / "d", tmp_path / "c"), save=False)
    assert opt.malloc == "tuned" and mallopt.calls
    mallopt.calls.clear()
    opt = TrainOptions().parse(
        train_argv(tmp_path / "d", tmp_path / "c", "x", "--malloc", "system"), save=False
    )
    assert opt.malloc == "system" and mallopt.calls == []
    expect_error(
        capfd, train.main, train_argv(tmp_path / "d", tmp_path / "c", "x", "--malloc", "big"), "--malloc"
    )


# What it is for: one training step of an inner U-Net layer (a 32 MiB weight, the paper's
# largest) allocates and frees several 32 MiB blocks (the weight gradient, oneDNN's reordered
# weights). Under glibc's defaults each is a fresh mmap whose pages fault in again at every step;
# tuned, the third step's blocks are reused without a fault. Counted in a fresh process (the
# choice is process-wide) by the kernel's minor page faults, not by time.
FAULTS = """
import json, resource, sys
import torch
import torch.nn.functional as F
from util.allocator import configure_malloc
tuned = configure_malloc(sys.argv[1])
w = torch.randn(1024, 512, 4, 4, requires_grad=True)
x = torch.randn(1, 1024, 2, 2)
def step():
    F.conv_transpose2d(x, w, stride=2, padding=1).square().sum().backward()
    w.grad = None
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step()
print(json.dumps({"tuned": tuned, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(allocator._glibc_mallopt() is None, reason="glibc only")
def test_tuned_reuses_freed_large_blocks_without_page_faults():
    pages = (32 << 20) // 4096  # of one 32 MiB block
    system, tuned = _faults("system"), _faults("tuned")
    assert not system["tuned"] and tuned["tuned"]
    assert system["faults"] > pages, system  # measured: 3 blocks' worth
    assert tuned["faults"] < 0.1 * pages, tuned  # measured: none
