"""SFCL-HCMF's local-branch front end (Qiao, Tian, Wang, arXiv 2504.17223): the normalisation of the block-DCT
tensor X~ (decision A2), the inter-block multi-scale convolution and SBCM (eq. 9, decision A3), together the
abstract's "inter/intra-block multi-scale frequency convolution". Used by :mod:`fakescope.models.sfcl_hcmf.model`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SBCM(nn.Module):
    """Spectral Band Convolution Module: 3-D convolutions along the band axis only (eq. 9, decision A3).

    ``X~ [B, 3, 64, h, w]`` (colours as channels, bands as depth) -> ``[B, C * depth, h, w]``.
    """

    def __init__(self, in_channels: int = 3, channels=(16, 32, 64), kernels=(7, 5, 3), stride: int = 2,
                 depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for c, k in zip(channels, kernels):
            layers += [nn.Conv3d(cin, c, (k, 1, 1), stride=(stride, 1, 1), padding=(k // 2, 0, 0), bias=False),
                       nn.BatchNorm3d(c), nn.ReLU(inplace=True)]
            cin = c
        self.convs = nn.Sequential(*layers)
        self.depth = depth
        self.out_channels = cin * depth

    def forward(self, x: Tensor) -> Tensor:
        y = self.convs(x)
        y = F.adaptive_avg_pool3d(y, (self.depth, y.shape[-2], y.shape[-1]))  # [B, 64, 3, h, w]
        return y.flatten(1, 2)  # eq. (9): X_f^local, [B, 192, h, w]


class InterBlockConv(nn.Module):
    """Inter-block multi-scale frequency convolution: the inter-block half of the abstract's "inter/intra-block
    multi-scale frequency convolution" (SBCM is the intra-block half). Not a recovered equation: our design.

    ``X~ [B, 3, 64, h, w]`` is read as the block-coefficient map ``[B, 192, h, w]`` (one position per 8x8 block,
    one channel per colour and zigzag coefficient). Each branch is a depthwise ``k x k`` convolution across
    neighbouring blocks at one dilation (3x3 at dilations 1, 2, 3 sees 3, 5, 7 blocks), BN and ReLU, applied to
    every coefficient on its own, so the coefficients keep their meaning for SBCM; a grouped 1x1 convolution
    mixes the scales per channel, then BN, added to the input (residual). Output ``[B, 3, 64, h, w]``.
    """

    def __init__(self, channels: int = 3, bands: int = 64, kernel: int = 3, dilations=(1, 2, 3)) -> None:
        super().__init__()
        c = channels * bands
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, kernel, padding=d * (kernel // 2), dilation=d, groups=c, bias=False),
                          nn.BatchNorm2d(c), nn.ReLU(inplace=True)) for d in dilations)
        self.fuse = nn.Conv2d(c * len(dilations), c, 1, groups=c, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: Tensor) -> Tensor:
        b, ch, bands, h, w = x.shape
        m = x.reshape(b, ch * bands, h, w)
        scales = torch.stack([branch(m) for branch in self.branches], dim=2).flatten(1, 2)  # [B, C * n_scales, h, w]
        return x + self.bn(self.fuse(scales)).view(b, ch, bands, h, w)


class FrequencyNorm(nn.Module):
    """BatchNorm of ``X~`` before SBCM (A2): per (colour, band) pair, per colour, or none."""

    def __init__(self, mode: str, channels: int = 3, bands: int = 64) -> None:
        super().__init__()
        self.mode = mode
        self.bn = {"band": lambda: nn.BatchNorm2d(channels * bands), "channel": lambda: nn.BatchNorm3d(channels),
                   "none": nn.Identity}[mode]()

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "band":
            b, c, l, h, w = x.shape
            return self.bn(x.reshape(b, c * l, h, w)).view(b, c, l, h, w)
        return self.bn(x)
