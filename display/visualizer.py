"""Training visualiser: visdom plots/images, an HTML results page, a loss log and a loss-curve PNG.

Layout under ``<checkpoints_dir>/<name>/``::

    loss_log.txt                      one line per print_current_losses call
    web/index.html                    results page (newest epoch first, link to the loss curves)
    web/images/epoch003_fake_B.png    images saved by display_current_results(save_result=True)
    web/loss_curves.png               written by save_loss_plot()

Visdom is optional: with ``display_id > 0`` a client is created lazily on the
first display call; an unreachable server gives one warning and training goes
on (see ``display.visdom_client.VisdomDisplay``). TensorBoard and W&B loggers
(``display.loggers``), when chosen, receive the same losses and images.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from display.html import HTML
from display.images import make_image_grid, to_rgb_uint8
from display.loggers import Logger, create_loggers
from display.loss_log import (
    Curves,
    curves_from_records,
    format_loss_line,
    parse_loss_log,
    save_curves_png,
)
from display.visdom_client import VisdomDisplay
from util.util import save_image

_IMAGE_FILE = re.compile(r"^epoch(\d+)_(.+)\.png$")
# visdom sizes an image pane to the image itself, and the caption takes its room from it: a grid
# of small images (32-px crops) would show only its caption. Panes are at least this wide (the
# image scaled up), with room for a caption line.
MIN_PANE_WIDTH = 480
CAPTION_ROOM = 40


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    """Options as plain values (a torch.device becomes its name) for a logger's run config."""
    simple = (str, int, float, bool, type(None), list, tuple)
    return {k: v if isinstance(v, simple) else str(v) for k, v in options.items()}


def _safe_label(label: str) -> str:
    """Make a visual's label usable inside a file name (no path separators or NULs)."""
    return re.sub(r"[/\\\x00]", "_", label) or "_"


class Visualizer:
    """Display/save images and losses during training (visdom + HTML + text log + optional loggers).

    Use it as a context manager (or call ``close``) so the loggers flush and finish their runs.
    """

    def __init__(
        self,
        name: str,
        checkpoints_dir: str,
        display_id: int = 1,
        display_server: str = "http://localhost",
        display_port: int = 8097,
        display_env: str = "main",
        display_ncols: int = 4,
        display_winsize: int = 256,
        use_html: bool = True,
        is_train: bool = True,
        retry_interval: float = 60.0,
        timeout: float = 5.0,
        loggers: Sequence[Logger] = (),
    ) -> None:
        """Set up paths (and the loss-log header in training mode); visdom connects lazily.

        Args:
            name: experiment name (folder under ``checkpoints_dir``).
            checkpoints_dir: root folder of experiments.
            display_id: visdom window id base; <= 0 disables visdom.
            display_server, display_port, display_env: where to send plots/images.
            display_ncols: images per row in the visdom panel and the HTML page (<= 0: one row).
            display_winsize: image width on the HTML page.
            use_html: save images and build ``web/index.html``.
            is_train: training mode (writes a dated header to ``loss_log.txt``).
            retry_interval: seconds between reconnection attempts to an unreachable server.
            timeout: seconds allowed for each request to the visdom server.
            loggers: started TensorBoard / W&B loggers (``display.loggers.create_loggers``).
        """
        self.name = name
        self.display_id = display_id
        self.ncols = display_ncols
        self.win_size = display_winsize
        self.use_html = use_html
        self.is_train = is_train
        self.expr_dir = os.path.join(checkpoints_dir, name)
        self.web_dir = os.path.join(self.expr_dir, "web")
        self.img_dir = os.path.join(self.web_dir, "images")
        self.log_name = os.path.join(self.expr_dir, "loss_log.txt")
        self.loss_plot_path = os.path.join(self.web_dir, "loss_curves.png")
        self.loss_win = f"losses_{display_id}"
        self.images_win = f"images_{display_id}"
        self.saved = False
        self._label_order: list[str] = []
        self._plot_x: list[float] = []
        self._plot_y: dict[str, list[float]] = {}
        self.loggers = list(loggers)
        self._step = 0  # used when a caller gives no step
        self.display: VisdomDisplay | None = None
        if display_id > 0:
            self.display = VisdomDisplay(
                display_server, display_port, display_env, retry_interval=retry_interval, timeout=timeout
            )
        os.makedirs(self.expr_dir, exist_ok=True)
        if is_train:
            with open(self.log_name, "a", encoding="utf-8") as f:
                f.write(f"================ Training Loss ({time.strftime('%c')}) ================\n")

    @classmethod
    def from_train_options(cls, opt: argparse.Namespace) -> Visualizer:
        """The training visualiser configured by ``train.py``'s options (the one place they are read)."""
        expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
        os.makedirs(expr_dir, exist_ok=True)
        loggers = create_loggers(
            expr_dir,
            opt.name,
            use_tensorboard=opt.use_tensorboard,
            tensorboard_dir=opt.tensorboard_dir or None,
            use_wandb=opt.use_wandb,
            wandb_project_name=opt.wandb_project_name,
            wandb_mode=opt.wandb_mode,
            config=_plain(vars(opt)),
        )
        return cls(
            name=opt.name,
            checkpoints_dir=opt.checkpoints_dir,
            display_id=opt.display_id,
            display_server=opt.display_server,
            display_port=opt.display_port,
            display_env=opt.display_env,
            display_ncols=opt.display_ncols,
            display_winsize=opt.display_winsize,
            use_html=not opt.no_html,
            is_train=True,
            retry_interval=opt.display_retry_interval,
            loggers=loggers,
        )

    def __enter__(self) -> Visualizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close the loggers (visdom and the HTML page need no closing)."""
        for logger in self.loggers:
            logger.close()

    def _next_step(self, step: int | None) -> int:
        self._step = self._step + 1 if step is None else int(step)
        return self._step

    def reset(self) -> None:
        """Start of an epoch: forget that results were saved."""
        self.saved = False

    # ------------------------------------------------------------------ images

    def display_current_results(
        self, visuals: dict[str, np.ndarray], epoch: int, save_result: bool, step: int | None = None
    ) -> None:
        """Show ``visuals`` (label -> uint8 (H, W, 3) array) in visdom and the loggers; optionally save to HTML.

        ``step``: training images seen so far (the loggers' x axis).
        """
        if not visuals:
            return
        labels = list(visuals)
        images = [to_rgb_uint8(visuals[k]) for k in labels]
        logger_step = self._next_step(step)
        for logger in self.loggers:
            logger.log_images(logger_step, dict(zip(labels, images)))
        if self.display is not None:
            grid = make_image_grid(images, self.ncols)
            scale = max(1.0, MIN_PANE_WIDTH / grid.shape[1])
            opts = {
                "title": f"{self.name} epoch {epoch}",
                "caption": " | ".join(labels),
                "width": round(grid.shape[1] * scale),
                "height": round(grid.shape[0] * scale) + CAPTION_ROOM,
            }
            self.display.send(lambda vis: vis.image(grid.transpose(2, 0, 1), win=self.images_win, opts=opts))
        if self.use_html and save_result:
            os.makedirs(self.img_dir, exist_ok=True)
            for label, im in zip(labels, images):
                save_image(im, os.path.join(self.img_dir, f"epoch{epoch:03d}_{_safe_label(label)}.png"))
            self._label_order = [_safe_label(k) for k in labels]
            self.saved = True
            self.write_html()

    def write_html(self) -> str:
        """Rebuild ``web/index.html`` from the images on disk (newest epoch first); return its path."""
        by_epoch: dict[int, list[tuple[str, str]]] = {}  # epoch -> [(label, file name)]
        if os.path.isdir(self.img_dir):
            for fname in os.listdir(self.img_dir):
                m = _IMAGE_FILE.match(fname)
                if m:
                    by_epoch.setdefault(int(m[1]), []).append((m[2], fname))
        order = {label: i for i, label in enumerate(self._label_order)}
        page = HTML(self.web_dir, f"Experiment name = {self.name}", refresh=60 if self.is_train else 0)
        if os.path.isfile(self.loss_plot_path):
            plot_name = os.path.basename(self.loss_plot_path)
            page.add_header("Loss curves")
            page.add_link("loss curves (PNG)", plot_name, image=plot_name, width=640)
        for epoch in sorted(by_epoch, reverse=True):
            items = sorted(by_epoch[epoch], key=lambda it: (order.get(it[0], len(order)), it[0]))
            files = [fname for _, fname in items]
            page.add_header(f"epoch [{epoch}]")
            page.add_images(
                files, [label for label, _ in items], files, width=self.win_size, ncols=self.ncols
            )
        return page.save()

    # ------------------------------------------------------------------ losses

    def plot_current_losses(
        self,
        epoch: int,
        counter_ratio: float,
        losses: dict[str, float],
        step: int | None = None,
        lrs: dict[str, float] | None = None,
    ) -> None:
        """Add a point (x = epoch + counter_ratio) to the history and redraw the visdom loss plot.

        Loss names that appear later are back-filled with NaN (gaps); names that
        disappear get NaN from then on, so every line keeps its own history. The loggers get
        ``loss/<name>`` and ``lr/<optimiser>`` (from ``lrs``) at ``step`` (training images seen).
        """
        scalars = {f"loss/{k}": float(v) for k, v in losses.items()}
        scalars.update({f"lr/{k}": float(v) for k, v in (lrs or {}).items()})
        logger_step = self._next_step(step)
        for logger in self.loggers:
            logger.log_scalars(logger_step, scalars)
        n = len(self._plot_x)
        for key in losses:
            self._plot_y.setdefault(key, [math.nan] * n)
        self._plot_x.append(float(epoch) + float(counter_ratio))
        for key, ys in self._plot_y.items():
            ys.append(float(losses[key]) if key in losses else math.nan)
        if self.display is not None and self._plot_y:
            self.display.send(self._send_loss_plot)

    def _send_loss_plot(self, vis: Any) -> None:
        """Send the complete loss history as one multi-line plot."""
        names = list(self._plot_y)
        y = np.column_stack([self._plot_y[k] for k in names])
        x = np.tile(np.asarray(self._plot_x)[:, None], (1, len(names)))
        opts = {"title": f"{self.name} loss over time", "legend": names, "xlabel": "epoch", "ylabel": "loss"}
        vis.line(X=x, Y=y, win=self.loss_win, opts=opts)

    def print_current_losses(
        self, epoch: int, iters: int, losses: dict[str, float], t_comp: float, t_data: float
    ) -> str:
        """Print the losses and append the same line to ``loss_log.txt``; return the line."""
        message = format_loss_line(epoch, iters, losses, t_comp, t_data)
        print(message)
        with open(self.log_name, "a", encoding="utf-8") as f:
            f.write(message + "\n")
        return message

    def loss_history(self) -> Curves:
        """Loss curves as ``name -> (x, y)``: from ``loss_log.txt`` (survives resume) or, if empty, memory.

        For the log, x = epoch + iters / max(iters) (an estimate of epoch + counter_ratio).
        """
        records = parse_loss_log(self.log_name)
        if records:
            return curves_from_records(records)
        curves: Curves = {}
        for k, ys in self._plot_y.items():
            pts = [(x, y) for x, y in zip(self._plot_x, ys) if not math.isnan(y)]
            curves[k] = ([p[0] for p in pts], [p[1] for p in pts])
        return curves

    def save_loss_plot(self) -> str | None:
        """Write ``web/loss_curves.png`` (all losses vs epoch) and relink the HTML page.

        Returns the PNG path, or None when there is nothing to plot.
        """
        curves = self.loss_history()
        if not any(xs for xs, _ in curves.values()):
            return None
        save_curves_png(curves, self.loss_plot_path, f"{self.name}: training losses")
        if self.use_html:
            self.write_html()
        return self.loss_plot_path
