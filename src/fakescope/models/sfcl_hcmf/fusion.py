"""SFCL-HCMF's fusion modules (Qiao, Tian, Wang, arXiv 2504.17223): FAAE, the shallow fusion of the spatial map and
the SBCM map (eqs. 10-13, decisions A6, A7); HCMA, the deep fusion of S, F and the SIDA gate (eqs. 14-17,
decision A8); the normalisation of the SIDA vector before the gate (decision A5); and the concat-MLP ablation."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fakescope.models.sfcl_hcmf.spectral import sida_dim, sida_stat_slices


def attend(q: Tensor, k: Tensor, v: Tensor, fused: bool = True) -> Tensor:
    """``softmax(Q K^T / sqrt(d_q)) V`` for ``q, k [B, N, d_q]`` and ``v [B, N, d_v]`` (one head).

    PyTorch's fused (flash) attention kernels need values as wide as the queries; FAAE's are narrower
    (``C_S`` channels against ``2 d_m``), which sent it to the unfused path that builds the whole ``N x N``
    matrix (2304 x 2304 per image at 380 px). Zero columns appended to ``V`` leave the product's first
    ``d_v`` columns unchanged, so the values are padded to ``d_q`` and the padding is dropped after. The fused
    CPU kernel also wants 4-D inputs (a heads axis) whose last dimension is contiguous.

    ``fused=False`` keeps PyTorch's choice (the unfused path for these shapes): FAAE takes it in training, where
    batch statistics of a fresh model magnify the kernels' different rounding (1e-7) a thousandfold, and a
    training run stays as it was before the fused path came in.
    """
    d_q, d_v = q.shape[-1], v.shape[-1]
    if not fused or d_v > d_q:
        return F.scaled_dot_product_attention(q, k, v)
    v = F.pad(v, (0, d_q - d_v)) if d_v < d_q else v
    out = F.scaled_dot_product_attention(*(t.unsqueeze(1).contiguous() for t in (q, k, v)))
    return out[:, 0, :, :d_v]


class FAAE(nn.Module):
    """Frequency-Aware Attention Enhancement, the shallow fusion (eqs. 10-13)."""

    def __init__(self, spatial_channels: int, freq_channels: int, dim: int = 64, gate_init: float = 0.0) -> None:
        super().__init__()
        self.q_f = nn.Conv2d(freq_channels, dim, 1)
        self.q_s = nn.Conv2d(spatial_channels, dim, 1)
        self.k_f = nn.Conv2d(freq_channels, dim, 1)
        self.k_s = nn.Conv2d(spatial_channels, dim, 1)
        self.conv_f = nn.Conv2d(freq_channels, spatial_channels, 1)
        self.conv_s = nn.Conv2d(spatial_channels, spatial_channels, 1)
        self.bn = nn.BatchNorm2d(spatial_channels)
        self.gamma = nn.Parameter(torch.tensor(float(gate_init)))  # gamma_S: sigma(0) = 0.5 at init

    def forward(self, x_s: Tensor, x_f: Tensor) -> Tensor:
        if x_f.shape[-2:] != x_s.shape[-2:]:  # A6: align the SBCM grid to the backbone's
            x_f = F.interpolate(x_f, size=x_s.shape[-2:], mode="bilinear", align_corners=False)
        b, c, h, w = x_s.shape
        q = torch.cat([self.q_f(x_f), self.q_s(x_s)], dim=1).flatten(2).transpose(1, 2)  # eq. (10): [B, N, 2d_m]
        k = torch.cat([self.k_f(x_f), self.k_s(x_s)], dim=1).flatten(2).transpose(1, 2)  # eq. (11): [B, N, 2d_m]
        v = self.conv_f(x_f).flatten(2).transpose(1, 2)  # Conv_F(X_f): [B, N, C_S]
        # eq. (12): alpha = softmax_row(Q^T K / sqrt(2 d_m)); alpha (*) Conv_F(X_f): weighted sum over positions
        ctx = attend(q, k, v, fused=not self.training).transpose(1, 2).reshape(b, c, h, w)
        return x_s + self.bn(self.conv_s(ctx * torch.sigmoid(self.gamma)))  # eq. (13): Y_S


class SIDANorm(nn.Module):
    """Normalisation of the SIDA vector before it gates HCMA (decision A5; not the paper's, which is unknown)."""

    def __init__(self, mode: str, log_stats: list[str], channels: int = 3, bands: int = 64) -> None:
        super().__init__()
        dim = sida_dim(channels, bands)
        mask = torch.zeros(dim, dtype=torch.bool)
        for name, sl in sida_stat_slices(channels, bands).items():
            if name in log_stats:
                mask[sl] = True
        self.register_buffer("log_mask", mask, persistent=False)
        self.norm = {"layernorm": lambda: nn.LayerNorm(dim), "batchnorm": lambda: nn.BatchNorm1d(dim, affine=False),
                     "none": nn.Identity}[mode]()

    def forward(self, d: Tensor) -> Tensor:
        d = torch.where(self.log_mask, torch.sign(d) * torch.log1p(d.abs()), d)
        return self.norm(d)


class HCMA(nn.Module):
    """Hybrid Cross-Modal Attention fusion, the deep fusion (eqs. 14-17, decision A8).

    ``f_dim=None`` (no local branch): the attention term is absent and ``A_res`` is the
    residual alone. ``d_dim=None`` (no SIDA): no gate.
    """

    def __init__(self, s_dim: int, f_dim: int | None, d_dim: int | None, dim: int = 1024, heads: int = 8,
                 tokens: str = "chunks") -> None:
        super().__init__()
        self.heads, self.tokens = heads, tokens
        self.proj_s = nn.Linear(s_dim, dim)  # S' = W_s S
        if f_dim is not None:
            self.proj_f = nn.Linear(f_dim, dim)  # F' = W_f F
            self.w_q = nn.Linear(dim, dim, bias=False)
            self.w_k = nn.Linear(dim, dim, bias=False)
            self.w_v = nn.Linear(dim, dim, bias=False)
        self.res = nn.Linear(dim, dim)  # the 1x1 convolution of eq. (15) on a vector
        self.res_bn = nn.BatchNorm1d(dim)
        self.gate = nn.Linear(d_dim, dim) if d_dim is not None else None  # W_g in R^{1024 x 2304}

    def _attend(self, s: Tensor, f: Tensor, s_map: Tensor | None, f_map: Tensor | None) -> Tensor:
        b = s.shape[0]
        if self.tokens == "chunks":
            # eq. (14): Q = S'W_Q, K = F'W_K, V = F'W_V, each 1024-d vector split into `heads` tokens of 128
            q = self.w_q(self.proj_s(s)).view(b, self.heads, -1)
            k = self.w_k(self.proj_f(f)).view(b, self.heads, -1)
            v = self.w_v(self.proj_f(f)).view(b, self.heads, -1)
            return F.scaled_dot_product_attention(q, k, v).reshape(b, -1)  # A, softmax(QK^T / sqrt(128)) V
        # spatial tokens: queries from the backbone's final map, keys/values from CNN-F's final map
        qs = self.proj_s(s_map.flatten(2).transpose(1, 2))  # [B, N_s, dim]
        fs = self.proj_f(f_map.flatten(2).transpose(1, 2))  # [B, N_f, dim]
        if fs.shape[1] == 1:
            warnings.warn("HCMA hcma_tokens='spatial': CNN-F's final map has a single position at this input "
                          "size, so the attention over one key is degenerate (A = V); use a larger input or "
                          "hcma_tokens='chunks'", RuntimeWarning, stacklevel=2)

        def split(t: Tensor) -> Tensor:
            return t.view(b, t.shape[1], self.heads, -1).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(self.w_q(qs)), split(self.w_k(fs)), split(self.w_v(fs)))  # eq. (14)
        return a.transpose(1, 2).reshape(b, qs.shape[1], -1).mean(dim=1)

    def forward(self, s: Tensor, f: Tensor | None, d: Tensor | None, s_map: Tensor | None = None,
                f_map: Tensor | None = None) -> Tensor:
        residual = self.res_bn(self.res(self.proj_s(s)))  # BN(Conv1x1(S'))
        a_res = residual if f is None else self._attend(s, f, s_map, f_map) + residual  # eq. (15): A + BN(Conv(S'))
        if self.gate is None or d is None:
            return a_res
        g = torch.sigmoid(self.gate(d))  # eq. (16): g = sigma(W_g D)
        return a_res * g  # eq. (17): F_fused = A_res (.) g


class ConcatFusion(nn.Module):
    """Ablation: HCMA replaced by concatenation of S, F and D and a Linear-ReLU layer."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU(inplace=True))

    def forward(self, s: Tensor, f: Tensor | None, d: Tensor | None, **_: Any) -> Tensor:
        return self.mlp(torch.cat([t for t in (s, f, d) if t is not None], dim=1))
