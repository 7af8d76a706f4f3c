"""The JPEG-style 8x8 block DCT, shared by SFCL-HCMF's frequency front end
(:mod:`fakescope.models.sfcl_hcmf.spectral`) and SDR's JPEG perturbation (:mod:`fakescope.models.sdr.tpa`).

1. RGB (0..255) to YCbCr, ITU-R BT.601 full range as in JPEG/JFIF (:func:`rgb_to_ycbcr`);
2. padding to a multiple of 8 (:func:`pad_to_multiple`; SFCL-HCMF's decision A1);
3. 8x8 block DCT-II with the orthonormal basis ``D[k, i] = a_k cos(pi (2i + 1) k / 16)``
   (:func:`dct_matrix`), ``block -> D B D^T`` (:func:`block_dct`);
4. JPEG zigzag order of the 64 coefficients (:func:`zigzag_order`), laid out as
   ``X~ [B, C, 64, H/8, W/8]``: frequency index and block position stay separate.

Steps 3 and 4 are one ``[64, 64]`` matrix (``kron(D, D)`` with its rows in zigzag order,
:func:`block_dct_basis`) applied to every block at once.

Everything runs in float32 (autocast is switched off here: :func:`no_autocast`): DC coefficients reach about
+-1000 and fourth moments of them do not fit bf16. On a CUDA device cuDNN's TF32 mode is
switched off for the block-DCT convolution (:func:`exact_fp32`): TF32 keeps 10 mantissa bits, which moved
coefficients by about 2e-4 of their range (0.2 for a DC of 1000) in a test on an H100.
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

# BT.601 full range (JPEG/JFIF): [Y, Cb, Cr] = M [R, G, B] + offset, pixels in 0..255
YCBCR_MATRIX = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
YCBCR_OFFSET = (0.0, 128.0, 128.0)


def no_autocast(x: Tensor):
    return torch.autocast(device_type=x.device.type, enabled=False)


def exact_fp32(x: Tensor):
    """Full float32 convolutions on CUDA (cuDNN TF32 off, other cuDNN settings kept); nothing elsewhere."""
    if x.device.type != "cuda":
        return contextlib.nullcontext()
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                       allow_tf32=False)


def work_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """``[..., 3, H, W]`` RGB in 0..255 -> YCbCr (BT.601 full range), float32 (float64 for float64 input)."""
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"rgb_to_ycbcr expects [..., 3, H, W], got shape {tuple(x.shape)}")
    with no_autocast(x):
        x = x.to(work_dtype(x))
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
    if zigzag:  # under torch.compile the order is worked out afresh: its tracer skips (and warns of) the cache
        t = t[list((zigzag_order.__wrapped__ if torch.compiler.is_compiling() else zigzag_order)(n))]
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
    with no_autocast(x):
        x = x.to(work_dtype(x)).reshape(b * c, 1, h, w)
        t = block_dct_basis(block, zigzag, x.dtype, x.device)
        # a stride-`block` convolution with the [64, 1, 8, 8] basis: one dot product per block and coefficient
        with exact_fp32(x):
            y = F.conv2d(x, t.unsqueeze(1), stride=block)
        return y.view(b, c, block * block, h // block, w // block)
