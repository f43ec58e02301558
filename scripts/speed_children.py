"""The measurements of ``scripts.benchmark_speed``, each run in a fresh child process
(``python -m scripts.benchmark_speed --child JSON``) so that its peak resident memory is its own."""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.benchmark_speed")

import contextlib
import io
import time

from util.errors import UserError


def child_train(spec: dict) -> dict:
    """Time ``spec['iters']`` training iterations after ``spec['warmup']``; seconds per iteration."""
    import torch

    from data import create_dataloader
    from models import create_model
    from options.train_options import TrainOptions

    with contextlib.redirect_stdout(io.StringIO()):
        opt = TrainOptions().parse(spec["argv"], save=False)
        loader = create_dataloader(opt)
        model = create_model(opt)
        model.setup()
        if not spec.get("plain"):  # as train.py does; the plain path: at the first step, as the official code
            model.allocate_optimizer_states()
    sync = torch.cuda.synchronize if opt.device.type == "cuda" else (lambda: None)
    times: list[float] = []
    epoch = 0
    while len(times) < spec["warmup"] + spec["iters"]:
        epoch += 1
        loader.sampler.set_epoch(epoch, 0)
        start = time.perf_counter()
        for batch in loader:
            model.set_input(batch)
            model.optimize_parameters()
            sync()
            now = time.perf_counter()
            times.append(now - start)
            start = now
            if len(times) >= spec["warmup"] + spec["iters"]:
                break
    out = {"s_per_it": times[spec["warmup"] :]}
    if opt.device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def child_epochs(spec: dict) -> dict:
    """A whole train.py run; the wall time of its checkpoint saves, the last epoch's apart (that
    one is always written: the final weights)."""
    import train
    from models.checkpoint import Checkpoints

    saves: list[tuple[int, float]] = []  # (epoch, seconds)
    original_save, original_weights = Checkpoints.save, Checkpoints.save_weights

    def save(self, model, label, progress, options):
        start = time.perf_counter()
        try:
            return original_save(self, model, label, progress, options)
        finally:
            saves.append((int(progress["epoch"]), time.perf_counter() - start))

    def save_weights(self, nets, label, writer=None, same_as=None):
        start = time.perf_counter()
        try:
            return original_weights(self, nets, label, writer, same_as)
        finally:
            if writer is None:  # not part of a save() already timed
                saves.append((int(label) if str(label).isdigit() else -1, time.perf_counter() - start))

    Checkpoints.save, Checkpoints.save_weights = save, save_weights
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        status = train.main(spec["argv"])
    if status != 0:
        raise UserError(f"train.py failed with status {status}")
    last = spec["epochs"]
    return {
        "wall_s": time.perf_counter() - start,
        "save_s": sum(t for _, t in saves),
        "final_save_s": sum(t for e, t in saves if e == last),
        "saved_epochs": sorted({e for e, _ in saves}),
    }


def child_test(spec: dict) -> dict:
    """test.py in-process; the loop's time from the first batch. ``spec['plain']``: the former path
    (no_grad instead of inference_mode, writing in the main thread, initialising the networks
    before their weights are loaded)."""
    import torch

    import test as test_script
    from models.base_model import BaseModel

    if spec.get("plain"):

        class Inline:
            def __init__(self, *args, **kwargs):
                pass

            def submit(self, fn, *args, **kwargs):
                from concurrent.futures import Future

                future = Future()
                future.set_result(fn(*args, **kwargs))
                return future

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return None

        def no_grad_test(self):
            with torch.no_grad():
                return self.forward()

        build = test_script.create_model

        def initialising_build(opt, weights_follow=False):
            return build(opt)

        test_script.ThreadPoolExecutor = Inline
        test_script.create_model = initialising_build
        BaseModel.test = no_grad_test
    marks: list[float] = []
    original = BaseModel.set_input

    def marking(self, batch):
        if not marks:
            marks.append(time.perf_counter())
        return original(self, batch)

    BaseModel.set_input = marking
    with contextlib.redirect_stdout(io.StringIO()):
        status = test_script.main(spec["argv"])
    if status != 0:
        raise UserError(f"test.py failed with status {status}")
    return {"loop_s": time.perf_counter() - marks[0]}


def child_floor(spec: dict) -> dict:
    from scripts.benchmark_floor import measure

    return measure(spec["batch_size"], spec["device"])


CHILDREN = {"train": child_train, "epochs": child_epochs, "test": child_test, "floor": child_floor}


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
