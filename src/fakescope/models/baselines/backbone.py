"""Baselines that are a pretrained transformers backbone, its pooled feature and a linear layer to one logit.

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

from fakescope.models.base import DetectorConfig, DetectorModel
from fakescope.models.registry import register_model, register_variant
from fakescope.models.layers.backbones import hf_backbone
from fakescope.preprocess import CLIP_MEAN, CLIP_STD


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
