"""Run a comparison: train, then test, every experiment of a :class:`~comparison.plan.Plan`.

Resumable: each experiment's progress is recorded in ``<out>/runs/<model>.json`` after each stage.
A finished stage is reused; an interrupted training resumes from its latest checkpoint
(``--continue_train``); an earlier run with other flags or another budget is refused, never mixed
(:mod:`comparison.reuse`).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

import test as test_script
import train as train_script
from util.errors import UserError
from util.fileio import write_text

from .coverage_plots import write_coverage_plots
from .figure import write_figure
from .plan import Experiment, Plan
from .report import model_parameters, write_tables
from .reuse import check_reuse


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(gpu_ids: str) -> str:
    """One line: CPU (cores) or GPU, OS, torch version."""
    text = f"{cpu_name()}, {os.cpu_count()} cores"
    if gpu_ids not in ("-1", "") and torch.cuda.is_available():
        text = f"{torch.cuda.get_device_name(0)} ({text})"
    return f"{text}; {platform.system()} {platform.release()}; torch {torch.__version__}"


def _record_path(plan: Plan, exp: Experiment) -> Path:
    return exp.results_dir / f"{exp.model}.json"


def load_record(plan: Plan, exp: Experiment) -> dict:
    path = _record_path(plan, exp)
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path} ({err}); delete it to rerun {exp.model}") from None
    if record.get("budget") != plan.exp_budget(exp):
        raise UserError(
            f"{path} was made with another budget ({record.get('budget')}); choose another --name or "
            f"delete {plan.out_dir} and {exp.checkpoints_dir} to start again"
        )
    return record


def save_record(plan: Plan, exp: Experiment, record: dict) -> None:
    path = _record_path(plan, exp)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps({**record, "budget": plan.exp_budget(exp)}, indent=2) + "\n")


def train_experiment(plan: Plan, exp: Experiment, record: dict, gpu_ids: str, seed: int) -> dict:
    """Train (or resume) one model to the plan's budget; return its updated record."""
    if record.get("trained"):
        print(f"[compare] {exp.model}: trained already ({_record_path(plan, exp)})")
        return record
    resume = ["--continue_train"] if any(exp.experiment_dir.glob("latest_*.pth")) else []
    argv = [*plan.train_argv(exp, gpu_ids, seed), *resume]
    print(f"[compare] training {exp.model}: {exp.epochs} epochs of {plan.train_size} images")
    start = time.perf_counter()
    code = train_script.main(argv)
    seconds = time.perf_counter() - start
    if code:
        raise UserError(f"training {exp.model} failed (exit {code}); fix the error above and rerun to resume")
    segments = [*record.get("train_segments", []), {"seconds": seconds, "resumed": bool(resume)}]
    iterations = exp.epochs * -(-plan.train_size // exp.batch_size)
    record = {
        **record,
        "trained": True,
        "train_segments": segments,
        "train_seconds": sum(s["seconds"] for s in segments),
        "train_iterations": iterations,
    }
    save_record(plan, exp, record)
    return record


def test_experiment(plan: Plan, exp: Experiment, record: dict, gpu_ids: str, seed: int) -> dict:
    measured = set(record.get("test_protocols", []))
    if record.get("tested") and (exp.test_dir / "metrics_summary.json").is_file():
        if set(plan.protocols) <= measured:
            print(f"[compare] {exp.model}: tested already ({exp.test_dir})")
            return record
        missing = ", ".join(sorted(set(plan.protocols) - measured))
        print(f"[compare] {exp.model}: testing again for protocol(s) {missing}")
    argv = plan.test_argv(exp, gpu_ids, seed)
    print(f"[compare] testing {exp.model}")
    start = time.perf_counter()
    code = test_script.main(argv)
    seconds = time.perf_counter() - start
    if code:
        raise UserError(f"testing {exp.model} failed (exit {code}); fix the error above and rerun")
    summary = json.loads((exp.test_dir / "metrics_summary.json").read_text())
    images = summary["results"]["paper"]["real_A"]["psnr"]["count"]
    record = {
        **record,
        "tested": True,
        "test_seconds": seconds,
        "test_images": images,
        "test_protocols": list(plan.protocols),
    }
    save_record(plan, exp, record)
    return record


def run_comparison(
    plan: Plan, *, gpu_ids: str = "-1", seed: int = 0, rows: int = 4, overwrite: bool = False
) -> Path:
    """Train and test every experiment (reusing what is done), then write the tables and the figure.

    An earlier run of this name that this one would not continue is refused (``overwrite``:
    deleted first; see :mod:`comparison.reuse`). Returns the folder holding ``plan.json`` (what
    every row ran), ``table.csv``, ``table.md``, ``figure.png`` and ``index.html``.
    """
    plan_json = plan.to_json(gpu_ids, seed)
    check_reuse(plan, plan_json, overwrite)
    # Every record is checked before anything is written: a run with another budget changes nothing.
    loaded = {exp.model: load_record(plan, exp) for exp in plan.experiments}
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    write_text(plan.out_dir / "plan.json", json.dumps(plan_json, indent=2) + "\n")
    records = {}
    for exp in plan.experiments:
        record = loaded[exp.model]
        record = train_experiment(plan, exp, record, gpu_ids, seed)
        record = test_experiment(plan, exp, record, gpu_ids, seed)
        if "parameters" not in record:
            record["parameters"] = model_parameters(exp, plan.dataset_mode)
            save_record(plan, exp, record)
        records[exp.model] = record
    machine = machine_description(gpu_ids)
    write_tables(plan, records, machine)
    write_figure(plan, rows=rows)
    write_coverage_plots(plan)
    print(
        f"[compare] results: {(plan.out_dir / 'table.md').resolve()} and {(plan.out_dir / 'figure.png').resolve()}"
    )
    return plan.out_dir
