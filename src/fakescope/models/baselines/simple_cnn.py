"""``simple_cnn``: a small CNN that keeps full resolution in its first stage, so it can see pixel-level generator
traces. Trains in minutes on a CPU; the quickstart's default detector."""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from fakescope.models.base import DetectorConfig, DetectorModel
from fakescope.models.registry import register_model, register_variant
from fakescope.preprocess import PreprocessConfig


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
