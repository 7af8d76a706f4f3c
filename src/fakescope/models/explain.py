"""Where a detector looked: Grad-CAM heatmaps for the convolutional detectors.

Grad-CAM (Selvaraju et al., ICCV 2017): with ``A`` the activations of a convolutional layer (``[C, h, w]``) and
``y`` the fake logit, the map is ``ReLU(sum_c w_c A_c)`` with ``w_c`` the spatial mean of ``dy/dA_c``
(their Eq. 1-2), upsampled to the input and scaled to [0, 1] per image. The layer is the last
convolution the forward pass runs whose output is still a spatial map, inside the module the model's
``cam_layer`` names (a dotted module name: a convolution, or a stream holding several), else in the whole model
(for CNNDetection, NPR, EfficientNet-B4 and Xception at their input sizes, the last convolution of the
backbone). SFCL-HCMF names its spatial stream (at 380 px, the EfficientNet's top convolution, 12 x 12). FSSNet is
explained by its own attention instead (:func:`explain`): where SBCA's spatial queries looked in the frequency
stream (``FSSNet.attention_map``). The CLIP detector (UniversalFakeDetect)
runs its frozen backbone without gradients and is refused. SDR (a clip model) names its layer: the I3D encoder's
next-to-last stage, whose 3-D map (averaged over time) is twice as fine as the last stage's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fakescope.errors import ConfigError


def cam_layer(model: nn.Module) -> nn.Module | None:
    """The layer Grad-CAM reads for ``model`` when it names one (``cam_layer``, a dotted module name); ``None``:
    the last convolution run in the forward pass whose output is still a spatial map."""
    name = getattr(model, "cam_layer", None)
    return model.get_submodule(name) if isinstance(name, str) else None  # a convolution, or a module holding some


@torch.enable_grad()
def grad_cam(model, x: Tensor, layer: nn.Module | None = None) -> Tensor:
    """Heatmaps ``[N, H, W]`` in [0, 1] for the model inputs ``x`` (``[N, 3, H, W]`` uint8 or float pixels; a
    clip model's ``[N, T, 3, H, W]``: its 3-D map averaged over time)."""
    layer = layer or cam_layer(model)
    # a named convolution, else the convolutions inside the named module (a stream), else all of the model's
    convs = [m for m in (layer or model).modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    if not convs:
        raise ConfigError(f"{type(model).__name__} has no convolution: Grad-CAM needs a convolutional detector")
    seen: list[Tensor] = []  # outputs in the order the forward pass ran them

    def keep(mod, inp, out) -> None:
        if isinstance(out, Tensor) and out.dim() in (4, 5) and min(out.shape[-2:]) >= 2:
            seen.append(out)

    hooks = [m.register_forward_hook(keep) for m in convs]
    try:
        xin = model.normalize(x).detach().requires_grad_(True)  # a graph also through frozen backbones
        logits = model(xin).reshape(len(x), -1)[:, 0]
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise ConfigError(f"{type(model).__name__}: no convolution gives a spatial map at this input size")
    acts = seen[-1]
    if not (acts.requires_grad and logits.requires_grad):
        raise ConfigError(f"{type(model).__name__}: no gradient reaches its convolutions (a backbone run without "
                          "gradients): Grad-CAM cannot explain it")
    grads = torch.autograd.grad(logits.sum(), acts)[0]
    over = tuple(range(2, acts.dim()))  # the map's positions: (h, w), or (t, h, w) for a clip model
    weights = grads.mean(dim=over, keepdim=True)  # Eq. 1: w_c = mean over the map of dy/dA_c
    cam = F.relu((weights * acts).sum(dim=1, keepdim=True))  # Eq. 2
    if cam.dim() == 5:  # a clip: the map averaged over time, [N, 1, h, w]
        cam = cam.mean(dim=2)
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).detach()


def explain(model, x: Tensor) -> Tensor:
    """Heatmaps ``[N, H, W]`` in [0, 1]: the model's own attention map where it has one (FSSNet's SBCA),
    upsampled to the input; else :func:`grad_cam`."""
    if hasattr(model, "attention_map"):
        try:
            att = model.attention_map(model.normalize(x))
        except ValueError:  # an ablation without SBCA
            return grad_cam(model, x)
        att = F.interpolate(att[:, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
        lo = att.flatten(1).amin(dim=1)[:, None, None]
        span = (att.flatten(1).amax(dim=1)[:, None, None] - lo).clamp_min(1e-12)
        return ((att - lo) / span).detach()
    return grad_cam(model, x)
