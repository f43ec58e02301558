"""The documented commands leave nothing that git would offer to commit: every output of a command
in README.md and docs/*.md that runs on the demo data is ignored by .gitignore."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import docs_commands as dc

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_FLAGS = ("--out", "--results_dir", "--checkpoints_dir")


def demo_commands() -> list[list[str]]:
    """The argv of every documented shell command that reads the demo data (found as tests/test_docs.py
    finds commands)."""
    return [
        shlex.split(c.text)
        for page in dc.PAGES
        for c in dc.extract(page)[0]
        if c.kind == "bash" and "datasets/demo" in c.text
    ]


def outputs(argv: list[str]) -> list[str]:
    """What a command writes: its output options' values (and what predict.py writes beside --out:
    the maps, the cloud weight, the STAC item)."""
    paths = [argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag in OUTPUT_FLAGS]
    if "predict.py" in argv:
        names = ("att_A",) * ("--maps" in argv) + ("clouds",) * bool(
            {"--keep_clear", "--cloud_mask"} & set(argv)
        )
        outs = [Path(p) for p in paths if Path(p).suffix]
        paths += [str(p.with_name(f"{p.stem}_{name}{p.suffix}")) for p in outs for name in names]
        paths += [str(p.with_name(f"{p.stem}.stac.json")) for p in outs]
    return paths


def test_the_demo_commands_are_found():
    assert any("scripts.evaluate" in argv for argv in demo_commands())
    assert any("predict.py" in argv for argv in demo_commands())


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and a checkout"
)
def test_every_output_of_a_demo_command_is_ignored_by_git():
    paths = sorted({p for argv in demo_commands() for p in outputs(argv)})
    assert paths
    # A file inside an output folder stands for the folder ('eval_mine/' is ignored only as a folder).
    probes = [p.rstrip("/") + "/metrics_summary.json" if not Path(p).suffix else p for p in paths]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=ROOT,
        input="\n".join(probes) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    ignored = set(done.stdout.split())
    assert [p for p in probes if p not in ignored] == []
