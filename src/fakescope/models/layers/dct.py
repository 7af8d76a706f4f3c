"""Block-DCT front end and SIDA statistics of SFCL-HCMF (Qiao, Tian, Wang, arXiv 2504.17223, section 3.2).

The frequency pipeline of the paper, as batched tensor ops on the input's device:

1. RGB (0..255) to YCbCr, ITU-R BT.601 full range as in JPEG/JFIF (:func:`rgb_to_ycbcr`);
2. optional JPEG level shift (subtract 128; spec decision A2);
3. pad to a multiple of 8 (decision A1: 380 px is reflect-padded to 384 for the DCT only;
   :func:`pad_to_multiple`);
4. 8x8 block DCT-II with the orthonormal basis ``D[k, i] = a_k cos(pi (2i + 1) k / 16)``,
   ``block -> D B D^T`` (:func:`block_dct`);
5. JPEG zigzag order of the 64 coefficients (:func:`zigzag_order`), laid out as
   ``X~ [B, 3, 64, H/8, W/8]``: frequency index and block position stay separate.

Steps 4 and 5 are one ``[64, 64]`` matrix (``kron(D, D)`` with its rows in zigzag order)
applied to every block at once.

:func:`sida` is the global branch (Scale-Invariant Differential Analysis, eqs. 1-8):
absolute inter-block row and column differences and intra-block (zigzag-neighbour)
differences, and their mean, standard deviation, skewness and kurtosis over the block
grid: ``4 x 3 x (3 x 64) = 2304`` numbers per image, with no learnable parameter.

Everything runs in float32 (autocast is switched off here): DC coefficients reach about
+-1000 and fourth moments of them do not fit bf16. On a CUDA device cuDNN's TF32 mode is
switched off for the block-DCT convolution, and SIDA's sums do not use matmuls there: TF32
keeps 10 mantissa bits, which moved coefficients by about 2e-4 of their range (0.2 for a
DC of 1000) in a test on an H100, far more than the high-frequency coefficients SIDA reads.
"""

from __future__ import annotations

import contextlib
import math
from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

PadMode = Literal["reflect", "replicate", "constant"]
PadSide = Literal["end", "center"]
SIDA_STATS: tuple[str, ...] = ("mean", "std", "skewness", "kurtosis")
SIDA_MAPS: tuple[str, ...] = ("row", "col", "intra")

# BT.601 full range (JPEG/JFIF): [Y, Cb, Cr] = M [R, G, B] + offset, pixels in 0..255
YCBCR_MATRIX = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
YCBCR_OFFSET = (0.0, 128.0, 128.0)


def _no_autocast(x: Tensor):
    return torch.autocast(device_type=x.device.type, enabled=False)


def _exact_fp32(x: Tensor):
    """Full float32 convolutions on CUDA (cuDNN TF32 off, other cuDNN settings kept); nothing elsewhere."""
    if x.device.type != "cuda":
        return contextlib.nullcontext()
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                       allow_tf32=False)


def _work_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """``[..., 3, H, W]`` RGB in 0..255 -> YCbCr (BT.601 full range), float32 (float64 for float64 input)."""
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"rgb_to_ycbcr expects [..., 3, H, W], got shape {tuple(x.shape)}")
    with _no_autocast(x):
        x = x.to(_work_dtype(x))
        m = torch.tensor(YCBCR_MATRIX, dtype=x.dtype, device=x.device)
        off = torch.tensor(YCBCR_OFFSET, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return torch.einsum("ij,...jhw->...ihw", m, x) + off


@lru_cache(maxsize=None)
def zigzag_order(n: int = 8) -> tuple[int, ...]:
    """JPEG zigzag scan of an ``n x n`` block: entry ``z`` is the raster index ``row * n + col`` of coefficient ``z``.

    Anti-diagonals ``s = row + col`` in increasing order; along an even ``s`` the scan runs
    from bottom-left to top-right (row decreasing), along an odd ``s`` from top-right to
    bottom-left, starting ``(0,0), (0,1), (1,0), (2,0), (1,1), (0,2), ...`` (ITU-T T.81, figure 5).
    """
    order: list[int] = []
    for s in range(2 * n - 1):
        rows = range(max(0, s - n + 1), min(s, n - 1) + 1)
        for r in (reversed(rows) if s % 2 == 0 else rows):
            order.append(r * n + (s - r))
    return tuple(order)


def dct_matrix(n: int = 8, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """Orthonormal DCT-II basis ``D[k, i] = a_k cos(pi (2i + 1) k / (2n))``, ``a_0 = sqrt(1/n)``, else ``sqrt(2/n)``."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n))
    d[0] *= math.sqrt(1.0 / n)
    d[1:] *= math.sqrt(2.0 / n)
    return d.to(dtype=dtype, device=device)


def block_dct_basis(n: int = 8, zigzag: bool = True, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """``T [n*n, n, n]`` with ``coefficient[z] = sum_ij T[z, i, j] block[i, j]`` (2-D DCT-II, zigzag rows)."""
    d = dct_matrix(n)
    t = torch.einsum("ki,lj->klij", d, d).reshape(n * n, n, n)  # kron(D, D): (D B D^T)[k, l]
    if zigzag:
        t = t[list(zigzag_order(n))]
    return t.to(dtype=dtype, device=device)


def pad_amounts(size: int, multiple: int, side: PadSide = "end") -> tuple[int, int]:
    total = (-size) % multiple
    return (0, total) if side == "end" else (total // 2, total - total // 2)


def pad_to_multiple(x: Tensor, multiple: int = 8, mode: PadMode = "reflect", side: PadSide = "end") -> Tensor:
    """Pad the last two dimensions of ``[B, C, H, W]`` up to multiples of ``multiple`` (decision A1).

    ``side="end"`` pads bottom and right only, so the block grid stays anchored at the
    top-left corner like a JPEG's; ``"center"`` splits the padding between both sides.
    """
    h, w = x.shape[-2:]
    top, bottom = pad_amounts(h, multiple, side)
    left, right = pad_amounts(w, multiple, side)
    if not (top or bottom or left or right):
        return x
    if mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
        raise ValueError(f"reflect padding of a {h}x{w} input to a multiple of {multiple} needs at least "
                         f"{max(top, bottom) + 1}x{max(left, right) + 1} pixels; use a larger input or "
                         "dct_pad_mode 'replicate'")
    return F.pad(x, (left, right, top, bottom), mode=mode)


def block_dct(x: Tensor, block: int = 8, zigzag: bool = True) -> Tensor:
    """``[B, C, H, W]`` (H, W multiples of ``block``) -> ``X~ [B, C, block*block, H/block, W/block]``.

    Orthonormal 2-D DCT-II of every non-overlapping block, coefficients in JPEG zigzag order.
    float64 input is transformed in float64, anything else in float32.
    """
    b, c, h, w = x.shape
    if h % block or w % block:
        raise ValueError(f"block_dct needs H and W divisible by {block}, got {h}x{w} (pad first: pad_to_multiple)")
    with _no_autocast(x):
        x = x.to(_work_dtype(x)).reshape(b * c, 1, h, w)
        t = block_dct_basis(block, zigzag, x.dtype, x.device)
        # a stride-`block` convolution with the [64, 1, 8, 8] basis: one dot product per block and coefficient
        with _exact_fp32(x):
            y = F.conv2d(x, t.unsqueeze(1), stride=block)
        return y.view(b, c, block * block, h // block, w // block)


def _moments(a: Tensor, eps: float, use_bmm: bool | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Mean, sqrt(var + eps), skewness and kurtosis of ``a [..., N]`` over its last dimension (eqs. 4-7).

    Overwrites ``a`` (it is centred in place). On a CPU the power sums are batched dot
    products (``bmm`` of ``[R, 1, N]`` by ``[R, N, 1]``), which need no temporary per power;
    elsewhere they are elementwise products and sums, which no TF32 matmul setting can touch.
    """
    n = a.shape[-1]
    mu = a.mean(dim=-1)  # eq. (4)
    shape = mu.shape
    d = a.sub_(mu.unsqueeze(-1)).reshape(-1, 1, n)
    d2 = d * d
    if d.device.type == "cpu" if use_bmm is None else use_bmm:
        col = d.transpose(1, 2)
        m2 = torch.bmm(d, col).view(shape) / n
        m3 = torch.bmm(d2, col).view(shape) / n
        m4 = torch.bmm(d2, d2.transpose(1, 2)).view(shape) / n
    else:
        m2 = d2.mean(dim=-1).view(shape)
        m3 = (d2 * d).mean(dim=-1).view(shape)
        m4 = (d2 * d2).mean(dim=-1).view(shape)
    sigma = torch.sqrt(m2 + eps)  # eq. (5)
    return mu, sigma, m3 / sigma ** 3, m4 / sigma ** 4  # eqs. (6), (7): skewness, kurtosis


def sida_maps(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The three absolute difference maps of ``X~ [B, C, L, h, w]`` (eqs. 1-3); the intra map has L - 1 bands."""
    row = (x[..., 1:, :] - x[..., :-1, :]).abs_()  # eq. (1): inter-block, block row m+1 minus m
    col = (x[..., :, 1:] - x[..., :, :-1]).abs_()  # eq. (2): inter-block, block column n+1 minus n
    intra = (x[:, :, 1:] - x[:, :, :-1]).abs_()  # eq. (3): intra-block, zigzag neighbour l+1 minus l
    return row, col, intra


# On a CPU, SIDA runs over the batch in chunks of about this many coefficients, so that each
# chunk's difference maps stay in cache (the statistics are memory-bound); one chunk elsewhere.
CPU_CHUNK_ELEMENTS = 1 << 19


def _sida_stats(x: Tensor, eps: float) -> Tensor:
    b, c, l = x.shape[:3]
    stats = [_moments(m.flatten(3), eps) for m in sida_maps(x)]  # per map: 4 x [b, C, L(-1)]
    # the intra map is zero-padded to L bands (a last band of zeros): mu 0, sigma sqrt(eps), skewness 0, kurtosis 0
    pad = [x.new_zeros(b, c, 1), x.new_full((b, c, 1), eps ** 0.5), x.new_zeros(b, c, 1), x.new_zeros(b, c, 1)]
    stats[2] = tuple(torch.cat([s, p], dim=2) for s, p in zip(stats[2], pad))
    # eq. (8): group by statistic, then by difference map
    return torch.cat([stats[j][i].reshape(b, -1) for i in range(4) for j in range(3)], dim=1)


def sida(x: Tensor, eps: float = 1e-6) -> Tensor:
    """SIDA descriptor ``D [B, 4 * 3 * C * L]`` of ``X~ [B, C, L, h, w]`` (eqs. 1-8; 2304-d for C=3, L=64).

    Statistics over the block positions ``(m, n)`` per channel ``c`` and band ``l`` of the
    absolute row, column and intra-block difference maps (the intra map zero-padded to L
    bands); concatenated grouped first by statistic, then by map (eq. 8):
    ``[mu_row, mu_col, mu_intra, sigma_row, ..., kurt_intra]``, each block flattened
    channel-major. Skewness and kurtosis do not change when ``X~`` is scaled (up to
    ``eps``). Needs at least 2x2 blocks. float64 input is processed in float64.
    """
    if x.ndim != 5:
        raise ValueError(f"sida expects X~ of shape [B, C, L, h, w], got {tuple(x.shape)}")
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise ValueError(f"sida needs at least 2x2 blocks, got {x.shape[-2]}x{x.shape[-1]}")
    with _no_autocast(x):
        x = x.to(_work_dtype(x))
        per_image = x[0].numel()
        # CPU batches go in chunks to bound memory; an exported graph (torch.export, ONNX) takes the whole
        # batch in one pass, so that its batch dimension stays dynamic
        chunked = x.device.type == "cpu" and not torch.compiler.is_exporting()
        step = max(1, CPU_CHUNK_ELEMENTS // per_image) if chunked else x.shape[0]
        if step >= x.shape[0]:
            return _sida_stats(x, eps)
        return torch.cat([_sida_stats(x[i:i + step], eps) for i in range(0, x.shape[0], step)])


def sida_dim(channels: int = 3, bands: int = 64) -> int:
    return len(SIDA_STATS) * len(SIDA_MAPS) * channels * bands


def sida_stat_slices(channels: int = 3, bands: int = 64) -> dict[str, slice]:
    """Where each statistic sits in the SIDA vector."""
    n = len(SIDA_MAPS) * channels * bands
    return {s: slice(i * n, (i + 1) * n) for i, s in enumerate(SIDA_STATS)}


def frequency_operator(block: int = 8, ycbcr: bool = True, level_shift: bool = True,
                       dtype: torch.dtype = torch.float32, device=None) -> tuple[Tensor, Tensor]:
    """Steps 1, 2, 4 and 5 as one linear map per block: weight ``[3 * 64, 3, 8, 8]`` and bias ``[3 * 64]``.

    ``W[(c', z), c, i, j] = M[c', c] T[z, i, j]`` (``M`` the YCbCr matrix, ``T`` the zigzag DCT
    basis); the colour offsets and the level shift only move DC coefficients, by 8 times
    their value (the orthonormal DC of a constant block).
    """
    t = block_dct_basis(block, True, torch.float64)
    m = torch.tensor(YCBCR_MATRIX, dtype=torch.float64) if ycbcr else torch.eye(3, dtype=torch.float64)
    offset = torch.tensor(YCBCR_OFFSET if ycbcr else (0.0, 0.0, 0.0), dtype=torch.float64)
    offset = offset - (128.0 if level_shift else 0.0)
    weight = torch.einsum("dc,zij->dzcij", m, t).reshape(3 * block * block, 3, block, block)
    bias = torch.zeros(3, block * block, dtype=torch.float64)
    bias[:, 0] = offset * t[0].sum()
    return weight.to(dtype=dtype, device=device), bias.reshape(-1).to(dtype=dtype, device=device)


def frequency_tensor(pixels: Tensor, *, block: int = 8, ycbcr: bool = True, level_shift: bool = True,
                     pad_mode: PadMode = "reflect", pad_side: PadSide = "end") -> Tensor:
    """RGB pixels ``[B, 3, H, W]`` in 0..255 -> ``X~ [B, 3, 64, ceil(H/8), ceil(W/8)]`` (steps 1-5 above).

    The padding (step 3) is applied to the RGB pixels, which gives the same result as
    padding YCbCr for ``reflect`` and ``replicate``; ``constant`` pads with black pixels.
    Then one stride-8 convolution (:func:`frequency_operator`) does the rest.
    """
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"frequency_tensor expects RGB images [B, 3, H, W], got {tuple(pixels.shape)}")
    with _no_autocast(pixels):
        x = pad_to_multiple(pixels.to(_work_dtype(pixels)), block, pad_mode, pad_side)
        weight, bias = frequency_operator(block, ycbcr, level_shift, x.dtype, x.device)
        b, _, h, w = x.shape
        with _exact_fp32(x):
            y = F.conv2d(x, weight, bias, stride=block)
        return y.view(b, 3, block * block, h // block, w // block)
