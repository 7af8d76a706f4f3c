"""Images in: the one decoder of fakescope (files, uploaded bytes, arrays), always to 8-bit RGB, upright.

A truncated file is an error, never a half-grey image (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off). The EXIF
orientation is applied (a phone photo stored sideways with ``Orientation=6`` comes out as it was taken). The
pixel budget (:mod:`fakescope.media.limits`) is checked before any pixel is decoded: a JPEG over it is decoded at
reduced size, any other image over it is refused. An animated GIF (or WebP, TIFF) gives its first frame. A PNG
whose text chunks Pillow refuses (one inflating past ``PngImagePlugin.MAX_TEXT_CHUNK``) is decoded without them.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps

from fakescope.errors import DataError
from fakescope.media.formats import image_extensions, is_image_file, missing_decoder, register_plugins
from fakescope.media.limits import PixelBudgetError, max_pixels

EXIF_ORIENTATION = 0x0112

# A truncated file must be an error, not a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageReadError(DataError):
    """An image file could not be decoded."""


def __getattr__(name: str):
    if name == "IMAGE_EXTENSIONS":  # derived from the decoders installed (media.formats), when first asked for
        return image_extensions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    """Decode a file (or bytes) as an upright RGB image; ``None`` when it is in no image format PIL knows.

    Raises :class:`ImageReadError` naming ``name`` (default: the path) for a file that cannot be opened, or an
    image that is truncated or corrupt, and :class:`~fakescope.media.limits.PixelBudgetError` for an image over
    the pixel budget that cannot be decoded at reduced size.
    """
    name = name or (str(source) if not isinstance(source, bytes) else "the upload")
    register_plugins()
    if not isinstance(source, bytes):
        _regular_file(source, name)
    try:
        with warnings.catch_warnings():  # the pixel budget below is the limit; Pillow's warning says nothing more
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except FileNotFoundError:
        raise ImageReadError(f"{name}: file not found") from None
    except Image.DecompressionBombError as exc:
        raise PixelBudgetError(name, _bomb_pixels(exc), detail=" (and over Pillow's decompression-bomb "
                               "limit)") from None
    except (Image.UnidentifiedImageError, ValueError) as exc:
        if _text_chunk_limit(exc):
            return _without_text(source, name)
        return None
    except OSError as exc:
        raise ImageReadError(f"{name}: cannot open ({exc})") from None
    try:
        with img:
            fit_budget(img, name)
            img.load()
            return to_rgb(upright(img))
    except PixelBudgetError:
        raise
    except ValueError as exc:
        if _text_chunk_limit(exc):
            return _without_text(source, name)
        raise ImageReadError(f"{name}: cannot decode the {img.format or ''} image: truncated or corrupt "
                             f"({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ImageReadError(f"{name}: cannot decode the {img.format or ''} image: truncated or corrupt "
                             f"({type(exc).__name__}: {exc})") from None


def _text_chunk_limit(exc: Exception) -> bool:
    """Pillow's refusal of a PNG text chunk over ``PngImagePlugin.MAX_TEXT_CHUNK`` (or of text over
    ``MAX_TEXT_MEMORY``): metadata, not the image."""
    return isinstance(exc, ValueError) and ("MAX_TEXT_CHUNK" in str(exc) or "text chunks" in str(exc))


def _without_text(source: str | Path | bytes, name: str) -> Image.Image | None:
    """A PNG whose text chunks Pillow refuses, decoded without them (the provenance reader names the chunks
    skipped): the pixels are fine, and the limit stays Pillow's (a text bomb is never inflated)."""
    from fakescope.utils import pngchunks

    if isinstance(source, bytes):
        data = source
    else:
        with open(source, "rb") as fh:
            data = fh.read()
    if not pngchunks.is_png(data):
        raise ImageReadError(f"{name}: cannot decode the image: a text chunk is over Pillow's size limit")
    stripped = pngchunks.without_text(data)
    if stripped == data:
        raise ImageReadError(f"{name}: cannot decode the PNG image: its text is over Pillow's size limit")
    return open_image(stripped, name)


def _regular_file(path: str | Path, name: str) -> None:
    """A named pipe, socket or device would block or never end: refuse anything but a regular file."""
    import os
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError(f"{name}: file not found") from None
    except OSError as exc:
        raise ImageReadError(f"{name}: cannot open ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError(f"{name}: not a regular file (a folder, named pipe, socket or device)")
    if st.st_size == 0:
        raise ImageReadError(f"{name}: empty file (0 bytes)")


def fit_budget(img: Image.Image, name: str) -> None:
    """Before decoding: a JPEG over the pixel budget is set to decode at the largest DCT scale that fits (1/2,
    1/4 or 1/8 of each side); any other image over it raises :class:`PixelBudgetError`."""
    budget = max_pixels()
    w, h = img.size
    if w * h <= budget:
        return
    if img.format in ("JPEG", "MPO"):
        for k in (2, 4, 8):
            want = (-(-w // k), -(-h // k))
            if want[0] * want[1] <= budget:
                img.draft(img.mode, want)
                if img.size[0] * img.size[1] <= budget:
                    img.info["fakescope_decoded_from"] = (w, h)
                    return
                break
        raise PixelBudgetError(name, w, h, detail=", also at 1/8 of its size (the smallest JPEG decoding)")
    raise PixelBudgetError(name, w, h, detail=f" ({img.format or 'this'} images cannot be decoded at reduced "
                                              "size; only JPEG can)")


def upright(img: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (unchanged, and not copied, when there is none)."""
    try:
        orientation = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # an unreadable EXIF block: the pixels are still good
        return img
    return ImageOps.exif_transpose(img) if orientation in (2, 3, 4, 5, 6, 7, 8) else img


def _bomb_pixels(exc: Exception) -> int:
    """The image's pixel count from Pillow's decompression-bomb message (0 if it has none)."""
    import re

    m = re.search(r"\((\d+) pixels\)", str(exc))
    return int(m.group(1)) if m else 0


def open_still(path: str | Path) -> Image.Image | None:
    """:func:`open_image`, and for a file named as an image whose Pillow decoder is not installed here (HEIC
    without pillow-heif, see :data:`fakescope.media.formats.PLUGIN_IMAGES`), FFmpeg's decoder.

    ``None`` when the file is in no image format Pillow knows and its name is no such format. Raises
    :class:`ImageReadError` naming the file, the format and the decoder to install when neither Pillow nor
    FFmpeg decodes it.
    """
    img = open_image(path)
    if img is not None:
        return img
    missing = missing_decoder(path)
    if missing is None:
        return None
    from fakescope.media.video import VideoReadError, read_still

    try:
        return to_rgb(Image.fromarray(read_still(path)))
    except PixelBudgetError:
        raise
    except VideoReadError as exc:
        if exc.reason == "too-large":
            raise ImageReadError(str(exc)) from None
        raise ImageReadError(f"{path}: {missing}, and FFmpeg could not decode it either ({exc.detail})") from None


def load_image(path: str | Path) -> Image.Image:
    """Read an image file as RGB. Raises :class:`ImageReadError` naming the file."""
    img = open_still(path)
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
