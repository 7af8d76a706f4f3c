"""The work on one upload, done in a worker process of the service: the multipart form, what the bytes are
(established by decoding them), the score, the provenance and the web page's pictures."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fakescope.serve.security import safe_name


class MediaError(Exception):
    """An upload that cannot be scored; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def sniff(data: bytes) -> tuple[str, Any]:
    """Establish what the bytes are by decoding them: ``("image", PIL image)`` or ``("video", temp path)``.

    The caller removes the temporary video file. Raises :class:`MediaError` (400 empty, 422 a
    recognised but undecodable image, 415 neither an image nor a video).
    """
    from fakescope.media.image import ImageReadError, open_image
    from fakescope.media.limits import PixelBudgetError
    from fakescope.media.video import VideoReadError, check_frame_size

    if not data:
        raise MediaError(400, "empty upload (0 bytes)")
    try:
        img = open_image(data, name="the upload")
    except PixelBudgetError as exc:
        raise MediaError(413, str(exc)) from None
    except ImageReadError as exc:
        raise MediaError(422, str(exc)) from None
    if img is not None:
        return "image", img
    # no file name suffix: FFmpeg must find the format from the bytes, not from a name the client chose
    fd, path = tempfile.mkstemp(prefix="fakescope-upload-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        import av

        with av.open(path, metadata_errors="ignore") as container:
            if not container.streams.video:
                raise MediaError(415, "the upload is a media file without a video stream; send an image or a video")
            check_frame_size(container.streams.video[0], "the upload")
            next(container.decode(video=0))  # at least one frame decodes
    except VideoReadError as exc:  # frames too large to decode
        os.unlink(path)
        raise MediaError(413, str(exc)) from None
    except MediaError:
        os.unlink(path)
        raise
    except Exception:
        os.unlink(path)
        raise MediaError(415, "the upload is neither an image nor a video that can be decoded") from None
    return "video", path


def png_data_url(arr: np.ndarray | Image.Image, max_side: int = 320) -> str:
    img = arr if isinstance(arr, Image.Image) else Image.fromarray(np.ascontiguousarray(arr))
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _web_details(details: dict[str, Any] | None, limit: int) -> dict[str, Any]:
    from fakescope.inference.visual import log_spectrum

    out: dict[str, Any] = {"input_png": None, "spectrum_png": None, "face_pngs": [], "cam_png": None}
    if not details:
        return out
    if details.get("input") is not None:
        out["input_png"] = png_data_url(details["input"])
        out["spectrum_png"] = png_data_url(log_spectrum(details["input"]))
    out["face_pngs"] = [png_data_url(f, 128) for f in details.get("faces", [])[:limit]]
    out["cam_png"] = None if details.get("cam") is None else png_data_url(details["cam"])
    return out


_loops = threading.local()


def _event_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop for parsing forms: made once, not once per upload (``asyncio.run`` makes and
    closes a loop each time, a few milliseconds per upload)."""
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _loops.loop = asyncio.new_event_loop()
    return loop


def read_form(body: bytes, content_type: str) -> tuple[bytes, str | None]:
    """The file field ``file`` of a multipart form: ``(bytes, the name the client gave)``; :class:`MediaError` 400
    for a malformed form or one without that field."""
    from starlette.datastructures import Headers, UploadFile
    from starlette.formparsers import MultiPartParser

    async def stream():
        yield body

    async def parse():
        form = await MultiPartParser(Headers({"content-type": content_type}), stream(), max_files=1,
                                     max_fields=16).parse()
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise MediaError(400, "the form has no file field named 'file'")
        try:
            return await file.read(), file.filename
        finally:
            await file.close()

    try:
        return _event_loop().run_until_complete(parse())
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(400, f"malformed multipart form ({exc})") from None


def open_upload(body: bytes, content_type: str, name: str | None, max_upload_bytes: int
                ) -> tuple[bytes, str, str, Any]:
    """A request's body read: ``(the upload's bytes, its safe name, "image" or "video", the PIL image or the
    temporary video file)``; the caller removes the file. Raises :class:`MediaError` for bad input."""
    if content_type.startswith("multipart/form-data"):
        data, name = read_form(body, content_type)
        if len(data) > max_upload_bytes:
            raise MediaError(413, f"upload of {len(data)} bytes is larger than the limit of "
                                  f"{max_upload_bytes / 1024 / 1024:g} MB")
    else:
        data = body
    filename = safe_name(name)
    kind, obj = sniff(data)
    return data, filename, kind, obj


def finish_record(detector, record: dict[str, Any], data: bytes, kind: str, obj: Any, filename: str,
                  point: str | None, details: bool, max_details_faces: int) -> dict[str, Any]:
    """A scored upload's record as the service answers it: at the request's operating point, with the
    provenance of the upload's bytes, the upload named (not its temporary file), and the page's pictures."""
    if point is not None:
        detector.relabel(record, point)
    if getattr(detector, "provenance", False):  # from the upload's bytes (the decoded image has lost them)
        from fakescope.media.provenance import read_provenance

        record["provenance"] = read_provenance(data)
    if kind == "video" and record.get("error"):  # name the upload, not the temporary file
        record["error"] = record["error"].replace(f"{obj}: ", "").replace(obj, filename)
    if details:
        record["details"] = _web_details(record.get("details"), max_details_faces)
    else:
        record.pop("details", None)
    return record


def process_upload(detector, body: bytes, content_type: str, name: str | None, details: bool, point: str | None,
                   max_upload_bytes: int, max_details_faces: int) -> dict[str, Any]:
    """One request's work on its body: the form (when multipart), the media type, the score, the provenance and
    the page's pictures. Runs in a worker process (or thread); raises :class:`MediaError` for bad input.
    (:func:`fakescope.serve.batching.process_batch` does the same for several requests at once.)"""
    data, filename, kind, obj = open_upload(body, content_type, name, max_upload_bytes)
    try:
        if getattr(detector, "reads_files", False):  # a fusion or a user's detector reads the file's own bytes
            record = _predict_file(detector, data, filename, obj, kind)
        else:
            record = detector.predict(obj, name=filename, details=details)
    finally:
        if kind == "video":
            os.unlink(obj)
    return finish_record(detector, record, data, kind, obj, filename, point, details, max_details_faces)


def _predict_file(detector, data: bytes, filename: str, obj: Any, kind: str) -> dict[str, Any]:
    """The record of a detector that reads files, given the upload's bytes in a temporary file (a video's is
    ``obj`` already); errors name the upload, not the temporary file."""
    if kind == "video":
        path = str(obj)
    else:
        fd, path = tempfile.mkstemp(prefix="fakescope-upload-", suffix=Path(filename).suffix[:10] or ".img")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    try:
        record = detector.predict(path, name=filename)
    finally:
        if kind != "video":
            os.unlink(path)
    if record.get("error"):
        record["error"] = record["error"].replace(path, filename)
    return record
