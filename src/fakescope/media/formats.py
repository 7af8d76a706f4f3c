"""Which files are media, by their name: the one list that folder walks and files named directly both use.

Images: every extension Pillow registers for a format it can open here (``Image.registered_extensions()``:
PNG, JPEG, WebP, TIFF, GIF, BMP, JPEG 2000, ICO, TGA, PSD, QOI, the PNM family, AVIF where Pillow was built
with it, ...), less the formats Pillow only identifies without decoding (its stubs: BUFR, GRIB, HDF5, WMF/EMF;
EPS without Ghostscript) and the names that are video containers (``.mpg``). Besides these, the still formats
that need a plugin or a build option (:data:`PLUGIN_IMAGES`: HEIC/HEIF, AVIF, JPEG XL) are always images by
their name, whatever this installation reads: a folder never drops them, and where Pillow cannot decode one,
FFmpeg is tried and the error names the decoder to install. ``pillow-heif``, where installed, is registered
with Pillow. Videos and sound: the documented lists :data:`VIDEO_EXTENSIONS` (containers FFmpeg demuxes) and
:data:`AUDIO_EXTENSIONS` (sound files are taken so that each gets a record saying it has no video stream).

A folder walk takes every file whose name is in these lists; a hidden file (``.name``) is passed over, and any
other file (``notes.txt``, ``labels.json``, an output's ``.lock``) is not media by its name: it is listed as
skipped and counted in the summary, not scored.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
                    ".mts", ".m2ts", ".m2t", ".mpe", ".vob", ".3gp", ".3g2", ".ogv", ".mxf", ".asf", ".f4v",
                    ".divx", ".qt", ".mk3d", ".nut", ".y4m", ".ivf", ".dv", ".rm", ".rmvb", ".h264", ".264",
                    ".hevc", ".h265", ".265")

# sound files are media that people leave among videos: scans take them so that each is reported (no video
# stream) instead of vanishing from the output
AUDIO_EXTENSIONS = (".m4a", ".mp3", ".wav", ".aac", ".flac", ".ogg", ".opus", ".wma")

# still-image formats Pillow decodes only with a plugin or a build option: extension -> (format name, what
# gives Pillow a decoder for it)
PLUGIN_IMAGES = {
    ".heic": ("HEIC", "the pillow-heif package (pip install pillow-heif)"),
    ".heics": ("HEIC", "the pillow-heif package (pip install pillow-heif)"),
    ".heif": ("HEIF", "the pillow-heif package (pip install pillow-heif)"),
    ".heifs": ("HEIF", "the pillow-heif package (pip install pillow-heif)"),
    ".hif": ("HEIF", "the pillow-heif package (pip install pillow-heif)"),
    ".avif": ("AVIF", "a Pillow built with AVIF support (PIL.features.check('avif') is False here)"),
    ".avifs": ("AVIF", "a Pillow built with AVIF support (PIL.features.check('avif') is False here)"),
    ".jxl": ("JPEG XL", "a JPEG XL plugin for Pillow (pip install pillow-jxl-plugin)"),
}


def _suffix(path: str | Path) -> str:
    name = str(path).lower()
    dot = name.rfind(".")
    return name[dot:] if dot > max(name.rfind("/"), name.rfind("\\")) else ""


@lru_cache(maxsize=1)
def register_plugins() -> tuple[str, ...]:
    """Register the optional Pillow plugins that are installed (``pillow-heif``, ``pillow_jxl``); their names."""
    done = []
    try:
        from pillow_heif import register_heif_opener
    except ImportError:  # not installed (an optional plugin): HEIC then goes to FFmpeg
        register_heif_opener = None
    if register_heif_opener is not None:
        try:
            register_heif_opener()
            done.append("pillow-heif")
        except Exception as exc:  # installed, but a version that cannot register: HEIC then goes to FFmpeg
            log.debug("pillow-heif is installed but did not register with Pillow: %s: %s", type(exc).__name__, exc)
    try:
        import pillow_jxl  # noqa: F401  (registers itself on import)

        done.append("pillow-jxl")
    except ImportError:  # not installed (an optional plugin)
        pass
    except Exception as exc:  # installed, but failed on import
        log.debug("pillow-jxl is installed but did not register with Pillow: %s: %s", type(exc).__name__, exc)
    return tuple(done)


# formats Pillow registers extensions for but opens through another format's opener
_OPENED_AS = {"MPO": "JPEG"}


@lru_cache(maxsize=1)
def pillow_extensions() -> dict[str, str]:
    """Extension -> Pillow format, for the formats Pillow can open and decode here."""
    from PIL import Image, ImageFile

    register_plugins()
    Image.init()
    out = {}
    for ext, fmt in Image.registered_extensions().items():
        entry = Image.OPEN.get(_OPENED_AS.get(fmt, fmt))
        if entry is None or ext.lower() in VIDEO_EXTENSIONS:
            continue
        factory = entry[0]
        if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile):
            continue  # identified, never decoded without a handler of its own
        if fmt == "EPS" and not _has_ghostscript():
            continue
        out[ext.lower()] = fmt
    return out


def _has_ghostscript() -> bool:
    try:
        from PIL import EpsImagePlugin

        return bool(EpsImagePlugin.has_ghostscript())
    except Exception:
        return False


@lru_cache(maxsize=1)
def image_extensions() -> tuple[str, ...]:
    """Every extension that names an image (sorted)."""
    return tuple(sorted(set(pillow_extensions()) | set(PLUGIN_IMAGES)))


def media_extensions() -> tuple[str, ...]:
    return image_extensions() + VIDEO_EXTENSIONS + AUDIO_EXTENSIONS


def is_image_file(path: str | Path) -> bool:
    return _suffix(path) in image_extensions()


def is_video_file(path: str | Path) -> bool:
    return _suffix(path) in VIDEO_EXTENSIONS


def is_audio_file(path: str | Path) -> bool:
    return _suffix(path) in AUDIO_EXTENSIONS


def is_media_file(path: str | Path) -> bool:
    """An image, video or sound file by its name (what a folder walk takes)."""
    ext = _suffix(path)
    return ext in VIDEO_EXTENSIONS or ext in AUDIO_EXTENSIONS or ext in image_extensions()


def missing_decoder(path: str | Path) -> str | None:
    """For an image format whose Pillow decoder is not installed here (HEIC without pillow-heif, ...): what is
    missing, as a sentence; ``None`` otherwise."""
    ext = _suffix(path)
    if ext not in PLUGIN_IMAGES or ext in pillow_extensions():
        return None
    fmt, remedy = PLUGIN_IMAGES[ext]
    return f"Pillow here cannot decode {fmt} images; reading them needs {remedy}"
