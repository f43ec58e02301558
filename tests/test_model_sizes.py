"""python -m scripts.model_sizes: every model's parameters at its paper's settings (built on 'meta')."""

from __future__ import annotations

import json

from scripts import model_sizes
from tests.helpers import expect_error

# Reference counts: ours from the official checkpoint layout; GLF-CR as the
# official net_CR_RDN.py builds it; UnCRtainTS as the official UNCRTAINTS(is_mono=True) builds it; DSen2-CR as the official Keras model's layers add up; pix2pix
# as the PyTorch pix2pix code prints it.
EXPECTED = {
    ("pix2pix_attn", "png"): {"G": 54_407_171, "G2": 54_404_099, "A": 54_400_001, "D": 2_767_809},
    ("glf_cr", "sen12mscr"): {"G": 14_827_373},
    ("dsen2cr", "sen12mscr"): {"G": 18_947_341},
    ("pix2pix", "png"): {"G": 54_413_955, "D": 2_768_705},
    ("uncrtaints", "sen12mscr"): {"G": 520_218},
}


def test_counts_at_the_papers_settings(capsys):
    assert model_sizes.main(["--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert list(counts) == [
        "pix2pix",
        "sar_opt_cgan",
        "sf_gan",
        "glf_cr",
        "dsen2cr",
        "uncrtaints",
        "pix2pix_attn",
    ]
    for (model, data), nets in EXPECTED.items():
        assert counts[model][data] == nets, (model, data)


def test_table_and_errors(capfd):
    assert model_sizes.main(["--models", "dsen2cr"]) == 0
    out = capfd.readouterr().out
    assert "| DSen2-CR (our addition) | 1 | G 18,903,555 | G 18,947,341 |" in out
    expect_error(capfd, model_sizes.main, ["--models", "nope"], "unknown model(s) nope")
