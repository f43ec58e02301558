"""Our networks against numbers computed once by the authors' own code (fixtures in tests/fixtures/).

Each fixture's generator (``tests/fixtures/make_*.py``) says which official files ran, what
was stood in for and how; the numbers are facts about that code. These tests need only the fixtures.
"""

from __future__ import annotations

import numpy as np
import torch

from models.networks.cloud_mask import BandLayout, cloud_score, cloud_shadow_mask, shadow_mask
from models.networks.dsen2cr import DSen2CR
from models.networks.glf_cr import GLFCRNet
from tests.fixtures.make_dsen2cr_mask_reference import FIXTURE as DSEN2CR_MASK_FIXTURE
from tests.fixtures.make_dsen2cr_reference import FIXTURE as DSEN2CR_FIXTURE
from tests.fixtures.make_glf_cr_reference import FIXTURE as GLF_CR_FIXTURE
from tests.fixtures.make_glf_cr_reference import INPUT_SEED, seeded_inputs
from tests.fixtures.seeded import seeded_state, state_checksum

# Sentinel-2 L1C band order (B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12).
S2_BANDS = BandLayout(blue=1, green=2, red=3, aerosol=0, cirrus=10, nir=7, swir1=11)


def test_glf_cr_matches_the_official_network_to_1e_5():
    ref = torch.load(GLF_CR_FIXTURE, weights_only=True)
    # The official network at the paper's widths (13 S2 bands, 2 S1 bands), its dropout off.
    net = GLFCRNet().eval()
    state = seeded_state({k: v.shape for k, v in net.state_dict().items()}, ref["weights_seed"])
    # Same names, same shapes, same draws as the official network received.
    assert abs(state_checksum(state) - ref["weights_checksum"]) < 1e-6 * ref["weights_checksum"]
    net.load_state_dict(state, strict=True)
    cloudy, sar = seeded_inputs(INPUT_SEED)
    assert torch.equal(cloudy, ref["cloudy"]) and torch.equal(sar, ref["sar"])
    with torch.no_grad():
        out = net(ref["cloudy"], ref["sar"])
    # The residual the official network adds is far from zero, so the comparison has teeth.
    assert (ref["output"] - ref["cloudy"]).std() > 0.05
    err = (out - ref["output"]).abs().max().item()
    assert err <= 1e-5, f"largest difference from the official GLF-CR output: {err:.3g}"


def test_glf_cr_fixture_detects_a_changed_network():
    """Raising one bias of the first block's SAR gate by 1 moves the output far past 1e-5: the check can fail."""
    ref = torch.load(GLF_CR_FIXTURE, weights_only=True)
    net = GLFCRNet().eval()
    state = seeded_state({k: v.shape for k, v in net.state_dict().items()}, ref["weights_seed"])
    state["opt_distribute_1x1conv.0.bias"] = state["opt_distribute_1x1conv.0.bias"] + 1.0
    net.load_state_dict(state)
    with torch.no_grad():
        out = net(ref["cloudy"], ref["sar"])
    assert (out - ref["output"]).abs().max() > 1e-3


def test_dsen2cr_mask_matches_the_official_detectors():
    ref = np.load(DSEN2CR_MASK_FIXTURE)
    official = torch.from_numpy(ref["mask"]).unsqueeze(1)
    # Both detectors fire in every scene, and some pixels are left clear.
    for m in official:
        assert (m == 1).float().mean() > 0.05 and (m == -1).float().mean() > 0.05 and (m == 0).any()
    # The official data generator reads digital numbers; ours reads reflectance (DN / 10000).
    refl = torch.from_numpy(ref["dn"].astype(np.float32)) / 10000
    threshold = float(ref["threshold"])
    cloud = cloud_score(refl, S2_BANDS) >= threshold
    assert torch.equal(cloud, official == 1)
    # The official mask writes cloud over shadow.
    assert torch.equal(shadow_mask(refl, S2_BANDS) & ~cloud, official == -1)
    assert torch.equal(cloud_shadow_mask(refl, S2_BANDS, threshold=threshold), (official != 0).float())


def test_dsen2cr_matches_the_official_pytorch_port_to_1e_5():
    ref = torch.load(DSEN2CR_FIXTURE, weights_only=True)
    net = DSen2CR(feature_sizes=256, num_layers=16).eval()
    state = seeded_state({k: v.shape for k, v in net.state_dict().items()}, ref["weights_seed"])
    assert abs(state_checksum(state) - ref["weights_checksum"]) < 1e-6 * ref["weights_checksum"]
    net.load_state_dict(state, strict=True)
    assert (ref["output"] - ref["cloudy"]).std() > 0.05
    with torch.no_grad():
        out = net(ref["cloudy"], ref["sar"])
    err = (out - ref["output"]).abs().max().item()
    assert err <= 1e-5, f"largest difference from the official DSen2-CR port's output: {err:.3g}"
    # The port concatenates optical before SAR: the other order changes the output.
    swapped = net.head.weight.detach().roll(2, dims=1)
    with torch.no_grad():
        net.head.weight.copy_(swapped)
        assert (net(ref["cloudy"], ref["sar"]) - ref["output"]).abs().max() > 1e-3
