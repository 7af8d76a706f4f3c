"""Log-magnitude Fourier spectra of images: one image's (the web page) and a test set's average (the eval
report's generator-fingerprint figure, as in the frequency-analysis papers: Frank et al. 2020, Durall et al.
2020). Batched ``torch.fft`` over the luminance of centre crops, each with a Hann window so that the image
border draws no cross."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from fakescope.media.image import array_to_pil, open_image


def _to_uint8(mag: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(mag, 1), np.percentile(mag, 99.9)
    return np.clip((mag - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)


def _log_magnitude(gray: torch.Tensor) -> torch.Tensor:
    """``[N, H, W]`` luminance -> ``[N, H, W]`` centred log-magnitude spectra."""
    h, w = gray.shape[-2:]
    window = torch.outer(torch.hann_window(h, periodic=False, dtype=gray.dtype),
                         torch.hann_window(w, periodic=False, dtype=gray.dtype))
    g = (gray - gray.mean(dim=(-2, -1), keepdim=True)) * window
    return torch.log1p(torch.fft.fftshift(torch.fft.fft2(g), dim=(-2, -1)).abs())


def _centre(img: Image.Image, side: int) -> np.ndarray:
    g = np.asarray(img.convert("L"), dtype=np.float64)
    h, w = g.shape
    top, left = (h - side) // 2, (w - side) // 2
    return g[top:top + side, left:left + side]


def log_spectrum(image: Image.Image | np.ndarray, max_side: int = 512) -> np.ndarray:
    """Log-magnitude Fourier spectrum of the image's luminance, centred, scaled to uint8 ``[H, W]``; the centre
    crop of at most ``max_side`` pixels is used (generator fingerprints are local and periodic)."""
    img = image if isinstance(image, Image.Image) else array_to_pil(image)
    side_h, side_w = min(img.size[1], max_side), min(img.size[0], max_side)
    g = np.asarray(img.convert("L"), dtype=np.float64)
    top, left = (g.shape[0] - side_h) // 2, (g.shape[1] - side_w) // 2
    crop = torch.from_numpy(np.ascontiguousarray(g[top:top + side_h, left:left + side_w]))[None]
    return _to_uint8(_log_magnitude(crop)[0].numpy())


def mean_log_spectrum(paths: Sequence[str], side: int = 128, limit: int = 256) -> np.ndarray | None:
    """The average log-magnitude spectrum of the centre crops of up to ``limit`` images, scaled to uint8; the
    crop side is ``side``, or the first image's shorter side where that is smaller (images smaller than the crop,
    and unreadable ones, are left out). ``None`` when no image qualifies."""
    crops = []
    for p in paths:
        if len(crops) >= limit:
            break
        img = open_image(p)
        if img is not None and not crops:
            side = min(side, min(img.size))
        if img is not None and min(img.size) >= side:
            crops.append(_centre(img, side))
    if not crops:
        return None
    return _to_uint8(_log_magnitude(torch.from_numpy(np.stack(crops))).mean(0).numpy())
