"""SFCL-HCMF: spatial-frequency collaborative learning with hierarchical cross-modal fusion.

Qiao, Tian, Wang, "Towards Generalizable Deepfake Detection with Spatial-Frequency Collaborative
Learning and Hierarchical Cross-Modal Fusion", arXiv 2504.17223 (2025). No official code; the
paper's full text was not available. This module follows the project's specification
(section 1) and settles its open points with decisions A1-A13, each a config field below.

Modules: this network and its config (:mod:`.model`), the block-DCT front end and SIDA
(:mod:`.spectral`), the local branch's frequency convolutions (:mod:`.local`), FAAE, HCMA and the SIDA
normalisation (:mod:`.fusion`); CNN-F is the shared Xception of :mod:`fakescope.models.layers.xception`.

Data flow (shapes at the paper's 380 px; ``h = w = 48`` after the DCT's padding to 384)::

    x (normalised RGB) --------------------------- EfficientNet-B4 blocks up to stride 8 -> X_S [56, 47, 47]
     |                                                                     |
     | pixels 0..255 -> YCbCr -> 8x8 block DCT -> zigzag  X~ [3, 64, h, w]  |
     |      |-- SIDA (eqs. 1-8) ------------------------------> D [2304]    |
     |      '-- norm -> inter-block multi-scale conv -> SBCM (eq. 9) -> X_f [192, h, w]
     |                                  '-> CNN-F (Xception) -> F [2048]   '-- FAAE (eqs. 10-13) -> Y_S
     |                                                               -> rest of B4 -> S [1792]
     '-> HCMA (eqs. 14-17): cross attention S' -> F' (1024-d, 8 tokens), residual, gate sigma(W_g D)
         -> Dropout -> Linear(1024, 2) -> cross-entropy (A9)

Decisions (spec section 5.1), each a field of :class:`SFCLHCMFConfig`:

* A1 ``dct_pad_mode``/``dct_pad_side``: the DCT path pads to a multiple of 8 (reflect, at the
  bottom/right so blocks stay anchored at the top-left like JPEG's); the backbone sees 380 px.
* A2 ``dct_level_shift`` (subtract 128), no quantisation, ``freq_norm`` before SBCM; SIDA
  reads the raw ``X~``.
* A3 ``sbcm_*``: Conv3d-BN-ReLU with kernels (7,1,1), (5,1,1), (3,1,1), stride 2 along the
  bands, channels 3 -> 16 -> 32 -> 64, adaptive pool to depth 3 -> 192 channels. Before it,
  ``inter_block: multiscale`` (our design for the abstract's "inter/intra-block multi-scale
  frequency convolution", whose inter-block half the spec does not cover): depthwise 3x3
  convolutions across neighbouring blocks at dilations 1, 2, 3 on the block-coefficient map,
  residual (:class:`fakescope.models.sfcl_hcmf.local.InterBlockConv`); ``none`` = the earlier design.
* A4 ``cnnf_*``: :class:`fakescope.models.layers.xception.CNNF`; ImageNet Xception weights from
  ``cnnf_weights`` (by hub name, ``hf-hub:timm/legacy_xception.tf_in1k``, or a local file; key
  map in that module). With ``pretrained: true`` an unset ``cnnf_weights`` is an error: random
  init must be asked for (``cnnf_weights: none``).
* A5 ``sida_norm``/``sida_log``: SIDA itself has no parameters; its vector is normalised
  (signed log1p of the chosen statistics, then LayerNorm) before the gate. A deviation
  from the paper, whose normalisation is unknown.
* A6 ``faae_stride``: FAAE at the end of B4's last stride-8 stage; X_f is resized
  bilinearly when the grids differ (transformers' B4 gives 47x47 at 380 px).
* A7 ``faae_output``: ``reinject`` puts Y_S back into B4 in place of X_S; ``pooled`` (the
  re-implementation's) pools Y_S, projects it to S's width and adds it to S.
* A8 ``hcma_tokens``: ``chunks`` splits Q, K, V (1024-d) into ``hcma_heads`` tokens of
  128 and attends across them (non-degenerate, keeps the paper's 1024x1024 W_Q/W_K/W_V);
  ``spatial`` uses B4's final map as queries and CNN-F's final map as keys/values.
* A9 ``dropout``/``head_outputs``: Dropout(0.5) -> Linear(1024, 2), cross-entropy.
  ``forward`` returns ``z_fake - z_real``, whose sigmoid is the softmax P(fake).

Ablations: ``use_local`` (no SBCM/CNN-F; FAAE must be off and HCMA keeps only its residual
and gate), ``use_sida`` (no gate), ``use_faae``, ``fusion: concat_mlp`` (HCMA replaced by
concatenation of S, F, D and Linear-ReLU).
"""

from __future__ import annotations

from typing import Any, Literal

import torch.nn.functional as F
from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from torch import Tensor, nn

from fakescope.models.base import DetectorConfig, DetectorModel, LossOutput
from fakescope.models.layers.xception import (IMAGENET_XCEPTION_HUB, XCEPTION_MIDDLE_BLOCKS, XCEPTION_WIDTHS, CNNF,
                                              load_imagenet_xception)
from fakescope.models.registry import register_model, register_variant
from fakescope.models.sfcl_hcmf.fusion import FAAE, HCMA, ConcatFusion, SIDANorm
from fakescope.models.sfcl_hcmf.local import SBCM, FrequencyNorm, InterBlockConv
from fakescope.models.sfcl_hcmf.spectral import frequency_tensor, sida, sida_dim
from fakescope.models.layers.backbones import hf_backbone
from fakescope.preprocess import PreprocessConfig

PAPER = ("Qiao, Tian, Wang, Towards Generalizable Deepfake Detection with Spatial-Frequency Collaborative Learning "
         "and Hierarchical Cross-Modal Fusion, arXiv 2504.17223, 2025")


class SFCLHCMFConfig(DetectorConfig):
    """SFCL-HCMF; ``pretrained``/``weights`` concern the EfficientNet-B4 spatial backbone."""

    preprocess: PreprocessConfig = Field(
        default_factory=lambda: PreprocessConfig(input_size=380, policy="resize", interpolation="bicubic"))
    # spatial backbone
    backbone: str = Field(default="google/efficientnet-b4", description="transformers EfficientNet by hub name")
    backbone_overrides: dict[str, Any] = Field(default_factory=dict,
                                               description="architecture overrides for random init (tiny configs)")
    # frequency front end (A1, A2)
    ycbcr: bool = Field(default=True, description="RGB -> YCbCr (BT.601) before the DCT")
    dct_level_shift: bool = Field(default=True, description="A2: subtract 128 before the DCT, as JPEG does")
    dct_pad_mode: Literal["reflect", "replicate", "constant"] = Field(default="reflect", description="A1")
    dct_pad_side: Literal["end", "center"] = Field(default="end", description="A1: pad bottom/right or both sides")
    freq_norm: Literal["band", "channel", "none"] = Field(
        default="band", description="A2: BatchNorm of X~ before SBCM, per colour-band pair (192) or per colour (3)")
    # global branch (A5)
    use_sida: bool = Field(default=True, description="ablation: the SIDA global branch and HCMA's gate")
    sida_eps: float = Field(default=1e-6, gt=0, description="sigma = sqrt(var + eps)")
    sida_norm: Literal["layernorm", "batchnorm", "none"] = Field(
        default="layernorm", description="A5: normalisation of D before the gate (batchnorm: no affine)")
    sida_log: list[Literal["mean", "std", "skewness", "kurtosis"]] = Field(
        default_factory=lambda: ["std", "kurtosis"], description="A5: statistics passed through sign(x)log1p|x|")
    # local branch (A3, A4)
    use_local: bool = Field(default=True, description="ablation: the SBCM + CNN-F local branch")
    sbcm_channels: list[int] = Field(default_factory=lambda: [16, 32, 64], min_length=1)
    sbcm_kernels: list[int] = Field(default_factory=lambda: [7, 5, 3], min_length=1)
    sbcm_stride: int = Field(default=2, ge=1, description="stride along the band axis")
    sbcm_depth: int = Field(default=3, ge=1, description="band depth after the adaptive pool")
    cnnf_widths: list[int] = Field(default_factory=lambda: list(XCEPTION_WIDTHS), min_length=5, max_length=5,
                                   description="block2, middle, block12, conv3, conv4 widths")
    cnnf_middle_blocks: int = Field(default=XCEPTION_MIDDLE_BLOCKS, ge=0)
    cnnf_weights: str | None = Field(
        default=None, description=f"A4: ImageNet Xception weights for CNN-F: '{IMAGENET_XCEPTION_HUB}' (by hub name), "
        "a local .safetensors/torch file or a folder holding model.safetensors; 'none' = random init on purpose. "
        "Unset with pretrained: true is an error (the paper's recipe starts CNN-F from ImageNet)")
    # inter-block multi-scale stage (the abstract's "inter/intra-block multi-scale frequency convolution")
    inter_block: Literal["multiscale", "none"] = Field(
        default="multiscale", description="'multiscale': depthwise convolutions across neighbouring 8x8 blocks at "
        "several dilations on the block-coefficient map, before SBCM; 'none': the earlier design (across blocks "
        "only CNN-F's single-scale Xception)")
    inter_block_kernel: int = Field(default=3, ge=1, description="kernel of the inter-block convolutions, in blocks")
    inter_block_dilations: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1,
                                             description="one branch per dilation: 3x3 kernels see 3, 5, 7 blocks")
    # shallow fusion (A6, A7)
    use_faae: bool = Field(default=True, description="ablation: FAAE shallow fusion")
    faae_stride: int = Field(default=8, ge=2, description="A6: FAAE after the last backbone block at this stride")
    faae_dim: int = Field(default=64, ge=1, description="d_m of eqs. 10-12")
    faae_output: Literal["reinject", "pooled"] = Field(default="reinject", description="A7")
    faae_gate_init: float = Field(default=0.0, description="gamma_S at init; sigmoid(0) = 0.5")
    # deep fusion (A8)
    fusion: Literal["hcma", "concat_mlp"] = Field(default="hcma", description="ablation: HCMA or concat + MLP")
    hcma_dim: int = Field(default=1024, ge=1)
    hcma_heads: int = Field(default=8, ge=1, description="A8: tokens per vector (chunks) or heads (spatial)")
    hcma_tokens: Literal["chunks", "spatial"] = Field(default="chunks", description="A8")
    # head (A9)
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    head_outputs: Literal[1, 2] = Field(default=2, description="A9: 2 = softmax + cross-entropy; 1 = sigmoid + BCE")

    @model_validator(mode="after")
    def _check(self) -> "SFCLHCMFConfig":
        if len(self.sbcm_channels) != len(self.sbcm_kernels):
            raise ValueError(f"sbcm_channels {self.sbcm_channels} and sbcm_kernels {self.sbcm_kernels} "
                             "must have the same length")
        if any(k < 1 or k % 2 == 0 for k in self.sbcm_kernels):
            raise ValueError(f"sbcm_kernels must be odd and positive, got {self.sbcm_kernels}")
        if self.use_faae and not self.use_local:
            raise ValueError("use_faae needs the local branch (FAAE attends over the SBCM map): "
                             "set use_faae: false with use_local: false")
        if self.hcma_dim % self.hcma_heads:
            raise ValueError(f"hcma_dim {self.hcma_dim} is not divisible by hcma_heads {self.hcma_heads}")
        if self.fusion == "concat_mlp" and self.hcma_tokens != "chunks":
            raise ValueError("hcma_tokens applies to fusion 'hcma' only")
        if self.inter_block_kernel % 2 == 0 or any(d < 1 for d in self.inter_block_dilations):
            raise ValueError(f"inter_block_kernel must be odd and inter_block_dilations positive, got "
                             f"{self.inter_block_kernel} and {self.inter_block_dilations}")
        if self.use_local and self.pretrained and self.cnnf_weights is None:
            raise ValidationError.from_exception_data("SFCLHCMFConfig", [InitErrorDetails(
                type=PydanticCustomError("cnnf_weights_unset", (
                    "cnnf_weights is not set, but the spatial backbone is pretrained: CNN-F starts from ImageNet "
                    f"Xception in the paper's recipe (decision A4). Set cnnf_weights: {IMAGENET_XCEPTION_HUB} (from the "
                    "Hugging Face hub), a local file (/path/to/model.safetensors), or `none` to train CNN-F from "
                    "random weights on purpose")), loc=("cnnf_weights",), input=None)])
        return self

    @property
    def cnnf_source(self) -> str | None:
        """Where CNN-F's ImageNet weights come from; None = random init (unset, or 'none')."""
        return None if self.cnnf_weights is None or self.cnnf_weights.strip().lower() == "none" else self.cnnf_weights


# ------------------------------------------------------------------- model
@register_model("sfcl_hcmf", paper=PAPER,
                description="SFCL-HCMF: EfficientNet-B4 + block-DCT local (SBCM, CNN-F) and global (SIDA) "
                            "branches, FAAE and HCMA fusion")
class SFCLHCMF(DetectorModel):
    """SFCL-HCMF face-forgery detector (Qiao, Tian, Wang, arXiv 2504.17223), reconstructed per spec A1-A13."""

    config_class = SFCLHCMFConfig
    input_domain = "face"  # face crops (FF++, Celeb-DF v2, DFDC): inference detects and crops the face first
    channels, bands = 3, 64
    cam_layer = "spatial"  # Grad-CAM reads the spatial stream (fakescope.models.explain)

    def __init__(self, cfg: SFCLHCMFConfig) -> None:
        super().__init__(cfg)
        self.spatial = hf_backbone(cfg.backbone, pretrained=cfg.pretrained, weights=cfg.weights,
                                   overrides=cfg.backbone_overrides, family="efficientnet")
        self.split, shallow_channels = self._stride_split(cfg.faae_stride)
        s_dim = self.spatial.encoder.top_conv.out_channels
        self.cnnf_init = "random"
        if cfg.use_local:
            self.freq_norm = FrequencyNorm(cfg.freq_norm, self.channels, self.bands)
            if cfg.inter_block == "multiscale":
                self.inter_block = InterBlockConv(self.channels, self.bands, cfg.inter_block_kernel,
                                                  cfg.inter_block_dilations)
            self.sbcm = SBCM(self.channels, cfg.sbcm_channels, cfg.sbcm_kernels, cfg.sbcm_stride, cfg.sbcm_depth)
            self.cnnf = CNNF(self.sbcm.out_channels, cfg.cnnf_widths, cfg.cnnf_middle_blocks)
            if cfg.cnnf_source:  # A4: ImageNet Xception, loudly: weights that cannot be had are an error
                load_imagenet_xception(self.cnnf, cfg.cnnf_source)
                self.cnnf_init = f"ImageNet Xception from {cfg.cnnf_source}"
        elif cfg.cnnf_source:
            raise ValueError("cnnf_weights given but use_local is false (there is no CNN-F to load them into)")
        f_dim = self.cnnf.out_channels if cfg.use_local else None
        if cfg.use_faae:
            self.faae = FAAE(shallow_channels, self.sbcm.out_channels, cfg.faae_dim, cfg.faae_gate_init)
            if cfg.faae_output == "pooled":
                self.faae_proj = nn.Linear(shallow_channels, s_dim)
        d_dim = sida_dim(self.channels, self.bands) if cfg.use_sida else None
        if cfg.use_sida:
            self.sida_norm = SIDANorm(cfg.sida_norm, list(cfg.sida_log), self.channels, self.bands)
        if cfg.fusion == "hcma":
            self.fusion = HCMA(s_dim, f_dim, d_dim, cfg.hcma_dim, cfg.hcma_heads, cfg.hcma_tokens)
        else:
            self.fusion = ConcatFusion(s_dim + (f_dim or 0) + (d_dim or 0), cfg.hcma_dim)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.hcma_dim, cfg.head_outputs))

    # -- spatial backbone, run stage by stage -------------------------------
    def _stride_split(self, stride: int) -> tuple[int, int]:
        """Index of the first backbone block after the last one at ``stride``, and that block's channels."""
        blocks = self.spatial.encoder.blocks
        total = self.spatial.embeddings.convolution.stride[0]
        split = None
        for i, blk in enumerate(blocks):
            total *= blk.depthwise_conv.stride
            if total == stride:
                split = i + 1
            elif total > stride:
                break
        if split is None:
            raise ValueError(f"faae_stride {stride}: no block of the backbone '{self.cfg.backbone}' ends at that "
                             "stride (EfficientNet stages end at strides 2, 4, 8, 16, 32)")
        return split, blocks[split - 1].projection.project_conv.out_channels

    # -- inputs ---------------------------------------------------------------
    def pixels(self, x: Tensor) -> Tensor:
        """Normalised input -> RGB pixel values in 0..255 (the DCT path works on those, A2)."""
        return (x * self._std + self._mean) * 255.0

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"sfcl_hcmf expects images [B, 3, H, W], got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < 16:
            raise ValueError(f"sfcl_hcmf needs images of at least 16x16 pixels (2x2 DCT blocks), got "
                             f"{x.shape[-2]}x{x.shape[-1]}")

    # -- forward ------------------------------------------------------------
    def features(self, x: Tensor) -> dict[str, Tensor]:
        """Every intermediate of the forward pass, by the paper's names (for tests and analysis)."""
        out = self._intermediates(x)
        out["logits"] = self.head(out["F_fused"])
        return out

    def _intermediates(self, x: Tensor) -> dict[str, Tensor]:
        """Every intermediate up to ``F_fused``, the input of the classifier."""
        self._check_input(x)
        cfg = self.cfg
        out: dict[str, Tensor] = {}
        xt = frequency_tensor(self.pixels(x), ycbcr=cfg.ycbcr, level_shift=cfg.dct_level_shift,
                              pad_mode=cfg.dct_pad_mode, pad_side=cfg.dct_pad_side)
        out["X~"] = xt
        d = None
        if cfg.use_sida:
            out["D"] = sida(xt, cfg.sida_eps)  # eqs. (1)-(8), no parameters
            d = self.sida_norm(out["D"])
        f = f_map = None
        if cfg.use_local:
            xn = self.freq_norm(xt)
            if cfg.inter_block == "multiscale":  # inter-block multi-scale convolution, then SBCM (intra-block)
                xn = out["X~_inter"] = self.inter_block(xn)
            out["X_f"] = self.sbcm(xn)  # eq. (9)
            f_map = out["F_map"] = self.cnnf(out["X_f"])
            f = out["F"] = f_map.mean(dim=(2, 3))
        sp = self.spatial
        h = sp.embeddings(x)
        for blk in sp.encoder.blocks[: self.split]:
            h = blk(h)
        out["X_S"] = h
        if cfg.use_faae:
            out["Y_S"] = self.faae(h, out["X_f"])  # eqs. (10)-(13)
            if cfg.faae_output == "reinject":  # A7: the later stages run on the enhanced map
                h = out["Y_S"]
        for blk in sp.encoder.blocks[self.split:]:
            h = blk(h)
        s_map = out["S_map"] = sp.encoder.top_activation(sp.encoder.top_bn(sp.encoder.top_conv(h)))
        s = s_map.mean(dim=(2, 3))
        if cfg.use_faae and cfg.faae_output == "pooled":
            s = s + self.faae_proj(out["Y_S"].mean(dim=(2, 3)))
        out["S"] = s
        out["F_fused"] = self.fusion(s, f, d, s_map=s_map, f_map=f_map)  # eqs. (14)-(17)
        return out

    def class_logits(self, x: Tensor) -> Tensor:
        """``[B, head_outputs]``: (real, fake) logits, or the fake logit alone."""
        return self.head(self.forward_features(x))

    @staticmethod
    def _fake_logit(z: Tensor) -> Tensor:
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z[:, 0]

    def forward_features(self, x: Tensor) -> Tensor:
        """``F_fused``, the HCMA (or concat-MLP) fusion of S, F and D before the dropout, ``[B, hcma_dim]``."""
        return self._intermediates(x)["F_fused"]

    def forward_head(self, features: Tensor) -> Tensor:
        """Dropout and the linear layer, then ``z_fake - z_real`` (or the single fake logit)."""
        return self._fake_logit(self.head(features))

    def compute_loss(self, x: Tensor, target: Tensor) -> LossOutput:
        z = self.class_logits(x).float()
        logit = self._fake_logit(z)
        if z.shape[1] == 2:  # A9: two-class cross-entropy (equal to BCE on z_fake - z_real)
            ce = F.cross_entropy(z, target.long())
            return LossOutput(total=ce, terms={"ce": ce}, logits=logit)
        bce = F.binary_cross_entropy_with_logits(logit, target.float())
        return LossOutput(total=bce, terms={"bce": bce}, logits=logit)

    def describe(self) -> dict[str, Any]:
        """CNN-F's ImageNet weights live in the checkpoint's own weights file once saved: the path is recorded
        as provenance and cleared from the config, so loading the checkpoint never reads it again."""
        d = super().describe()
        d["config"]["cnnf_weights"] = None
        d["cnnf_init"] = self.cnnf_init
        return d


# The tiny variant: the same graph at 32 px with narrow EfficientNet, SBCM and Xception (tests).
register_variant(
    "sfcl_hcmf_tiny", "sfcl_hcmf", description="sfcl_hcmf, tiny random config for tests",
    preprocess={"input_size": 32},
    backbone_overrides={"width_coefficient": 0.25, "depth_coefficient": 0.25, "image_size": 32, "hidden_dim": 320},
    sbcm_channels=[4, 8, 8], sbcm_depth=2, cnnf_widths=[16, 24, 32, 48, 64], cnnf_middle_blocks=1,
    faae_dim=8, hcma_dim=32, hcma_heads=4, dropout=0.2,
)
