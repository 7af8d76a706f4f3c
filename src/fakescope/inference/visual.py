"""Pictures for the web page: the log-magnitude spectrum of an image."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fakescope.media.image import array_to_pil


def log_spectrum(image: Image.Image | np.ndarray, max_side: int = 512) -> np.ndarray:
    """Log-magnitude Fourier spectrum of the image's luminance, centred, scaled to uint8 ``[H, W]``.

    The centre crop of at most ``max_side`` pixels is used (generator fingerprints are local and periodic,
    and the crop keeps this cheap); a Hann window keeps the image border from drawing a cross.
    """
    img = image if isinstance(image, Image.Image) else array_to_pil(image)
    g = np.asarray(img.convert("L"), dtype=np.float64)
    h, w = g.shape
    s_h, s_w = min(h, max_side), min(w, max_side)
    top, left = (h - s_h) // 2, (w - s_w) // 2
    g = g[top:top + s_h, left:left + s_w]
    g = (g - g.mean()) * np.outer(np.hanning(s_h), np.hanning(s_w))
    mag = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(g))))
    lo, hi = np.percentile(mag, 1), np.percentile(mag, 99.9)
    return np.clip((mag - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)
