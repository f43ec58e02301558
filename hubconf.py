"""torch.hub entry points: one per model, each returning a :class:`cloud_removal.CloudRemover`.

    remover = torch.hub.load("path/to/this/checkout", "pix2pix_attn", source="local",
                             checkpoint="checkpoints/demo", device="cpu")
    result = remover(cloudy, sar)    # see cloud_removal.py for the array conventions

``checkpoint``: an experiment folder (with ``train_opt.json``) or a folder of weight files alone
(e.g. the official ``latest_net_{G,G2,A,D}.pth``, read with the paper's configuration). No
weights are downloaded: train a model (or get the official files) first.
"""

from __future__ import annotations

from collections.abc import Callable

from cloud_removal import CloudRemover
from util.errors import UserError

dependencies = ["torch", "numpy", "rasterio", "tqdm"]


def _entry(model: str, what: str) -> Callable[..., CloudRemover]:
    def load(
        checkpoint: str | None = None, *, epoch: str | int = "latest", device: str = "auto"
    ) -> CloudRemover:
        if checkpoint is None:
            raise UserError(f"give checkpoint=<folder of a trained {model} model>; no weights are downloaded")
        return CloudRemover(checkpoint, model=model, epoch=epoch, device=device)

    load.__name__ = model
    load.__doc__ = (
        f"{what}: a CloudRemover of the {model} experiment or weight files in ``checkpoint`` "
        "('latest' or an epoch number as ``epoch``; ``device`` 'auto', 'cpu', 'cuda', 'cuda:N')."
    )
    return load


pix2pix_attn = _entry("pix2pix_attn", "Zhang et al. 2023, the attention GAN with SAR")
pix2pix = _entry("pix2pix", "pix2pix on the cloudy image alone")
sar_opt_cgan = _entry("sar_opt_cgan", "SAR-opt-cGAN (Grohnfeldt et al. 2018)")
sf_gan = _entry("sf_gan", "Simulation-Fusion GAN (Gao et al. 2020)")
glf_cr = _entry("glf_cr", "GLF-CR (Xu et al. 2022)")
dsen2cr = _entry("dsen2cr", "DSen2-CR (Meraner et al. 2020)")
uncrtaints = _entry(
    "uncrtaints", "UnCRtainTS (Ebel et al. 2023), mono-temporal, with its per-pixel uncertainty"
)
