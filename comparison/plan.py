"""What a comparison runs: the models, one setting, each model's budget and flags, where results go.

The settings and what they pass to each model are in :mod:`comparison.settings`. Each row's full
command lines, data settings, test mode, schedule and budget are in the plan (:meth:`Plan.to_json`,
written as ``plan.json`` beside the table), so a table can be re-run from its own folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import models
from util.errors import UserError

from .reuse import check_name
from .settings import (
    OUR_ADDITIONS,
    OURS,
    PAPER_ORDER,
    SETTINGS,
    label,
    model_flags,
    parsed_options,
    row_flags,
    row_options,
    schedule_flags,
    test_flags,
    training_schedule,
    zhang_variant,
)

__all__ = [
    "PAPER_ORDER",
    "SETTINGS",
    "Experiment",
    "Plan",
    "label",
    "make_plan",
    "parse_models",
    "parse_variants",
]


@dataclass(frozen=True)
class Experiment:
    """One model of the comparison: its command-line flags, its budget and its folders."""

    model: str
    train_flags: tuple[str, ...]
    test_flags: tuple[str, ...]
    checkpoints_dir: Path
    results_dir: Path
    epochs: int = 1
    batch_size: int = 1
    schedule: dict = field(default_factory=dict)
    # Which of the model's ``zhang_variants`` runs (None: it has none in this setting).
    variant: str | None = None

    @property
    def label(self) -> str:
        """The row's name in tables; a Zhang et al. variant is named, as our choice."""
        if self.variant is None:
            return label(self.model)
        return f"{label(self.model)} [{self.variant}.py: our choice]"

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
    images: int | None
    train_size: int
    out_dir: Path
    experiments: list[Experiment] = field(default_factory=list)
    command: str = ""
    # Other papers' evaluation protocols test.py reports beside ours (``--protocols``).
    protocols: tuple[str, ...] = ()

    @property
    def equal_budget(self) -> bool:
        return self.images is not None

    def exp_budget(self, exp: Experiment) -> dict:
        """What ``exp`` trains on; recorded with its run so that a resume cannot mix budgets."""
        return {
            "setting": self.setting,
            "equal_budget": self.equal_budget,
            "images_seen": exp.epochs * self.train_size,
            "epochs": exp.epochs,
            "train_images": self.train_size,
            "batch_size": exp.batch_size,
            "schedule": exp.schedule,
            "dataset_mode": self.dataset_mode,
            "dataroot": str(self.dataroot),
        }

    def budget_text(self) -> str:
        """One sentence for the table: what every model trained on."""
        if not self.experiments:
            return "no models"
        exp = self.experiments[0]
        if self.equal_budget:
            return (
                f"every model saw {exp.epochs * self.train_size} training images ({exp.epochs} epochs of "
                f"{self.train_size}, batch {exp.batch_size}), each with its own optimiser and its own "
                "schedule shape compressed to these epochs (plan.json has every row's flags)"
            )
        return (
            "every model trained at its authors' settings (own optimiser, schedule, batch size and "
            f"length; {self.train_size} training images; plan.json has every row's flags)"
        )

    def train_argv(self, exp: Experiment, gpu_ids: str, seed: int) -> list[str]:
        """train.py's command line for ``exp`` (without ``--continue_train``)."""
        return [
            "--dataroot",
            str(self.dataroot / "train") if self.dataset_mode != "sen12mscr" else str(self.dataroot),
            *self.common_flags(exp, gpu_ids, seed),
            "--display_id",
            "0",
            "--save_epoch_freq",
            str(exp.epochs),
            *exp.train_flags,
        ]

    def test_argv(self, exp: Experiment, gpu_ids: str, seed: int) -> list[str]:
        """test.py's command line for ``exp``: the model's own test mode (no ``--eval``)."""
        return [
            "--dataroot",
            str(self.dataroot / "test") if self.dataset_mode != "sen12mscr" else str(self.dataroot),
            *self.common_flags(exp, gpu_ids, seed),
            "--results_dir",
            str(exp.results_dir),
            *exp.test_flags,
            *(["--protocols", ",".join(self.protocols)] if self.protocols else []),
        ]

    def common_flags(self, exp: Experiment, gpu_ids: str, seed: int) -> list[str]:
        return [
            "--model", exp.model, "--name", exp.model, "--checkpoints_dir", str(exp.checkpoints_dir),
            "--dataset_mode", self.dataset_mode, "--gpu_ids", gpu_ids, "--seed", str(seed), "--num_threads", "0",
        ]  # fmt: skip

    def to_json(self, gpu_ids: str, seed: int) -> dict:
        """Everything each row ran: command lines, data settings, test mode, schedule, budget."""
        rows = []
        for exp in self.experiments:
            train, test = self.train_argv(exp, gpu_ids, seed), self.test_argv(exp, gpu_ids, seed)
            rows.append(
                {
                    "model": exp.model,
                    "label": exp.label,
                    "our_addition": exp.model in OUR_ADDITIONS,
                    "zhang_variant": exp.variant,
                    "train_argv": train,
                    "test_argv": test,
                    **row_options(train, test, exp.model),
                    "budget": self.exp_budget(exp),
                }
            )
        return {
            "name": self.name,
            "setting": self.setting,
            "command": self.command,
            "protocols": list(self.protocols),
            "rerun": "python train.py <train_argv>, then python test.py <test_argv>, row by row",
            "rows": rows,
        }


def parse_variants(text: str | None, setting: str) -> dict[str, str]:
    """``--zhang_variant pix2pix=pix2pix_model3[,MODEL=NAME]`` -> ``{model: name}``, checked."""
    if not text:
        return {}
    if "zhang_flags" not in SETTINGS[setting]["model_flags"]:
        raise UserError(f"--zhang_variant: only with --setting zhang2023 (not {setting})")
    out = {}
    for part in text.split(","):
        model, sep, name = part.strip().partition("=")
        if not sep or model not in models.MODEL_NAMES:
            raise UserError(f"--zhang_variant {part!r}: give MODEL=NAME, e.g. pix2pix=pix2pix_model3")
        if zhang_variant(model, setting, name) is None:
            raise UserError(f"--zhang_variant {part!r}: model {model} has no variants")
        out[model] = name
    return out


def parse_models(text: str | None, setting: str = "light") -> list[str]:
    """``None``/'all': the setting's models (default: every model of the paper's figure), in figure order."""
    if text in (None, "", "all"):
        chosen = SETTINGS[setting].get("models", PAPER_ORDER)
        return [m for m in PAPER_ORDER if m in chosen and m in models.MODEL_NAMES]
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
    command: str = "",
    variants: dict[str, str] | None = None,
    protocols: tuple[str, ...] = (),
) -> Plan:
    """The experiments of comparison ``name``: ``train_size`` is the number of training samples;
    ``variants``: model -> which of its ``zhang_variants`` runs (default: the first); ``protocols``:
    other papers' evaluation protocols to report beside ours (see :mod:`metrics.authors`)."""
    check_name(name)
    if setting not in SETTINGS:
        raise UserError(f"--setting {setting!r}: choose one of {', '.join(SETTINGS)}")
    if train_size < 1:
        raise UserError(f"--dataroot {dataroot} holds no training samples")
    conf = SETTINGS[setting]
    budget = conf["images"] if images is None else int(images)
    if budget is not None and budget < 1:
        raise UserError(f"--images {budget}: give a positive number of training images per model")
    out_dir = Path(results_dir) / "compare" / name
    plan = Plan(
        name=name,
        setting=setting,
        dataroot=Path(dataroot),
        dataset_mode=dataset_mode,
        images=budget,
        train_size=train_size,
        out_dir=out_dir,
        command=command,
        protocols=tuple(protocols),
    )
    for model in parse_models(models_text, setting):
        variant = zhang_variant(model, setting, (variants or {}).get(model))
        own = model_flags(model, setting, variant)
        head = ["--model", model, "--dataset_mode", dataset_mode]
        train = row_flags([*conf["train"], *own], head, is_train=True)
        opt = parsed_options([*head, *train], is_train=True)
        epochs = None if budget is None else math.ceil(budget / train_size)
        schedule = training_schedule(opt, epochs)
        extra = []
        if budget is not None:  # equal budget: the same epochs and batch for every model
            extra = [*schedule_flags(schedule), "--batch_size", str(conf["batch_size"] or opt.batch_size)]
        plan.experiments.append(
            Experiment(
                model=model,
                train_flags=tuple(row_flags([*train, *extra], head, is_train=True)),
                test_flags=tuple(row_flags(test_flags([*conf["test"], *own], head), head, is_train=False)),
                variant=variant,
                checkpoints_dir=Path(checkpoints_dir) / f"compare_{name}",
                results_dir=out_dir / "runs",
                epochs=schedule["n_epochs"] + schedule["n_epochs_decay"],
                batch_size=int(conf["batch_size"] or opt.batch_size)
                if budget is not None
                else opt.batch_size,
                schedule=schedule,
            )
        )
    return plan
