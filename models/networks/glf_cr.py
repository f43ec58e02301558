"""GLF-CR: SAR-enhanced cloud removal with global-local fusion.

Xu, Shi, Ebel, Yu, Xia, Yang, Zhu; ISPRS J. Photogramm. Remote Sens. 192, 268-278, 2022;
official code ``github.com/xufangchn/GLF-CR`` (``codes/net_CR_RDN.py``), read for the facts below.

Two streams, optical and SAR, each an RDN (residual dense network) whose dense layers are Swin
window-attention layers (:class:`~.glf_cr_blocks.DenseSwinLayer`), at half resolution:

1. pixel-unshuffle x2, conv 5x5 (-> F, kept as f_1 for the global skip), conv 3x3, per stream;
2. ``blocks`` residual dense blocks; inside them the optical attention is guided by the SAR
   attention (global fusion). After each block the local fusion: kernels predicted from both
   streams filter the SAR features pixel by pixel (dynamic filtering against speckle); a gate
   moves the optical features towards the filtered SAR ones, and a second gate sends the updated
   optical features back into the SAR stream;
3. the optical outputs of all blocks are concatenated, fused (conv 1x1, conv 3x3), f_1 added;
4. conv 3x3 (F -> 4 U), pixel shuffle x2, conv 3x3 (U -> output bands), plus the cloudy input
   (the network predicts a residual).

Official settings: F=96, growth 48, 6 blocks of 5 layers, 8 heads, window 8, MLP ratio 2,
dynamic filters 5x5, stochastic depth 0.2, U=64; 13 S2 bands, 2 S1 bands, data in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .glf_cr_blocks import KernelConv2D, KernelPredictor, ResidualDenseBlock


class GLFCRNet(nn.Module):
    """(cloudy (B, in_nc, H, W), SAR (B, sar_nc, H, W)) -> cloud-free estimate (B, in_nc, H, W).

    H and W must be multiples of ``2 * window``. No output activation: the network adds a predicted
    residual to the cloudy input, in the data's own range (the official code: reflectance in [0, 1]).
    ``checkpoint=True`` recomputes each block's activations during the backward pass instead of
    keeping them (same results, less training memory: the window attention keeps several
    (windows, heads, N, N) maps per layer; at the official widths one 64 x 64 sample's step took
    ~0.83 GB above the model on the CPU, ~0.50 GB checkpointed; memory grows with the pixel count).
    """

    def __init__(
        self,
        *,
        in_nc: int = 13,
        sar_nc: int = 2,
        feats: int = 96,
        growth: int = 48,
        blocks: int = 6,
        layers: int = 5,
        heads: int = 8,
        window: int = 8,
        mlp_ratio: float = 2.0,
        kernel_size: int = 5,
        drop_path: float = 0.2,
        up_feats: int = 64,
        checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.window = window
        self.checkpoint = checkpoint
        self.SFENet1 = nn.Conv2d(in_nc * 4, feats, 5, padding=2)
        self.SFENet2 = nn.Conv2d(feats, feats, 3, padding=1)
        self.SFENet1_SAR = nn.Conv2d(sar_nc * 4, feats, 5, padding=2)
        self.SFENet2_SAR = nn.Conv2d(feats, feats, 3, padding=1)
        # Stochastic depth grows linearly over all blocks * layers dense layers (Swin's rule).
        rates = torch.linspace(0, drop_path, blocks * layers, device="cpu").tolist()
        self.RDBs = nn.ModuleList(
            ResidualDenseBlock(
                feats=feats,
                growth=growth,
                layers=layers,
                heads=heads,
                window=window,
                mlp_ratio=mlp_ratio,
                drop_paths=rates[i * layers : (i + 1) * layers],
            )
            for i in range(blocks)
        )
        self.DF = nn.ModuleList(KernelPredictor(feats, kernel_size) for _ in range(blocks))
        self.DFR = nn.ModuleList(KernelConv2D(kernel_size) for _ in range(blocks))
        self.sar_fuse_1x1conv = nn.ModuleList(nn.Conv2d(feats, feats, 1) for _ in range(blocks))
        self.opt_distribute_1x1conv = nn.ModuleList(nn.Conv2d(feats, feats, 1) for _ in range(blocks))
        self.GFF = nn.Sequential(nn.Conv2d(blocks * feats, feats, 1), nn.Conv2d(feats, feats, 3, padding=1))
        self.UPNet = nn.Sequential(
            nn.Conv2d(feats, 4 * up_feats, 3, padding=1),
            nn.PixelShuffle(2),
            nn.Conv2d(up_feats, in_nc, 3, padding=1),
        )

    def local_fusion(
        self, i: int, opt_f: torch.Tensor, sar_f: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Block ``i``'s SAR-guided dynamic filtering and the two gated exchanges (official ``fuse``)."""
        sar_m = self.DFR[i](sar_f, self.DF[i](opt_f, sar_f))
        new_opt = opt_f + (sar_m - opt_f) * torch.sigmoid(self.sar_fuse_1x1conv[i](sar_m - opt_f))
        new_sar = sar_f + (new_opt - sar_m) * torch.sigmoid(self.opt_distribute_1x1conv[i](new_opt - sar_m))
        return new_opt, new_sar

    def stage(self, i: int, x: torch.Tensor, x_sar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual dense block ``i`` (global fusion inside), then its local fusion."""
        return self.local_fusion(i, *self.RDBs[i](x, x_sar))

    def forward(self, cloudy: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        f_1 = self.SFENet1(F.pixel_unshuffle(cloudy, 2))
        x = self.SFENet2(f_1)
        x_sar = self.SFENet2_SAR(self.SFENet1_SAR(F.pixel_unshuffle(sar, 2)))
        outs = []
        for i in range(len(self.RDBs)):
            if self.checkpoint and torch.is_grad_enabled():
                x, x_sar = checkpoint(self.stage, i, x, x_sar, use_reentrant=False)
            else:
                x, x_sar = self.stage(i, x, x_sar)
            outs.append(x)
        x = self.GFF(torch.cat(outs, 1)) + f_1
        return self.UPNet(x) + cloudy
