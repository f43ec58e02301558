"""torch.hub entry points: one per model, each returning a :class:`cloud_removal.CloudRemover`.

    remover = torch.hub.load("path/to/this/checkout", "pix2pix_attn", source="local",
                             checkpoint="checkpoints/demo", device="cpu")
    glf = torch.hub.load("path/to/this/checkout", "glf_cr", source="local", weights="CR_net.pth")
    result = remover(cloudy, sar)    # see cloud_removal.py for the array conventions

``checkpoint``: an experiment folder (with ``train_opt.json``) or a folder of weight files alone
(e.g. the official ``latest_net_{G,G2,A,D}.pth``, read with the paper's configuration).
``weights``: a published weight file (GLF-CR's ``CR_net.pth``, a DSen2-CR HDF5 file, UnCRtainTS'
``model.pth.tar`` or its experiment folder, with ``conf.json``) or the name
of a published set (``docs/weights.md``), refused if it belongs to another model. Nothing is
downloaded unless ``download=True`` (a published set, into the cache).
"""

from __future__ import annotations

from collections.abc import Callable

from cloud_removal import CloudRemover
from models.weight_sets import PUBLISHED
from util.errors import UserError

dependencies = ["torch", "numpy", "rasterio", "tqdm", "h5py"]


def _entry(model: str, what: str) -> Callable[..., CloudRemover]:
    def load(
        checkpoint: str | None = None,
        *,
        weights: str | None = None,
        epoch: str | int = "latest",
        device: str = "auto",
        download: bool = False,
    ) -> CloudRemover:
        if (checkpoint is None) == (weights is None):
            published = [name for name, entry in PUBLISHED.items() if entry.model == model]
            sets = f" (published: {', '.join(published)})" if published else ""
            raise UserError(
                f"give checkpoint=<folder of a trained {model} model> or weights=<weight file or "
                f"published set{sets}>, one of the two (no weights are downloaded unless download=True); "
                "see docs/weights.md"
            )
        return CloudRemover(checkpoint or weights, model=model, epoch=epoch, device=device, download=download)

    load.__name__ = model
    load.__doc__ = (
        f"{what}: a CloudRemover of the {model} experiment or weight files in ``checkpoint``, or of "
        "the weight file or published set ``weights`` ('latest' or an epoch number as ``epoch``; "
        "``device`` 'auto', 'cpu', 'cuda', 'cuda:N'; ``download``: fetch a published set)."
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
