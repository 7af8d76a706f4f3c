"""What ``fakescope detect`` and :class:`fakescope.Detector` take in: paths, folders and globs expanded to files,
and each input decoded into an image or a video (by its content, not its name)."""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from fakescope.errors import DataError
from fakescope.media.formats import is_image_file, is_media_file, is_video_file, media_extensions, missing_decoder
from fakescope.media.image import array_to_pil, open_still, to_rgb

# what folders and patterns take, by name (fakescope.media.formats: images Pillow decodes here, the still formats
# that need a plugin, videos, and sound files, which each get a record saying they have no video stream)
MEDIA_EXTENSIONS = media_extensions()


@dataclass
class Missing:
    """An input that could not be expanded (a missing file, a pattern that matches nothing)."""

    error: str


def _media_files(folder: str, skipped: list[str] | None = None) -> Iterator[str]:
    """Media files under ``folder``, one at a time, in the order of their sorted full paths (symbolic links to
    folders are not followed: no loops); other files go to ``skipped``, hidden ones (``.name``) are ignored.
    Media by name: :func:`fakescope.media.formats.is_media_file`, the test a file named directly gets too.

    Only one folder's listing is held at a time, so a tree of millions of files streams in flat memory."""
    try:
        with os.scandir(folder) as it:
            entries = [(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, str(Path(folder) / e.name)) for e in it
                       if not e.name.startswith(".")]
    except OSError:
        return
    # "name/" sorts a sub-folder's files exactly where sorting the full path strings puts them
    for key, path in sorted(entries):
        if key.endswith("/"):
            yield from _media_files(path, skipped)
        elif is_media_file(key):
            yield path
        elif skipped is not None:
            skipped.append(path)


def iter_inputs(paths: Sequence[str | os.PathLike], skipped: list[str] | None = None
                ) -> Iterator[tuple[str, str | None]]:
    """Files, folders (searched recursively for images and videos) and glob patterns -> ``(path, error)``, as a
    stream: a folder of millions of files is walked as it is scored.

    A path that does not exist, or a pattern that matches nothing, comes back with an error so that it is
    reported in the output like any other failure. Order: as given; inside a folder or pattern, sorted. A file
    reached twice (through a symbolic link, or a ``**`` pattern that passes a link to a parent folder) is
    taken once (a single folder, walked without following links, cannot repeat a file, so it keeps no list of
    what it has seen). ``skipped``: gets the files that folders and patterns held but that are not media by
    their name.
    """
    single_folder = len(paths) == 1 and os.path.isdir(os.path.expanduser(str(paths[0])))
    seen: set[bytes] = set()

    def fresh(p: str) -> bool:
        if single_folder:
            return True
        key = hashlib.blake2b(os.fsencode(os.path.realpath(p)), digest_size=8).digest()
        if key in seen:
            return False
        seen.add(key)
        return True

    for raw in paths:
        p = os.path.expanduser(str(raw))
        if os.path.isdir(p):
            empty = True
            for f in _media_files(p, skipped):
                empty = False
                if fresh(f):
                    yield f, None
            if empty:
                yield p, "folder holds no image or video file"
        elif os.path.exists(p):
            if fresh(p):
                yield p, None
        elif glob.has_magic(p):
            matches = sorted(glob.glob(p, recursive=True))
            files = [m for m in matches if os.path.isfile(m)]
            if "**" in p:  # a recursive pattern names folders too: only their media files count
                if skipped is not None:
                    skipped += [m for m in files if not is_media_file(m)]
                files = [m for m in files if is_media_file(m)]
            for d in (m for m in matches if os.path.isdir(m)):
                files += list(_media_files(d, skipped))
            if not files:
                yield p, "pattern matches no file"
            for f in files:
                if fresh(f):
                    yield f, None
        else:
            yield p, "file not found"


def skip_reason(path: str | os.PathLike) -> str:
    """Why a folder walk left ``path`` out, as the record of a skipped file says it."""
    reason = missing_decoder(path)
    if os.path.islink(path) and os.path.isdir(path):
        reason = "a symbolic link to a folder: links inside folders are not followed"
    elif reason is None:
        ext = Path(path).suffix.lower() or "no extension"
        reason = f"not an image, video or sound file by its name ({ext})"
    return f"{path}: skipped: {reason}"


def expand_inputs(paths: Sequence[str | os.PathLike], skipped: list[str] | None = None
                  ) -> list[tuple[str, str | None]]:
    """:func:`iter_inputs` as a list."""
    return list(iter_inputs(paths, skipped))


def decode_input(x: Any, path: str) -> tuple[str, Any]:
    """-> ``("image", PIL image)``, ``("video", path or list of frames)``, or ``("unknown", path)`` for a file that
    is no image (the video reader then says whether it is a video)."""
    if isinstance(x, Missing):
        raise DataError(f"{path}: {x.error}")
    if isinstance(x, Image.Image):
        return "image", to_rgb(x)
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        if x.ndim == 4:
            return "video", [np.asarray(array_to_pil(f)) for f in x]
        return "image", array_to_pil(x)
    if isinstance(x, (list, tuple)):
        if not x:
            raise DataError("an empty list of frames")
        return "video", [np.asarray(to_rgb(f) if isinstance(f, Image.Image) else array_to_pil(f)) for f in x]
    if isinstance(x, (str, os.PathLike)):
        p = str(x)
        if not os.path.exists(p):
            raise DataError(f"{p}: file not found")
        if os.path.isdir(p):
            raise DataError(f"{p}: is a folder (predict_many expands folders)")
        if not os.path.isfile(p):
            raise DataError(f"{p}: not a regular file (a named pipe, socket or device)")
        if os.path.getsize(p) == 0:
            raise DataError(f"{p}: empty file (0 bytes)")
        if is_video_file(p):
            return "video", p
        img = open_still(p)  # HEIC, AVIF, ... without their Pillow plugin: FFmpeg, or an error naming the plugin
        if img is not None:
            return "image", img
        if is_image_file(p):
            raise DataError(f"{p}: not an image: the name ends in {os.path.splitext(p)[1]}, but the contents are "
                            "in no image format fakescope reads")
        return "unknown", p
    raise DataError(f"cannot score an object of type {type(x).__name__}; give a path, a PIL image or an array")


def describe(x: Any) -> str:
    """A name for an input in records and messages."""
    if isinstance(x, (str, os.PathLike)):
        return str(x)
    if isinstance(x, Image.Image):
        return getattr(x, "filename", "") or "<PIL image>"
    if isinstance(x, np.ndarray):
        return f"<array {'x'.join(map(str, x.shape))}>"
    if isinstance(x, (list, tuple)):
        return f"<{len(x)} frames>"
    return f"<{type(x).__name__}>"
