"""What a comparison runs: the models, one setting, one training budget, and where each result goes.

Settings (flags shared by every model, then each model's own ``tiny_flags``/``light_flags``):

- ``smoke``: tiny networks on 32-px crops, a few images: proves the pipeline (tests use it).
- ``light``: the demo's configuration (U-Net depth 7 with 32 filters for the U-Net models, 128-px
  random crops of the 256-px images, batch 4, 3200 images = the demo's 20 epochs of 160), each
  model lightened by its ``light_flags``; finishes on the demo data on a 2-core CPU. Our model's
  row is then the demo's result.
- ``paper``: every model at its paper's settings (no extra flags).

Every model sees the same number of training images (``--images``) under the same linear schedule
(half the epochs constant, half decaying to zero); each keeps its own optimiser and learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import models
from util.errors import UserError

# Columns of the paper's figure, left to right; ours last before the ground truth.
PAPER_ORDER = ("pix2pix", "sar_opt_cgan", "sf_gan", "glf_cr", "dsen2cr", "pix2pix_attn")
LABELS = {
    "pix2pix": "pix2pix",
    "sar_opt_cgan": "SAR-opt-cGAN",
    "sf_gan": "SF-GAN",
    "glf_cr": "GLF-CR",
    "dsen2cr": "DSen2-CR",
    "pix2pix_attn": "ours (attention GAN)",
}
OURS = "pix2pix_attn"

SETTINGS = {
    "smoke": {
        "train": ["--netG", "unet_32", "--ngf", "4", "--ndf", "4", "--load_size", "32", "--crop_size", "32"],
        "test": ["--netG", "unet_32", "--ngf", "4", "--ndf", "4", "--load_size", "32", "--crop_size", "32"],
        "model_flags": "tiny_flags",
        "images": 4,
        "batch_size": 1,
    },
    "light": {
        "train": [
            "--netG",
            "unet_128",
            "--ngf",
            "32",
            "--ndf",
            "32",
            "--preprocess",
            "crop",
            "--crop_size",
            "128",
        ],
        "test": ["--netG", "unet_128", "--ngf", "32", "--ndf", "32"],
        "model_flags": "light_flags",
        "images": 3200,
        "batch_size": 4,
    },
    "paper": {"train": [], "test": [], "model_flags": None, "images": 310 * 1000, "batch_size": 1},
}


def label(model: str) -> str:
    return LABELS.get(model, model)


@dataclass(frozen=True)
class Experiment:
    """One model of the comparison: its command-line flags and its folders."""

    model: str
    train_flags: tuple[str, ...]
    test_flags: tuple[str, ...]
    checkpoints_dir: Path
    results_dir: Path

    @property
    def experiment_dir(self) -> Path:
        return self.checkpoints_dir / self.model

    @property
    def test_dir(self) -> Path:
        return self.results_dir / self.model / "test_latest"


@dataclass
class Plan:
    name: str
    setting: str
    dataroot: Path
    dataset_mode: str
    images: int
    batch_size: int
    epochs: int
    train_size: int
    out_dir: Path
    experiments: list[Experiment] = field(default_factory=list)

    def budget(self) -> dict:
        """What every model gets; recorded with the run so that a resume cannot mix budgets."""
        return {
            "setting": self.setting,
            "images_seen": self.epochs * self.train_size,
            "epochs": self.epochs,
            "train_images": self.train_size,
            "batch_size": self.batch_size,
            "dataset_mode": self.dataset_mode,
            "dataroot": str(self.dataroot),
        }


def parse_models(text: str | None) -> list[str]:
    """``None``/'all': every model of the paper's figure that exists here, in figure order."""
    if text in (None, "", "all"):
        return [m for m in PAPER_ORDER if m in models.MODEL_NAMES]
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    # Figure order: the paper's baselines, any other model, ours last.
    chosen.sort(key=lambda m: PAPER_ORDER.index(m) if m in PAPER_ORDER[:-1] else (99 if m == OURS else 50))
    unknown = [m for m in chosen if m not in models.MODEL_NAMES]
    if unknown:
        raise UserError(
            f"--models: unknown model(s) {', '.join(unknown)}; choose from {', '.join(models.MODEL_NAMES)}"
        )
    if len(set(chosen)) != len(chosen):
        raise UserError(f"--models {text}: a model is named twice")
    return chosen


def make_plan(
    *,
    name: str,
    dataroot: str | Path,
    setting: str = "light",
    models_text: str | None = None,
    images: int | None = None,
    train_size: int,
    dataset_mode: str = "triplet",
    checkpoints_dir: str | Path = "checkpoints",
    results_dir: str | Path = "results",
) -> Plan:
    """The experiments of comparison ``name``: ``train_size`` is the number of training samples."""
    if setting not in SETTINGS:
        raise UserError(f"--setting {setting!r}: choose one of {', '.join(SETTINGS)}")
    if train_size < 1:
        raise UserError(f"--dataroot {dataroot} holds no training samples")
    conf = SETTINGS[setting]
    budget = int(conf["images"] if images is None else images)
    if budget < 1:
        raise UserError(f"--images {budget}: give a positive number of training images per model")
    # Whole epochs, at least 2 (one constant, one decaying), covering the budget.
    epochs = max(2, math.ceil(budget / train_size))
    out_dir = Path(results_dir) / "compare" / name
    plan = Plan(
        name=name,
        setting=setting,
        dataroot=Path(dataroot),
        dataset_mode=dataset_mode,
        images=budget,
        batch_size=int(conf["batch_size"]),
        epochs=epochs,
        train_size=train_size,
        out_dir=out_dir,
    )
    for model in parse_models(models_text):
        cls = models.find_model_using_name(model)
        own = list(getattr(cls, conf["model_flags"])) if conf["model_flags"] else []
        plan.experiments.append(
            Experiment(
                model=model,
                train_flags=(*conf["train"], *own),
                test_flags=(*conf["test"], *own),
                checkpoints_dir=Path(checkpoints_dir) / f"compare_{name}",
                results_dir=out_dir / "runs",
            )
        )
    return plan
