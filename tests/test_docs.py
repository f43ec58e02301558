"""Every command of README.md and docs/*.md runs at small scale, or is listed with the reason it cannot.

How commands are found, run and registered: tests/docs_commands.py (its docstring is the rule).
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tests import docs_commands as dc

PAGES = {page: dc.extract(page)[0] for page in dc.PAGES}


def runnable(commands: list[dc.Command]) -> list[dc.Command]:
    return [c for c in commands if c.text not in dc.NOT_RUNNABLE]


def test_every_command_runs_here_or_is_listed_with_a_reason():
    problems = []
    for page in dc.PAGES:
        commands, issues = dc.extract(page)
        problems += issues + [m for c in commands if (m := dc.how_to_run(c))]
    assert not problems, "\n".join(problems)


def test_the_not_runnable_list_names_only_documented_commands():
    documented = {c.text for commands in PAGES.values() for c in commands}
    stale = [text for text in dc.NOT_RUNNABLE if text not in documented]
    assert not stale, (
        "tests/docs_commands.py NOT_RUNNABLE lists commands that no page holds (changed or removed: "
        "update or delete them): " + "; ".join(stale)
    )


def test_commands_are_found_and_unknown_ones_are_refused_with_what_to_do(tmp_path, monkeypatch):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(
        textwrap.dedent(
            """\
            # A page
            ```bash
            # a comment
            python train.py --dataroot DATA/train \\
                --name x   # trailing comment
            make demo
            frobnicate --all
            ```

                python -m scripts.evaluate --pred a --gt b

            ```python
            print("hi")
            ```
            ```
            python test.py --dataroot DATA/test
            ```
            ```text
            python is only mentioned here
            ```
            """
        )
    )
    monkeypatch.setattr(dc, "ROOT", tmp_path)
    commands, problems = dc.extract(page)
    assert [(c.line, c.kind, c.text) for c in commands] == [
        (4, "bash", "python train.py --dataroot DATA/train --name x"),
        (6, "bash", "make demo"),
        (7, "bash", "frobnicate --all"),
        (13, "python", 'print("hi")'),
    ]
    assert len(problems) == 2 and "docs/page.md:10: an indented command" in problems[0]
    assert "docs/page.md:15:" in problems[1] and "mark it ```bash" in problems[1]
    assert [dc.how_to_run(c) for c in commands[:2]] == [None, None]  # a runner; listed
    message = dc.how_to_run(commands[2])
    assert (
        message.startswith("docs/page.md:7: `frobnicate --all` is neither run") and "NOT_RUNNABLE" in message
    )
    assert dc.program(commands[0]) == ("train.py", ["--dataroot", "DATA/train", "--name", "x"])


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """The tiny data every page's commands read, built once; each page runs in a copy."""
    return dc.build_sandbox(tmp_path_factory.mktemp("docs_sandbox"))


def checkout_state() -> dict[str, int]:
    """What a command could leave in the checkout: its top level and the folders commands write."""
    state = {p.name: 0 for p in dc.ROOT.iterdir() if p.name not in ("__pycache__", ".pytest_cache")}
    for folder in ("checkpoints", "results", "datasets"):
        if (dc.ROOT / folder).is_dir():
            state |= {str(p): p.stat().st_mtime_ns for p in (dc.ROOT / folder).rglob("*")}
    return state


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", [p for p, commands in PAGES.items() if runnable(commands)], ids=lambda p: p.name
)
def test_the_pages_commands_run_on_tiny_data(page, sandbox, tmp_path, monkeypatch, capfd):
    root = tmp_path / "root"
    shutil.copytree(sandbox, root, symlinks=True)
    monkeypatch.chdir(root)
    before = checkout_state()
    for command in runnable(PAGES[page]):
        capfd.readouterr()
        try:
            code = dc.run(command)
        except Exception as exc:  # a ```python block
            pytest.fail(
                f"{command.where}: the ```python block raised {exc!r} in the docs sandbox; make it run as it "
                "stands or list its text in tests/docs_commands.py NOT_RUNNABLE with the reason"
            )
        out, err = capfd.readouterr()
        tail = "\n".join((out + err).splitlines()[-15:])
        assert code == 0, (
            f"{command.where}: `{command.text}` exited with {code} in the docs sandbox (with the flags of "
            f"tests/docs_commands.py RUNNERS appended; a data name the sandbox lacks goes into "
            f"build_sandbox):\n{tail}"
        )
    assert checkout_state() == before, "a documented command wrote into the checkout"
