"""FSSNet's fusion modules (Su & Chen, ICIC 2025): SBCA, the scale-aware bidirectional cross attention between the
RGB and frequency streams (section 3.3, eqs. 6-10, decision B3), and AFF, the adaptive feature fusion (section
3.4, eq. 11, decision B4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# ------------------------------------------------------------------- SBCA
class ScaleAwareCrossAttention(nn.Module):
    """One direction of SBCA: queries from one stream, keys and values from the other.

    Head ``beta`` (1-based) projects with convolutions of kernel ``k = 2*beta + 1``
    (eqs. 8-10). The K and V convolutions of a head read the same input with the
    same kernel, so they run as one convolution with twice the output channels.

    That input is the *other* stream's map ``x_kv``. As printed, eq. 9 reads
    ``K^beta = Conv(X_0; k_beta)`` and eq. 10 ``V^beta = Conv(X_Q; k_beta)``: K and V
    from the query's own stream (``X_0`` taken as a garbled ``X_Q``), which would turn
    each direction into self-attention. We take them from the other stream, as the
    bidirectional design of eqs. 6-7 defines (spatial queries attend to frequency keys
    and values, and the reverse); a deviation from the printed eqs. 9-10.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, norm: bool) -> None:
        super().__init__()
        self.kernels = tuple(2 * beta + 1 for beta in range(1, heads + 1))
        self.head_dim = head_dim
        self.q = nn.ModuleList(nn.Conv2d(dim, head_dim, k, padding=k // 2) for k in self.kernels)
        self.kv = nn.ModuleList(nn.Conv2d(dim, 2 * head_dim, k, padding=k // 2) for k in self.kernels)
        self.proj = nn.Conv2d(heads * head_dim, dim, 1)
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()

    def forward(self, x_q: Tensor, x_kv: Tensor) -> Tensor:
        b, _, h, w = x_q.shape
        d = self.head_dim
        q = torch.stack([conv(x_q) for conv in self.q], dim=1)      # eq. (8): Q^beta = Conv(X_Q; k_beta)
        # eqs. (9)-(10): K^beta, V^beta = Conv(X_KV; k_beta), from the other stream (as eqs. 6-7; not the printed
        # X_0 / X_Q, see the class docstring)
        kv = torch.stack([conv(x_kv) for conv in self.kv], dim=1)
        k, v = kv[:, :, :d], kv[:, :, d:]
        q, k, v = (t.flatten(3).transpose(-2, -1) for t in (q, k, v))  # [B, heads, h*w, d]
        attn = F.scaled_dot_product_attention(q, k, v)               # eqs. (6)/(7): softmax(Q K^T / sqrt(d)) V
        attn = attn.transpose(-2, -1).reshape(b, -1, h, w)           # heads concatenated along channels
        out = x_q + self.proj(attn)                                  # residual on the query stream (B3)
        return self.norm(out.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SBCA(nn.Module):
    """Scale-aware bidirectional cross attention (section 3.3): two directions, no shared weights."""

    def __init__(self, dim: int, heads: int, head_dim: int, norm: bool) -> None:
        super().__init__()
        self.s2f = ScaleAwareCrossAttention(dim, heads, head_dim, norm)  # eq. (6): Q_s, K_f, V_f
        self.f2s = ScaleAwareCrossAttention(dim, heads, head_dim, norm)  # eq. (7): Q_f, K_s, V_s

    def forward(self, f_rgb: Tensor, f_freq: Tensor) -> tuple[Tensor, Tensor]:
        return self.s2f(f_rgb, f_freq), self.f2s(f_freq, f_rgb)


# -------------------------------------------------------------------- AFF
class AFF(nn.Module):
    """Adaptive feature fusion (section 3.4): one channel x spatial attention map, then eq. (11).

    ``F_attention = M_c * M_s`` of ``X = F_rgb + F_freq`` (B4), with the CBAM forms
    ``M_c = sigmoid(MLP(GAP(X)) + MLP(GMP(X)))`` and
    ``M_s = sigmoid(Conv([mean_c X; max_c X]))``.
    """

    def __init__(self, dim: int, reduction: int, spatial_kernel: int) -> None:
        super().__init__()
        hidden = max(dim // reduction, 1)
        self.channel_mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, dim, 1))
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)
        self.theta = nn.Parameter(torch.zeros(()))  # sigmoid(theta) = 0.5 at init (section 3.4)

    def attention(self, x: Tensor) -> Tensor:
        m_c = torch.sigmoid(self.channel_mlp(x.mean(dim=(2, 3), keepdim=True))
                            + self.channel_mlp(x.amax(dim=(2, 3), keepdim=True)))
        m_s = torch.sigmoid(self.spatial(torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], 1)))
        return m_c * m_s

    def mix(self) -> Tensor:
        """``sigmoid(theta)``, the weight of the RGB stream in eq. (11)."""
        return torch.sigmoid(self.theta)

    def forward(self, f_rgb: Tensor, f_freq: Tensor) -> Tensor:
        att = self.attention(f_rgb + f_freq)
        s = self.mix()
        return s * (att * f_rgb) + (1 - s) * (att * f_freq)  # eq. (11)
