"""One process of a distributed test run: ``torchrun ... -m tests.ddp_worker <train.py options>``.

Runs ``train.main`` and records, for the test to check afterwards, in ``$DDP_OUT/rank<r>.pt``
(outside the checkpoints folder): the exit status, torchrun's variables, the final weights this rank holds and every
file-system write (Python's audit events: open for writing, mkdir, rename, remove) it made under
``$DDP_AUDIT_ROOT``.

Faults for the tests, from the environment: ``DDP_EXTRA_RANK<r>``, more options for rank r only
(e.g. another --dataroot); ``DDP_DIE=<rank>:<n>``, that rank kills itself with SIGKILL in its n-th
optimisation step of torchrun's first attempt (``TORCHELASTIC_RESTART_COUNT`` 0).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

import torch

import train
from models.weights import cpu_state_dict

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.mkdir": 0, "os.rename": 1, "os.remove": 0, "os.rmdir": 0, "os.truncate": 0}


def _under(path, root: Path) -> bool:
    if isinstance(path, int):  # a file descriptor: opened (and audited) before
        return False
    try:
        return Path(os.fsdecode(path)).resolve().is_relative_to(root)
    except (TypeError, ValueError, OSError):
        return False


def audit_writes(root: Path) -> list[str]:
    """Start recording writes under ``root``; return the (growing) list of ``event path`` lines."""
    writes: list[str] = []
    root = root.resolve()

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _WRITE_FLAGS)
            if writing and _under(path, root):
                writes.append(f"open {path}")
        elif event in _PATH_EVENTS and _under(args[_PATH_EVENTS[event]], root):
            writes.append(f"{event} {args[_PATH_EVENTS[event]]}")

    sys.addaudithook(hook)
    return writes


def die_in_step(model, rank: int):
    """``model``, made to SIGKILL its process in the step ``DDP_DIE`` names (see the module)."""
    who, _, when = os.environ.get("DDP_DIE", "").partition(":")
    if who != str(rank) or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return model
    step = model.optimize_parameters
    calls = [0]

    def dying():
        calls[0] += 1
        if calls[0] == int(when):
            os.kill(os.getpid(), signal.SIGKILL)
        return step()

    model.optimize_parameters = dying
    return model


def main(argv: list[str]) -> int:
    rank = int(os.environ.get("RANK", "0"))
    out = Path(os.environ["DDP_OUT"])
    writes = audit_writes(Path(os.environ["DDP_AUDIT_ROOT"]))
    created = []
    create_model = train.create_model

    def keep(opt):
        created.append(create_model(opt))
        return die_in_step(created[-1], rank)

    train.create_model = keep
    rc = train.main([*argv, *shlex.split(os.environ.get(f"DDP_EXTRA_RANK{rank}", ""))])
    names = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR")
    record = {"rc": rc, "writes": list(writes), "env": {n: os.environ.get(n, "") for n in names}}
    if created:
        record["nets"] = {name: cpu_state_dict(net) for name, net in created[0].nets.items()}
    out.mkdir(parents=True, exist_ok=True)
    torch.save(record, out / f"rank{rank}.pt")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
