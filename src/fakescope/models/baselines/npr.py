"""``npr``: Tan et al., "Rethinking the Up-Sampling Operations in CNN-based Generative Network for Generalizable
Deepfake Detection" (CVPR 2024): a truncated ResNet-50 (stem and two stages) on the neighbouring-pixel residual
``x - up_nearest(down_nearest(x))``, which exposes up-sampling traces."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from fakescope.models.base import DetectorConfig, DetectorModel
from fakescope.models.registry import register_model, register_variant
from fakescope.preprocess import PreprocessConfig


class NPRConfig(DetectorConfig):
    preprocess: PreprocessConfig = Field(default_factory=lambda: PreprocessConfig(input_size=224, policy="crop"))
    stem_width: int = Field(default=64, ge=1)
    widths: list[int] = Field(default_factory=lambda: [64, 128], min_length=1, description="bottleneck widths")
    blocks: list[int] = Field(default_factory=lambda: [3, 4], min_length=1)
    expansion: int = Field(default=4, ge=1)
    residual_scale: float = Field(default=2.0 / 3.0, gt=0, description="the NPR residual is multiplied by this")


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, expansion: int, stride: int) -> None:
        super().__init__()
        cout = width * expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def npr_residual(x: Tensor) -> Tensor:
    """Neighbouring pixel relationships: ``x`` minus its nearest-neighbour 2x down-then-up copy."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    return x - x[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


@register_model("npr", paper="Tan et al., Rethinking the Up-Sampling Operations in CNN-based Generative Network "
                             "for Generalizable Deepfake Detection, CVPR 2024")
class NPR(DetectorModel):
    """NPR: a truncated ResNet-50 on the neighbouring-pixel residual (Tan et al., CVPR 2024)."""

    config_class = NPRConfig
    reads = ()  # no pretrained backbone: weights come from checkpoints

    def __init__(self, cfg: NPRConfig) -> None:
        super().__init__(cfg)
        if len(cfg.widths) != len(cfg.blocks):
            raise ValueError("npr: widths and blocks must have the same length")
        self.stem = nn.Sequential(nn.Conv2d(3, cfg.stem_width, 3, 2, 1, bias=False), nn.BatchNorm2d(cfg.stem_width),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages: list[nn.Module] = []
        cin = cfg.stem_width
        for i, (width, n) in enumerate(zip(cfg.widths, cfg.blocks)):
            for j in range(n):
                stages.append(_Bottleneck(cin, width, cfg.expansion, stride=2 if (i > 0 and j == 0) else 1))
                cin = width * cfg.expansion
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(cin, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: Tensor) -> Tensor:
        """Globally average-pooled last-stage map of the residual, ``[B, widths[-1] * expansion]``."""
        f = self.stages(self.stem(npr_residual(x) * self.cfg.residual_scale))
        return f.mean(dim=(2, 3))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features).squeeze(1)


register_variant("npr_tiny", "npr", description="npr for tests", stem_width=8, widths=[4, 8], blocks=[1, 1],
                 preprocess={"input_size": 32})
