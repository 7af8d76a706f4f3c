"""SDR's TPA: the spatial perturbations of its K branches, drawn once per clip and applied identically to every
frame, as batched tensor ops on the clip's device (spec 3.3 step 1, decision C3)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from fakescope.models.layers.dct import dct_matrix
from fakescope.schema import Strict

Perturbation = Literal["none", "blur", "jpeg", "color", "rescale", "noise"]
TPA_KINDS: tuple[str, ...] = ("none", "blur", "jpeg", "color", "rescale", "noise")


# ======================================================================== TPA
class TPAConfig(Strict):
    """Ranges of the TPA perturbations (decision C3; the paper's list was not recovered: TODO)."""

    blur_sigma: tuple[float, float] = Field(default=(0.5, 2.0), description="Gaussian blur sigma, pixels")
    jpeg_quality: tuple[int, int] = Field(default=(40, 90), description="JPEG re-compression quality")
    brightness: float = Field(default=0.3, ge=0, lt=1, description="factor drawn in [1-b, 1+b]")
    contrast: float = Field(default=0.3, ge=0, lt=1)
    saturation: float = Field(default=0.3, ge=0, lt=1)
    hue: float = Field(default=0.05, ge=0, le=0.5, description="hue shift in turns, drawn in [-h, h]")
    rescale: tuple[float, float] = Field(default=(0.4, 0.8), description="down-then-up scale factor")
    noise_sigma: tuple[float, float] = Field(default=(0.01, 0.05), description="Gaussian noise sigma on [0, 1]")

    @model_validator(mode="after")
    def _ranges(self) -> "TPAConfig":
        for name in ("blur_sigma", "jpeg_quality", "rescale", "noise_sigma"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"tpa.{name}: the range ({lo}, {hi}) is reversed")
        if self.blur_sigma[0] <= 0 or not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError("tpa: blur_sigma must be positive and jpeg_quality within 1..100")
        if not 0 < self.rescale[0] <= self.rescale[1] <= 1 or self.noise_sigma[0] < 0:
            raise ValueError("tpa: rescale must lie in (0, 1] and noise_sigma be non-negative")
        return self


def _uniform(n: int, lo: float, hi: float, device, generator=None) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, device=device, generator=generator)


def draw_tpa_params(kind: str, n: int, cfg: TPAConfig, device=None, generator: torch.Generator | None = None
                    ) -> dict[str, Tensor]:
    """One parameter setting per clip (``n`` clips) for perturbation ``kind``."""
    if kind == "none":
        return {}
    if kind == "blur":
        return {"sigma": _uniform(n, *cfg.blur_sigma, device, generator)}
    if kind == "jpeg":
        lo, hi = cfg.jpeg_quality
        return {"quality": torch.randint(lo, hi + 1, (n,), device=device, generator=generator).float()}
    if kind == "color":
        return {
            "brightness": _uniform(n, 1 - cfg.brightness, 1 + cfg.brightness, device, generator),
            "contrast": _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, device, generator),
            "saturation": _uniform(n, 1 - cfg.saturation, 1 + cfg.saturation, device, generator),
            "hue": _uniform(n, -cfg.hue, cfg.hue, device, generator),
        }
    if kind == "rescale":
        return {"scale": _uniform(n, *cfg.rescale, device, generator)}
    if kind == "noise":
        return {"sigma": _uniform(n, *cfg.noise_sigma, device, generator)}
    raise ValueError(f"unknown TPA perturbation '{kind}' (known: {', '.join(TPA_KINDS)})")


def _per_clip(v: Tensor) -> Tensor:
    """``[B]`` -> ``[B, 1, 1, 1, 1]``, to broadcast over a clip ``[B, T, 3, H, W]``."""
    return v.view(-1, 1, 1, 1, 1).to(torch.float32)


def tpa_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur with one sigma per clip (depthwise conv, reflected borders)."""
    b, t, c, h, w = x.shape
    radius = max(1, min(int(math.ceil(3.0 * float(sigma.max()))), h - 1, w - 1))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    kern = torch.exp(-taps[None] ** 2 / (2.0 * sigma.to(x.device, torch.float32)[:, None] ** 2))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(t * c, dim=0)  # one kernel per (clip, frame, channel)
    y = x.reshape(1, b * t * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), kern[:, None, None, :], groups=b * t * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), kern[:, None, :, None], groups=b * t * c)
    return y.view(b, t, c, h, w)


# JPEG (ITU-T T.81 Annex K) base quantisation tables, scaled by quality as libjpeg does
_LUMA_Q = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
           14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
           49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
_CHROMA_Q = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
             47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32


def jpeg_quant_tables(quality: Tensor) -> tuple[Tensor, Tensor]:
    """libjpeg's quality scaling of the base tables: ``[N]`` qualities -> luma, chroma ``[N, 8, 8]``."""
    q = quality.to(torch.float32).clamp(1, 100)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)[:, None, None]
    out = []
    for base in (_LUMA_Q, _CHROMA_Q):
        table = torch.tensor(base, dtype=torch.float32, device=quality.device).view(1, 8, 8)
        out.append(torch.floor((table * scale + 50.0) / 100.0).clamp(1, 255))
    return out[0], out[1]


def _quantise_blocks(plane: Tensor, table: Tensor) -> Tensor:
    """``plane`` [N, H, W] (level-shifted, H and W multiples of 8) through DCT, quantise, dequantise, IDCT."""
    n, h, w = plane.shape
    d = dct_matrix(8, torch.float32, plane.device)  # orthonormal DCT-II: JPEG's forward DCT
    blocks = plane.view(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
    coef = d @ blocks @ d.T
    coef = torch.round(coef / table[:, None, None]) * table[:, None, None]
    return (d.T @ coef @ d).permute(0, 1, 3, 2, 4).reshape(n, h, w)


def tpa_jpeg(x: Tensor, quality: Tensor) -> Tensor:
    """JPEG re-compression simulated on the device, one quality per clip.

    The lossy steps of baseline JPEG as libjpeg/PIL run them by default: BT.601
    full-range YCbCr, 4:2:0 chroma subsampling (2x2 mean), 8x8 DCT, quantisation
    with the quality-scaled standard tables, and back (chroma upsampled
    bilinearly, like libjpeg's "fancy" upsampling). The entropy coding is
    lossless and skipped. Not differentiable (rounding); inputs need no gradient.
    """
    b, t, c, h, w = x.shape
    img = x.reshape(b * t, 3, h, w).to(torch.float32) * 255.0
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:  # JPEG pads to whole MCUs by repeating the edge
        img = F.pad(img, (0, pw, 0, ph), mode="replicate")
    r, g, bl = img.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * bl
    cb = -0.168736 * r - 0.331264 * g + 0.5 * bl + 128.0
    cr = 0.5 * r - 0.418688 * g - 0.081312 * bl + 128.0
    y, cb, cr = y.round(), cb.round(), cr.round()  # the encoder holds 8-bit components
    luma_q, chroma_q = jpeg_quant_tables(quality.to(x.device).repeat_interleave(t))
    # the decoder rounds and range-limits each component to 0..255 after the inverse DCT, and again after
    # the chroma upsampling, as libjpeg does
    y = (_quantise_blocks(y - 128.0, luma_q) + 128.0).round().clamp(0, 255)
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2).round()
    hh, hw = chroma.shape[-2:]
    chroma = _quantise_blocks(chroma.reshape(-1, hh, hw) - 128.0, chroma_q.repeat_interleave(2, 0)) + 128.0
    # upsampled from the chroma samples that cover the image (ceil(H/2) x ceil(W/2)), edges replicated
    ch, cw = (h + 1) // 2, (w + 1) // 2
    chroma = chroma.round().clamp(0, 255).view(b * t, 2, hh, hw)[..., :ch, :cw]
    chroma = F.interpolate(chroma, size=(2 * ch, 2 * cw), mode="bilinear", align_corners=False)
    chroma = chroma.round()
    y = y[..., :h, :w]
    cb, cr = chroma[:, 0, :h, :w] - 128.0, chroma[:, 1, :h, :w] - 128.0
    rgb = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    rgb = torch.round(rgb.clamp(0, 255)) / 255.0
    return rgb.view(b, t, c, h, w).to(x.dtype)


_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.595716, -0.274453, -0.321263), (0.211456, -0.522591, 0.311135))


def _gray(x: Tensor) -> Tensor:
    """ITU-R 601 luma of ``[..., 3, H, W]``, keeping the channel axis."""
    return (0.299 * x[..., 0:1, :, :] + 0.587 * x[..., 1:2, :, :] + 0.114 * x[..., 2:3, :, :])


def tpa_color(x: Tensor, brightness: Tensor, contrast: Tensor, saturation: Tensor, hue: Tensor) -> Tensor:
    """Colour jitter with one factor set per clip: brightness, contrast, saturation, then hue.

    Brightness, contrast and saturation are the blends of PIL's ``ImageEnhance``
    (and torchvision's ``ColorJitter``); the contrast reference grey is the mean
    luma of the whole clip, so every frame gets the same affine map. The hue
    shift is a rotation of the chroma plane in YIQ space by ``2 pi hue`` (a linear
    stand-in for the HSV hue shift, applied identically to every frame).
    """
    x = (x * _per_clip(brightness)).clamp(0, 1)
    mean = _gray(x).mean(dim=(1, 2, 3, 4), keepdim=True)
    x = (_per_clip(contrast) * x + (1 - _per_clip(contrast)) * mean).clamp(0, 1)
    x = (_per_clip(saturation) * x + (1 - _per_clip(saturation)) * _gray(x)).clamp(0, 1)
    to_yiq = torch.tensor(_RGB_TO_YIQ, dtype=torch.float32, device=x.device)
    theta = 2 * math.pi * hue.to(x.device, torch.float32)
    rot = torch.zeros(len(theta), 3, 3, device=x.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = torch.cos(theta), -torch.sin(theta)
    rot[:, 2, 1], rot[:, 2, 2] = torch.sin(theta), torch.cos(theta)
    m = torch.linalg.inv(to_yiq) @ rot @ to_yiq  # [B, 3, 3]
    return torch.einsum("bij,btjhw->btihw", m, x.to(torch.float32)).clamp(0, 1).to(x.dtype)


def tpa_rescale(x: Tensor, scale: Tensor) -> Tensor:
    """Down-then-up rescaling (antialiased bilinear, as PIL), one factor per clip; all frames of a clip at once."""
    b, t, c, h, w = x.shape
    out = torch.empty_like(x)
    for i, s in enumerate(scale.tolist()):
        small = (max(1, round(h * s)), max(1, round(w * s)))
        y = F.interpolate(x[i], size=small, mode="bilinear", antialias=True, align_corners=False)
        out[i] = F.interpolate(y, size=(h, w), mode="bilinear", antialias=False, align_corners=False)
    return out.clamp(0, 1)


def tpa_noise(x: Tensor, sigma: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Additive Gaussian noise: one noise field per clip, the same in every frame (no temporal flicker added)."""
    b, t, c, h, w = x.shape
    field = torch.randn(b, 1, c, h, w, device=x.device, generator=generator, dtype=torch.float32)
    return (x + _per_clip(sigma) * field).clamp(0, 1).to(x.dtype)


def fixed_tpa_params(kind: str, n: int, cfg: TPAConfig, device=None) -> dict[str, Tensor]:
    """A fixed, mid-strength setting of perturbation ``kind`` for ``n`` clips (inference over perturbed views).

    The middle of each range (blur sigma, JPEG quality, rescaling, noise sigma); colour jitter at half
    of each maximal deviation, upwards (the middle of its ranges would be the identity).
    """
    def full(v: float) -> Tensor:
        return torch.full((n,), float(v), device=device)

    mid = {"blur": lambda: {"sigma": full(sum(cfg.blur_sigma) / 2)},
           "jpeg": lambda: {"quality": full(round(sum(cfg.jpeg_quality) / 2))},
           "color": lambda: {"brightness": full(1 + cfg.brightness / 2), "contrast": full(1 + cfg.contrast / 2),
                             "saturation": full(1 + cfg.saturation / 2), "hue": full(cfg.hue / 2)},
           "rescale": lambda: {"scale": full(sum(cfg.rescale) / 2)},
           "noise": lambda: {"sigma": full(sum(cfg.noise_sigma) / 2)},
           "none": dict}
    if kind not in mid:
        raise ValueError(f"unknown TPA perturbation '{kind}' (known: {', '.join(TPA_KINDS)})")
    return mid[kind]()


def fixed_tpa(kind: str, x: Tensor, cfg: TPAConfig) -> Tensor:
    """``kind`` at its fixed setting (:func:`fixed_tpa_params`) on clips ``x`` in [0, 1]: deterministic, and the
    same for a clip whatever the batch (the noise branch adds one field, drawn from seed 0, to every clip)."""
    params = fixed_tpa_params(kind, x.shape[0], cfg, x.device)
    if kind == "noise":
        g = torch.Generator(device=x.device).manual_seed(0)
        field = torch.randn(1, 1, *x.shape[2:], device=x.device, generator=g, dtype=torch.float32)
        return (x + _per_clip(params["sigma"]) * field).clamp(0, 1).to(x.dtype)
    return apply_tpa(kind, x, params)


def apply_tpa(kind: str, x: Tensor, params: dict[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
    """Perturb clips ``x`` ([B, T, 3, H, W] in [0, 1]) with ``kind``; every frame of a clip gets the same operation."""
    if kind == "none":
        return x
    if kind == "blur":
        return tpa_blur(x, params["sigma"])
    if kind == "jpeg":
        return tpa_jpeg(x, params["quality"])
    if kind == "color":
        return tpa_color(x, **params)
    if kind == "rescale":
        return tpa_rescale(x, params["scale"])
    if kind == "noise":
        return tpa_noise(x, params["sigma"], generator)
    raise ValueError(f"unknown TPA perturbation '{kind}' (known: {', '.join(TPA_KINDS)})")


