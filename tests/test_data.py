"""PNG triplets: pairing, paired augmentation, sizes, image formats, ordering and seeding."""

from __future__ import annotations

from argparse import Namespace

import numpy as np
import pytest
import torch
from PIL import Image

from data import create_dataloader
from data.image_folder import list_images, load_image
from data.triplet_dataset import TripletDataset
from options.base_options import seed_everything
from tests.helpers import make_triplets
from util.errors import UserError
from util.util import tensor2im, u8_to_tensor


def options(root, **kw) -> Namespace:
    base = dict(
        dataroot=str(root),
        phase="train",
        is_train=True,
        input_nc=3,
        output_nc=3,
        sar_nc=3,
        load_size=32,
        crop_size=32,
        preprocess="resize_and_crop",
        no_flip=True,
        max_dataset_size=float("inf"),
        serial_batches=True,
        batch_size=1,
        num_threads=0,
        dataset_mode="triplet",
    )
    return Namespace(**{**base, **kw})


def gradient(w: int, h: int) -> np.ndarray:
    """An image whose every crop and flip is distinguishable."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 5 % 256, yy * 5 % 256, (xx * 3 + yy * 7) % 256], -1).astype(np.uint8)


def test_pairing_by_stem_with_different_extensions(tmp_path):
    stems = make_triplets(tmp_path, n=3, stems=["b", "a", "c"], ext={"A": ".png", "B": ".bmp", "C": ".PNG"})
    ds = TripletDataset(options(tmp_path))
    assert len(ds) == 3 and sorted(stems) == [ds[i]["stem"] for i in range(3)]
    item = ds[1]
    assert {role: item[f"{role}_paths"].rsplit("/", 1)[-1] for role in "ABC"} == {
        "A": "b.png",
        "B": "b.bmp",
        "C": "b.PNG",
    }
    assert item["A"].shape == item["B"].shape == item["C"].shape == (3, 32, 32)
    assert -1 <= item["A"].min() and item["A"].max() <= 1


def test_unpaired_folders_are_refused_with_examples(tmp_path):
    make_triplets(tmp_path, stems=["s1", "s2", "s3", "s4", "s5", "s6"], roles="A")
    make_triplets(tmp_path, stems=["s1", "s2"], roles="BC")
    make_triplets(tmp_path, stems=["zz"], roles="C")
    with pytest.raises(UserError) as err:
        TripletDataset(options(tmp_path))
    msg = str(err.value)
    assert "trainB lacks 5 (s3, s4, s5, ...)" in msg and "trainA lacks 1 (zz)" in msg
    assert "trainC lacks 4" in msg and "\n" not in msg


def test_one_crop_and_flip_for_all_three(tmp_path):
    for role in "ABC":
        (tmp_path / f"train{role}").mkdir()
        Image.fromarray(gradient(48, 40)).save(tmp_path / f"train{role}" / "x.png")
    ds = TripletDataset(options(tmp_path, preprocess="crop", crop_size=32, no_flip=False))
    torch.manual_seed(0)
    seen = set()
    for _ in range(30):
        item = ds[0]
        assert torch.equal(item["A"], item["B"]) and torch.equal(item["A"], item["C"])
        seen.add(tensor2im(item["A"]).tobytes())
        img = tensor2im(item["A"])  # the crop is an exact window of the source, maybe mirrored
        src = gradient(48, 40)
        windows = [src[y : y + 32, x : x + 32] for y in range(9) for x in range(17)]
        assert any(np.array_equal(w, img) or np.array_equal(w, img[:, ::-1]) for w in windows)
    assert len(seen) > 5  # crops and flips really vary


def test_max_dataset_size_and_serial_order(tmp_path):
    stems = make_triplets(tmp_path, n=8)
    assert len(TripletDataset(options(tmp_path, max_dataset_size=3))) == 3
    serial = create_dataloader(options(tmp_path))
    assert [b["stem"][0] for b in serial] == stems
    seed_everything(0)
    shuffled = [b["stem"][0] for b in create_dataloader(options(tmp_path, serial_batches=False))]
    assert sorted(shuffled) == stems and shuffled != stems


def test_triplet_with_different_sizes(tmp_path):
    make_triplets(tmp_path, stems=["ok"], size=32)
    make_triplets(tmp_path, stems=["bad"], size=32, roles="AB")
    make_triplets(tmp_path, stems=["bad"], size=40, roles="C")
    ds = TripletDataset(options(tmp_path))
    with pytest.raises(UserError, match=r"triplet bad has images of different sizes .*trainC/bad.png 40x40"):
        ds[0]
    assert ds[1]["stem"] == "ok"


def test_8bit_round_trip_is_exact(tmp_path):
    img = np.arange(256 * 3, dtype=np.uint8).reshape(16, 16, 3)
    assert np.array_equal(tensor2im(u8_to_tensor(img)), img)
    assert np.array_equal(tensor2im(u8_to_tensor(img).unsqueeze(0)), img)
    for role in "ABC":  # and through the dataset (no resize, full crop)
        (tmp_path / f"train{role}").mkdir()
        Image.fromarray(np.tile(img, (2, 2, 1))).save(tmp_path / f"train{role}" / "x.png")
    item = TripletDataset(options(tmp_path))[0]
    assert np.array_equal(tensor2im(item["B"]), np.tile(img, (2, 2, 1)))


def test_image_modes_load_as_8bit_rgb(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(grey).save(tmp_path / "grey.png")
    pal = Image.new("P", (8, 8))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putdata([0, 1] * 32)
    pal.save(tmp_path / "palette.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (40, 80, 120), 0
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    deep = Image.fromarray(grey.astype(np.uint16) * 257)
    assert deep.mode == "I;16"
    deep.save(tmp_path / "deep.png")

    def rgb(name: str) -> np.ndarray:
        img = load_image(tmp_path / name, 3)
        assert img.mode == "RGB" and img.size == (8, 8)
        return np.asarray(img)

    assert np.array_equal(rgb("grey.png"), np.repeat(grey[..., None], 3, -1))
    assert rgb("palette.png")[0, :2].tolist() == [[10, 20, 30], [200, 100, 50]]
    assert (rgb("rgba.png") == (40, 80, 120)).all()
    assert np.array_equal(rgb("deep.png")[..., 0], grey)
    assert np.array_equal(np.asarray(load_image(tmp_path / "deep.png", 1)), grey)


def test_hidden_and_other_files_are_ignored(tmp_path):
    make_triplets(tmp_path, stems=["a", "b"])
    for role in "ABC":
        folder = tmp_path / f"train{role}"
        (folder / ".hidden.png").write_bytes(b"not an image")
        (folder / "notes.txt").write_text("hello")
        (folder / "Thumbs.db").write_bytes(b"\0")
        (folder / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path / "trainA")] == ["a.png", "b.png"]
    assert len(TripletDataset(options(tmp_path))) == 2


def test_loading_depends_on_seed_epoch_and_sample_only(tmp_path):
    # Order, crops and flips are functions of (--seed, epoch, sample): not of the worker count,
    # nor of the global generator, and an epoch can start in the middle (exact mid-epoch resume).
    make_triplets(tmp_path, n=6, size=40)

    def epoch(seed: int, threads: int, number: int = 1, start: int = 0) -> list[torch.Tensor]:
        opt = options(
            tmp_path,
            load_size=40,
            serial_batches=False,
            no_flip=False,
            num_threads=threads,
            batch_size=2,
            seed=seed,
        )
        loader = create_dataloader(opt)
        loader.sampler.set_epoch(number, start)
        torch.manual_seed(12345 + threads)  # whatever the global generator holds
        return [b["A"] for b in loader]

    a, b, c = epoch(1, threads=2), epoch(1, threads=0), epoch(2, threads=2)
    assert len(a) == 3 and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert not all(torch.equal(x, y) for x, y in zip(a, epoch(1, threads=0, number=2)))
    tail = epoch(1, threads=2, start=2)
    assert len(tail) == 2 and all(torch.equal(x, y) for x, y in zip(a[1:], tail, strict=True))
