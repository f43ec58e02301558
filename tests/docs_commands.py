"""The commands of README.md and docs/*.md, and how tests/test_docs.py runs them at small scale.

The rule, for anyone who writes a command into the documentation:

- Commands live in fenced code blocks marked ```bash (or ``sh``, ``shell``): one command per line, a
  trailing backslash continues it, ``#`` starts a comment. ```python blocks are run as they stand.
  Output and option listings go in ```text blocks. An indented code block that holds a command is
  refused: fence it.
- Every command either runs here or is in :data:`NOT_RUNNABLE` (its exact text -> why it cannot
  run in a test). A command in neither fails tests/test_docs.py with what to do.
- A command runs in a sandbox, a temporary folder standing for the repository root (one per page,
  the page's commands in order): :func:`build_sandbox` puts tiny data under every name the docs use
  (``DATA/train``, ``DATA/test``, ``SEN12MSCR``, ``datasets/demo`` with its scene, a trained
  ``checkpoints/demo``, ``MY_OUTPUTS``...). A new name in a command: add it there.
- The program (``python train.py``, ``python -m scripts.x``) runs in-process through its
  ``main(argv)`` with the flags of :data:`RUNNERS` appended; argparse takes the last value, so they
  make the run small (1 epoch, 2 images, tiny networks, the CPU) whatever the command says.
  A new program: add it to RUNNERS with the flags that make it small.
"""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = ("bash", "sh", "shell")
PYTHON = ("python", "python3", ".venv/bin/python")

PUBLISHED = (
    "the published {} file, downloaded from its authors' page (docs/weights.md); tests/test_published_{}.py "
    "runs the same through --weights on fixtures written by the authors' own code"
)
PUBLISHED_GLF_CR = PUBLISHED.format("GLF-CR", "glf_cr")
PUBLISHED_DSEN2CR = PUBLISHED.format("DSen2-CR", "dsen2cr")
# Exact command text (comments stripped, continuations joined, spaces collapsed) -> why it does not
# run in the test suite. Keep each reason short and true.
NOT_RUNNABLE = {
    "make install": "installs into .venv (pip, the network)",
    "make test": "the whole test suite, this test included",
    "make demo": "about 10 minutes on 2 cores; its train, test and predict steps run here at small scale",
    "make compare": "about an hour on 2 cores; the smoke setting (comparison.md) runs the same pipeline",
    "make visdom-assets": "downloads visdom's assets from the npm registry",
    "make docs-figures": "a minute or more; tests/test_docs_figures.py runs its checks",
    "make docs-figures SAMPLES=DIR FIGURE=docs/cloud_masks_samples.jpg": (
        "real SEN12MS-CR samples; tests/test_docs_figures.py runs it on tiny ones"
    ),
    "python -m scripts.compare --setting zhang2023": "every model at its paper's size and length: days on a CPU",
    "python -m scripts.compare --dataroot DATA --setting zhang2023 --gpu_ids 0": "paper-size models, a GPU",
    "python -m scripts.compare --dataroot DATA --setting paper --gpu_ids 0": "paper-size models, a GPU",
    "python -m scripts.compare --dataroot DATA --setting paper --images 32000 --name paper_32k": (
        "paper-size models, 32000 images each: hours"
    ),
    # Published weight files (docs/weights.md): downloaded from their authors' pages, never in a test.
    "python predict.py --weights CR_net.pth --cloudy S2_L1C.tif --sar S1_dB.tif --out clear.tif": PUBLISHED_GLF_CR,
    "python test.py --dataroot SEN12MSCR --weights CR_net.pth --phase test": PUBLISHED_GLF_CR,
    "python predict.py --weights glf_cr --cloudy S2_L1C.tif --sar S1_dB.tif --out clear_glf_cr.tif": PUBLISHED_GLF_CR,
    "python predict.py --weights dsen2cr_carl_sar --cloudy S2_L1C.tif --sar S1_dB.tif --out clear_carl.tif "
    "--maps": PUBLISHED_DSEN2CR,
    "python predict.py --weights dsen2cr_l1_sar --cloudy S2_L1C.tif --sar S1_dB.tif --out clear_l1.tif": (
        PUBLISHED_DSEN2CR
    ),
    "python predict.py --weights dsen2cr_carl_nosar --cloudy S2_L1C.tif --out clear_carl_nosar.tif": (
        PUBLISHED_DSEN2CR
    ),
    "python predict.py --weights dsen2cr_l1_nosar --cloudy S2_L1C.tif --out clear_l1_nosar.tif": PUBLISHED_DSEN2CR,
    "python -m display.visdom_server --port 8097": (
        "a server that runs until stopped; tests/test_visdom_train.py starts one"
    ),
    "torchrun --standalone --nproc_per_node=4 train.py --dataroot DATA/train --name realcloud_21 "
    "--gpu_ids 0,1,2,3 [options...]": "4 GPUs; tests/test_distributed_runs.py runs torchrun on the CPU",
    "torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=HOST1:29500 --rdzv_id=run1 "
    "train.py --dataroot DATA/train --name realcloud_21 [options...]": "two machines with 4 GPUs each",
    "sbatch --nodes=2 --gpus-per-node=4 scripts/slurm_train.sh DATA/train realcloud_21 [options...]": (
        "a SLURM cluster; tests/test_distributed.py checks the command lines the script builds"
    ),
    "torchrun --nnodes=1 --nproc_per_node=4 --max-restarts=3 --rdzv_backend=c10d "
    "--rdzv_endpoint=localhost:29500 --rdzv_id=myrun train.py --gpu_ids auto --continue_train auto "
    "--save_latest_freq 2000 ...": "4 GPUs; tests/test_distributed_runs.py restarts a CPU group",
    "sbatch --nodes=2 --gpus-per-node=4 scripts/slurm_train.sh /data/train realcloud_21 --save_latest_freq 2000": (
        "a SLURM cluster"
    ),
    ".venv/bin/python -m pytest -q -m needs_cuda tests/": "a CUDA GPU",
    ".venv/bin/python -m scripts.benchmark_speed --device cuda": "a CUDA GPU, minutes",
    ".venv/bin/python -m scripts.benchmark_predict --device cuda": "a CUDA GPU",
    ".venv/bin/python -m scripts.demo --gpu_ids 0 --amp bf16 --name demo_bf16": "a CUDA GPU, the full demo",
    "python3 -m venv .venv && . .venv/bin/activate": "makes an environment (install.md)",
    "pip install -r requirements.txt -r requirements-dev.txt": "installs from the network",
    'PIP_CONSTRAINT="$PWD/constraints-build.txt" pip install visdom==0.2.4': "installs from the network",
    "python -m pytest -q": "the whole test suite, this test included",
    "conda env create --file environment.yml": "conda and the network",
    "python3 -m venv .venv && .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu": (
        "installs from the network"
    ),
    "python predict.py --name NAME --cloudy S2_ITEM.json --sar S1_RTC_ITEM.json --out clear.tif": (
        "placeholders for a user's STAC items; tests/test_scene_products.py reads STAC items of both sensors"
    ),
    "torchrun --standalone --nproc_per_node=4 predict.py --name NAME --pairs pairs.txt --out clear_dir/": (
        "4 GPUs; tests/test_shard.py runs predict.py under torchrun on the CPU"
    ),
    "sbatch --array=0-7 scripts/slurm_predict.sh pairs.txt clear_dir/ NAME --keep_clear --cog": (
        "a SLURM cluster; tests/test_shard.py runs the script as a 2-task array"
    ),
    # ```python blocks are keyed by their text.
    'from cloud_removal import CloudRemover\n\nremover = CloudRemover("checkpoints/demo", device="cpu")  '
    "# an experiment folder, or official weight files\nresult = remover(cloudy, sar)  # (C, H, W) Sentinel-2 "
    "digital numbers, (C', H, W) Sentinel-1 dB, any size\nresult.image, result.attention": (
        "a fragment: cloudy and sar are the reader's arrays (python_api.md's full example runs)"
    ),
}


@dataclass(frozen=True)
class Command:
    """One documented command: where it is, its language (``bash`` or ``python``) and its text."""

    page: Path
    line: int
    kind: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Shell lines with continuations joined, comments and blank lines dropped, spaces collapsed."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, line in lines:
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = pending + line
        pending = ""
        text = " ".join(re.sub(r"(^|\s)#.*$", "", text).split())  # a comment starts a word
        if text:
            out.append((start, text))
    return out


def extract(page: Path) -> tuple[list[Command], list[str]]:
    """The commands of ``page`` and its problems (indented commands, unknown fence languages)."""
    commands: list[Command] = []
    problems: list[str] = []
    lines = page.read_text().splitlines()
    fence: str | None = None
    body: list[tuple[int, str]] = []
    start = 0
    for number, line in enumerate(lines, 1):
        opening = re.match(r"^\s*```\s*([\w-]*)", line)
        if opening and fence is None:
            fence, body, start = opening.group(1) or "", [], number
            continue
        if opening and fence is not None:
            rel = page.relative_to(ROOT)
            if fence in SHELL:
                commands += [Command(page, n, "bash", text) for n, text in _logical_lines(body)]
            elif fence == "python":
                commands.append(Command(page, start + 1, "python", "\n".join(text for _, text in body)))
            elif fence == "" and any(_looks_like_command(text) for _, text in body):
                problems.append(
                    f"{rel}:{start}: a command in a ``` block without a language: mark it ```bash"
                )
            fence = None
            continue
        if fence is not None:
            body.append((number, line))
        elif line.startswith("    ") and _looks_like_command(line) and not lines[number - 2].strip():
            problems.append(
                f"{page.relative_to(ROOT)}:{number}: an indented command; put it in a ```bash fence so that "
                "tests/test_docs.py runs it (or lists it in tests/docs_commands.py NOT_RUNNABLE)"
            )
    return commands, problems


def _looks_like_command(line: str) -> bool:
    words = line.split()
    return bool(words) and words[0] in (*PYTHON, "make", "torchrun", "sbatch", "pip", "sh", "conda", "srun")


# ----------------------------------------------------------------------------- running them


TINY_NET = ["--netG", "unet_32", "--ngf", "4", "--ndf", "4", "--load_size", "32", "--crop_size", "32"]
CPU = ["--gpu_ids", "-1", "--num_threads", "0"]


def _model_flags(argv: list[str]) -> list[str]:
    """The tiny networks for the model ``argv`` names (its own ``tiny_flags`` too)."""
    import models

    given = [i for i, word in enumerate(argv[:-1]) if word == "--model"]
    model = argv[given[-1] + 1] if given else "pix2pix_attn"
    return [*TINY_NET, *models.find_model_using_name(model).tiny_flags]


def _train(argv: list[str]) -> list[str]:
    return ["--n_epochs", "1", "--n_epochs_decay", "0", "--max_dataset_size", "2", "--display_id", "0"] + (
        _model_flags(argv) + CPU
    )


def _test(argv: list[str]) -> list[str]:
    return ["--num_test", "2", *_model_flags(argv), *CPU]


def _compare(argv: list[str]) -> list[str]:
    # The comparison writes beside the checkout by default: keep it in the sandbox.
    extra = ["--gpu_ids", "-1", "--checkpoints_dir", "checkpoints", "--results_dir", "results"]
    return extra if "--dataroot" in argv else [*extra, "--dataroot", "datasets/demo"]


@dataclass(frozen=True)
class Runner:
    """How to run a program in-process: its module (with ``main(argv) -> int``) and the flags that make
    a run small, computed from the command's own arguments."""

    module: str
    small: Callable[[list[str]], list[str]] = lambda argv: []


RUNNERS = {
    "train.py": Runner("train", _train),
    "test.py": Runner("test", _test),
    "predict.py": Runner("predict", lambda argv: CPU),
    "scripts.evaluate": Runner("scripts.evaluate"),
    "scripts.compare": Runner("scripts.compare", _compare),
    "scripts.make_demo_data": Runner(
        "scripts.make_demo_data",
        lambda argv: ["--n_train", "2", "--n_test", "2", "--size", "32", "--workers", "1"],
    ),
    "scripts.model_sizes": Runner("scripts.model_sizes"),
    "scripts.convert_sen12mscr": Runner("scripts.convert_sen12mscr"),
    "scripts.docs_figures": Runner("scripts.docs_figures", lambda argv: ["--list"]),
}


def program(command: Command) -> tuple[str | None, list[str]]:
    """The RUNNERS key of a shell command and its arguments (None when it is not a Python program)."""
    words = shlex.split(command.text)
    if len(words) >= 2 and words[0] in PYTHON:
        if words[1] == "-m" and len(words) >= 3:
            return words[2], words[3:]
        if words[1].endswith(".py"):
            return words[1], words[2:]
    return None, words


def how_to_run(command: Command) -> str | None:
    """None when the command runs here or is listed as not runnable; else what its author should do."""
    if command.text in NOT_RUNNABLE:
        return None
    if command.kind == "python":
        return None
    key, _ = program(command)
    if key in RUNNERS:
        return None
    return (
        f"{command.where}: `{command.text}` is neither run by tests/test_docs.py nor listed as not runnable. "
        f"If it can run on tiny data, add its program ({key or shlex.split(command.text)[0]}) to RUNNERS in "
        "tests/docs_commands.py with flags that make it small; otherwise add the exact text to NOT_RUNNABLE "
        "there, with the reason"
    )


def run(command: Command) -> int:
    """Run a runnable command in the current folder (the sandbox); returns its exit status."""
    if command.kind == "python":
        exec(compile(command.text, command.where, "exec"), {"__name__": "__docs__"})
        return 0
    key, argv = program(command)
    runner = RUNNERS[key]
    main = importlib.import_module(runner.module).main
    try:
        code = main([*argv, *runner.small(argv)])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return int(code or 0)


# ----------------------------------------------------------------------------- the sandbox


def build_sandbox(root: Path) -> Path:
    """Tiny data under every name the docs' commands use, in ``root`` (see the module docstring)."""
    import train
    from scripts import make_demo_data
    from scripts.demo import write_demo_scene
    from tests.helpers import make_triplets
    from tests.scene_fixtures import write_scene
    from tests.sen12mscr_fixtures import make_tree, s2_dn, transform_of, write_tif

    make_triplets(root / "DATA" / "train", "train", n=2)
    make_triplets(root / "DATA" / "test", "test", n=2, seed=1)
    make_tree(root / "SEN12MSCR")
    demo = root / "datasets" / "demo"
    assert (
        make_demo_data.main(["--out", str(demo), *RUNNERS["scripts.make_demo_data"].small([]), "--quiet"])
        == 0
    )
    write_demo_scene(demo / "scene", 0)
    argv = [
        "--dataroot",
        str(demo / "train"),
        "--name",
        "demo",
        "--checkpoints_dir",
        str(root / "checkpoints"),
    ]
    assert train.main([*argv, *_train(argv)]) == 0
    shutil.copytree(root / "checkpoints" / "demo", root / "checkpoints" / "NAME")
    for name in ("MY_OUTPUTS", "other_method", "testA"):
        shutil.copytree(demo / "test" / "testA", root / name)
    shutil.copytree(demo / "test" / "testB", root / "testB")
    for folder, source in (("S2_dir", "s2_cloudy.tif"), ("S1_dir", "s1.tif")):
        (root / folder).mkdir()
        shutil.copy(demo / "scene" / source, root / folder / "scene.tif")
    (root / "pairs.txt").write_text("# cloudy  sar\nS2_dir/scene.tif S1_dir/scene.tif\n")
    rng = np.random.default_rng(0)
    for name in ("ROIs1970_fall_139_p8.tif", "ROIs2017_winter_5_p3.tif"):  # SEN12MS-CR samples, flattened
        write_tif(root / "SAMPLES" / "s2_cloudy" / name, s2_dn(rng, 32, cloudy=True), transform_of("1", "1"))
        write_tif(root / "SAMPLES" / "s2_cloudfree" / name, s2_dn(rng, 32), transform_of("1", "1"))
    (root / "hubconf.py").symlink_to(ROOT / "hubconf.py")  # torch.hub.load(".", ...) from the root
    # A Level-1C scene and its Sentinel-1 dB image; UnCRtainTS' experiment folder as their code writes it.
    scene = write_scene(root, 48, 40)
    for path, name in zip(scene, ("S2_L1C.tif", "S1_dB.tif")):
        path.rename(root / name)
    shutil.copytree(
        ROOT / "tests" / "fixtures" / "uncrtaints_checkpoints" / "diag_sar", root / "UNCRTAINTS_DIR"
    )
    return root
