"""Where a detector looked: Grad-CAM heatmaps for the convolutional detectors.

Grad-CAM (Selvaraju et al., ICCV 2017): with ``A`` the activations of a convolutional layer (``[C, h, w]``) and
``y`` the fake logit, the map is ``ReLU(sum_c w_c A_c)`` with ``w_c`` the spatial mean of ``dy/dA_c``
(their Eq. 1-2), upsampled to the input and scaled to [0, 1] per image. The layer is the model's
``cam_layer`` (a dotted module name) where it names one, else its last ``Conv2d`` whose output is still a
spatial map (for SFCL-HCMF, the last convolution of the spatial stream; for CNNDetection, NPR,
EfficientNet-B4 and Xception, the last convolution of the backbone).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fakescope.errors import ConfigError


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads for ``model``."""
    name = getattr(model, "cam_layer", None)
    if isinstance(name, str):
        return model.get_submodule(name)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ConfigError(f"{type(model).__name__} has no convolution: Grad-CAM needs a convolutional detector")
    return convs[-1]


@torch.enable_grad()
def grad_cam(model, x: Tensor, layer: nn.Module | None = None) -> Tensor:
    """Heatmaps ``[N, H, W]`` in [0, 1] for the model inputs ``x`` (``[N, 3, H, W]`` uint8 or float pixels)."""
    layer = layer or cam_layer(model)
    store: dict[str, Tensor] = {}
    hook = layer.register_forward_hook(lambda mod, inp, out: store.__setitem__("a", out))
    try:
        logits = model(model.normalize(x)).reshape(len(x), -1)[:, 0]
    finally:
        hook.remove()
    acts = store.get("a")
    if acts is None or acts.dim() != 4 or min(acts.shape[-2:]) < 2:
        raise ConfigError(f"{type(model).__name__}: the Grad-CAM layer gives no spatial map "
                          f"({None if acts is None else tuple(acts.shape)})")
    grads = torch.autograd.grad(logits.sum(), acts)[0]
    weights = grads.mean(dim=(2, 3), keepdim=True)  # Eq. 1: w_c = mean over the map of dy/dA_c
    cam = F.relu((weights * acts).sum(dim=1, keepdim=True))  # Eq. 2
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).detach()
