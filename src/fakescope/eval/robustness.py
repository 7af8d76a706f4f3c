"""Perturbations for robustness sweeps, applied to the raw image before the model's preprocessing."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fakescope.data.transforms import gaussian_blur, jpeg_compress

KINDS = {
    "jpeg_quality": "JPEG quality",
    "blur_sigma": "Gaussian blur sigma (px)",
    "downscale": "downscale factor (then back up)",
    "noise_sigma": "Gaussian noise sigma (fraction of 255)",
}


@dataclass(frozen=True)
class Perturbation:
    """A picklable PIL -> PIL perturbation (DataLoader workers receive it)."""

    kind: str
    level: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown perturbation '{self.kind}' (known: {', '.join(KINDS)})")

    def __call__(self, img: Image.Image) -> Image.Image:
        if self.kind == "jpeg_quality":
            return jpeg_compress(img, int(self.level))
        if self.kind == "blur_sigma":
            return gaussian_blur(img, self.level)
        if self.kind == "downscale":
            w, h = img.size
            small = img.resize((max(1, round(w * self.level)), max(1, round(h * self.level))),
                               Image.Resampling.BILINEAR, reducing_gap=None)
            return small.resize((w, h), Image.Resampling.BILINEAR)
        # Gaussian noise, seeded by the image content so that a sweep is repeatable
        arr = np.asarray(img, dtype=np.float32)
        rng = np.random.default_rng(zlib.crc32(arr[:8].tobytes()) ^ int(self.level * 1e6))
        noisy = arr + rng.normal(0.0, self.level * 255.0, arr.shape)
        return Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))

    @property
    def label(self) -> str:
        return f"{self.kind}={self.level:g}"
