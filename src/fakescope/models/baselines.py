"""Baseline detectors to compare the papers' models against.

* ``simple_cnn``: a small CNN that keeps full resolution in its first stage,
  so it can see pixel-level generator traces. Trains in minutes on a CPU; the
  quickstart's default detector.
* ``npr``: Tan et al., "Rethinking the Up-Sampling Operations in CNN-based
  Generative Network for Generalizable Deepfake Detection" (CVPR 2024): a
  truncated ResNet-50 (stem and two stages) on the neighbouring-pixel residual
  ``x - up_nearest(down_nearest(x))``, which exposes up-sampling traces.
* ``cnndetection_resnet50``: Wang et al., "CNN-generated images are surprisingly
  easy to spot... for now" (CVPR 2020): ImageNet ResNet-50, fine-tuned, one logit.
* ``univfd_clip``: Ojha et al., "Towards Universal Fake Image Detectors that
  Generalize Across Generative Models" (CVPR 2023): frozen CLIP ViT-L/14 image
  embedding and a linear probe.
* ``efficientnet_b4``: the EfficientNet-B4 face-forgery baseline of
  DeepfakeBench (ImageNet weights, 380 px face crops... here resized whole).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from fakescope.models.weights import hf_backbone
from fakescope.models.base import DetectorConfig, DetectorModel
from fakescope.preprocess import CLIP_MEAN, CLIP_STD, PreprocessConfig
from fakescope.models.registry import register_model, register_variant


# ---------------------------------------------------------------- simple_cnn
class SimpleCNNConfig(DetectorConfig):
    preprocess: PreprocessConfig = Field(default_factory=lambda: PreprocessConfig(input_size=64, policy="crop"))
    widths: list[int] = Field(default_factory=lambda: [32, 64, 128, 256], min_length=1)
    blocks_per_stage: int = Field(default=2, ge=1)
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@register_model("simple_cnn", description="small full-resolution CNN baseline (CPU-friendly)")
class SimpleCNN(DetectorModel):
    """Small CNN baseline whose first stage runs at full resolution."""

    config_class = SimpleCNNConfig
    reads = ()  # no pretrained backbone: weights come from checkpoints

    def __init__(self, cfg: SimpleCNNConfig) -> None:
        super().__init__(cfg)
        layers: list[nn.Module] = []
        cin = 3
        for i, width in enumerate(cfg.widths):
            for j in range(cfg.blocks_per_stage):
                layers.append(_conv_bn(cin, width, stride=2 if (i > 0 and j == 0) else 1))
                cin = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(cin, 1))

    def forward_features(self, x: Tensor) -> Tensor:
        """Globally average-pooled last-stage map, ``[B, widths[-1]]``."""
        return self.features(x).mean(dim=(2, 3))

    def forward_head(self, features: Tensor) -> Tensor:
        """Dropout, then the linear layer."""
        return self.head(features).squeeze(1)


register_variant("simple_cnn_tiny", "simple_cnn", description="simple_cnn for tests",
                 widths=[8, 16], blocks_per_stage=1, preprocess={"input_size": 32})


# ----------------------------------------------------------------------- npr
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


# --------------------------------------------------- transformers backbones
class BackboneClassifierConfig(DetectorConfig):
    backbone: str = Field(description="Hugging Face hub name of the backbone")
    backbone_overrides: dict[str, Any] = Field(
        default_factory=dict, description="architecture overrides for random init (tiny test configs)"
    )
    freeze_backbone: bool = False
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class BackboneClassifier(DetectorModel):
    """A transformers backbone, its pooled feature, dropout and a linear layer to one logit."""

    config_class = BackboneClassifierConfig

    def __init__(self, cfg: BackboneClassifierConfig) -> None:
        super().__init__(cfg)
        self.backbone = hf_backbone(cfg.backbone, pretrained=cfg.pretrained, weights=cfg.weights,
                                    overrides=cfg.backbone_overrides)
        if cfg.freeze_backbone:
            self.backbone.requires_grad_(False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(self.feature_dim, 1)

    @property
    def feature_dim(self) -> int:
        c = self.backbone.config
        kind = c.model_type
        if kind == "resnet":
            return c.hidden_sizes[-1]
        if kind == "efficientnet":
            return self.backbone.encoder.top_conv.out_channels
        if kind in ("clip_vision_model", "clip"):
            return c.projection_dim
        return c.hidden_size

    def features(self, x: Tensor) -> Tensor:
        out = self.backbone(pixel_values=x)
        if hasattr(out, "image_embeds"):
            return out.image_embeds
        return out.pooler_output.flatten(1)

    def forward_features(self, x: Tensor) -> Tensor:
        """The backbone's pooled feature (CLIP: the image embedding), ``[B, feature_dim]``; no gradient if frozen."""
        if self.cfg.freeze_backbone:
            with torch.no_grad():
                return self.features(x)
        return self.features(x)

    def forward_head(self, features: Tensor) -> Tensor:
        """Dropout, then the linear layer."""
        return self.head(self.dropout(features)).squeeze(1)

    def train(self, mode: bool = True) -> "BackboneClassifier":
        super().train(mode)
        if self.cfg.freeze_backbone:
            self.backbone.eval()  # frozen BatchNorm statistics stay frozen
        return self


@register_model(
    "cnndetection_resnet50",
    defaults={"backbone": "microsoft/resnet-50", "preprocess": {"input_size": 224, "policy": "crop"}},
    paper="Wang et al., CNN-generated images are surprisingly easy to spot... for now, CVPR 2020",
)
class CNNDetection(BackboneClassifier):
    """CNNDetection: ImageNet ResNet-50 fine-tuned to one logit (Wang et al., CVPR 2020)."""


@register_model(
    "univfd_clip",
    defaults={"backbone": "openai/clip-vit-large-patch14", "freeze_backbone": True,
              "preprocess": {"input_size": 224, "policy": "crop", "mean": CLIP_MEAN, "std": CLIP_STD}},
    paper="Ojha et al., Towards Universal Fake Image Detectors that Generalize Across Generative Models, CVPR 2023",
)
class UnivFD(BackboneClassifier):
    """UnivFD: linear probe on the frozen CLIP ViT-L/14 image embedding (Ojha et al., CVPR 2023)."""


class EfficientNetB4Config(BackboneClassifierConfig):
    stem_padding: bool = Field(default=True, description="pad the stem convolution as TensorFlow's 'same' does; "
                                                         "false: DeepfakeBench's stem, a 3x3 stride-2 convolution "
                                                         "without padding")


@register_model(
    "efficientnet_b4",
    defaults={"backbone": "google/efficientnet-b4", "dropout": 0.4,
              "preprocess": {"input_size": 380, "policy": "resize", "interpolation": "bicubic"}},
    paper="Tan & Le, EfficientNet, ICML 2019; the face-forgery baseline of DeepfakeBench",
)
class EfficientNetB4(BackboneClassifier):
    """EfficientNet-B4 face-forgery baseline (DeepfakeBench)."""

    input_domain = "face"
    config_class = EfficientNetB4Config

    def __init__(self, cfg: EfficientNetB4Config) -> None:
        super().__init__(cfg)
        if not cfg.stem_padding:  # DeepfakeBench replaces efficientnet_pytorch's stem by an unpadded conv
            self.backbone.embeddings.padding = nn.Identity()


register_variant(
    "cnndetection_tiny", "cnndetection_resnet50", description="cnndetection_resnet50, tiny random config for tests",
    backbone_overrides={"embedding_size": 8, "hidden_sizes": [8, 16, 16, 32], "depths": [1, 1, 1, 1]},
    preprocess={"input_size": 32},
)
register_variant(
    "univfd_tiny", "univfd_clip", description="univfd_clip, tiny random config for tests",
    backbone_overrides={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                        "patch_size": 8, "image_size": 32, "projection_dim": 16},
    preprocess={"input_size": 32},
)
register_variant(
    "efficientnet_tiny", "efficientnet_b4", description="efficientnet_b4, tiny random config for tests",
    backbone_overrides={"width_coefficient": 0.25, "depth_coefficient": 0.25, "image_size": 32, "hidden_dim": 320},
    preprocess={"input_size": 32},
)
