"""Simulation-Fusion GAN (Gao, Yuan, Li, Zhang, Su, Remote Sensing 12(1):191, 2020: "Cloud removal with
fusion of high resolution optical and SAR images using generative adversarial networks").

Two steps, as the paper describes them:
1. simulation: a convolutional network translates the SAR image into a simulated optical image
   (sim_B), trained against the cloud-free image;
2. fusion: a GAN fuses the simulated optical image, the SAR image and the cloudy optical image
   into the output; between the two steps the contrast and luminance of the simulated image are
   altered at random, so that the fusion network does not trust the simulation's radiometry.

Networks (files ``<label>_net_<key>.pth``):
    S  : U-Net, real_C (sar_nc) -> sim_B (output_nc) in [-1, 1]
    G  : U-Net, cat(real_A, sim_B, real_C) (input_nc + output_nc + sar_nc) -> fake_B (output_nc)
    D  : PatchGAN on cat(real_A, sim_B, real_C, optical): conditioned on the fusion input
    D_S: PatchGAN on cat(real_C, optical), only with ``--lambda_sim_gan`` > 0
Losses: S: ``lambda_sim_L1 * L1(sim_B, real_B)`` (+ ``lambda_sim_gan`` x GAN, off by default: the paper
calls the simulation network a CNN, and the GAN the fusion step); G: GAN + ``lambda_L1 * L1(fake_B,
real_B)``; D: pix2pix's halved loss. Architectures and defaults the paper's description leaves open
follow pix2pix (U-Net 256, 70x70 PatchGAN, batch norm, dropout, lambda 100, Adam 2e-4 / 0.5).

Training (one ``train.py`` run, the two stages in sequence as the paper trains them): the first
``--sim_epochs`` epochs (default: half the run, rounded down) train S alone (and D_S); the remaining
epochs train G and D on the frozen S, whose output is altered per image in luminance (reflectance
in [0, 1] x U(1-b, 1+b), ``--sim_brightness``) and contrast (x U(1-c, 1+c) about the image mean,
``--sim_contrast``). The paper gives no ranges; 0.5 each is our choice, in the manner of
torchvision's colour jitter. Inference runs S then G, unaltered. The number of finished epochs is
part of the training state, so a resumed run continues in the right stage.
Each stage gets its share of the run from the start: the schedule (``--lr_policy``, ``--n_epochs``,
``--n_epochs_decay``, ``--lr_decay_iters``) is compressed into each stage (see
:func:`models.networks.compress_schedule`), so S runs through the whole shape over its epochs, and G
and D through it again over theirs, starting at the initial rate. The frozen network runs in eval
mode (no dropout, batch norm's running statistics untouched): S in the fusion stage, G while S
trains (G then only makes the visuals). At test S runs in eval mode too (``eval_at_test``), so G
sees the simulation it was trained on; G follows the test mode (pix2pix's: training mode).
"""

from __future__ import annotations

import argparse
import functools

import torch
import torch.nn.functional as F

from util.errors import UserError

from . import networks
from .base_model import Roles
from .image_pool import ImagePool
from .pix2pix_model import Pix2PixModel, add_pix2pix_defaults, check_weights


def stage_factor(epochs_done: int, *, start: int, **schedule) -> float:
    """The learning-rate multiplier of a stage that starts after ``start`` epochs of the run: its
    schedule (:func:`models.networks.lr_factor` keywords) counted from the stage's first epoch."""
    return networks.lr_factor(max(0, epochs_done - start), **schedule)


class SfGanModel(Pix2PixModel):
    # Gao et al.'s code is not public, and Zhang et al.'s repository does not hold their SF-GAN:
    # it runs with our defaults (pix2pix's) in every setting.
    zhang_flags: tuple[str, ...] = ()
    zhang_variants: dict[str, tuple[str, ...]] = {}
    # The fusion stage trains G on the frozen S in eval mode: S runs so at test as well.
    eval_at_test = ("S",)
    roles = Roles(
        uses_sar=True,
        output="fake_B",
        sar=("real_C",),
        page_order=("real_C", "sim_B", "real_A", "fake_B", "real_B"),
    )

    @staticmethod
    def modify_commandline_options(
        parser: argparse.ArgumentParser, is_train: bool
    ) -> argparse.ArgumentParser:
        parser = add_pix2pix_defaults(parser, is_train)
        if is_train:
            g = parser.add_argument_group("sf_gan stages and losses")
            g.add_argument(
                "--sim_epochs",
                type=int,
                default=None,
                help="epochs of the simulation stage (S alone) before the fusion stage (G, D on the "
                "frozen S); default: half of --n_epochs + --n_epochs_decay, rounded down",
            )
            g.add_argument("--lambda_sim_L1", type=float, default=100.0, help="weight of L1(sim_B, real_B)")
            g.add_argument(
                "--lambda_sim_gan",
                type=float,
                default=0.0,
                help="weight of an adversarial term for S with its own PatchGAN D_S (0: none, the paper's CNN)",
            )
            g.add_argument(
                "--sim_contrast",
                type=float,
                default=0.5,
                help="fusion stage: sim_B's contrast about its mean is scaled by U(1-x, 1+x) per image (0: off)",
            )
            g.add_argument(
                "--sim_brightness",
                type=float,
                default=0.5,
                help="fusion stage: sim_B's luminance (reflectance in [0, 1]) is scaled by U(1-x, 1+x) "
                "per image (0: off)",
            )
        return parser

    @staticmethod
    def condition_nc(opt: argparse.Namespace) -> int:
        return opt.input_nc + opt.output_nc + opt.sar_nc

    def condition(self, cloudy: torch.Tensor, sar: torch.Tensor | None, sim: torch.Tensor | None = None):
        """The fusion input: cat(cloudy, simulated optical, SAR); S runs when ``sim`` is not given."""
        if sim is None:
            sim = self.nets["S"](sar)
        return torch.cat([cloudy, sim, sar], 1)

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.nets = {"S": networks.define_G(opt.sar_nc, opt.output_nc, **self.unet_kwargs()), **self.nets}
        self.visual_names = ["real_C", "sim_B", "real_A", "fake_B", "real_B"]
        if self.is_train:
            total = opt.n_epochs + opt.n_epochs_decay
            self.sim_epochs = total // 2 if opt.sim_epochs is None else opt.sim_epochs
            if not 0 <= self.sim_epochs <= total:
                raise UserError(
                    f"--sim_epochs {self.sim_epochs} must lie between 0 and the run's {total} epochs "
                    "(--n_epochs + --n_epochs_decay)"
                )
            check_weights(opt, "lambda_sim_L1", "lambda_sim_gan")
            for name in ("sim_brightness", "sim_contrast"):
                if not 0 <= getattr(opt, name) < 1:
                    raise UserError(f"--{name} must be in [0, 1), got {getattr(opt, name)}")
            # Epochs finished so far (train.py steps the schedules once per epoch, see
            # update_learning_rate); restored from the training state on resume.
            self.epochs_done = opt.epoch_count - 1
            self.last_stage = self.stage
            self.loss_names = ["S_L1", *self.loss_names]
            if opt.lambda_sim_gan > 0:
                self.nets["D_S"] = self.define_patchgan(opt.sar_nc + opt.output_nc)
                self.loss_names += ["S_GAN", "D_S_real", "D_S_fake"]
                self.sim_pool = ImagePool(opt.pool_size)
            self.optimizers = {name: self.adam(name) for name in self.nets}
        for name, net in self.nets.items():
            self.nets[name] = net.to(self.device)

    # ------------------------------------------------------------------ schedules
    def stage_epochs(self, name: str) -> tuple[int, int]:
        """(first epoch, epochs) of the stage that trains network ``name``."""
        total = self.opt.n_epochs + self.opt.n_epochs_decay
        if name in ("S", "D_S"):
            return 0, self.sim_epochs
        return self.sim_epochs, total - self.sim_epochs

    def setup(self) -> None:
        """As every model, then each optimiser's schedule compressed into its own stage."""
        super().setup()
        opt = self.opt
        if not self.is_train or opt.lr_policy == "plateau":
            return
        self.schedulers = []
        for name, optimizer in self.optimizers.items():
            start, length = self.stage_epochs(name)
            shape = networks.compress_schedule(
                n_epochs=opt.n_epochs,
                n_epochs_decay=opt.n_epochs_decay,
                lr_decay_iters=opt.lr_decay_iters,
                epochs=max(1, length),
            )
            factor = functools.partial(
                stage_factor,
                start=start - (opt.epoch_count - 1),
                lr_policy=opt.lr_policy,
                lr_decay_gamma=opt.lr_decay_gamma,
                **shape,
            )
            self.schedulers.append(networks.EpochSchedule(optimizer, factor))

    # ------------------------------------------------------------------ inference
    def infer(self, cloudy: torch.Tensor, sar: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """sim_B and fake_B, (B, output_nc, H, W) in [-1, 1]."""
        with self.autocast():
            sim_B = self.nets["S"](sar)
            fake_B = self.nets["G"](self.condition(cloudy, sar, sim_B))
        return {"fake_B": fake_B, "sim_B": sim_B}

    # ------------------------------------------------------------------ training
    @property
    def stage(self) -> str:
        """'simulation' for the first ``sim_epochs`` epochs of the run, then 'fusion'."""
        return "simulation" if self.epochs_done < self.sim_epochs else "fusion"

    def jitter(self, sim: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] -> the same with a random luminance gain, then a random contrast
        about the image's mean, on reflectance in [0, 1]; one draw of each per image."""
        n = sim.shape[0]
        # Drawn on the CPU generator: the same seed gives the same draws on every device.
        gain = 1 + self.opt.sim_brightness * (2 * torch.rand(n) - 1)
        contrast = 1 + self.opt.sim_contrast * (2 * torch.rand(n) - 1)
        gain, contrast = (t.to(sim).view(n, 1, 1, 1) for t in (gain, contrast))
        unit = (sim + 1) / 2 * gain
        mean = unit.mean(dim=(1, 2, 3), keepdim=True)
        return (((unit - mean) * contrast + mean).clamp(0, 1)) * 2 - 1

    def keep(self, outputs: dict[str, torch.Tensor]) -> None:
        """Record this iteration's outputs and visuals (what ``forward`` records from ``infer``)."""
        self.outputs = outputs
        inputs = {"real_A": self.real_A, "real_B": self.real_B, "real_C": self.real_C}
        self.visuals = {**{k: v for k, v in inputs.items() if v is not None}, **outputs}

    def simulation_step(self) -> dict[str, torch.Tensor]:
        """Stage 1: S learns SAR -> optical; G is run (without gradients) only for the visuals."""
        opt = self.opt
        with self.autocast():
            sim_B = self.nets["S"](self.real_C)
        with torch.no_grad(), self.autocast():
            fake_B = self.nets["G"](self.condition(self.real_A, self.real_C, sim_B.detach()))
        self.keep({"fake_B": fake_B, "sim_B": sim_B})
        losses = {"S_L1": opt.lambda_sim_L1 * F.l1_loss(sim_B.float(), self.real_B)}
        if "D_S" in self.nets:
            losses.update(self.sim_discriminator_losses(sim_B))
            self.set_requires_grad(self.nets["D_S"], False)
            with self.autocast():
                pred = self.nets["D_S"](torch.cat([self.real_C, sim_B], 1))
            self.set_requires_grad(self.nets["D_S"], True)
            losses["S_GAN"] = opt.lambda_sim_gan * self.criterion_gan(pred.float(), True)
        self.skipped_step = self.nonfinite_losses(losses)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        if not self.skipped_step:
            sum(v for k, v in losses.items() if k.startswith("S_")).backward()
            if "D_S" in self.nets:
                (losses["D_S_fake"] + losses["D_S_real"]).backward()
                self.optimizers["D_S"].step()
            self.optimizers["S"].step()
        self.losses = {k: v.detach() for k, v in losses.items()}
        return self.losses

    def sim_discriminator_losses(self, sim_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """D_S on the (pooled) simulated pair and the real pair, each halved (pix2pix)."""
        fake = torch.cat([self.real_C, sim_B], 1)
        fake = self.sim_pool.query(fake) if torch.isfinite(sim_B).all() else fake.detach()
        with self.autocast():
            pred_fake = self.nets["D_S"](fake)
            pred_real = self.nets["D_S"](torch.cat([self.real_C, self.real_B], 1))
        return {
            "D_S_fake": 0.5 * self.criterion_gan(pred_fake.float(), False),
            "D_S_real": 0.5 * self.criterion_gan(pred_real.float(), True),
        }

    def fusion_step(self) -> dict[str, torch.Tensor]:
        """Stage 2: G and D learn on the frozen, jittered simulation (a pix2pix step)."""
        with torch.no_grad(), self.autocast():
            sim_B = self.jitter(self.nets["S"](self.real_C).float())
        cond = self.condition(self.real_A, self.real_C, sim_B.to(self.real_A.dtype))
        with self.autocast():
            fake_B = self.nets["G"](cond)
        self.keep({"fake_B": fake_B, "sim_B": sim_B})
        return self.cgan_step(cond, fake_B, ("G",))

    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        self.last_stage = self.stage
        training = ("S", "D_S") if self.last_stage == "simulation" else ("G", "D")
        for name, net in self.nets.items():
            net.train(name in training)
        return self.simulation_step() if self.last_stage == "simulation" else self.fusion_step()

    def get_current_losses(self) -> dict[str, float]:
        """The declared losses of the last iteration's stage (the other stage's are not computed)."""
        names = [
            n
            for n in self.loss_names
            if (n.startswith("S_") or n.startswith("D_S_")) == (self.last_stage == "simulation")
        ]
        missing = [n for n in names if n not in self.losses]
        if missing:
            raise KeyError(
                f"{type(self).__name__}: loss name(s) {missing} are not computed; it computes {list(self.losses)}"
            )
        return {name: float(self.losses[name]) for name in names}

    def update_learning_rate(self, metric: float | None = None) -> None:
        """End of an epoch (train.py calls this once per epoch): also advance the stage counter."""
        super().update_learning_rate(metric)
        before = self.stage
        self.epochs_done += 1
        if self.stage != before:
            print(f"sf_gan: simulation stage done after {self.epochs_done} epoch(s); fusion stage starts")

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict:
        if not self.is_train:
            return {}
        state = {**super().extra_state(), "epochs_done": self.epochs_done}
        if "D_S" in self.nets:
            state["sim_pool"] = self.sim_pool.state_dict()
        return state

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        if self.is_train:
            self.epochs_done = int(state.get("epochs_done", self.epochs_done))
            if "D_S" in self.nets and "sim_pool" in state:
                self.sim_pool.load_state_dict(state["sim_pool"], self.device)
