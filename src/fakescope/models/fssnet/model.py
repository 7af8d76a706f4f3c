"""FSSNet: Su & Chen, "FSSNet: Frequency-Spatial Synergy Network for Universal Deepfake Detection", ICIC 2025.

Two copies of the input go to two DINOv2 ViT-B/14 backbones that share no weights:

* ``I_s``, the image itself, to the spatial (RGB) backbone;
* ``I'_f = iFFT(FFT(I_f) * M)``, the image with one band of frequencies kept
  (eqs. 3-5, :mod:`fakescope.models.fssnet.fft`), to the frequency backbone.

The patch tokens of each backbone (after its final LayerNorm, CLS dropped) are
reshaped to maps ``[B, 768, 18, 18]`` at 252 px. **SBCA** (scale-aware bidirectional
cross attention, eqs. 6-10) lets each stream attend to the other, with one
convolutional Q/K/V projection of kernel ``2*beta + 1`` per head ``beta``. **AFF**
(adaptive feature fusion, eq. 11) builds one attention map from channel and spatial
attention, applies it to both streams and mixes them with ``sigmoid(theta)``
(``theta = 0`` at init, so the mix starts at 0.5). Global average pooling and a
linear layer give one logit (sigmoid = P(fake)).

Where the paper is silent, the choices are the spec's decisions B1-B10, each a
config field of :class:`FSSNetConfig`:

* B1 band masks: ``band``, ``band_cutoffs``, ``fft_input``, ``ifft_part``;
* B2 backbones: ``backbone``, ``trainable_blocks``, ``train_final_norm`` (default false: the
  paper fine-tunes "only the last two blocks", so each backbone's final LayerNorm stays frozen;
  the spec's B2 had suggested training it too);
* B3 SBCA: ``sbca``, ``sbca_heads``, ``sbca_head_dim``, ``sbca_norm``. Keys and values come
  from the *other* stream: eqs. 9-10 as printed read ``K = Conv(X_0; k)`` and
  ``V = Conv(X_Q; k)``, i.e. from the query's own stream (``X_0`` read as a garbled ``X_Q``),
  which would make each direction self-attention; we follow the bidirectional definitions of
  eqs. 6-7 (``Attn_s2f(Q_s, K_f, V_f)``, ``Attn_f2s(Q_f, K_s, V_s)``) instead;
* B4 AFF: ``aff``, ``aff_reduction``, ``aff_spatial_kernel``;
* B5 classifier: ``pooling``;
* B9 ablations: ``streams`` (RGB only / frequency only), ``sbca: false``, ``aff: false``;
* B6-B8 (optimiser, early stopping, crops) live in the experiment configs
  (``configs/fssnet/*.yaml``); B10 (reporting) in :mod:`fakescope.eval.paper_fssnet`.

Modules: the network, its config and the oneDNN linear layer (:mod:`.model`), the FFT band masks
(:mod:`.fft`), SBCA and AFF (:mod:`.attention`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from torch import Tensor, nn

from fakescope.errors import ConfigError
from fakescope.models.base import DetectorConfig, DetectorModel
from fakescope.models.fssnet.attention import AFF, SBCA
from fakescope.models.fssnet.fft import DEFAULT_CUTOFFS, BandFilter, check_cutoffs
from fakescope.models.registry import register_model, register_variant
from fakescope.models.layers.backbones import HUB_ARCHITECTURES, hf_backbone
from fakescope.preprocess import PreprocessConfig

STREAMS = ("rgb", "freq")
DEFAULT_PATCH = 14


def _fssnet_preprocess() -> PreprocessConfig:
    # B8: 252 px crops (18 x 14) at native resolution; a smaller image is first
    # resized so that its short side is 256 (the ForenSynths image size).
    return PreprocessConfig(input_size=252, policy="crop", resize_to=256, interpolation="bilinear")


class FSSNetConfig(DetectorConfig):
    preprocess: PreprocessConfig = Field(default_factory=_fssnet_preprocess)
    weights: str | dict[Literal["rgb", "freq"], str] | None = Field(
        default=None,
        description="local DINOv2 weights (save_pretrained folder or .safetensors file): one path for both "
                    "backbones, or {rgb: path, freq: path}",
    )
    # -- B2: backbones
    backbone: str = Field(default="facebook/dinov2-base", description="Hugging Face hub name of both backbones")
    backbone_overrides: dict[str, Any] = Field(
        default_factory=dict, description="architecture overrides for random init (small configs and tests)")
    trainable_blocks: int | None = Field(
        default=2, ge=0, description="fine-tune the last N transformer blocks of each backbone; null: all of it")
    train_final_norm: bool = Field(
        default=False, description="B2: also fine-tune each backbone's final LayerNorm. Default false: the paper "
        "fine-tunes \"only the last two blocks\" (section 4.1), and the final norm is not a block")
    streams: Literal["both", "rgb", "freq"] = Field(
        default="both", description="B9 ablation: 'rgb' or 'freq' = one backbone, average pooling, linear layer")
    # -- B1: frequency band selection
    band: Literal["low", "mid", "high"] = Field(default="low", description="frequency band kept by the mask M")
    band_cutoffs: tuple[float, float] = Field(
        default=DEFAULT_CUTOFFS, description="low/mid and mid/high radii in cycles per pixel (Nyquist = 0.5)")
    fft_input: Literal["normalized", "pixels"] = Field(
        default="normalized", description="filter the normalised image (B1) or the [0, 1] pixels, then normalise")
    ifft_part: Literal["real", "abs"] = Field(default="real", description="what is kept of the complex iFFT")
    # -- B3: SBCA
    sbca: bool = Field(default=True, description="B9 ablation: false = no cross attention (F-bar = F)")
    sbca_heads: int = Field(default=4, ge=1, description="heads; head b uses kernels 2b+1 (3, 5, 7, 9)")
    sbca_head_dim: int | None = Field(default=None, ge=1, description="channels per head; null: width / heads")
    sbca_norm: bool = Field(default=True, description="LayerNorm over channels after each residual")
    # -- B4: AFF
    aff: bool = Field(default=True, description="B9 ablation: false = F_final is the mean of the two streams")
    aff_reduction: int = Field(default=16, ge=1, description="channel-attention MLP reduction (768 -> 48 -> 768)")
    aff_spatial_kernel: int = Field(default=7, ge=1, description="spatial-attention convolution kernel")
    # -- B5: classifier
    pooling: Literal["avg", "max"] = Field(default="avg", description="pooling of F_final before the linear layer")
    # -- speed (no effect on what is computed)
    cpu_linear: Literal["onednn", "aten"] = Field(
        default="onednn",
        description="fp32 CPU matmuls of the backbones when no gradient is needed (inference, frozen blocks): "
                    "'onednn' runs them on oneDNN (about 2x PyTorch's default MKL path on AMD CPUs), 'aten' on "
                    "PyTorch's default; the results agree up to fp32 rounding")

    @field_validator("band_cutoffs")
    @classmethod
    def _cutoffs(cls, value: tuple[float, float]) -> tuple[float, float]:
        return check_cutoffs(value)

    @field_validator("aff_spatial_kernel")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"the spatial-attention kernel must be odd, got {value}")
        return value

    @property
    def patch_size(self) -> int:
        """The backbones' patch size as the config declares it (checked again against loaded weights)."""
        if "patch_size" in self.backbone_overrides:
            return int(self.backbone_overrides["patch_size"])
        arch = HUB_ARCHITECTURES.get(self.backbone)
        return int(arch[1].get("patch_size", DEFAULT_PATCH)) if arch else DEFAULT_PATCH

    @property
    def used_streams(self) -> tuple[str, ...]:
        return STREAMS if self.streams == "both" else (self.streams,)

    @model_validator(mode="after")
    def _consistent(self) -> "FSSNetConfig":
        p, s = self.patch_size, self.preprocess.input_size
        if s % p:
            lo, hi = s // p * p, (s // p + 1) * p
            _fail(("preprocess", "input_size"), s, "patch_multiple",
                  f"the input size must be a multiple of the backbone's patch size {p} (DINOv2 ViT-B/14: 252 = "
                  f"18 x 14 is the paper's); {s} is not, use {lo if lo else hi} or {hi}")
        if self.streams != "both" and (self.sbca or self.aff):
            _fail(("streams",), self.streams, "single_stream",
                  f"streams '{self.streams}' is the one-backbone ablation (B9: backbone, average pooling, linear "
                  "layer); SBCA and AFF need both streams, so set sbca: false and aff: false")
        if isinstance(self.weights, dict):
            missing = [k for k in self.used_streams if k not in self.weights]
            if missing:
                _fail(("weights",), self.weights, "weights_per_stream",
                      f"per-backbone weights need a path for every backbone in use; missing: {', '.join(missing)}")
        return self


def _fail(loc: tuple[str, ...], value: Any, kind: str, message: str) -> None:
    """Raise a validation error located at ``loc`` (so the config loader names the right key)."""
    raise ValidationError.from_exception_data(
        "FSSNetConfig", [InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)])


# ------------------------------------------------------------ fast linear
def onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` whose fp32 CPU forward runs on oneDNN when no gradient is needed.

    PyTorch sends fp32 ``F.linear`` on the CPU to MKL, which on AMD CPUs runs about half
    as fast as oneDNN's GEMM (measured by ``benchmarks/fssnet_roofline.py``). This class
    keeps the same parameters and state-dict keys, and falls back to ``F.linear``
    whenever autograd needs the product (the trainable blocks), under autocast (which
    already sends bf16 matmuls to oneDNN), under ``torch.compile`` (Inductor chooses
    its own kernels), and on other devices or dtypes.
    """

    @classmethod
    def wrap(cls, linear: nn.Linear) -> "OneDNNLinear":
        new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        new.weight = linear.weight  # the same Parameter objects: no copy, same state dict
        new.bias = linear.bias
        new.train(linear.training)
        return new

    def forward(self, x: Tensor) -> Tensor:
        w, b = self.weight, self.bias
        if (x.device.type == "cpu" and x.dtype == w.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling()
                and not (torch.is_grad_enabled()
                         and (x.requires_grad or w.requires_grad or (b is not None and b.requires_grad)))):
            return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
        return F.linear(x, w, b)


def _use_onednn_linear(module: nn.Module) -> None:
    """Swap every ``nn.Linear`` below ``module`` for an :class:`OneDNNLinear` sharing its parameters."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, OneDNNLinear.wrap(child))


# ------------------------------------------------------------------ model
def _freeze(backbone: nn.Module, trainable_blocks: int | None, train_final_norm: bool, name: str) -> None:
    """B2: fine-tune the last ``trainable_blocks`` blocks (+ the final norm); everything else frozen."""
    mask_token = getattr(backbone.embeddings, "mask_token", None)
    if trainable_blocks is not None:
        layers = backbone.encoder.layer
        if trainable_blocks > len(layers):
            raise ConfigError(f"fssnet: trainable_blocks={trainable_blocks}, but the {name} backbone has only "
                              f"{len(layers)} blocks")
        backbone.requires_grad_(False)
        for layer in layers[len(layers) - trainable_blocks:]:
            layer.requires_grad_(True)
        backbone.layernorm.requires_grad_(train_final_norm)
    if mask_token is not None:
        mask_token.requires_grad_(False)  # only used for masked-image pre-training, never in forward


@register_model(
    "fssnet",
    paper="Su & Chen, FSSNet: Frequency-Spatial Synergy Network for Universal Deepfake Detection, ICIC 2025",
)
class FSSNet(DetectorModel):
    """FSSNet: dual DINOv2 (RGB + FFT band), SBCA cross attention and AFF fusion (Su & Chen, ICIC 2025)."""

    config_class = FSSNetConfig

    def __init__(self, cfg: FSSNetConfig) -> None:
        super().__init__(cfg)
        streams = cfg.used_streams
        if "rgb" in streams:
            self.backbone_rgb = self._build_backbone(cfg, "rgb")
        if "freq" in streams:
            self.band_filter = BandFilter(cfg.band, cfg.band_cutoffs, cfg.ifft_part)
            self.backbone_freq = self._build_backbone(cfg, "freq")
        dim = self._width()
        if cfg.sbca:
            heads = cfg.sbca_heads
            head_dim = cfg.sbca_head_dim or max(dim // heads, 1)
            self.sbca = SBCA(dim, heads, head_dim, cfg.sbca_norm)
        if cfg.aff:
            self.aff = AFF(dim, cfg.aff_reduction, cfg.aff_spatial_kernel)
        self.head = nn.Linear(dim, 1)

    # -- construction -------------------------------------------------------
    @staticmethod
    def _build_backbone(cfg: FSSNetConfig, stream: str) -> nn.Module:
        weights = cfg.weights.get(stream) if isinstance(cfg.weights, dict) else cfg.weights
        backbone = hf_backbone(cfg.backbone, pretrained=cfg.pretrained, weights=weights,
                               overrides=cfg.backbone_overrides, family="dinov2")
        c = backbone.config
        if getattr(c, "model_type", "") != "dinov2":
            raise ConfigError(f"fssnet: backbone '{cfg.backbone}' is a {c.model_type} model, not DINOv2")
        if c.patch_size != cfg.patch_size or cfg.preprocess.input_size % c.patch_size:
            raise ConfigError(f"fssnet: the {stream} backbone has patch size {c.patch_size}; preprocess.input_size "
                              f"{cfg.preprocess.input_size} must be a multiple of it")
        _freeze(backbone, cfg.trainable_blocks, cfg.train_final_norm, stream)
        if cfg.cpu_linear == "onednn" and onednn_linear_available():
            _use_onednn_linear(backbone)
        return backbone

    def _width(self) -> int:
        b = getattr(self, "backbone_rgb", None) or self.backbone_freq
        return int(b.config.hidden_size)

    # -- forward --------------------------------------------------------------
    @staticmethod
    def patch_map(backbone: nn.Module, x: Tensor) -> Tensor:
        """Patch tokens after the final LayerNorm, CLS dropped, as a map ``[B, D, H/p, W/p]`` (B2)."""
        p = backbone.config.patch_size
        h, w = x.shape[-2:]
        if h % p or w % p:
            raise ValueError(f"fssnet: input {h}x{w} is not a multiple of the patch size {p}")
        tokens = backbone(pixel_values=x).last_hidden_state
        gh, gw = h // p, w // p
        if tokens.shape[1] != 1 + gh * gw:
            raise RuntimeError(f"fssnet: expected 1 CLS + {gh * gw} patch tokens, got {tokens.shape[1]} tokens "
                               "(a backbone with register tokens is not supported)")
        return tokens[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, gh, gw)

    def frequency_copy(self, x: Tensor) -> Tensor:
        """``I'_f``: the normalised input with one frequency band kept (eqs. 3-5, B1)."""
        if self.cfg.fft_input == "normalized":
            return self.band_filter(x)
        mean, std = self._mean.to(x.dtype), self._std.to(x.dtype)
        return (self.band_filter(x * std + mean) - mean) / std

    def features(self, x: Tensor) -> Tensor:
        """``F_final`` (or the single stream's map in the one-backbone ablations), ``[B, D, h, w]``."""
        cfg = self.cfg
        if cfg.streams == "rgb":
            return self.patch_map(self.backbone_rgb, x)
        if cfg.streams == "freq":
            return self.patch_map(self.backbone_freq, self.frequency_copy(x))
        f_rgb = self.patch_map(self.backbone_rgb, x)                           # I_s -> F_rgb
        f_freq = self.patch_map(self.backbone_freq, self.frequency_copy(x))    # I'_f -> F_freq
        if cfg.sbca:
            f_rgb, f_freq = self.sbca(f_rgb, f_freq)                           # F-bar_rgb, F-bar_freq
        if cfg.aff:
            return self.aff(f_rgb, f_freq)                                     # eq. (11): F_final
        return 0.5 * (f_rgb + f_freq)                                          # B9 "w/o AFF"

    @torch.no_grad()
    def attention_map(self, x: Tensor) -> Tensor:
        """Where SBCA's spatial queries looked in the frequency stream (eq. 6): ``softmax(Q K^T / sqrt(d))``
        averaged over heads and queries, a distribution over the patch grid, ``[B, h, w]`` (sums to 1).

        ``x``: normalised pixels, as :meth:`forward` takes them. Needs both streams and SBCA.
        """
        if self.cfg.streams != "both" or not self.cfg.sbca:
            raise ValueError("the SBCA attention map needs both streams and SBCA")
        f_rgb = self.patch_map(self.backbone_rgb, x)
        f_freq = self.patch_map(self.backbone_freq, self.frequency_copy(x))
        att = self.sbca.s2f
        b, _, h, w = f_rgb.shape
        d = att.head_dim
        q = torch.stack([conv(f_rgb) for conv in att.q], dim=1).flatten(3).transpose(-2, -1)  # eq. (8)
        k = torch.stack([conv(f_freq) for conv in att.kv], dim=1)[:, :, :d].flatten(3).transpose(-2, -1)  # (9)
        weights = torch.softmax(q @ k.transpose(-2, -1) / d ** 0.5, dim=-1)  # [B, heads, h*w, h*w]
        return weights.mean(dim=(1, 2)).reshape(b, h, w)

    def forward_features(self, x: Tensor) -> Tensor:
        """``F_final`` pooled over positions (B5: average or max), ``[B, D]`` (D = backbone width)."""
        f = self.features(x)
        return f.mean(dim=(2, 3)) if self.cfg.pooling == "avg" else f.amax(dim=(2, 3))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features).squeeze(1)


# A tiny random-init config for tests: DINOv2 of width 32, 2 blocks, patch 14, 28 px input
# (a 2 x 2 token grid); only the last block is trainable, as in the paper's split (final norm frozen).
TINY_BACKBONE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2,
                 "patch_size": 14, "image_size": 28}
register_variant(
    "fssnet_tiny", "fssnet", description="fssnet, tiny random config for tests",
    backbone_overrides=TINY_BACKBONE, trainable_blocks=1, sbca_heads=2, aff_reduction=4,
    preprocess={"input_size": 28, "resize_to": 32},
)
