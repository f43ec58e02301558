"""The speed benchmarks themselves: the compute floor's operation count and the JSON report of
scripts.benchmark_speed at its smoke setting (the figures are measured by running them, not here)."""

from __future__ import annotations

import pytest
import torch

import tests.helpers  # noqa: F401  (the suite's single-thread policy)


# ---------------------------------------------------------------- the compute floor's count
def test_the_floor_counts_one_more_g2_backward_for_the_official_step():
    """benchmark_floor's operation count: the official step's extra pass is exactly G2's backward."""
    from torch.utils.flop_counter import FlopCounterMode

    from models import networks
    from scripts.benchmark_floor import iteration_gflop

    tiny = ["--model", "pix2pix_attn", "--netG", "unet_32", "--ngf", "4", "--ndf", "4", "--no_dropout"]
    ours = iteration_gflop([], size=32, model_flags=tiny)
    official = iteration_gflop(["--train_step", "official"], size=32, model_flags=tiny)
    g2 = networks.define_G(3, 3, ngf=4, netG="unet_32", use_dropout=False)
    x = torch.rand(1, 3, 32, 32)
    with FlopCounterMode(display=False) as forward:
        y = g2(x)
    with FlopCounterMode(display=False) as backward:
        y.backward(torch.ones_like(y))
    assert ours > 0 and official > ours
    assert official - ours == pytest.approx(backward.get_total_flops() / 1e9, rel=1e-9)
    assert forward.get_total_flops() > 0


@pytest.mark.slow
def test_the_speed_benchmark_runs_and_reports_json(tmp_path):
    """scripts.benchmark_speed at its smoke setting: children run, the JSON holds the ratios."""
    import json

    from scripts import benchmark_speed

    out = tmp_path / "speed.json"
    argv = ["--smoke", "--parts", "train", "test", "--batch_sizes", "1", "--rounds", "1"]
    assert (
        benchmark_speed.main([*argv, "--only", "plain", "fast", "--test_images", "2", "--json", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    train_rows = report["train"]["batch 1"]
    assert set(train_rows) == {"plain", "fast"} and train_rows["plain"]["speedup_vs_plain"] == 1.0
    assert all(row["s_per_it"] > 0 and row["peak_rss_mib"] > 0 for row in train_rows.values())
    assert {"plain, batch 1", "fast, batch 1"} <= set(report["test"])
    assert report["test"]["plain, batch 1"]["process_speedup_vs_official_est"] == pytest.approx(
        12.7 / 9.8, abs=1e-3
    )
