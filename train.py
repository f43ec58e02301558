"""Train a cloud-removal model.

    python train.py --dataroot DATA/train --name realcloud_21 --model pix2pix_attn --niter 210 \
        --lr_policy step --pool_size 50 --no_dropout --display_id 0 --batchSize 1 --gpu_ids 0 \
        --dataset_mode unaligned_sar --no_flip --display_freq 500 --save_epoch_freq 40

Checkpoints, options, the loss log and a training web page go to ``checkpoints/<name>/``.
``--continue_train`` resumes from ``latest_train_state.pth`` where the run stopped
(``--continue_train auto``: when there is one; a finished run says so and trains nothing). SIGTERM or SIGUSR1 saves the training state at the
end of the current iteration and stops (see :mod:`util.preemption` and docs/cluster.md).

Several GPUs or nodes: one process per device, started by torchrun (``--batch_size`` per process):

    torchrun --standalone --nproc_per_node=2 train.py --gpu_ids 0,1 ...

(see docs/distributed.md and :mod:`util.distributed`).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time

import torch
from tqdm import tqdm

from data import check_first_sample, create_dataloader
from data.sampler import derive_seed
from display.visualizer import Visualizer
from models import create_model
from models.checkpoint import LATEST, Checkpoints
from models.save_budget import SaveBudget
from options.base_options import saved_options, seed_everything
from options.train_options import TrainOptions
from util import distributed
from util.errors import UserError, run_cli
from util.preemption import StopSignals, requeue_on_slurm
from util.util import visuals_to_images


def crossed(total: int, step: int, freq: int) -> bool:
    """True when the image counter passed a multiple of ``freq`` in the last ``step`` images.

    Unlike ``total % freq == 0`` this fires whatever the batch size.
    """
    return total // freq > (total - step) // freq


def check_finite(
    model, losses: dict[str, torch.Tensor], opt, epoch: int, step_no: int, total_iters: int, skipped: int
) -> int:
    """Apply ``--nonfinite`` to this iteration's losses; return the updated count of skipped steps.

    'stop' raises a :class:`UserError` (the last saved checkpoint is intact: nothing is saved after
    a non-finite loss); 'skip' prints one warning per skipped iteration. The model has stepped no
    optimiser when it reports ``skipped_step`` (see ``BaseModel.optimize_parameters``).
    """
    bad = model.skipped_step or model.nonfinite_losses(losses)
    if not bad:
        return skipped
    where = f"epoch {epoch}, iteration {step_no} ({total_iters} images seen)"
    if opt.nonfinite == "stop":
        raise UserError(
            f"loss {', '.join(bad)} became non-finite at {where}; training stopped, the last saved "
            "checkpoint is intact (try a lower --lr, or --nonfinite skip)"
        )
    if not model.skipped_step:
        raise UserError(
            f"loss {', '.join(bad)} became non-finite at {where}, and model {opt.model} has already "
            "stepped its optimisers (it cannot skip steps); training stopped"
        )
    skipped += 1
    print(
        f"warning: loss {', '.join(bad)} non-finite at {where}: optimiser steps skipped "
        f"({skipped} skipped so far)",
        file=sys.stderr,
    )
    return skipped


def train(argv: list[str] | None = None) -> int:
    # Under torchrun: one process per device; ranks other than 0 print only warnings and errors.
    with distributed.worker() as place:
        # The options are printed and saved once the data, the model and the checkpoint are known
        # to be usable: a mistake found before training ends in its one-line error, writing nothing.
        options = TrainOptions()
        opt = options.parse(argv, save=False, show=False)
        options.check_start(opt)
        distributed.init(opt.device)
        # A rank that fails to start stops every rank with one line, instead of leaving them waiting.
        with distributed.together("starting"):
            # --batch_size is per process: each rank loads its shard of the same global sample order.
            loader = create_dataloader(opt, rank=place.rank, world_size=place.world_size)
            model = create_model(opt)
            model.setup()
            check_first_sample(loader.dataset)  # bad data stops the run before checkpoints/<name>/ exists
        distributed.check_same(
            f"the number of training samples in {opt.dataroot}",
            len(loader.dataset),
            "every node must see the same data (a shared file system, or identical copies)",
        )
        with distributed.together("resuming"):
            if place.rank > 0:
                # Other draws (image pool, dropout) on the other ranks; rank 0 draws as a single process.
                seed_everything(derive_seed(opt.seed, place.rank))
            checkpoints = Checkpoints(model.save_dir)
            progress = checkpoints.resume(model, opt, images_per_epoch=len(loader.dataset))
            if finished(opt, progress):
                print(
                    f"{checkpoints.save_dir} has finished training: all {opt.n_epochs + opt.n_epochs_decay} "
                    f"epochs ({progress['total_iters']} images seen); nothing to do (raise --n_epochs or "
                    "--n_epochs_decay to train on)"
                )
                return 0
            options.announce(opt)
            # Adam's moments now, not amid the first backward pass: 0.1-0.2 GB less peak memory.
            model.allocate_optimizer_states()
        # DDP: every rank starts from rank 0's weights; gradients are averaged over the ranks.
        distributed.wrap_networks(model.nets, opt.device, find_unused=model.unused_parameters)
        # Rank 0 alone logs, displays and writes pages; closing flushes TensorBoard / W&B.
        display = Visualizer.from_train_options(opt) if place.rank == 0 else contextlib.nullcontext()
        # SIGTERM / SIGUSR1 (preemption, time limit): save at the iteration's end and stop.
        with display as visualizer, StopSignals() as stop:
            return run_epochs(opt, loader, model, checkpoints, visualizer, progress, place.world_size, stop)


def finished(opt, progress: dict) -> bool:
    """Whether a resumed run has nothing left to train: every epoch done, none part-way."""
    return progress["epoch"] >= opt.n_epochs + opt.n_epochs_decay and not progress.get("epoch_iter")


def run_epochs(
    opt,
    loader,
    model,
    checkpoints: Checkpoints,
    visualizer: Visualizer | None,
    progress: dict,
    world_size: int = 1,
    stop: StopSignals | None = None,
) -> int:
    """Train from ``progress`` to the last epoch: display, log, checkpoint; return the exit status.

    In a distributed run every rank runs this (checkpoint saves and loss means are collectives);
    ``visualizer`` is None on the ranks other than 0. ``stop``: after a signal it records, the
    iteration ends, the training state is saved and the status is 128 + the signal's number."""
    stop = stop or StopSignals()
    options = saved_options(opt)
    # End-of-epoch 'latest' saves take at most this share of the time.
    budget = SaveBudget(opt.save_budget, device=opt.device)
    last_epoch = opt.n_epochs + opt.n_epochs_decay
    total_iters = progress["total_iters"]
    skipped = 0
    first_epoch = progress["epoch"] + 1
    for epoch in range(first_epoch, last_epoch + 1):
        epoch_start = iter_data_time = time.time()
        # A mid-epoch checkpoint continues with the very samples the interrupted run would have seen.
        epoch_iter = progress.get("epoch_iter", 0) if epoch == first_epoch else 0
        loader.sampler.set_epoch(epoch, epoch_iter)
        step_no = 0
        if visualizer is not None:
            visualizer.reset()
        model.train()
        # A progress bar on rank 0's terminal only (disable=None): logs of batch jobs stay clean.
        quiet = None if visualizer is not None else True
        bar = tqdm(loader, desc=f"epoch {epoch}/{last_epoch}", unit="batch", leave=False, disable=quiet)
        for batch in bar:
            iter_start = time.time()
            t_data = iter_start - iter_data_time
            # Counters and frequencies count images over all processes (every rank's batch has
            # the same size, see data.sampler.EpochSampler).
            step = batch["A"].shape[0] * world_size
            total_iters += step
            epoch_iter += step
            step_no += 1
            model.set_input(batch)
            losses = model.optimize_parameters()
            skipped_before = skipped
            skipped = check_finite(model, losses, opt, epoch, step_no, total_iters, skipped)
            finite = skipped == skipped_before  # a skipped iteration has nothing to show

            if visualizer is not None and finite and crossed(total_iters, step, opt.display_freq):
                save_result = crossed(total_iters, step, opt.update_html_freq)
                # The dataset's previews: e.g. natural colour for Sentinel-2 data.
                images = visuals_to_images(model.get_current_visuals(), model.roles, loader.dataset.preview)
                images = {name: images[name] for name in model.roles.ordered(images)}  # the page order
                visualizer.display_current_results(images, epoch, save_result, step=total_iters)
            if finite and crossed(total_iters, step, opt.print_freq):
                # The global batch's losses: the mean over the processes (a collective).
                values = distributed.mean_over_ranks(model.get_current_losses(), opt.device)
                if visualizer is not None:
                    t_comp = (time.time() - iter_start) / step
                    visualizer.print_current_losses(epoch, epoch_iter, values, t_comp, t_data)
                    ratio = epoch_iter / max(1, len(loader.dataset))
                    visualizer.plot_current_losses(
                        epoch, ratio, values, step=total_iters, lrs=model.current_lrs()
                    )
            here = {"epoch": epoch - 1, "epoch_iter": epoch_iter, "total_iters": total_iters}
            saved = crossed(total_iters, step, opt.save_latest_freq)
            if saved:
                print(f"saving the latest model (epoch {epoch}, images {total_iters})")
                with budget.timed():
                    checkpoints.save(model, LATEST, here, options)  # every rank: rank 0 writes
                    if opt.save_by_iter:
                        checkpoints.save(model, Checkpoints.iter_label(total_iters), here, options)
            signum = stop.requested(opt.device)
            if signum:
                if not saved:
                    with budget.timed():
                        checkpoints.save(model, LATEST, here, options)
                return stopped(signum, here, checkpoints)
            iter_data_time = time.time()

        model.update_learning_rate()
        progress = {"epoch": epoch, "total_iters": total_iters}
        last = epoch == last_epoch
        keep = epoch % opt.save_epoch_freq == 0 or last
        if keep:
            print(f"saving the model at the end of epoch {epoch} (images {total_iters})")
        # The training state ('latest', 2.6 GB for the paper's model) within the time budget, and
        # always after the last epoch; the same decision on every rank (rank 0's).
        if last or budget.due():
            with budget.timed():
                checkpoints.save(model, LATEST, progress, options)
                if keep:
                    checkpoints.save_weights(model.nets, epoch, same_as=LATEST)
        elif keep:
            # An epoch checkpoint is its weights (as the official code's); 'latest' stays the last
            # complete training state, its weights with it. Not timed as the budget's yardstick.
            checkpoints.save_weights(model.nets, epoch)
        if visualizer is not None:
            visualizer.save_loss_plot()
        print(f"end of epoch {epoch} / {last_epoch} \t time taken: {time.time() - epoch_start:.1f} s")
    if skipped and visualizer is not None:
        print(
            f"warning: {skipped} iteration(s) had non-finite losses and were skipped (--nonfinite skip)",
            file=sys.stderr,
        )
    distributed.barrier()  # rank 0 has written the last checkpoint when every rank returns
    return 0


def stopped(signum: int, here: dict, checkpoints: Checkpoints) -> int:
    """After a stop signal (the state at ``here`` saved): requeue on SLURM, say so, return 128 + signum."""
    distributed.barrier()  # rank 0 has written the state when every rank returns
    if distributed.is_main():
        name = signal.Signals(signum).name
        print(
            f"stopped by {name} {here['epoch_iter']} images into epoch {here['epoch'] + 1}: training "
            f"state saved in {checkpoints.save_dir}; the same command with --continue_train auto goes on",
            file=sys.stderr,
        )
        requeued = requeue_on_slurm(signum)
        if requeued:
            print(requeued, file=sys.stderr)
    return 128 + signum


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: train(argv))


if __name__ == "__main__":
    sys.exit(main())
