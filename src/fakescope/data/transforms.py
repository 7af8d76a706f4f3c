"""The transforms derived from a model's :class:`~fakescope.preprocess.PreprocessConfig`, and augmentation.

No torchvision: PIL does the geometry, and normalisation happens on the
model's device (:meth:`fakescope.models.Detector.normalize`). Transforms
return ``uint8`` tensors ``[3, S, S]`` (images) or ``[T, 3, S, S]`` (clips),
so batches stay small on their way to the device.
"""

from __future__ import annotations

import io
import random
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from PIL import Image, ImageEnhance, ImageFilter

from fakescope.media.image import pil_to_tensor
from fakescope.preprocess import PreprocessConfig

_INTERP = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def jpeg_compress(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def gaussian_blur(img: Image.Image, sigma: float) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius=float(sigma))) if sigma > 0 else img


def color_jitter(img: Image.Image, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0,
                 hue: float = 0.0) -> Image.Image:
    """Brightness, contrast and saturation factors (1 = unchanged), then a hue shift in turns (0 = unchanged)."""
    if brightness != 1.0:
        img = ImageEnhance.Brightness(img).enhance(brightness)
    if contrast != 1.0:
        img = ImageEnhance.Contrast(img).enhance(contrast)
    if saturation != 1.0:
        img = ImageEnhance.Color(img).enhance(saturation)
    if hue:
        h, s, v = img.convert("HSV").split()
        shift = int(round(hue * 256)) % 256
        h = h.point(lambda x: (x + shift) % 256)
        img = Image.merge("HSV", (h, s, v)).convert("RGB")
    return img


@dataclass(frozen=True)
class Photometric:
    """Photometric parameters drawn once and applied to an image or to every frame of a clip."""

    sigma: float = 0.0  # Gaussian blur (0 = none)
    quality: int | None = None  # JPEG re-compression quality (None = none)
    jitter: tuple[float, float, float, float] | None = None  # brightness, contrast, saturation, hue


@dataclass(frozen=True)
class Geometry:
    """Geometric parameters drawn once and applied to an image or to every frame of a clip."""

    resize: tuple[int, int] | None  # (w, h) after resizing, or None
    box: tuple[int, int, int, int] | None  # crop box (left, top, right, bottom) after resizing
    flip: bool


class Preprocessor:
    """Turns PIL images into model input as the model's ``PreprocessConfig`` says.

    ``train=True`` draws random crops and applies the augmentations of
    ``augment``; evaluation is deterministic. ``perturb`` (robustness sweeps)
    is applied to the raw image before anything else.
    """

    def __init__(self, preprocess: PreprocessConfig, train: bool = False, augment=None,
                 perturb: Callable[[Image.Image], Image.Image] | None = None) -> None:
        self.pp = preprocess
        self.train = train
        self.augment = augment if train else None
        self.perturb = perturb

    # -- geometry --------------------------------------------------------
    def draw_geometry(self, size: tuple[int, int], rng: random.Random) -> Geometry:
        w, h = size
        s = self.pp.input_size
        resize = None
        if self.pp.policy == "resize":
            return Geometry((s, s), None, self._flip(rng))
        if self.pp.policy == "resize_crop" or min(w, h) < s:
            short = max(self.pp.short_side, s)
            scale = short / min(w, h)
            w, h = max(s, round(w * scale)), max(s, round(h * scale))
            resize = (w, h)
        if self.train:
            left, top = rng.randint(0, w - s), rng.randint(0, h - s)
        else:
            left, top = (w - s) // 2, (h - s) // 2
        return Geometry(resize, (left, top, left + s, top + s), self._flip(rng))

    def region(self, size: tuple[int, int]) -> dict:
        """What evaluation preprocessing keeps of an image of ``size`` (w, h): the box it scores in the image's own
        pixels, the share of the image's area, and a sentence ("centre 64 x 64 of 512 x 600")."""
        w, h = size
        s = self.pp.input_size
        if self.pp.policy == "resize":
            box, text = (0, 0, w, h), f"the whole {w} x {h}" + (f", resized to {s} x {s}" if (w, h) != (s, s) else "")
        else:
            geo = self.draw_geometry(size, random.Random(0))  # evaluation: deterministic, no flip drawn
            rw, rh = geo.resize or (w, h)
            left, top, right, bottom = geo.box
            box = tuple(round(v) for v in (left * w / rw, top * h / rh, right * w / rw, bottom * h / rh))
            bw, bh = box[2] - box[0], box[3] - box[1]
            text = (f"centre {bw} x {bh} of {w} x {h}" + (f", resized to {s} x {s}" if (bw, bh) != (s, s) else "")
                    if (bw, bh) != (w, h) else f"the whole {w} x {h}" + (
                        f", resized to {s} x {s}" if (w, h) != (s, s) else ""))
        fraction = (box[2] - box[0]) * (box[3] - box[1]) / max(1, w * h)
        return {"policy": self.pp.policy, "input_size": s, "image_size": [w, h], "box": list(box),
                "fraction": round(fraction, 4), "text": text}

    def _flip(self, rng: random.Random) -> bool:
        return bool(self.augment is not None and self.augment.hflip and rng.random() < 0.5)

    def apply_geometry(self, img: Image.Image, geo: Geometry) -> Image.Image:
        if geo.resize is not None and img.size != geo.resize:
            img = img.resize(geo.resize, _INTERP[self.pp.interpolation])
        if geo.box is not None:
            img = img.crop(geo.box)
        if geo.flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img

    # -- photometric -----------------------------------------------------
    def draw_photometric(self, rng: random.Random) -> Photometric:
        a = self.augment
        if a is None:
            return Photometric()
        sigma = rng.uniform(*a.blur_sigma) if rng.random() < a.blur_prob else 0.0
        quality = rng.randint(*a.jpeg_quality) if rng.random() < a.jpeg_prob else None
        jitter = None
        if getattr(a, "jitter_prob", 0.0) and rng.random() < a.jitter_prob:
            jitter = (rng.uniform(max(0.0, 1 - a.brightness), 1 + a.brightness),
                      rng.uniform(max(0.0, 1 - a.contrast), 1 + a.contrast),
                      rng.uniform(max(0.0, 1 - a.saturation), 1 + a.saturation),
                      rng.uniform(-a.hue, a.hue))
        return Photometric(sigma, quality, jitter)

    def apply_photometric(self, img: Image.Image, params: Photometric) -> Image.Image:
        """Colour jitter, then blur, then JPEG re-compression (each only when drawn)."""
        if params.jitter is not None:
            img = color_jitter(img, *params.jitter)
        img = gaussian_blur(img, params.sigma)
        if params.quality is not None:
            img = jpeg_compress(img, params.quality)
        return img

    # -- entry points ----------------------------------------------------
    def __call__(self, img: Image.Image, rng: random.Random | None = None) -> torch.Tensor:
        rng = rng or random
        if self.perturb is not None:
            img = self.perturb(img)
        img = self.apply_photometric(img, self.draw_photometric(rng))
        return pil_to_tensor(self.apply_geometry(img, self.draw_geometry(img.size, rng)))

    def clip(self, frames: Sequence[Image.Image], rng: random.Random | None = None) -> torch.Tensor:
        """Frames -> ``[T, 3, S, S]``; crop, flip and photometric parameters are shared by all frames."""
        rng = rng or random
        if self.perturb is not None:
            frames = [self.perturb(f) for f in frames]
        photo = self.draw_photometric(rng)
        geo = self.draw_geometry(frames[0].size, rng)
        out = []
        for f in frames:
            if f.size != frames[0].size:
                f = f.resize(frames[0].size, _INTERP[self.pp.interpolation])
            out.append(pil_to_tensor(self.apply_geometry(self.apply_photometric(f, photo), geo)))
        return torch.stack(out)


def warn_skip(path: str, error: str) -> None:
    warnings.warn(f"skipping unreadable sample {path}: {error}", RuntimeWarning, stacklevel=3)
