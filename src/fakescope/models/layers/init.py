"""The ResNet-style initialisation that the CNNs of several detectors share (He et al., 2015: Kaiming normal,
fan-out, for the convolutions; BatchNorm to the identity)."""

from __future__ import annotations

from torch import nn

CONVS = (nn.Conv2d, nn.Conv3d)
NORMS = (nn.BatchNorm2d, nn.BatchNorm3d)


def resnet_init(module: nn.Module) -> None:
    """Kaiming-normal (fan-out, ReLU) convolution weights and identity BatchNorm in every submodule of ``module``."""
    for m in module.modules():
        if isinstance(m, CONVS):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, NORMS):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
