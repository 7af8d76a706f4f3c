"""SDR: Chu et al., "Reduced Spatial Dependency for More General Video-level Deepfake Detection" (ICASSP 2025).

Only the abstract of the paper was available, so this module follows the
reconstruction of the project's implementation spec (section 3.3) with its
decisions C1-C8, each a config field. The paper's own equations (six of them)
are unknown; the comments below cite the spec's numbered steps instead of
equation numbers, so that nothing here passes for the paper's formula.

Pipeline (training)::

    clip V [B, T, 3, H, W]
      -> TPA: K spatial perturbations a_k, parameters drawn once per clip and
         applied identically to every frame                 (spec 3.3 step 1, C3)
      -> K spatial perturbation branches (SPBs): the FTCN encoder E (shared by
         default) and a spatial average pool -> z_k [B, T', C] (step 2, C1, C2)
      -> TRFI: z = sum_k w_k z_k, w = softmax(MLP([mean_t z_1; ...; mean_t z_K]))
                                                              (step 3, C4)
      -> FTCN's temporal transformer -> one logit           (step 4, C1)
    loss = BCE + lambda_MI * L_MI + lambda_con * L_con       (step 5, C4)

L_MI is how TRFI "utilizes the theory of mutual information" (the abstract): by
default the InfoNCE lower bound on the information between each branch's clip
feature mean_t z_k and the fused clip feature mean_t z (critic: a shared
projection MLP, cosine similarity over a temperature, the batch's other clips as
negatives), so its gradient trains TRFI's weighting network and every branch.
``mi_estimator: kl`` keeps the earlier KL surrogate (see :mod:`.losses`).

Inference (``inference_views``, step 6) runs the clean clip by default: with a
shared encoder every branch then sees the same clip, so z_k are equal and TRFI
is the identity: one encoder pass suffices. ``perturbed`` runs each branch on
its perturbation at a fixed setting and fuses them with TRFI's weights. A
video's score is the mean of its clip scores over non-overlapping clips (the
evaluation does that from video ids).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from fakescope.models.base import DetectorConfig, DetectorModel, LossOutput, PreprocessConfig
from fakescope.models.sdr.resnet3d import I3DConfig, I3DEncoder, load_encoder_weights
from fakescope.models.registry import register_model, register_variant
from fakescope.models.sdr.losses import infonce_mi, mi_loss, supcon_loss
from fakescope.models.sdr.tpa import Perturbation, TPAConfig, apply_tpa, draw_tpa_params, fixed_tpa

IMAGENET_RESNET50 = "microsoft/resnet-50"


# ===================================================================== config
def _sdr_preprocess() -> PreprocessConfig:
    return PreprocessConfig(input_size=224, policy="resize", clip_len=32)


class SDRConfig(DetectorConfig):
    """SDR (decisions C1-C8 of the spec). ``pretrained``/``weights`` initialise the encoder:

    * ``weights``: a local file (this encoder's weights; a 2D ResNet-50 in torchvision or
      transformers layout, inflated; a SlowFast I3D-R50 checkpoint) or a
      ``save_pretrained`` folder of ``microsoft/resnet-50``;
    * ``pretrained: true`` without ``weights``: ImageNet ``microsoft/resnet-50`` from the
      Hugging Face hub, inflated. Weights that cannot load are an error.
    """

    preprocess: PreprocessConfig = Field(default_factory=_sdr_preprocess)
    encoder: I3DConfig = Field(default_factory=I3DConfig)
    branches: list[Perturbation] = Field(
        default_factory=lambda: ["blur", "jpeg", "color", "rescale"], min_length=1,
        description="one spatial perturbation branch per entry (K = len); 'none' = the clean clip")
    tpa: TPAConfig = Field(default_factory=TPAConfig)
    shared_encoder: bool = Field(default=True, description="C2: the branches share one encoder")
    fusion: Literal["trfi", "mean"] = Field(default="trfi", description="'mean' is the w/o TRFI ablation")
    spatial_pool: Literal["mean", "max"] = Field(
        default="mean", description="Pool_s before the temporal tokens: 'mean' (FTCN's average pool) or 'max' "
        "(keeps a localised temporal artefact from being diluted by the rest of the frame)")
    trfi_hidden: int = Field(default=256, ge=1)
    inference_views: Literal["clean", "perturbed"] = Field(
        default="clean", description="inference input of the K branches: 'clean' = the clip itself in every "
        "branch (spec 3.3 step 6; with a shared encoder one pass, TRFI then the identity); 'perturbed' = each "
        "branch's perturbation at a fixed mid-range setting, fused by TRFI (K encoder passes)")
    dim: int = Field(default=-1, description="token width of the transformer; -1: the encoder's channels (FTCN)")
    depth: int = Field(default=1, ge=1)
    heads: int = Field(default=16, ge=1)
    mlp_dim: int = Field(default=2048, ge=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    emb_dropout: float = Field(default=0.1, ge=0, lt=1)
    lambda_mi: float = Field(default=0.1, ge=0, description="weight of L_MI (TODO: paper's value unknown)")
    mi_estimator: Literal["infonce", "kl"] = Field(
        default="infonce", description="L_MI: 'infonce' = InfoNCE bound on I(branch clip feature; fused clip "
        "feature), trains TRFI and every branch; 'kl' = KL from each branch head to the detached fused "
        "prediction (the earlier surrogate, no gradient to TRFI)")
    infonce_tau: float = Field(default=0.1, gt=0, description="temperature of the InfoNCE critic (cosine / tau)")
    mi_dims: list[int] = Field(default_factory=lambda: [256, 128], min_length=1,
                               description="projection MLP of the InfoNCE critic, shared by branch and fused features")
    mi_tau: float = Field(default=1.5, gt=0, description="temperature of the KL variant")
    lambda_con: float = Field(default=0.1, ge=0, description="weight of L_con (TODO: paper's value unknown)")
    con_tau: float = Field(default=0.1, gt=0)
    proj_dims: list[int] = Field(default_factory=lambda: [256, 128], min_length=1,
                                 description="projection MLP of the contrastive loss")

    @model_validator(mode="after")
    def _check(self) -> "SDRConfig":
        if not self.preprocess.clip_len:
            raise ValueError("sdr: preprocess.clip_len (frames per clip) must be set")
        if len(set(self.branches)) != len(self.branches):
            raise ValueError(f"sdr: branches must be distinct perturbations, got {self.branches}")
        if self.token_dim % self.heads:
            raise ValueError(f"sdr: the token width {self.token_dim} must be divisible by heads={self.heads}")
        stride = self.min_input_size
        if self.preprocess.input_size < stride:
            raise ValueError(f"sdr: input_size {self.preprocess.input_size} is below the encoder's stride {stride}")
        return self

    @property
    def token_dim(self) -> int:
        return self.encoder.out_channels if self.dim == -1 else self.dim

    @property
    def min_input_size(self) -> int:
        return 4 * 2 ** (len(self.encoder.blocks) - 1)


# ============================================================= temporal head
class TemporalTransformer(nn.Module):
    """FTCN's temporal transformer: tokens [B, N, C] -> (Linear to dim) -> CLS + positions -> pre-LN encoder
    -> LayerNorm -> Linear -> one logit. Built on ``torch.nn.TransformerEncoderLayer`` (head size dim/heads)."""

    def __init__(self, num_tokens: int, in_dim: int, dim: int, depth: int, heads: int, mlp_dim: int,
                 dropout: float, emb_dropout: float) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim) if dim != in_dim else nn.Identity()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, num_tokens + 1, dim))
        self.dropout = nn.Dropout(emb_dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, mlp_dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1))

    def pool(self, tokens: Tensor) -> Tensor:
        """Tokens ``[B, N, in_dim]`` -> the CLS token after the encoder and the LayerNorm, ``[B, dim]``."""
        x = self.proj(tokens)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
        x = self.transformer(self.dropout(x))
        return self.head[0](x[:, 0])

    def classify(self, pooled: Tensor) -> Tensor:
        """Output of :meth:`pool` -> one logit per sample (the final linear layer), ``[B]``."""
        return self.head[1](pooled).squeeze(1)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.classify(self.pool(tokens))


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


# ====================================================================== model
@register_model(
    "sdr",
    defaults={"preprocess": {"input_size": 224, "policy": "resize", "clip_len": 32}},
    paper="Chu et al., Reduced Spatial Dependency for More General Video-level Deepfake Detection, ICASSP 2025",
)
class SDR(DetectorModel):
    """SDR: spatial perturbation branches over an FTCN encoder, TRFI fusion and a temporal transformer."""

    modality = "clip"
    input_domain = "face"
    config_class = SDRConfig

    def __init__(self, cfg: SDRConfig) -> None:
        super().__init__(cfg)
        k = len(cfg.branches)
        channels = cfg.encoder.out_channels
        if cfg.shared_encoder:
            self.encoder = I3DEncoder(cfg.encoder)
        else:
            self.encoders = nn.ModuleList(I3DEncoder(cfg.encoder) for _ in range(k))
        # TRFI's weighting network; with one branch (or the 'mean' ablation) the fusion is a plain mean
        self.trfi = (_mlp([k * channels, cfg.trfi_hidden, k]) if cfg.fusion == "trfi" and k > 1 else None)
        self.head = TemporalTransformer(cfg.encoder.out_frames(cfg.preprocess.clip_len), channels, cfg.token_dim,
                                        cfg.depth, cfg.heads, cfg.mlp_dim, cfg.dropout, cfg.emb_dropout)
        # L_MI's modules: the InfoNCE critic's projection (mi_estimator 'infonce'), or per-branch auxiliary heads
        # h_k (the KL variant); the projection MLP of L_con
        use_mi = cfg.lambda_mi > 0
        self.branch_heads = (nn.ModuleList(nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, 1))
                                           for _ in range(k)) if use_mi and cfg.mi_estimator == "kl" else None)
        self.projector = _mlp([channels, *cfg.proj_dims]) if cfg.lambda_con > 0 else None
        # built after every other module, so that adding it left their seeded initialisation unchanged
        self.mi_critic = _mlp([channels, *cfg.mi_dims]) if use_mi and cfg.mi_estimator == "infonce" else None
        if cfg.weights or cfg.pretrained:
            self._load_encoder_weights()

    explanation = "saliency"  # fakescope.models.explain.explain: gradient saliency, not Grad-CAM (see there why)

    @property
    def cam_layer(self) -> str:
        """The layer Grad-CAM reads when asked for it (:func:`fakescope.models.explain.grad_cam`; ``explain``
        uses gradient saliency for SDR): the last convolution of the (first) I3D encoder's next-to-last stage,
        whose map is twice as fine as the last stage's (on 32 px clips 8 x 8 against 4 x 4)."""
        prefix = "encoder" if self.cfg.shared_encoder else "encoders.0"
        stages = self.branch_encoders[0].stages
        stage = max(len(stages) - 2, 0)
        block = len(stages[stage]) - 1
        return f"{prefix}.stages.{stage}.{block}.conv_c"

    # -- weights ---------------------------------------------------------------
    @property
    def branch_encoders(self) -> list[I3DEncoder]:
        return [self.encoder] if self.cfg.shared_encoder else list(self.encoders)

    def _load_encoder_weights(self) -> None:
        from fakescope.models.layers.backbones import hf_backbone

        cfg = self.cfg
        if cfg.weights and Path(cfg.weights).expanduser().is_file():
            for enc in self.branch_encoders:
                load_encoder_weights(enc, cfg.weights)
            return
        # a save_pretrained folder of (or the hub's) ImageNet ResNet-50, inflated
        resnet = hf_backbone(IMAGENET_RESNET50, pretrained=cfg.pretrained and not cfg.weights, weights=cfg.weights)
        source = cfg.weights or f"{IMAGENET_RESNET50} (Hugging Face hub)"
        for enc in self.branch_encoders:
            load_encoder_weights(enc, resnet.state_dict(), source=str(source))

    # -- building blocks -----------------------------------------------------
    def _check_clip(self, x: Tensor) -> None:
        t = self.cfg.preprocess.clip_len
        if x.ndim != 5 or x.shape[2] != 3:
            raise ValueError(f"sdr: expected clips shaped [batch, {t}, 3, height, width], got {tuple(x.shape)}")
        if x.shape[1] != t:
            raise ValueError(f"sdr: this model takes clips of {t} frames (preprocess.clip_len), got {x.shape[1]}")
        if min(x.shape[-2:]) < self.cfg.min_input_size:
            raise ValueError(f"sdr: frames of {tuple(x.shape[-2:])} px are smaller than the encoder's stride "
                             f"{self.cfg.min_input_size}")

    def tokens(self, encoder: I3DEncoder, x: Tensor) -> Tensor:
        """SPB features (spec 3.3 step 2): z_k = Pool_s(E(V_k)), clip [B, T, 3, H, W] -> tokens [B, T', C]."""
        f = encoder(x.transpose(1, 2))  # Conv3d layout [B, 3, T, H, W]
        if self.cfg.spatial_pool == "max":
            return f.amax(dim=(3, 4)).transpose(1, 2)
        return f.mean(dim=(3, 4)).transpose(1, 2)  # spatial average pool (FTCN's 'time' patches)

    def integrate(self, feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        """TRFI (spec 3.3 step 3, C4): z = sum_k w_k z_k with w = softmax(MLP([mean_t z_1; ...; mean_t z_K]))."""
        z = torch.stack(feats, dim=1)  # [B, K, T', C]
        if self.trfi is None:  # w/o TRFI (or K = 1): the plain mean
            w = torch.full(z.shape[:2], 1.0 / z.shape[1], device=z.device, dtype=z.dtype)
        else:
            w = torch.softmax(self.trfi(z.mean(dim=2).flatten(1)), dim=-1)
        return (w[:, :, None, None] * z).sum(dim=1), w

    @torch.no_grad()
    def fixed_views(self, x: Tensor) -> list[Tensor]:
        """The K views of ``inference_views: perturbed``: each branch's perturbation at its fixed setting."""
        pixels = (x * self._std + self._mean).clamp(0, 1)
        return [(fixed_tpa(kind, pixels, self.cfg.tpa) - self._mean) / self._std for kind in self.cfg.branches]

    def _branch_tokens(self, views: list[Tensor]) -> list[Tensor]:
        """SPBs (spec 3.3 step 2) on the K views: z_k for each branch."""
        if self.cfg.shared_encoder:  # one pass over the K views stacked along the batch
            return list(self.tokens(self.encoder, torch.cat(views)).chunk(len(views)))
        return [self.tokens(e, v) for e, v in zip(self.encoders, views)]

    @torch.no_grad()
    def perturb(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """TPA (spec 3.3 step 1, C3): the K perturbed (normalised) views of normalised clips ``x``."""
        pixels = (x * self._std + self._mean).clamp(0, 1)
        views = []
        for kind in self.cfg.branches:
            params = draw_tpa_params(kind, x.shape[0], self.cfg.tpa, x.device, generator)
            views.append((apply_tpa(kind, pixels, params, generator) - self._mean) / self._std)
        return views

    # -- interface -------------------------------------------------------------
    def forward_features(self, x: Tensor) -> Tensor:
        """Clips -> the temporal transformer's pooled (CLS) token after its LayerNorm, ``[B, token_dim]``.

        Inference (spec 3.3 step 6, ``inference_views``): ``clean`` runs the K branches on the clip itself;
        with a shared encoder the K features are then equal and TRFI's weighted sum (weights summing to 1)
        is the identity, so one encoder pass gives the same result. ``perturbed`` runs each branch on its
        perturbation at a fixed mid-range setting (deterministic, batch-independent) and fuses them by TRFI.
        """
        self._check_clip(x)
        if self.cfg.inference_views == "perturbed":
            feats = self._branch_tokens(self.fixed_views(x))
            z, _ = self.integrate(feats)
        elif self.cfg.shared_encoder:
            z = self.tokens(self.encoder, x)  # every branch would see this same clip: TRFI is the identity
        else:
            z, _ = self.integrate([self.tokens(e, x) for e in self.encoders])
        return self.head.pool(z)  # temporal transformer (spec 3.3 step 4)

    def forward_head(self, features: Tensor) -> Tensor:
        """The temporal transformer's final linear layer."""
        return self.head.classify(features)

    def compute_loss(self, x: Tensor, target: Tensor) -> LossOutput:
        self._check_clip(x)
        k = len(self.cfg.branches)
        feats = self._branch_tokens(self.perturb(x))  # TPA (step 1) -> SPBs (step 2)
        z, _ = self.integrate(feats)  # TRFI (step 3)
        logits = self.head(z)  # temporal transformer (step 4)
        y = target.to(logits.device).float()
        # L = L_CE + lambda_MI L_MI + lambda_con L_con (spec 3.3 step 5, C4)
        bce = F.binary_cross_entropy_with_logits(logits.float(), y)
        terms = {"bce": bce}
        total = bce
        pooled = [f.mean(dim=1) for f in feats]  # mean_t z_k, [B, C]: each branch's clip feature
        if self.mi_critic is not None:
            # L_MI, InfoNCE: -I_NCE(g(mean_t z_k); g(mean_t z)) averaged over the branches, z = TRFI's fused
            # tokens; maximising the shared information trains TRFI's weights and every branch's encoder
            fused = self.mi_critic(z.mean(dim=1))
            nce = [infonce_mi(self.mi_critic(p), fused, self.cfg.infonce_tau) for p in pooled]
            terms["mi"] = torch.stack([loss for loss, _ in nce]).mean()
            terms["mi_nats"] = torch.stack([est for _, est in nce]).mean()  # the bound's estimate, for the logs
            total = total + self.cfg.lambda_mi * terms["mi"]
        elif self.branch_heads is not None:  # L_MI, KL variant: the fused prediction is a detached target
            branch_logits = [h(p).squeeze(1) for h, p in zip(self.branch_heads, pooled)]
            terms["mi"] = mi_loss(logits, branch_logits, self.cfg.mi_tau)
            total = total + self.cfg.lambda_mi * terms["mi"]
        if self.projector is not None:
            emb = self.projector(torch.cat(pooled))
            terms["con"] = supcon_loss(emb, y.long().repeat(k), self.cfg.con_tau)
            total = total + self.cfg.lambda_con * terms["con"]
        return LossOutput(total=total, terms=terms, logits=logits)


register_variant(
    "sdr_tiny", "sdr", description="sdr, tiny random config for tests",
    preprocess={"input_size": 32, "clip_len": 8},
    encoder={"stem_width": 8, "widths": [4, 8, 8], "blocks": [1, 1, 1]},
    heads=2, mlp_dim=32, trfi_hidden=16, proj_dims=[16, 8], mi_dims=[16, 8],
)

