"""The pixel budget: the most pixels one decoded image or video frame may have.

A file of a few kilobytes can declare a 30000x30000 picture or 4096x4096 video frames, and decoding it as such
takes gigabytes. Every decode path of fakescope (images, video frames, uploads to the service) keeps to one budget,
in megapixels:

* a JPEG over it is decoded at reduced size by the decoder itself (DCT scaling: 1/2, 1/4 or 1/8 of each side,
  Pillow's draft mode), the largest that fits;
* a video frame over it is scaled down to fit while it is converted from the decoder's YUV to RGB, so only the
  frame being decoded is ever at full size; frames more than :data:`VIDEO_DECODE_FACTOR` times over it are not
  decoded at all;
* any other image over it is refused with :class:`PixelBudgetError`, naming the file, its size and the budget.

The budget is :data:`DEFAULT_MAX_MEGAPIXELS` unless the environment variable ``FAKESCOPE_MAX_MEGAPIXELS`` or
:func:`set_max_megapixels` (``--max-megapixels`` of ``detect``, ``serve``, ``eval`` and ``prepare``) says otherwise.
Pillow's own decompression-bomb limit (about 179 megapixels) stays in force above it.
"""

from __future__ import annotations

import math
import os

from fakescope.errors import ConfigError, DataError

DEFAULT_MAX_MEGAPIXELS = 24.0  # a 6000x4000 camera photo; 8K video frames (33 MP) are scaled to it
ENV_VAR = "FAKESCOPE_MAX_MEGAPIXELS"
VIDEO_DECODE_FACTOR = 4.0  # video frames above this many budgets are refused rather than decoded and scaled

_override: float | None = None


class PixelBudgetError(DataError):
    """An image or video frame larger than the pixel budget that cannot be decoded at a reduced size."""

    def __init__(self, name: str, width: int, height: int | None = None, what: str = "image",
                 detail: str = "") -> None:
        """``width`` x ``height``, or ``width`` pixels in all where ``height`` is ``None`` (size unknown)."""
        pixels = width * height if height is not None else width
        size = f"{width}x{height} ({pixels / 1e6:.1f} megapixels)" if height is not None else \
            f"{pixels / 1e6:.1f} megapixels"
        super().__init__(f"{name}: the {what} is {size}, over the pixel budget of {max_megapixels():g} "
                         f"megapixels{detail} (--max-megapixels or {ENV_VAR} raises it)")
        self.pixels = pixels


def check_megapixels(value: float, what: str = "max_megapixels") -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: give a number of megapixels, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what} must be a positive number of megapixels, got {value:g}")
    return value


def set_max_megapixels(value: float | None, what: str = "max_megapixels") -> None:
    """Set the budget for this process (``None``: back to the environment variable or the default)."""
    global _override
    _override = None if value is None else check_megapixels(value, what)


def max_megapixels() -> float:
    if _override is not None:
        return _override
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return check_megapixels(env, ENV_VAR)
    return DEFAULT_MAX_MEGAPIXELS


def max_pixels() -> int:
    return int(max_megapixels() * 1_000_000)


def fit_size(width: int, height: int, budget: int | None = None) -> tuple[int, int]:
    """``(width, height)`` scaled down, aspect kept, to at most ``budget`` pixels (unchanged when they fit)."""
    budget = max_pixels() if budget is None else budget
    if width * height <= budget:
        return width, height
    s = math.sqrt(budget / float(width * height))
    w, h = max(int(width * s), 1), max(int(height * s), 1)
    while w * h > budget:  # rounding
        w, h = max(w - 1, 1), max(h - 1, 1)
    return w, h
