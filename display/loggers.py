"""Loggers beside visdom: TensorBoard (``--use_tensorboard``) and Weights & Biases (``--use_wandb``).

Both are optional and off by default; each is imported only when chosen. They receive the same
things: scalars (every loss as ``loss/<name>`` and each optimiser's learning rate as ``lr/<name>``)
at ``--print_freq`` and the current visuals at ``--display_freq``, with the number of training
images seen so far as the step. Like the visdom display, a logger that fails (not installed, a
folder it cannot write, a backend error) prints one warning and is switched off: it never stops
training.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from display.images import to_rgb_uint8

Log = Callable[[str], None]


class Logger:
    """A fault-tolerant logger: subclasses implement ``_open``, ``_scalars``, ``_images``, ``_close``."""

    label = "logger"
    install_hint = ""

    def __init__(self, log: Log = print) -> None:
        self.log = log
        self.active = False
        self.disabled_reason: str | None = None
        try:
            self._open()
            self.active = True
        except ImportError as exc:
            hint = f" ({self.install_hint})" if self.install_hint else ""
            self._disable(f"{exc.name or exc} is not installed{hint}")
        except Exception as exc:  # noqa: BLE001 - any backend failure must leave training running
            self._disable(_describe(exc))

    def _disable(self, reason: str) -> None:
        self.active = False
        self.disabled_reason = reason
        self.log(
            f"WARNING: {self.label} logging disabled: {reason.rstrip('.')}. Training continues without it."
        )

    def _guard(self, fn: Callable[[], object]) -> None:
        if not self.active:
            return
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - see _disable
            self._disable(_describe(exc))
            self._close_quietly()

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Log named scalars (``loss/G_L1``, ``lr/G``...) at ``step``."""
        self._guard(lambda: self._scalars(int(step), {k: float(v) for k, v in values.items()}))

    def log_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """Log uint8 images ((H, W), (H, W, 1|3|4)) under ``visuals/<name>`` at ``step``."""
        self._guard(lambda: self._images(int(step), {k: to_rgb_uint8(v) for k, v in images.items()}))

    def close(self) -> None:
        """Flush and close; safe to call twice and after a failure."""
        if self.active:
            self.active = False
            self._guard_close()

    def _guard_close(self) -> None:
        try:
            self._close()
        except Exception as exc:  # noqa: BLE001 - see _disable
            self.log(f"WARNING: {self.label} could not be closed cleanly: {_describe(exc)}.")

    def _close_quietly(self) -> None:
        try:
            self._close()
        except Exception:  # noqa: BLE001 - already reported as disabled
            pass

    def _open(self) -> None:
        raise NotImplementedError

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def _images(self, step: int, images: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class TensorBoardLogger(Logger):
    """Event files in ``log_dir`` (``tensorboard --logdir checkpoints/<name>/tensorboard``)."""

    label = "TensorBoard"
    install_hint = "pip install tensorboard"

    def __init__(self, log_dir: str, log: Log = print) -> None:
        self.log_dir = log_dir
        self.writer: Any = None
        super().__init__(log)

    def _open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when chosen

        os.makedirs(self.log_dir, exist_ok=True)
        if not os.access(self.log_dir, os.W_OK):
            raise PermissionError(f"cannot write to {self.log_dir}")
        self.writer = SummaryWriter(log_dir=self.log_dir)

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()

    def _images(self, step: int, images: dict[str, np.ndarray]) -> None:
        for name, image in images.items():
            self.writer.add_image(f"visuals/{name}", image, global_step=step, dataformats="HWC")
        self.writer.flush()

    def _close(self) -> None:
        self.writer.close()


class WandbLogger(Logger):
    """A Weights & Biases run (online, or ``offline`` with no network: ``wandb sync`` it later).

    The run's files go to ``<run_dir>/wandb/``; ``mode`` None leaves the choice to wandb
    (``WANDB_MODE``, else online).
    """

    label = "Weights & Biases"
    install_hint = "pip install wandb"

    def __init__(
        self,
        project: str,
        name: str,
        run_dir: str,
        config: Mapping[str, Any] | None = None,
        mode: str | None = None,
        log: Log = print,
    ) -> None:
        self.project, self.name, self.run_dir, self.mode = project, name, run_dir, mode
        self.config = dict(config or {})
        self.run: Any = None
        self._wandb: Any = None
        super().__init__(log)

    def _open(self) -> None:
        import wandb  # only when chosen

        self._wandb = wandb
        os.makedirs(self.run_dir, exist_ok=True)
        # Read here, not left to wandb: wandb reads its environment once per process.
        mode = self.mode or os.environ.get("WANDB_MODE")
        kwargs = {"mode": mode} if mode else {}
        self.run = wandb.init(
            project=self.project, name=self.name, dir=self.run_dir, config=self.config, **kwargs
        )

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def _images(self, step: int, images: dict[str, np.ndarray]) -> None:
        self.run.log({f"visuals/{k}": self._wandb.Image(v, caption=k) for k, v in images.items()}, step=step)

    def _close(self) -> None:
        self.run.finish()


def create_loggers(
    expr_dir: str,
    name: str,
    *,
    use_tensorboard: bool = False,
    tensorboard_dir: str | None = None,
    use_wandb: bool = False,
    wandb_project_name: str = "SAR-cloud-removal",
    wandb_mode: str | None = None,
    config: Mapping[str, Any] | None = None,
    log: Log = print,
) -> list[Logger]:
    """The chosen loggers that started (a failed one has already warned and is left out)."""
    loggers: list[Logger] = []
    if use_tensorboard:
        loggers.append(TensorBoardLogger(tensorboard_dir or os.path.join(expr_dir, "tensorboard"), log=log))
    if use_wandb:
        loggers.append(
            WandbLogger(wandb_project_name, name, run_dir=expr_dir, config=config, mode=wandb_mode, log=log)
        )
    return [lg for lg in loggers if lg.active]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
