"""Images in: the one decoder of fakescope (files, uploaded bytes, arrays), always to 8-bit RGB.

A truncated file is an error, never a half-grey image (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile

from fakescope.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

# A truncated file must be an error, not a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageReadError(DataError):
    """An image file could not be decoded."""


def is_image_file(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def to_rgb(img: Image.Image) -> Image.Image:
    """Grayscale, palette, CMYK, 16-bit and RGBA images to 8-bit RGB (alpha composited on black)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = max(float(arr.max()), 1.0)
        img = Image.fromarray((arr / (65535.0 if hi > 255 else 255.0) * 255.0).clip(0, 255).astype(np.uint8))
    return img.convert("RGB")


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image | None:
    """Decode a file (or bytes) as an RGB image; ``None`` when it is in no image format PIL knows.

    Raises :class:`ImageReadError` naming ``name`` (default: the path) for a file that cannot be opened, or an
    image that is truncated or corrupt.
    """
    name = name or (str(source) if not isinstance(source, bytes) else "the upload")
    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except FileNotFoundError:
        raise ImageReadError(f"{name}: file not found") from None
    except (Image.UnidentifiedImageError, ValueError):
        return None
    except OSError as exc:
        raise ImageReadError(f"{name}: cannot open ({exc})") from None
    try:
        with img:
            img.load()
            return to_rgb(img)
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ImageReadError(f"{name}: cannot decode the {img.format or ''} image: truncated or corrupt "
                             f"({type(exc).__name__}: {exc})") from None


def load_image(path: str | Path) -> Image.Image:
    """Read an image file as RGB. Raises :class:`ImageReadError` naming the file."""
    img = open_image(path)
    if img is None:
        raise ImageReadError(f"{path}: cannot decode image (not in an image format PIL recognises)")
    return img


def array_to_pil(arr: np.ndarray) -> Image.Image:
    """``[H, W]``, ``[H, W, 3|4]`` or ``[3, H, W]`` uint8 (or float in [0, 1]) -> RGB PIL image."""
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise DataError(f"an image array must be [H, W], [H, W, 3] or [H, W, 4]; got shape {a.shape}")
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating):
            if not np.isfinite(a).all():
                raise DataError("the image array holds NaN or infinite values")
            a = a * 255.0 if a.max() <= 1.0 else a
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return to_rgb(Image.fromarray(np.ascontiguousarray(a)))


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> uint8 ``[3, H, W]``."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
