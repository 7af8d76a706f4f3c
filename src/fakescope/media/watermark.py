"""Invisible watermarks as evidence: the messages that Stable Diffusion's reference code embeds, read back with the
``invisible-watermark`` package (``imwatermark``; its dwtDct decoder runs offline, on the CPU).

What is read
    Each message of :data:`MESSAGES` (the 48 bits of Stable Diffusion XL, the bytes ``StableDiffusionV1`` of the
    original Stable Diffusion scripts, ``SDV2`` of Stable Diffusion 2's), each with the dwtDct method its source
    embeds it with. dwtDct hides the bits in the chroma (U of YUV) channel: a Haar wavelet's approximation band,
    cut in 4x4 blocks, bit ``i mod n`` in block ``i``. Each bit is decided from its blocks in two ways, the package's
    majority and a vote weighted by how far each block can be trusted (:func:`block_votes`). The bits
    are read from the image at the size it has: a mark survives a lossless copy, not a resize or a crop off the
    block grid.

The statistic
    A reading compares the decoded bits with the message: ``bits_matched`` of ``bits_total`` (``bit_accuracy``), and
    ``p_value``, the probability that an image without the mark matches at least as many bits by chance,
    P[X >= matched] for X ~ Binomial(bits_total, 1/2) (:func:`binomial_tail`). A message read in several ways
    (two decoders, :data:`DECODERS`; the SDXL bits also from two pixel representations, :class:`KnownMessage`
    ``read_domains``) reports the best reading, its tail probability multiplied by the number of readings
    (Bonferroni). A message counts as ``found`` only when ``p_value <= FALSE_ALARM_LEVEL``.

The decoded bits of an unmarked image are not independent fair coins (an image of flat or grey colour decodes to
all zeros), so the binomial tail is a yardstick, not an exact false-alarm rate: :data:`FALSE_ALARM_LEVEL` is set
far below one over the number of clean images measured (``benchmarks/watermark.py``, ``docs/watermark.md``).

Install (the package's metadata asks for ``opencv-python``, which would sit beside the ``opencv-python-headless``
fakescope uses and fight over ``cv2``, and for an unpinned ``torch``)::

    pip install 'fakescope[watermark]'                    # opencv-python-headless and PyWavelets
    pip install --no-deps invisible-watermark==0.2.0      # the package itself (make install does both)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fakescope.errors import DataError, MissingExtraError
from fakescope.media.dwtdct import (DECODERS, SCALE, bits_from_scores, bits_from_votes, block_scores,  # noqa: F401
                                     block_values, block_votes)
from fakescope.media.image import array_to_pil, load_image, open_image, to_rgb, upright

INSTALL = "pip install 'fakescope[watermark]' && pip install --no-deps invisible-watermark==0.2.0"
# A message counts as found when the chance of matching that many bits without the mark is at most this (per
# message, per image; three messages are read, so at most 3e-6 per image). 1e-6 asks for 42 of 48 bits (SDXL, its
# tail times 4: two domains, two decoders), 97 of 136 (SD 1, times 2) and 30 of 32 (SD 2, times 2). Stability AI's own SDXL detector (Stability-AI/generative-models,
# scripts/demo/detect.py) calls 36 or more of 48 bits "very likely watermarked" (tail 3.6e-4): this level is stricter.
FALSE_ALARM_LEVEL = 1e-6
METHOD = "dwtDct"
# imwatermark's own limit (WatermarkEncoder.encode / WatermarkDecoder.decode): height x width >= 256 x 256
MIN_PIXELS = 256 * 256
# the two ways pixels reach the decoder (its dwtDct code converts BGR to YUV with OpenCV, whose offset of U and V is
# 128 for an 8-bit array and 0.5 for a float one: a mark embedded in one is read back faithfully only in the same)
DOMAINS = {
    "float": "float32 BGR in 0..255 (as diffusers and Stability AI's generative-models embed)",
    "uint8": "8-bit BGR (as the Stable Diffusion scripts embed and Stability AI's detect.py reads)",
}


class WatermarkUnavailableError(MissingExtraError):
    """The ``invisible-watermark`` package (or the OpenCV / PyWavelets it needs) is not installed."""


@dataclass(frozen=True)
class KnownMessage:
    """A watermark message that a generator's reference code embeds.

    ``embed_domain``: how the source hands pixels to the encoder (:data:`DOMAINS`); ``read_domains``: how the
    reader decodes them (more than one: the best reading, its tail probability multiplied by their number)."""

    name: str
    label: str
    bits: tuple[int, ...]
    embed_domain: str
    read_domains: tuple[str, ...]
    source: str
    method: str = METHOD
    text: str | None = None  # the message as the source writes it, where it is bytes


def _bits_of_int(value: int) -> tuple[int, ...]:
    """``[int(b) for b in bin(value)[2:]]``: the most significant bit first, no leading zeros (as the sources do)."""
    return tuple(int(b) for b in bin(value)[2:])


def _bits_of_bytes(data: bytes) -> tuple[int, ...]:
    """Each byte's bits, most significant first (imwatermark's ``set_watermark('bytes', ...)``: ``np.unpackbits``)."""
    return tuple(int(b) for b in np.unpackbits(np.frombuffer(data, dtype=np.uint8)))


# Stable Diffusion XL: huggingface/diffusers, src/diffusers/pipelines/stable_diffusion_xl/watermark.py
# (WATERMARK_MESSAGE, WATERMARK_BITS = [int(bit) for bit in bin(WATERMARK_MESSAGE)[2:]], 48 bits; its comment: copied
# from Stability-AI/generative-models scripts/demo/streamlit_helpers.py, where the constant now lives in
# sgm/inference/helpers.py and scripts/demo/detect.py). StableDiffusionXLWatermarker.apply_watermark embeds it with
# set_watermark("bits", ...) and encode(image, "dwtDct") on float32 arrays of 255 * (x / 2 + 0.5), channels
# reversed RGB -> BGR, then reverses them back; images narrower than 256 pixels are left unmarked.
SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110  # 0xB3EC907BB19E
# Stable Diffusion 1: CompVis/stable-diffusion, scripts/txt2img.py (wm = "StableDiffusionV1";
# WatermarkEncoder().set_watermark('bytes', wm.encode('utf-8')); put_watermark: cv2.cvtColor(np.array(img),
# cv2.COLOR_RGB2BGR), encode(img, 'dwtDct') on the 8-bit BGR array, then img[:, :, ::-1]); also scripts/img2img.py.
SD1_TEXT = "StableDiffusionV1"
# Stable Diffusion 2: Stability-AI/stablediffusion, scripts/txt2img.py and scripts/img2img.py (wm = "SDV2", the same
# put_watermark as Stable Diffusion 1's).
SD2_TEXT = "SDV2"

MESSAGES: dict[str, KnownMessage] = {
    m.name: m for m in (
        KnownMessage(
            "sdxl", "Stable Diffusion XL (diffusers StableDiffusionXLWatermarker; Stability AI generative-models)",
            _bits_of_int(SDXL_MESSAGE), "float", ("float", "uint8"),
            "huggingface/diffusers src/diffusers/pipelines/stable_diffusion_xl/watermark.py; "
            "Stability-AI/generative-models sgm/inference/helpers.py, scripts/demo/detect.py"),
        KnownMessage(
            "sd1", "Stable Diffusion 1 scripts (CompVis txt2img / img2img)", _bits_of_bytes(SD1_TEXT.encode("utf-8")),
            "uint8", ("uint8",), "CompVis/stable-diffusion scripts/txt2img.py (put_watermark)", text=SD1_TEXT),
        KnownMessage(
            "sd2", "Stable Diffusion 2 scripts (Stability AI txt2img / img2img)",
            _bits_of_bytes(SD2_TEXT.encode("utf-8")), "uint8", ("uint8",),
            "Stability-AI/stablediffusion scripts/txt2img.py (put_watermark)", text=SD2_TEXT),
    )
}

FOUND, NOT_FOUND, TOO_SMALL = "found", "not found", "too small"


@dataclass(frozen=True)
class WatermarkReading:
    """One message read from one image. ``bits_matched``, ``bit_accuracy``, ``p_value`` and ``domain`` are ``None``
    when the image is too small to carry the mark (``status`` says so, ``note`` why)."""

    name: str
    label: str
    method: str
    status: str
    found: bool
    bits_total: int
    bits_matched: int | None
    bit_accuracy: float | None
    p_value: float | None
    domain: str | None
    source: str
    note: str = ""
    decoder: str | None = None  # which of DECODERS gave the reading reported

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def binomial_tail(matched: int, total: int) -> float:
    """P[X >= matched] for X ~ Binomial(total, 1/2), exactly: sum over k >= matched of C(total, k) / 2**total."""
    if not 0 <= matched <= total:
        raise ValueError(f"matched bits must be between 0 and {total}, got {matched}")
    return math.fsum(math.comb(total, k) for k in range(matched, total + 1)) / 2.0 ** total


def _imwatermark() -> Any:
    """The imported ``imwatermark`` package, or :class:`WatermarkUnavailableError` naming the install command."""
    try:
        import imwatermark
    except ImportError as exc:  # the package, or OpenCV / PyWavelets that it imports
        missing = getattr(exc, "name", None) or "imwatermark"
        what = {"imwatermark": "the invisible-watermark package", "cv2": "OpenCV (opencv-python-headless)",
                "pywt": "PyWavelets"}.get(missing, missing)
        raise WatermarkUnavailableError(
            f"invisible watermarks cannot be read: {what} is not installed ({INSTALL})") from None
    return imwatermark


def available() -> str | None:
    """``None`` when watermarks can be read here; otherwise the reason, with the install command."""
    try:
        _imwatermark()
    except WatermarkUnavailableError as exc:
        return str(exc)
    return None


def _rgb_array(image: Any, name: str | None = None) -> tuple[np.ndarray, str]:
    """``image`` (a path, bytes, a PIL image or an array) as 8-bit RGB ``[H, W, 3]``, and the name errors give it."""
    if isinstance(image, (str, Path)):
        return np.asarray(load_image(image)), name or str(image)
    if isinstance(image, (bytes, bytearray)):
        label = name or "the upload"
        img = open_image(bytes(image), label)
        if img is None:
            raise DataError(f"{label}: cannot decode image (not in an image format PIL recognises)")
        return np.asarray(img), label
    label = name or "the image"
    if isinstance(image, Image.Image):
        try:
            return np.asarray(to_rgb(upright(image))), label
        except Exception as exc:  # noqa: BLE001 (Pillow decodes lazily: a corrupt file fails here, in many types)
            raise DataError(f"{label}: cannot decode the image: truncated or corrupt ({type(exc).__name__}: "
                            f"{exc})") from None
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        elif arr.dtype.kind in "ui" and arr.dtype.itemsize > 1 and arr.size:  # 16-bit (or wider) integers
            scale = 255.0 / 65535.0 if int(arr.max()) > 255 else 1.0
            arr = np.clip(np.rint(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
        try:
            return np.asarray(array_to_pil(arr)), label
        except DataError as exc:
            raise DataError(f"{label}: {exc}") from None
    raise DataError(f"{label}: not an image (a path, bytes, a PIL image or an array; got {type(image).__name__})")


def _blocks(height: int, width: int) -> int:
    """dwtDct's 4x4 blocks in an image: the Haar band of the image cropped to multiples of 4, halved, in blocks."""
    return (height // 4 * 4 // 2 // 4) * (width // 4 * 4 // 2 // 4)


def too_small(height: int, width: int, bits: int) -> str | None:
    """Why an image of this size cannot carry a message of ``bits`` bits; ``None`` when it can."""
    if height * width < MIN_PIXELS:
        return (f"too small to carry a watermark: {width}x{height} pixels, dwtDct needs at least "
                f"{MIN_PIXELS} (256x256)")
    if _blocks(height, width) < bits:
        return (f"too small to carry a watermark: {width}x{height} pixels hold {_blocks(height, width)} dwtDct "
                f"blocks, fewer than the message's {bits} bits")
    return None


def _in_domain(rgb: np.ndarray, domain: str) -> np.ndarray:
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    return bgr.astype(np.float32) if domain == "float" else bgr


def read_watermarks(image: Any, names: tuple[str, ...] | list[str] | None = None,
                    name: str | None = None) -> list[WatermarkReading]:
    """Read every known message (or those in ``names``) from ``image``: a path, file bytes, a PIL image (any mode:
    grey, palette, RGBA composited on black, 16-bit) or an array (``[H, W]``, ``[H, W, 3|4]``; uint8, uint16 or
    float in [0, 1]). ``name`` is what errors call the image (default: the path).

    Raises :class:`WatermarkUnavailableError` (with the install command) without ``imwatermark``, and
    :class:`~fakescope.errors.DataError` naming the file for an input that is no readable image."""
    messages = _messages(names)
    _imwatermark()  # installed with what it needs (OpenCV, PyWavelets), or the error naming the install command
    rgb, _ = _rgb_array(image, name)
    height, width = rgb.shape[:2]
    grey = bool(np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]))
    values: dict[str, np.ndarray] = {}  # per reading domain: every block's values (one pass over the image)
    out = []
    for m in messages:
        n = len(m.bits)
        small = too_small(height, width, n)
        if small:
            out.append(WatermarkReading(m.name, m.label, m.method, TOO_SMALL, False, n, None, None, None, None,
                                        m.source, small))
            continue
        want = np.asarray(m.bits, dtype=bool)
        best: tuple[int, str, str] | None = None
        for domain in m.read_domains:
            if domain not in values:
                values[domain] = block_values(_in_domain(rgb, domain))
            for decoder, bits in (("majority", bits_from_scores(block_scores(values[domain]), n)),
                                  ("weighted", bits_from_votes(values[domain], n))):
                matched = int((bits == want).sum())
                if best is None or matched > best[0]:
                    best = (matched, domain, decoder)
        assert best is not None
        matched, domain, decoder = best
        p = min(1.0, binomial_tail(matched, n) * readings_per_message(m))
        found = p <= FALSE_ALARM_LEVEL
        note = ("grey image: dwtDct marks live in the colour (U) channel, which this image has none of"
                if grey and not found else "")
        out.append(WatermarkReading(m.name, m.label, m.method, FOUND if found else NOT_FOUND, found, n, matched,
                                    matched / n, p, domain, m.source, note, decoder))
    return _note_cross_talk(out)


def readings_per_message(message: KnownMessage) -> int:
    """How many readings of ``message`` are made (domains x decoders): the best one's tail is multiplied by this."""
    return len(message.read_domains) * len(DECODERS)


def _note_cross_talk(readings: list[WatermarkReading]) -> list[WatermarkReading]:
    """Where SD 1 and SD 2 are both found, the weaker says so: "SDV2" shares bits with "StableDiffusionV1" and repeats
    every 32 bits, so an SD 2 mark matches the SD 1 message above chance (docs/watermark.md, cross-talk)."""
    found = {r.name: r for r in readings if r.found and r.name in ("sd1", "sd2")}
    if len(found) < 2:
        return readings
    strong = min(found.values(), key=lambda r: r.p_value or 0.0)
    note = (f"{strong.name} is also found, with a smaller p-value: the SD 1 and SD 2 messages share bits, the mark "
            f"is more likely {strong.name}'s")
    return [replace(r, note=note) if r.name in found and r is not strong else r for r in readings]


def _messages(names: tuple[str, ...] | list[str] | None) -> list[KnownMessage]:
    if names is None:
        return list(MESSAGES.values())
    unknown = [n for n in names if n not in MESSAGES]
    if unknown:
        raise DataError(f"unknown watermark message {', '.join(map(repr, unknown))} (known: {', '.join(MESSAGES)})")
    return [MESSAGES[n] for n in names]


def watermark_evidence(image: Any, name: str | None = None) -> dict[str, Any]:
    """A JSON-ready summary for a record: ``available``, ``found`` (the names of the messages found), ``readings``
    and ``false_alarm_level``. Without ``imwatermark`` it says so (``available: false`` and ``note`` with the
    install command) rather than raising; a bad input still raises :class:`~fakescope.errors.DataError`."""
    reason = available()
    if reason is not None:
        return {"available": False, "note": reason, "found": [], "readings": []}
    readings = read_watermarks(image, name=name)
    return {"available": True, "found": [r.name for r in readings if r.found],
            "readings": [r.to_dict() for r in readings], "false_alarm_level": FALSE_ALARM_LEVEL}


def watermark_image(image: Any, name: str = "sdxl") -> Image.Image:
    """``image`` with message ``name`` embedded the way its source does (for tests and benchmarks), as 8-bit RGB.

    ``sdxl``: as diffusers' StableDiffusionXLWatermarker: float32 BGR in 0..255 to dwtDct, then clipped and rounded
    to 8 bits (as the pipeline's output). ``sd1``/``sd2``: as the scripts' put_watermark: 8-bit BGR to dwtDct.
    Raises :class:`~fakescope.errors.DataError` for an image too small to carry the mark."""
    message = _messages([name])[0]
    imwatermark = _imwatermark()
    rgb, label = _rgb_array(image)
    small = too_small(rgb.shape[0], rgb.shape[1], len(message.bits))
    if small:
        raise DataError(f"{label}: {small}")
    encoder = imwatermark.WatermarkEncoder()
    if message.text is not None:  # as the scripts: set_watermark('bytes', wm.encode('utf-8'))
        encoder.set_watermark("bytes", message.text.encode("utf-8"))
    else:
        encoder.set_watermark("bits", list(message.bits))
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # dwtDct writes floats into the 8-bit YUV array
        warnings.simplefilter("ignore", RuntimeWarning)
        bgr = encoder.encode(_in_domain(rgb, message.embed_domain), METHOD)
    out = np.clip(np.rint(bgr[:, :, ::-1]), 0, 255).astype(np.uint8) if bgr.dtype != np.uint8 else bgr[:, :, ::-1]
    return Image.fromarray(np.ascontiguousarray(out))
