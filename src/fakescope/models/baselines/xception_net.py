"""Xception (Chollet, CVPR 2017) as a face-forgery detector: FaceForensics++'s and DeepfakeBench's baseline.

The whole network, with the parameter names of the usual PyTorch port (Cadene's ``pretrainedmodels``, which
FaceForensics++ and DeepfakeBench use): ``conv1`` (3x3, stride 2, no padding), ``conv2`` (3x3, no padding),
``block1`` ... ``block12``, ``conv3``/``bn3``, ``conv4``/``bn4``, then ReLU, a global average and one logit.
The blocks are those of :mod:`fakescope.models.layers.xception` (SFCL-HCMF's CNN-F keeps blocks 2-12 of it).

ImageNet start (``pretrained: true``, as FaceForensics++ and DeepfakeBench train it): every layer but the
classifier from the Keras ImageNet weights, by default timm's port ``hf-hub:timm/legacy_xception.tf_in1k``
(``weights`` names another ``hf-hub:`` repository, a local ``.safetensors``/torch file such as Cadene's
``xception-b5690688.pth``, or a folder holding ``model.safetensors``). The same names load unchanged; 2-D
``pointwise`` weights are reshaped; ``fc``/``last_linear`` are dropped (the one-logit head starts random).
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from fakescope.models.base import DetectorConfig, DetectorModel
from fakescope.models.layers.xception import (
    IMAGENET_XCEPTION_HUB,
    SeparableConv2d,
    XceptionBlock,
    load_imagenet_xception,
)
from fakescope.models.registry import register_model, register_variant
from fakescope.preprocess import PreprocessConfig


class XceptionConfig(DetectorConfig):
    preprocess: PreprocessConfig = Field(default_factory=lambda: PreprocessConfig(
        input_size=256, policy="resize", interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    widths: list[int] = Field(default_factory=lambda: [32, 64, 128, 256, 728, 1024, 1536, 2048], min_length=8,
                              max_length=8, description="conv1, conv2, block1, block2, middle, block12, conv3, "
                                                        "conv4 outputs")
    middle_blocks: int = Field(default=8, ge=0)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


@register_model("xception", paper="Chollet, Xception, CVPR 2017; the face-forgery baseline of FaceForensics++ and "
                                  "DeepfakeBench")
class Xception(DetectorModel):
    """Xception on face crops: the whole network, one logit."""

    config_class = XceptionConfig
    reads = ("weights", "pretrained")  # ImageNet Xception (the module docstring)
    input_domain = "face"

    def __init__(self, cfg: XceptionConfig) -> None:
        super().__init__(cfg)
        c1, c2, b1, b2, wm, b12, c3, c4 = cfg.widths
        self.conv1, self.bn1 = nn.Conv2d(3, c1, 3, 2, 0, bias=False), nn.BatchNorm2d(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c2, 3, bias=False), nn.BatchNorm2d(c2)
        self.block1 = XceptionBlock(c2, b1, 2, 2, start_with_relu=False, grow_first=True)
        self.block2 = XceptionBlock(b1, b2, 2, 2, start_with_relu=True, grow_first=True)
        self.block3 = XceptionBlock(b2, wm, 2, 2, start_with_relu=True, grow_first=True)
        for i in range(cfg.middle_blocks):
            self.add_module(f"block{4 + i}", XceptionBlock(wm, wm, 3, 1, start_with_relu=True, grow_first=True))
        self.exit_name = f"block{4 + cfg.middle_blocks}"
        self.add_module(self.exit_name, XceptionBlock(wm, b12, 2, 2, start_with_relu=True, grow_first=False))
        self.conv3, self.bn3 = SeparableConv2d(b12, c3), nn.BatchNorm2d(c3)
        self.conv4, self.bn4 = SeparableConv2d(c3, c4), nn.BatchNorm2d(c4)
        self.blocks = [f"block{i}" for i in range(1, 5 + cfg.middle_blocks)]
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c4, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if cfg.pretrained or cfg.weights:
            self.imagenet = load_imagenet_xception(self, cfg.weights or IMAGENET_XCEPTION_HUB,
                                                   dropped_prefixes=("fc.", "last_linear."),
                                                   random_init=("head.bias", "head.weight"), what="the xception detector")

    def forward_features(self, x: Tensor) -> Tensor:
        """The ReLU'd ``conv4`` map, globally averaged: ``[B, widths[-1]]``."""
        x = self.bn1(self.conv1(x)).relu()
        x = self.bn2(self.conv2(x)).relu()
        for name in self.blocks:
            x = getattr(self, name)(x)
        x = self.bn3(self.conv3(x)).relu()
        x = self.bn4(self.conv4(x)).relu()
        return x.mean(dim=(2, 3))

    def forward_head(self, features: Tensor) -> Tensor:
        """Dropout, then the linear layer."""
        return self.head(self.dropout(features)).squeeze(1)


register_variant("xception_tiny", "xception", description="xception for tests",
                 widths=[4, 8, 8, 8, 8, 16, 16, 16], middle_blocks=1, preprocess={"input_size": 32})
