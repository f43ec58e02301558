"""DSen2-CR's published Keras HDF5 files, read with h5py: against files and outputs written by Keras itself.

The fixtures (``tests/fixtures/dsen2cr_keras/``, see ``make_dsen2cr_keras_reference.py``) are the
authors' ``dsen2cr_network.py`` built and saved by Keras (whole model with optimiser state, and
weights only; with and without SAR), with Keras' outputs on a seeded input.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import predict
import test as test_script
from cloud_removal import CloudRemover
from models.networks.dsen2cr import DSen2CR, parameter_count
from models.weight_sets import PUBLISHED, open_weight_set, read_weight_set
from models.weight_sets.formats import read_state_dicts
from tests.fixtures.make_dsen2cr_keras_reference import FACTS, FOLDER, REFERENCE
from tests.helpers import expect_error, run_main
from tests.scene_fixtures import read, write_arrays, write_scene
from tests.sen12mscr_fixtures import make_tree
from util.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
REF = np.load(REFERENCE)
FACT = json.loads(FACTS.read_text())
FILES = [(tag, layout) for tag in ("sar", "nosar") for layout in ("model.hdf5", "weights.h5")]


def network_output(path: Path, sar: bool) -> np.ndarray:
    """Our DSen2-CR with the file's weights on the fixture's input, in the paper's units."""
    _, states = read_state_dicts(path)
    net = DSen2CR(feature_sizes=FACT["features"], num_layers=FACT["blocks"], use_sar=sar).eval()
    net.load_state_dict(states["G"], strict=True)
    with torch.no_grad():
        out = net(torch.from_numpy(REF["optical"])[None], torch.from_numpy(REF["sar"])[None])
    return out[0].numpy()


@pytest.mark.parametrize(("tag", "layout"), FILES)
def test_our_network_with_the_file_gives_keras_outputs_to_1e_5(tag, layout):
    expected = REF[f"output_{tag}"]
    assert (expected - REF["optical"]).std() > 0.05  # the correction is far from zero: the check has teeth
    err = np.abs(network_output(FOLDER / f"{tag}_{layout}", tag == "sar") - expected).max()
    assert err <= 1e-5, f"largest difference from Keras: {err:.3g}"


def test_the_files_number_layers_so_that_sorting_by_name_would_misorder_them():
    convs = FACT["nosar"]["conv_layers"]
    assert sorted(convs) != convs  # conv2d_10 sorts before conv2d_6: the reader goes by the file's order
    with h5py.File(FOLDER / "nosar_model.hdf5") as f:
        assert "optimizer_weights" in f  # tensors shaped like the kernels, which the reader must not take


def test_full_size_parameter_counts_are_those_of_the_authors_network():
    for tag, sar in (("sar", True), ("nosar", False)):
        full = FACT[f"parameters_full_{tag}"]  # Keras' count of the authors' F = 256, B = 16 network
        assert parameter_count(use_sar=sar) == full
        assert sum(p.numel() for p in DSen2CR(use_sar=sar).parameters()) == full
        assert {
            e.parameters for e in PUBLISHED.values() if e.model == "dsen2cr" and e.domain.uses_sar == sar
        } == {full}


def keras2_copy(src: Path, dst: Path, chunks: bool = False) -> Path:
    """``src`` as Keras 2 writes it: tensors named ``kernel:0``, byte-string attributes; ``chunks``:
    the layer list split into ``layer_names0``, ``layer_names1`` as Keras does for long lists."""
    with h5py.File(src) as f, h5py.File(dst, "w") as g:
        whole = "model_weights" in f
        root_in, root_out = (f["model_weights"], g.create_group("model_weights")) if whole else (f, g)
        if "optimizer_weights" in f:
            f.copy("optimizer_weights", g)
        layers = [x.decode() if isinstance(x, bytes) else str(x) for x in root_in.attrs["layer_names"]]
        for layer in layers:
            group = root_out.create_group(layer)
            names = [
                x.decode() if isinstance(x, bytes) else str(x) for x in root_in[layer].attrs["weight_names"]
            ]
            for name in names:
                group.create_dataset(f"{name}:0", data=np.asarray(root_in[layer][name]))
            group.attrs["weight_names"] = np.array([f"{n}:0".encode() for n in names])
        encoded = np.array([x.encode() for x in layers])
        if chunks:
            root_out.attrs["layer_names0"], root_out.attrs["layer_names1"] = encoded[:7], encoded[7:]
        else:
            root_out.attrs["layer_names"] = encoded
        root_out.attrs["keras_version"], root_out.attrs["backend"] = b"2.2.4", b"tensorflow"
        g.attrs["keras_version"] = b"2.2.4"
    return dst


@pytest.mark.parametrize(("tag", "layout"), FILES)
@pytest.mark.parametrize("chunks", [False, True])
def test_keras_2_names_and_chunked_layer_lists_read_the_same(tmp_path, tag, layout, chunks):
    original = FOLDER / f"{tag}_{layout}"
    copy = keras2_copy(original, tmp_path / original.name, chunks)
    ws, states = read_state_dicts(copy)
    _, expected = read_state_dicts(original)
    assert "Keras 2.2.4" in ws.description
    assert states["G"].keys() == expected["G"].keys()
    assert all(torch.equal(states["G"][k], expected["G"][k]) for k in expected["G"])


def test_a_changed_kernel_value_changes_the_output(tmp_path):
    path = shutil.copy(FOLDER / "sar_model.hdf5", tmp_path / "changed.hdf5")
    with h5py.File(path, "r+") as f:
        f["model_weights/conv2d_3/conv2d_3/kernel"][1, 1, 0, 0] += 1.0
    assert np.abs(network_output(Path(path), True) - REF["output_sar"]).max() > 1e-3


def test_a_keras_file_of_another_network_is_refused_in_one_line(tmp_path):
    path = shutil.copy(FOLDER / "sar_weights.h5", tmp_path / "other.h5")
    with h5py.File(path, "r+") as f:
        del f["conv2d_2/conv2d_2/kernel"]
        f.create_dataset("conv2d_2/conv2d_2/kernel", data=np.zeros((3, 3, 9, 8), np.float32))
    with pytest.raises(UserError, match="not DSen2-CR's network: convolution 3 has a kernel"):
        read_weight_set(path)


# ---------------------------------------------------------------------------- through the doors
def scene(tmp_path: Path, sar: bool) -> tuple[Path, Path | None]:
    return write_arrays(tmp_path, REF["dn"], REF["db"] if sar else None)


def predict_argv(weights: Path, s2: Path, s1: Path | None, out: Path, *extra: str) -> list[str]:
    argv = ["--cloudy", str(s2), "--weights", str(weights), "--out", str(out), "--gpu_ids", "-1"]
    return argv + (["--sar", str(s1)] if s1 else []) + ["--window", "16", "--overlap", "0", *extra]


@pytest.mark.parametrize(("tag", "layout"), FILES)
def test_predict_py_with_a_keras_file_writes_keras_outputs(tmp_path, capfd, tag, layout):
    s2, s1 = scene(tmp_path, tag == "sar")
    assert run_main(predict.main, predict_argv(FOLDER / f"{tag}_{layout}", s2, s1, tmp_path / "out.tif")) == 0
    assert f"loaded {FOLDER / f'{tag}_{layout}'}: DSen2-CR (Keras HDF5" in capfd.readouterr().out
    # The model's output is reflectance clamped to [0, 1]; Keras' is the paper's units (reflectance x 5).
    expected = np.clip(REF[f"output_{tag}"] / 5, 0, 1)
    assert ((expected > 0) & (expected < 1)).mean() > 0.3
    out = read(tmp_path / "out.tif")
    assert np.abs(out - expected).max() <= 1e-5


def test_the_api_and_torch_hub_give_predict_py_s_numbers(tmp_path):
    s2, s1 = scene(tmp_path, True)
    weights = FOLDER / "sar_weights.h5"
    assert run_main(predict.main, predict_argv(weights, s2, s1, tmp_path / "out.tif")) == 0
    remover = CloudRemover(weights, device="cpu")
    result = remover(REF["dn"], REF["db"], window=16, overlap=0)
    np.testing.assert_array_equal(result.image, read(tmp_path / "out.tif"))
    assert remover.domain.sar_clip == ((-25.0, 0.0), (-32.5, 0.0)) and remover.bands[10] == "B10"
    hub = torch.hub.load(str(ROOT), "dsen2cr", source="local", weights=str(weights), device="cpu")
    np.testing.assert_array_equal(hub(REF["dn"], REF["db"], window=16, overlap=0).image, result.image)
    no_sar = CloudRemover(FOLDER / "nosar_model.hdf5", device="cpu")
    assert (
        np.abs(
            no_sar(REF["dn"], None, window=16, overlap=0).image - np.clip(REF["output_nosar"] / 5, 0, 1)
        ).max()
        <= 1e-5
    )
    with pytest.raises(UserError, match="takes no SAR image"):
        no_sar(REF["dn"], REF["db"])
    with pytest.raises(UserError, match="a weight file of --model dsen2cr, not glf_cr"):
        torch.hub.load(str(ROOT), "glf_cr", source="local", weights=str(weights))


def test_inputs_that_differ_from_the_weights_are_refused_or_warned_about_in_one_line(tmp_path, capfd):
    s2, s1 = scene(tmp_path, True)
    out = tmp_path / "out.tif"
    no_sar, with_sar = FOLDER / "nosar_weights.h5", FOLDER / "sar_model.hdf5"
    expect_error(
        capfd, predict.main, predict_argv(no_sar, s2, s1, out), "nosar_weights.h5", "no SAR", "leave it out"
    )
    expect_error(
        capfd, predict.main, predict_argv(with_sar, s2, None, out), "sar_model.hdf5", "give it (--sar"
    )
    rgb, rgb_sar = write_scene(tmp_path, 16, 16, s2_bands=3)
    expect_error(
        capfd,
        predict.main,
        predict_argv(with_sar, rgb, rgb_sar, out),
        "3 band(s)",
        "sar_model.hdf5",
        "takes 13",
        "give all 13 bands",
    )
    assert not out.exists()
    # A Level-2A stack runs (B10 filled), with one warning line saying what differs.
    l2a, s1_again = write_scene(tmp_path, 16, 16, s2_bands=12)
    capfd.readouterr()
    assert run_main(predict.main, predict_argv(with_sar, l2a, s1_again, out)) == 0
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "Level-2A" in warnings[0] and "Level-1C" in warnings[0], warnings
    assert "sar_model.hdf5" in warnings[0] and "filled B10 with 20" in warnings[0]
    item = json.loads(out.with_name("out.stac.json").read_text())["properties"]
    assert item["cloud_removal:weights"] == [str(with_sar)] and "experiment" not in str(item)
    assert (
        item["cloud_removal:input_s2_level"] == "L2A" and item["cloud_removal:input_filled_bands"] == "B10=20"
    )
    assert item["cloud_removal:model_input_domain"].startswith("all 13 Sentinel-2 bands (Level-1C")
    out.unlink(), out.with_name("out.stac.json").unlink()
    expect_error(
        capfd,
        predict.main,
        [*predict_argv(with_sar, s2, s1, out), "--model", "glf_cr"],
        "run it with --model dsen2cr",
    )
    truncated = tmp_path / "cut.hdf5"
    truncated.write_bytes(with_sar.read_bytes()[:20000])
    expect_error(
        capfd,
        predict.main,
        predict_argv(truncated, s2, s1, out),
        "cut.hdf5",
        "truncated",
        "download it again",
    )
    assert not out.exists()


def test_test_py_runs_a_keras_file_on_sen12mscr_and_refuses_other_bands(tmp_path, capfd):
    root = make_tree(tmp_path / "sen12mscr", size=32)
    weights = FOLDER / "sar_model.hdf5"
    argv = ["--dataroot", str(root), "--weights", str(weights), "--phase", "test", "--gpu_ids", "-1"]
    argv += ["--results_dir", str(tmp_path / "results"), "--crop_size", "32", "--cloud_detector", "none"]
    assert run_main(test_script.main, argv) == 0
    assert f"loaded {weights}" in capfd.readouterr().out
    assert (tmp_path / "results" / "sar_model" / "test_latest" / "metrics_summary.json").is_file()
    expect_error(
        capfd, test_script.main, [*argv, "--s2_bands", "rgb"], "sar_model.hdf5", "takes 13", "drop --s2_bands"
    )


def test_a_published_set_is_recorded_with_its_domain():
    ws = open_weight_set(FOLDER / "nosar_model.hdf5")
    assert ws.model == "dsen2cr" and ws.variant == "without SAR" and ws.settings["dsen2cr_no_sar"]
    assert ws.domain == PUBLISHED["dsen2cr_carl_nosar"].domain and not ws.domain.uses_sar
    assert ws.domain.s2_level == "L1C" and ws.domain.s2_dn_offset == 0 and len(ws.domain.bands) == 13
