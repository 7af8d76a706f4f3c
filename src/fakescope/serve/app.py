"""The REST service and its web page: FastAPI on uvicorn, one detector loaded once.

Endpoints:

* ``POST /v1/detect``: a multipart upload with the field ``file`` (or the raw bytes as the request body),
  an image or a video. Returns the detection record (``?details=true`` adds the input thumbnail, its
  log-magnitude spectrum and the face crops as PNG data URLs, for the web page).
* ``GET /healthz``: liveness and load (requests in progress, capacity).
* ``GET /v1/model``: the model's name, version, input and pipeline.
* ``GET /``: the web page.

Protection: uploads beyond ``max_upload_mb`` get 413 (checked on the declared length and while
reading); the media type is established by decoding the bytes (PIL for images, FFmpeg for videos),
never from the header or the file name; an image or video frame over the pixel budget that cannot be
decoded at reduced size gets 413 (a decompression bomb never reaches the decoder); at most ``workers``
requests are scored at once and ``queue`` more wait or upload, beyond which a request gets 503 with
``Retry-After`` before its body is read; reading an upload and scoring it each have a timeout (408 and
504). Connections have header and idle timeouts and a limit of their own (:mod:`fakescope.serve.server`).
Every error is JSON: ``{"error": "...", "status": N}``.
"""


import asyncio
import base64
import contextlib
import io
import logging
import os
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from PIL import Image

from fakescope.errors import FakescopeError

log = logging.getLogger("fakescope.serve")

MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and headers around the file
DETECT_QUERY = frozenset({"details", "operating_point", "filename"})  # POST /v1/detect's query; others are a 422


@dataclass
class ServeSettings:
    """The service's limits. ``workers``: requests scored at once; ``queue``: more that may wait (or upload)
    beyond them; ``timeout_s``: for reading an upload, and again for scoring it; ``max_connections``: open
    connections (idle ones included), beyond which a connection gets a JSON 503; ``header_timeout_s``: for a
    request's headers to arrive; ``idle_timeout_s``: the longest pause while a body arrives; ``keep_alive_s``:
    how long an idle connection stays open after a response."""

    max_upload_mb: float = 50.0
    workers: int = 1
    queue: int = 16
    timeout_s: float = 60.0
    max_details_faces: int = 16
    max_connections: int = 256
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 15.0
    keep_alive_s: float = 5.0

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def check(self) -> None:
        """Raise :class:`~fakescope.errors.ConfigError` naming the option for a value the service cannot run with."""
        import math

        from fakescope.errors import ConfigError

        def positive(value: float, option: str) -> None:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{option} must be a positive number, got {value}")

        positive(self.max_upload_mb, "--max-upload-mb")
        positive(self.timeout_s, "--timeout")
        positive(self.header_timeout_s, "--header-timeout")
        positive(self.idle_timeout_s, "--idle-timeout")
        positive(self.keep_alive_s, "keep_alive_s")
        for value, option, least in ((self.workers, "--workers", 1), (self.queue, "--queue", 0),
                                     (self.max_connections, "--max-connections", 1),
                                     (self.max_details_faces, "max_details_faces", 0)):
            if not isinstance(value, int) or value < least:
                raise ConfigError(f"{option} must be a whole number of at least {least}, got {value}")
        if self.max_connections < self.workers + self.queue:
            raise ConfigError(f"--max-connections ({self.max_connections}) must be at least --workers + --queue "
                              f"({self.workers + self.queue}): every request admitted needs its connection")

    def limits(self):
        from fakescope.serve.server import ConnectionLimits

        return ConnectionLimits(max_connections=self.max_connections, header_timeout_s=self.header_timeout_s,
                                idle_timeout_s=self.idle_timeout_s)


class MediaError(Exception):
    """An upload that cannot be scored; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Gate:
    """Bounded concurrency: ``workers`` jobs run, ``queue`` more wait; beyond that :meth:`submit` refuses.

    A slot is given back when its job really ends, also when the client has already been answered
    with a timeout, so a slow job can never let more work in than the machine was sized for. The service
    takes its slot with :meth:`acquire` before it reads an upload, so the uploads held in memory are bounded
    by the same capacity, and runs the job in it with :meth:`run`.
    """

    def __init__(self, workers: int, queue: int) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("workers must be at least 1 and queue at least 0")
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fakescope-detect")
        self.capacity = workers + queue
        self.active = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take a slot (``False``: none is free); give it back with :meth:`release` or :meth:`run`."""
        with self._lock:
            if self.active >= self.capacity:
                return False
            self.active += 1
            return True

    def release(self) -> None:
        self._release(None)

    def run(self, fn, *args) -> Future:
        """Run ``fn`` in a slot taken with :meth:`acquire`; the slot is given back when it ends."""
        try:
            fut = self.executor.submit(fn, *args)
        except BaseException:
            self._release(None)
            raise
        fut.add_done_callback(self._release)
        return fut

    def submit(self, fn, *args) -> Future | None:
        return self.run(fn, *args) if self.acquire() else None

    def _release(self, _fut) -> None:
        with self._lock:
            self.active -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------ media
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


# -------------------------------------------------------------------- app
def create_app(detector, settings: ServeSettings | None = None):
    """The FastAPI application around an already loaded :class:`fakescope.Detector`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.formparsers import MultiPartParser

    from fakescope._version import __version__

    settings = settings or ServeSettings()
    settings.check()
    gate = Gate(settings.workers, settings.queue)
    limit = settings.max_upload_bytes
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        gate.shutdown()

    app = FastAPI(title="fakescope", version=__version__, lifespan=lifespan,
                  description="Deepfake and AI-generated image detection: POST an image or video to /v1/detect.")
    app.state.detector = detector
    app.state.gate = gate
    app.state.settings = settings
    page = resources.files("fakescope.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    def error(status: int, message: str, **extra) -> JSONResponse:
        return JSONResponse({"error": message, "status": status, **extra}, status_code=status,
                            headers={"Retry-After": "1"} if status == 503 else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return error(422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": detector.name, "model_version": detector.version,
                "active": gate.active, "capacity": gate.capacity}

    @app.get("/v1/model")
    def model_info() -> dict[str, Any]:
        return {**detector.info(), "max_upload_bytes": limit}

    async def read_body(request: Request) -> bytes:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit + MULTIPART_OVERHEAD:
                raise MediaError(413, f"upload larger than the limit of {settings.max_upload_mb:g} MB")
        return bytes(body)

    async def upload(request: Request) -> tuple[bytes, str]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
            raise MediaError(413, f"upload of {int(declared)} bytes is larger than the limit of "
                                  f"{settings.max_upload_mb:g} MB")
        body = await read_body(request)
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return body, request.query_params.get("filename", "upload")

        async def stream():
            yield body

        try:
            form = await MultiPartParser(request.headers, stream(), max_files=1, max_fields=16).parse()
        except Exception as exc:
            raise MediaError(400, f"malformed multipart form ({exc})") from None
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise MediaError(400, "the form has no file field named 'file'")
        data = await file.read()
        await file.close()
        if len(data) > limit:
            raise MediaError(413, f"upload of {len(data)} bytes is larger than the limit of "
                                  f"{settings.max_upload_mb:g} MB")
        return data, os.path.basename(file.filename or "upload")

    def work(data: bytes, filename: str, details: bool, point: str | None = None) -> dict[str, Any]:
        kind, obj = sniff(data)
        try:
            record = detector.predict(obj, name=filename, details=details)
            if point is not None:
                detector.relabel(record, point)
            if getattr(detector, "provenance", False):  # from the upload's bytes (the decoded image has lost them)
                from fakescope.media.provenance import read_provenance

                record["provenance"] = read_provenance(data)
        finally:
            if kind == "video":
                os.unlink(obj)
        if kind == "video" and record.get("error"):  # name the upload, not the temporary file
            record["error"] = record["error"].replace(f"{obj}: ", "").replace(obj, filename)
        if details:
            record["details"] = _web_details(record.get("details"), settings.max_details_faces)
        else:
            record.pop("details", None)
        return record

    @app.post("/v1/detect")
    async def detect(request: Request, details: bool = False, operating_point: str | None = None,
                     filename: str | None = None):
        """Score one upload. Query: ``details`` (pictures for the page), ``operating_point`` (``fpr1``, ``fpr5``,
        ``eer`` or a threshold, for this request), ``filename`` (the name of a raw-body upload)."""
        from starlette.requests import ClientDisconnect

        unknown = sorted(set(request.query_params) - DETECT_QUERY)
        if unknown:
            return error(422, f"unknown query parameter(s): {', '.join(unknown)} (known: "
                              f"{', '.join(sorted(DETECT_QUERY))})")
        if operating_point is not None:
            try:
                detector.operating(operating_point)
            except FakescopeError as exc:
                return error(422, f"operating_point: {exc}")

        # a slot first: an upload is read only when it can be scored, so the bodies in memory stay bounded
        if not gate.acquire():
            return error(503, f"busy: {gate.capacity} requests are already in progress or waiting; retry later")
        try:
            data, filename = await asyncio.wait_for(upload(request), timeout=settings.timeout_s)
        except MediaError as exc:
            gate.release()
            return error(exc.status, exc.message)
        except asyncio.TimeoutError:
            gate.release()
            return error(408, f"the upload did not arrive within {settings.timeout_s:g} s")
        except ClientDisconnect:
            gate.release()
            return error(400, "the client closed the connection before the upload was complete")
        except BaseException:
            gate.release()
            raise
        fut = gate.run(work, data, filename, details, operating_point)
        try:
            record = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), timeout=settings.timeout_s)
        except asyncio.TimeoutError:
            return error(504, f"scoring took longer than {settings.timeout_s:g} s")
        except MediaError as exc:
            return error(exc.status, exc.message)
        except Exception as exc:  # a bug, not bad input: log it, answer 500 in JSON
            log.exception("detect failed on %s", filename)
            return error(500, f"internal error ({type(exc).__name__}: {exc})")
        if record.get("error"):
            return JSONResponse({**record, "status": 422}, status_code=422)
        return JSONResponse(record)

    return app


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None,
          echo=print, log_level: str = "info", **detector_options) -> None:
    """Load ``model`` once and serve it with uvicorn until interrupted."""
    from fakescope.utils.optional import require

    require("fastapi", extra="serve", purpose="fakescope serve")
    require("uvicorn", extra="serve", purpose="fakescope serve")
    require("python_multipart", extra="serve", purpose="uploads in fakescope serve")
    from fakescope.inference import Detector

    from fakescope.serve.server import run_server

    settings = settings or ServeSettings()
    settings.check()
    if not 0 <= int(port) <= 65535:
        from fakescope.errors import ConfigError

        raise ConfigError(f"--port must lie in 0..65535, got {port}")
    detector = Detector.from_pretrained(model, **detector_options)
    app = create_app(detector, settings)
    if host not in ("127.0.0.1", "localhost", "::1"):
        echo(f"warning: listening on {host}: the service has no authentication; put it behind a proxy that has")
    echo(f"fakescope serve: model {detector.name} ({detector.version}, {detector.backend} on {detector.device}); "
         f"http://{host}:{port}/  (upload limit {settings.max_upload_mb:g} MB, {settings.workers} worker(s), "
         f"queue {settings.queue}, timeout {settings.timeout_s:g} s, {settings.max_connections} connections, "
         f"header timeout {settings.header_timeout_s:g} s)")
    run_server(app, host=host, port=port, limits=settings.limits(), keep_alive_s=settings.keep_alive_s,
               log_level=log_level)
