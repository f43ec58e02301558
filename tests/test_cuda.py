"""GPU checks (marked ``needs_cuda``): skipped on machines without CUDA.

CPU and CUDA give the same networks' outputs, a training step runs on the GPU, and the
official command lines run end to end on it, writing CPU checkpoints that load anywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import test as test_script
import train as train_script
from models import networks
from models.checkpoint import safe_load
from tests.helpers import make_triplets, read_rgb, run_main, test_argv, train_argv

pytestmark = [
    pytest.mark.needs_cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_unet_and_patchgan_match_between_cpu_and_cuda():
    torch.manual_seed(0)
    gen = networks.define_G(6, 3, ngf=8, netG="unet_64")
    disc = networks.define_D(6, ndf=8)
    x = torch.rand(2, 6, 64, 64) * 2 - 1
    with torch.no_grad():
        cpu_g, cpu_d = gen(x), disc(x)
        cuda_g, cuda_d = gen.cuda()(x.cuda()).cpu(), disc.cuda()(x.cuda()).cpu()
    # TF32 and different kernels: equal up to float rounding, not bit for bit.
    assert torch.allclose(cpu_g, cuda_g, atol=2e-3)
    assert torch.allclose(cpu_d, cuda_d, atol=2e-3, rtol=1e-3)


def test_official_command_lines_on_cuda(tmp_path):
    make_triplets(tmp_path / "data" / "train", "train", n=3, size=256)
    make_triplets(tmp_path / "data" / "test", "test", n=2, size=256)
    ckpt, results = tmp_path / "ckpt", tmp_path / "results"
    official = [
        "--model",
        "pix2pix_attn",
        "--lr_policy",
        "step",
        "--pool_size",
        "50",
        "--no_dropout",
        "--batchSize",
        "1",
        "--gpu_ids",
        "0",
        "--dataset_mode",
        "unaligned_sar",
        "--no_flip",
        "--display_freq",
        "500",
        "--save_epoch_freq",
        "40",
        "--netG",
        "unet_256",
        "--load_size",
        "286",
        "--crop_size",
        "256",
        "--ngf",
        "8",
        "--ndf",
        "8",
    ]
    assert run_main(train_script.main, train_argv(tmp_path / "data" / "train", ckpt, "gpu", *official)) == 0
    state = safe_load(ckpt / "gpu" / "latest_net_G.pth")
    assert all(t.device.type == "cpu" for t in state.values())
    test_official = [
        "--model",
        "pix2pix_attn",
        "--no_dropout",
        "--batchSize",
        "1",
        "--dataset_mode",
        "unaligned_sar",
        "--no_flip",
        "--netG",
        "unet_256",
        "--load_size",
        "256",
        "--crop_size",
        "256",
        "--ngf",
        "8",
        "--ndf",
        "8",
    ]
    data = tmp_path / "data" / "test"
    assert (
        run_main(test_script.main, test_argv(data, ckpt, results, "gpu", *test_official, "--gpu_ids", "0"))
        == 0
    )
    assert (results / "gpu" / "test_latest" / "metrics_summary.json").is_file()
    # The same weights on the CPU give (nearly) the same images.
    cpu_results = tmp_path / "cpu_results"
    assert (
        run_main(
            test_script.main, test_argv(data, ckpt, cpu_results, "gpu", *test_official, "--gpu_ids", "-1")
        )
        == 0
    )
    for stem in ("000", "001"):
        gpu_img = read_rgb(results / "gpu" / "test_latest" / "images" / f"{stem}_fake_B.png").astype(int)
        cpu_img = read_rgb(cpu_results / "gpu" / "test_latest" / "images" / f"{stem}_fake_B.png").astype(int)
        assert np.abs(gpu_img - cpu_img).max() <= 2
