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
runs its frozen backbone without gradients and is refused.

SDR (a clip model) is explained by gradient saliency instead (:func:`saliency`; its ``explanation = "saliency"``):
Grad-CAM of its I3D encoder was not faithful to what it detects. Trained to tell clips with a flickering square
from still ones (``tests/test_explain.py``), its Grad-CAM was higher inside the square than outside for only
42-68% of the test clips at some seeds (the next-to-last stage; 68-100% at the last stage), against 96-100% for
the input gradient: the encoder's channels mix evidence for both classes, and averaging their gradients over time
and space (Grad-CAM's Eq. 1) cancels the temporal evidence that flicker is.
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


@torch.enable_grad()
def saliency(model, x: Tensor, pool: int | None = None) -> Tensor:
    """Gradient saliency (Simonyan et al., ICLR 2014 workshop, Sec. 3.1): ``|dy/dx|`` of the fake logit ``y``
    with respect to the (normalised) input pixels, the maximum over colour channels (their Eq. 5 reads the
    maximum), a clip's averaged over time, then smoothed by a ``pool`` x ``pool`` mean (default: an odd size near
    a tenth of the input side, at least 3) and scaled to [0, 1] per input. ``x``: ``[N, 3, H, W]`` or a clip
    model's ``[N, T, 3, H, W]``, uint8 or float pixels. Returns ``[N, H, W]``."""
    xin = model.normalize(x).detach().requires_grad_(True)
    logits = model(xin).reshape(len(x), -1)[:, 0]
    grads = torch.autograd.grad(logits.sum(), xin)[0].abs()
    chan = grads.dim() - 3  # the colour axis: 1 for images, 2 for clips
    sal = grads.amax(dim=chan)
    if sal.dim() == 4:  # a clip: [N, T, H, W] averaged over time
        sal = sal.mean(dim=1)
    side = min(sal.shape[-2:])
    pool = pool or max(3, (side // 10) | 1)
    sal = F.avg_pool2d(sal[:, None], pool, stride=1, padding=pool // 2, count_include_pad=False)[:, 0]
    peak = sal.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (sal / peak).detach()


def explain(model, x: Tensor) -> Tensor:
    """Heatmaps ``[N, H, W]`` in [0, 1]: the model's own attention map where it has one (FSSNet's SBCA),
    upsampled to the input; gradient saliency where the model asks for it (``explanation = "saliency"``: SDR);
    else :func:`grad_cam`."""
    if getattr(model, "explanation", None) == "saliency":
        return saliency(model, x)
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
