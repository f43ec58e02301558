"""GLF-CR's published checkpoint format (``CR_net.pth``): written as the authors' code writes it, loaded
through ``--weights``, the API and torch.hub, against the official network's output.

``tests/fixtures/glf_cr_checkpoint.pt`` (see ``make_glf_cr_checkpoint.py``) holds the official
network's key order, its derived buffers and its output for a seeded Sentinel-2 / Sentinel-1 pair;
:func:`authors_checkpoint` writes the file again (torch 1.4's legacy serialisation).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import predict
from cloud_removal import CloudRemover
from models.networks.glf_cr import GLFCRNet
from models.weight_sets import PUBLISHED, open_weight_set
from models.weight_sets.formats import read_state_dicts
from tests.fixtures.make_glf_cr_checkpoint import FIXTURE, authors_checkpoint, rebuilt_state
from tests.helpers import expect_error, run_main
from tests.scene_fixtures import read, write_arrays, write_scene
from util.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
RECORD = torch.load(FIXTURE, weights_only=True)
OFFICIAL = RECORD["output"].numpy()  # (13, 32, 32) reflectance, unclamped (GLF-CR adds a residual)


@pytest.fixture(scope="module")
def cr_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("glf_cr") / "CR_net.pth"
    authors_checkpoint(RECORD, path)
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_arrays(tmp_path_factory.mktemp("scene"), RECORD["dn"].numpy(), RECORD["db"].numpy())


def test_the_file_is_the_authors_format_and_is_recognised(cr_net):
    assert cr_net.read_bytes()[:2] != b"PK"  # torch 1.4's legacy serialisation, not a zip archive
    content = torch.load(cr_net, weights_only=True)
    assert list(content) == ["network"] and any(k.endswith("attn_mask") for k in content["network"])
    ws = open_weight_set(cr_net)
    assert ws.model == "glf_cr" and ws.parameters == RECORD["parameters"] == PUBLISHED["glf_cr"].parameters
    assert ws.parameters == sum(p.numel() for p in GLFCRNet().parameters())
    assert ws.settings["glf_window"] == 8 and ws.settings["glf_blocks"] == 6 and ws.settings["input_nc"] == 13
    assert ws.domain == PUBLISHED["glf_cr"].domain and ws.domain.sar_clip[1] == (-32.5, 0.0)


def test_predict_py_with_the_authors_checkpoint_gives_the_official_output(cr_net, pair, tmp_path, capfd):
    s2, s1 = pair
    argv = ["--cloudy", str(s2), "--sar", str(s1), "--weights", str(cr_net), "--out", str(tmp_path / "o.tif")]
    assert run_main(predict.main, [*argv, "--gpu_ids", "-1", "--window", "32", "--overlap", "0"]) == 0
    assert "GLF-CR (the authors' checkpoint format)" in capfd.readouterr().out
    assert (OFFICIAL - RECORD["dn"].numpy().clip(0, 10000) / 10000).std() > 0.05  # a residual with teeth
    err = np.abs(read(tmp_path / "o.tif") - OFFICIAL).max()
    assert err <= 1e-5, f"largest difference from the official GLF-CR output: {err:.3g}"
    remover = CloudRemover(cr_net, device="cpu")
    api = remover(RECORD["dn"].numpy(), RECORD["db"].numpy(), window=32, overlap=0).image
    np.testing.assert_array_equal(api, read(tmp_path / "o.tif"))


def test_the_weights_run_at_other_window_sizes_than_the_file_was_built_for(cr_net, tmp_path):
    s2, s1 = write_scene(tmp_path, 48, 40)
    hub = torch.hub.load(str(ROOT), "glf_cr", source="local", weights=str(cr_net), device="cpu")
    out = hub(read(s2), read(s1), window=48, overlap=16).image
    assert out.shape == (13, 48, 40) and np.isfinite(out).all()


@pytest.mark.parametrize("variant", ["zip", "data_parallel"])
def test_zip_files_and_data_parallel_prefixes_read_the_same(cr_net, tmp_path, variant):
    state = rebuilt_state(RECORD)
    path = tmp_path / "CR_net.pth"
    if variant == "zip":  # the format of torch >= 1.6, should the authors save it again
        torch.save({"network": state}, path)
    else:  # codes/model_CR_net.py wraps the network in DataParallel on several GPUs
        torch.save({"network": {f"module.{k}": v for k, v in state.items()}}, path)
    _, expected = read_state_dicts(cr_net)
    _, states = read_state_dicts(path)
    assert states["G"].keys() == expected["G"].keys()
    assert all(torch.equal(states["G"][k], expected["G"][k]) for k in expected["G"])


def test_a_changed_parameter_changes_the_output(tmp_path):
    state = rebuilt_state(RECORD)
    state["opt_distribute_1x1conv.0.bias"] = state["opt_distribute_1x1conv.0.bias"] + 1.0
    path = tmp_path / "CR_net.pth"
    authors_checkpoint(RECORD, path, state)
    _, states = read_state_dicts(path)
    net = GLFCRNet().eval()
    net.load_state_dict(states["G"], strict=True)
    dn, db = RECORD["dn"].float(), RECORD["db"]
    sar = torch.stack([(db[0].clamp(-25, 0) + 25) / 25, (db[1].clamp(-32.5, 0) + 32.5) / 32.5])
    with torch.no_grad():
        out = net(dn.clamp(0, 10000)[None] / 10000, sar[None])[0].numpy()
    assert np.abs(out - OFFICIAL).max() > 1e-3


def test_other_relative_positions_are_refused(tmp_path):
    state = rebuilt_state(RECORD)
    key = next(k for k in state if k.endswith("relative_position_index"))
    state[key] = state[key].flip(0)
    path = tmp_path / "CR_net.pth"
    authors_checkpoint(RECORD, path, state)
    with pytest.raises(UserError, match="not the relative-position indexing"):
        open_weight_set(path)


def test_bad_files_are_refused_in_one_line_and_nothing_is_written(cr_net, pair, tmp_path, capfd):
    s2, s1 = pair
    out = tmp_path / "o.tif"

    def argv(weights: Path, *extra: str) -> list[str]:
        return ["--cloudy", str(s2), "--sar", str(s1), "--weights", str(weights), "--out", str(out), *extra]

    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(cr_net.read_bytes()[:1_000_000])
    expect_error(capfd, predict.main, argv(truncated), "cut.pth", "truncated", "download it again")
    expect_error(
        capfd, predict.main, argv(cr_net, "--model", "dsen2cr"), "CR_net.pth", "run it with --model glf_cr"
    )
    bare = tmp_path / "latest_net_G.pth"
    torch.save(rebuilt_state(RECORD), bare)
    expect_error(capfd, predict.main, argv(bare), "latest_net_G.pth", "give its folder")
    pickled = tmp_path / "code.pth"
    pickled.write_bytes(pickle.dumps(print, protocol=2))
    expect_error(capfd, predict.main, argv(pickled), "code.pth", "neither a Keras HDF5 file nor")
    assert not out.exists()
