"""FFT band selection for FSSNet (Su & Chen, ICIC 2025, section 3.2, eqs. 3-5).

The frequency copy of an image is ``I'_f = iFFT(FFT(I_f) * M)``, with ``M`` a binary
mask that keeps one band of spatial frequencies. The paper leaves the masks open;
fakescope uses radial masks (spec decision B1):

* the radius of a frequency is ``r = sqrt(f_x^2 + f_y^2)`` in cycles per pixel,
  with ``f`` in ``[-0.5, 0.5)`` (``torch.fft.fftfreq``);
* **low** keeps ``r <= c1``, **mid** keeps ``c1 < r <= c2``, **high** keeps
  ``r > c2`` (the corners of the spectrum included);
* the default cut-offs ``(c1, c2) = (1/6, 1/3)`` are thirds of the Nyquist radius 0.5.

The three masks partition the spectrum, so the three filtered images add up to the
input. Every channel of every image is filtered independently (a batched
``torch.fft.fft2`` over the last two dimensions, on the input's device).

The masks are built directly in the unshifted layout of ``torch.fft.fft2``. That is the
same as ``fftshift`` -> centred mask -> ``ifftshift``, without the two copies.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

Band = Literal["low", "mid", "high"]
BANDS: tuple[str, ...] = ("low", "mid", "high")
DEFAULT_CUTOFFS: tuple[float, float] = (1.0 / 6.0, 1.0 / 3.0)
MAX_RADIUS = math.sqrt(0.5)  # the corner (0.5, 0.5) of the spectrum


def radial_frequency(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """``r[u, v] = sqrt(f_y[u]^2 + f_x[v]^2)`` in cycles per pixel, in ``torch.fft.fft2`` order."""
    fy = torch.fft.fftfreq(height, device=device, dtype=torch.float64)
    fx = torch.fft.fftfreq(width, device=device, dtype=torch.float64)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def check_cutoffs(cutoffs: tuple[float, float]) -> tuple[float, float]:
    """``0 < c1 < c2 < sqrt(0.5)``, so that each band is non-empty in the limit."""
    c1, c2 = (float(c) for c in cutoffs)
    if not 0.0 < c1 < c2 < MAX_RADIUS:
        raise ValueError(f"band cut-offs must satisfy 0 < low/mid < mid/high < {MAX_RADIUS:.4f} cycles per pixel, "
                         f"got ({c1}, {c2})")
    return c1, c2


def band_mask(height: int, width: int, band: Band, cutoffs: tuple[float, float] = DEFAULT_CUTOFFS,
              device: torch.device | str | None = None) -> Tensor:
    """The binary mask ``M`` of eq. (4) for ``band`` as a float ``[height, width]`` tensor (fft2 layout)."""
    if band not in BANDS:
        raise ValueError(f"unknown frequency band {band!r} (known: {', '.join(BANDS)})")
    c1, c2 = check_cutoffs(cutoffs)
    r = radial_frequency(height, width, device)
    if band == "low":
        keep = r <= c1
    elif band == "mid":
        keep = (r > c1) & (r <= c2)
    else:
        keep = r > c2
    return keep.to(torch.float32)


def band_filter(x: Tensor, mask: Tensor, part: Literal["real", "abs"] = "real") -> Tensor:
    """Keep the frequencies of ``mask`` in every channel of ``x`` (``[..., H, W]``), eqs. (3)-(5).

    Computed in float32 (or float64 for float64 input) whatever the autocast state,
    then cast back to ``x``'s dtype.
    """
    if mask.shape != x.shape[-2:]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the image size {tuple(x.shape[-2:])}")
    work = x if x.dtype == torch.float64 else x.float()
    with torch.autocast(device_type=x.device.type, enabled=False):
        spectrum = torch.fft.fft2(work)                          # eq. (3): F = FFT(I_f)
        kept = spectrum * mask.to(device=x.device, dtype=work.dtype)  # eq. (4): F' = F * M
        back = torch.fft.ifft2(kept)                             # eq. (5): I'_f = iFFT(F')
        out = back.real if part == "real" else back.abs()
    return out.to(x.dtype)


class BandFilter(nn.Module):
    """FFT -> binary band mask -> inverse FFT (eqs. 3-5), with the mask cached per image size."""

    def __init__(self, band: Band = "low", cutoffs: tuple[float, float] = DEFAULT_CUTOFFS,
                 part: Literal["real", "abs"] = "real") -> None:
        super().__init__()
        if band not in BANDS:
            raise ValueError(f"unknown frequency band {band!r} (known: {', '.join(BANDS)})")
        if part not in ("real", "abs"):
            raise ValueError(f"part must be 'real' or 'abs', got {part!r}")
        self.band = band
        self.cutoffs = check_cutoffs(cutoffs)
        self.part = part
        self._masks: dict[tuple[int, int, str], Tensor] = {}

    def mask(self, height: int, width: int, device: torch.device) -> Tensor:
        key = (height, width, str(device))
        if key not in self._masks:
            self._masks[key] = band_mask(height, width, self.band, self.cutoffs, device)
        return self._masks[key]

    def forward(self, x: Tensor) -> Tensor:
        return band_filter(x, self.mask(x.shape[-2], x.shape[-1], x.device), self.part)

    def extra_repr(self) -> str:
        return f"band={self.band}, cutoffs=({self.cutoffs[0]:.4f}, {self.cutoffs[1]:.4f}), part={self.part}"
