"""History buffer of generated images (Shrivastava et al. 2017), as used by CycleGAN/pix2pix."""

from __future__ import annotations

import torch


class ImagePool:
    """Keeps up to ``pool_size`` past fakes; the discriminator sees a mix of new and old ones.

    For each image of a batch: while the pool is filling, store it and return it; afterwards,
    with probability 1/2 return a stored image and put the new one in its place, else return
    the new one. Randomness comes from torch's generator, so a seeded run is reproducible and
    the pool's state can be saved and restored (:meth:`state_dict`). In a distributed run
    (torchrun) every process has its own pool of its own fakes, drawn with its own generator,
    and a checkpoint keeps every rank's (see ``models.checkpoint``).
    """

    def __init__(self, pool_size: int) -> None:
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), detached."""
        images = images.detach()
        if self.pool_size <= 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()).item() > 0.5:
                idx = int(torch.randint(0, self.pool_size, ()).item())
                out.append(self.images[idx].clone())
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"pool_size": self.pool_size, "images": [im.cpu() for im in self.images]}

    def load_state_dict(self, state: dict, device: torch.device | None = None) -> None:
        self.pool_size = int(state["pool_size"])
        self.images = [im.to(device) if device is not None else im for im in state["images"]]
