"""SFCL-HCMF's spectral layers (Qiao, Tian, Wang, arXiv 2504.17223, section 3.2): the block-DCT tensor X~ and
SIDA, the global branch.

:func:`frequency_tensor` is the paper's frequency pipeline, as batched tensor ops on the input's device:

1. RGB (0..255) to YCbCr, ITU-R BT.601 full range as in JPEG/JFIF;
2. optional JPEG level shift (subtract 128; spec decision A2);
3. pad to a multiple of 8 (decision A1: 380 px is reflect-padded to 384 for the DCT only);
4. 8x8 block DCT-II with the orthonormal basis ``D[k, i] = a_k cos(pi (2i + 1) k / 16)``, ``block -> D B D^T``;
5. JPEG zigzag order of the 64 coefficients, laid out as ``X~ [B, 3, 64, H/8, W/8]``: frequency index and block
   position stay separate.

Steps 1, 2, 4 and 5 are one linear map per block (:func:`frequency_operator`), built from the shared block DCT
of :mod:`fakescope.models.layers.dct`.

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

import torch
import torch.nn.functional as F
from torch import Tensor

from fakescope.models.layers.dct import (YCBCR_MATRIX, YCBCR_OFFSET, PadMode, PadSide, block_dct_basis, exact_fp32,
                                         no_autocast, pad_to_multiple, work_dtype)

SIDA_STATS: tuple[str, ...] = ("mean", "std", "skewness", "kurtosis")
SIDA_MAPS: tuple[str, ...] = ("row", "col", "intra")


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
    with no_autocast(pixels):
        # contiguous: from a channels-last input the convolution's output would be channels-last too, and SIDA's
        # statistics over the block grid of that layout ran 3x slower (strided rows copied one by one)
        x = pad_to_multiple(pixels.to(work_dtype(pixels)), block, pad_mode, pad_side).contiguous()
        weight, bias = frequency_operator(block, ycbcr, level_shift, x.dtype, x.device)
        b, _, h, w = x.shape
        with exact_fp32(x):
            y = F.conv2d(x, weight, bias, stride=block)
        return y.view(b, 3, block * block, h // block, w // block)


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
    with no_autocast(x):
        x = x.to(work_dtype(x))
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
