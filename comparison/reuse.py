"""What a comparison may reuse of an earlier run of the same name, and what it refuses to replace.

A comparison's folders (``results/compare/<name>/`` and ``checkpoints/compare_<name>/``) are resumed
when the run is the same comparison again: every row that the earlier ``plan.json`` holds has the
same command lines and budget now (``--gpu_ids`` and ``--protocols`` aside), so finished models are reused and an
interrupted one resumes. More models may join (the table only gains rows). Anything else (a row
dropped, other flags, another budget, data or seed) would replace results, and is refused.
``overwrite`` deletes both folders first, whatever they hold, and runs the comparison from scratch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from util.errors import UserError

if TYPE_CHECKING:  # plan.py imports check_name from here
    from .plan import Plan

# Where a row runs, not what it computes; and which other papers' protocols are reported (more of
# them test the finished models again, never train them again).
IGNORED_FLAGS = ("--gpu_ids", "--protocols")


def check_name(name: str) -> str:
    """Refuse a comparison name that is not one folder name (``a/b``, ``..``, empty)."""
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\")):
        raise UserError(
            f"--name {name!r}: a comparison's name is one folder name (e.g. light_2026), not a path; "
            "--results_dir and --checkpoints_dir choose where it goes"
        )
    return name


def flags_of(argv: list[str]) -> dict[str, tuple[str, ...]]:
    """``--flag value ...`` -> {flag: values} (the last occurrence wins, as in argparse)."""
    flags: dict[str, tuple[str, ...]] = {}
    key = None
    for token in argv:
        if token.startswith("--"):
            key = token
            flags[key] = ()
        elif key is not None:
            flags[key] = (*flags[key], token)
    return {k: v for k, v in flags.items() if k not in IGNORED_FLAGS}


def row_differences(old: dict, new: dict) -> list[str]:
    """How row ``new`` differs from the saved row ``old``: budget entries, then flags."""
    out = []
    old_budget, new_budget = old.get("budget", {}), new.get("budget", {})
    for key in sorted(set(old_budget) | set(new_budget)):
        if old_budget.get(key) != new_budget.get(key):
            out.append(f"budget {key} {old_budget.get(key)} -> {new_budget.get(key)}")
    for argv in ("train_argv", "test_argv"):
        a, b = flags_of(old.get(argv, [])), flags_of(new.get(argv, []))
        for flag in sorted(set(a) | set(b)):
            if a.get(flag) != b.get(flag):
                before = " ".join(a[flag]) if flag in a else "(absent)"
                after = " ".join(b[flag]) if flag in b else "(absent)"
                out.append(f"{flag} {before} -> {after}")
    return list(dict.fromkeys(out))


def differences(saved: dict, plan_json: dict) -> list[str]:
    """Why ``plan_json`` is not a continuation of the saved plan: dropped rows, changed rows."""
    old = {row.get("model"): row for row in saved.get("rows", [])}
    new = {row["model"]: row for row in plan_json["rows"]}
    dropped = [model for model in old if model not in new]
    out = [f"{model} no longer in --models" for model in dropped]
    for model in (m for m in new if m in old):
        changes = row_differences(old[model], new[model])
        if changes:
            out.append(f"{model}: {', '.join(changes[:3])}" + (", ..." if len(changes) > 3 else ""))
    return out


def checkpoint_root(plan: Plan) -> Path | None:
    """``<checkpoints_dir>/compare_<name>/``, the folder of every experiment of the plan."""
    return plan.experiments[0].checkpoints_dir if plan.experiments else None


def check_reuse(plan: Plan, plan_json: dict, overwrite: bool = False) -> None:
    """Refuse an earlier comparison of this name that this run would replace rather than continue
    (``plan_json``: this run's :meth:`Plan.to_json`); ``overwrite``: delete it (see the module's docstring)."""
    out_dir = plan.out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} is a file; choose another --name or --results_dir")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if overwrite:
        for folder in (out_dir, checkpoint_root(plan)):
            if folder is not None and folder.is_dir():
                print(f"[compare] --overwrite: deleting {folder}")
                shutil.rmtree(folder)
        return
    saved_path = out_dir / "plan.json"
    try:
        saved = json.loads(saved_path.read_text()) if saved_path.is_file() else None
    except (OSError, ValueError):
        saved = None
    if saved is None:
        why = [f"it holds no readable {saved_path.name}"]
    elif not isinstance(saved, dict):
        why = [f"its {saved_path.name} is not a comparison plan"]
    else:
        why = differences(saved, plan_json)
    if why:
        shown = "; ".join(why[:2]) + ("; ..." if len(why) > 2 else "")
        raise UserError(
            f"{out_dir} holds comparison {plan.name!r} made with another budget or other flags ({shown}); "
            "rerun its own command (plan.json) to resume it, choose another --name, or add --overwrite "
            "to delete it and its models and start again"
        )
