"""The REST service and its web page: FastAPI on uvicorn, one detector loaded once.

Endpoints:

* ``POST /v1/detect``: a multipart upload with the field ``file`` (or the raw bytes as the request body),
  an image or a video. Returns the detection record (``?details=true`` adds the input thumbnail, its
  log-magnitude spectrum and the face crops as PNG data URLs, for the web page).
* ``GET /healthz``: liveness and load (requests in progress, capacity, workers, batches scored together).
* ``GET /v1/model``: the model's name, version, input and pipeline.
* ``GET /``: the web page.

Protection: everything done with an upload's bytes (parsing the form, decoding, reading metadata, scoring)
runs in worker processes (:mod:`fakescope.serve.workers`, doing :mod:`fakescope.serve.uploads`), so no upload
can stall the event loop; a worker still at work at the request's deadline is killed and replaced; uploads
that arrive together share a forward pass (:mod:`fakescope.serve.batching`). Uploads
beyond ``max_upload_mb`` get 413
(checked on the declared length and while reading); the media type is established by decoding the bytes (PIL for images, FFmpeg for videos),
never from the header or the file name; an image or video frame over the pixel budget that cannot be
decoded at reduced size gets 413 (a decompression bomb never reaches the decoder); at most ``workers``
requests are scored at once and ``queue`` more wait or upload, beyond which a request gets 503 with
``Retry-After`` before its body is read; reading an upload and scoring it each have a timeout (408 and
504). Connections have header and idle timeouts and a limit of their own (:mod:`fakescope.serve.server`), and
the server checks the ``Host`` header and, where configured, an API key (:mod:`fakescope.serve.security`).
Every answer carries security headers; every error is JSON: ``{"error": "...", "status": N}``; a name given with
an upload is repeated only as :func:`fakescope.serve.security.safe_name` makes it.
"""


import asyncio
import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fakescope.errors import FakescopeError
from fakescope.serve.security import safe_name
from fakescope.serve.slots import Slots
# the work on an upload, run in the worker processes
from fakescope.serve.uploads import MediaError, process_upload

log = logging.getLogger("fakescope.serve")

MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and headers around the file
DETECT_QUERY = frozenset({"details", "operating_point", "filename"})  # POST /v1/detect's query; others are a 422


@dataclass
class ServeSettings:
    """The service's limits. ``workers``: requests scored at once; ``queue``: more that may wait (or upload)
    beyond them; ``timeout_s``: for reading an upload, and again for scoring it; ``max_connections``: open
    connections (idle ones included), beyond which a connection gets a JSON 503; ``header_timeout_s``: for a
    request's headers to arrive; ``idle_timeout_s``: the longest pause while a body arrives; ``keep_alive_s``:
    how long an idle connection stays open after a response; ``isolation``: ``"process"`` (uploads are decoded and
    scored in ``workers`` worker processes, a stuck one killed at its deadline) or ``"thread"`` (in threads of
    the server's process: for embedding a detector that cannot be sent to another process, without protection
    against uploads that keep a decoder busy); ``max_batch`` and ``max_delay_ms``: uploads that arrive together
    are scored in one forward pass, at most ``max_batch`` of them, waiting at most ``max_delay_ms`` for more
    while other admitted requests are still arriving (:mod:`fakescope.serve.batching`; ``max_batch=1``: each
    alone; process isolation only)."""

    max_upload_mb: float = 50.0
    workers: int = 1
    queue: int = 16
    timeout_s: float = 60.0
    max_details_faces: int = 16
    max_connections: int = 256
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 15.0
    keep_alive_s: float = 5.0
    isolation: str = "process"
    max_batch: int = 8
    max_delay_ms: float = 5.0

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

        if self.isolation not in ("process", "thread"):
            raise ConfigError(f"isolation must be 'process' or 'thread', got {self.isolation!r}")
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
        from fakescope.serve.batching import MAX_BATCH_LIMIT, MAX_DELAY_MS_LIMIT

        if not isinstance(self.max_batch, int) or isinstance(self.max_batch, bool) or \
                not 1 <= self.max_batch <= MAX_BATCH_LIMIT:
            raise ConfigError(f"--max-batch must be a whole number from 1 (no batching) to {MAX_BATCH_LIMIT}, "
                              f"got {self.max_batch}")
        delay = self.max_delay_ms
        if not (isinstance(delay, (int, float)) and math.isfinite(delay) and 0 <= delay <= MAX_DELAY_MS_LIMIT):
            raise ConfigError(f"--max-delay-ms must be a number from 0 to {MAX_DELAY_MS_LIMIT:g}, got {delay}")
        if delay / 1000 >= self.timeout_s:
            raise ConfigError(f"--max-delay-ms ({delay:g} ms) must be shorter than --timeout ({self.timeout_s:g} s)")
        if self.max_connections < self.workers + self.queue:
            raise ConfigError(f"--max-connections ({self.max_connections}) must be at least --workers + --queue "
                              f"({self.workers + self.queue}): every request admitted needs its connection")

    def limits(self):
        from fakescope.serve.server import ConnectionLimits

        return ConnectionLimits(max_connections=self.max_connections, header_timeout_s=self.header_timeout_s,
                                idle_timeout_s=self.idle_timeout_s)


class Gate(Slots):
    """Bounded concurrency: ``workers`` jobs run, ``queue`` more wait; beyond that :meth:`submit` refuses.

    A slot is given back when its job really ends, also when the client has already been answered
    with a timeout, so a slow job can never let more work in than the machine was sized for. The service
    takes its slot with :meth:`acquire` before it reads an upload, so the uploads held in memory are bounded
    by the same capacity, and runs the job in it with :meth:`run`.
    """

    def __init__(self, workers: int, queue: int) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("workers must be at least 1 and queue at least 0")
        super().__init__(workers + queue)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fakescope-detect")

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

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


# -------------------------------------------------------------------- app
def create_app(detector, settings: ServeSettings | None = None, *, loader=None):
    """The FastAPI application around an already loaded :class:`fakescope.Detector`.

    With ``isolation="process"`` (the default) each worker process gets the detector once, at its start: from
    ``loader()`` (a picklable callable, e.g. ``functools.partial(Detector.from_pretrained, name)``) when given,
    else as a pickle of ``detector``. ``detector`` itself answers ``/v1/model`` and checks operating points.
    The workers are started with ``spawn`` when the application starts: a script that serves the application
    itself must keep its entry point under ``if __name__ == "__main__":``.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from fakescope._version import __version__
    from fakescope.serve.batching import process_batch
    from fakescope.serve.security import SecurityHeaders, page_csp, security_headers
    from fakescope.serve.workers import JobTimeout, PickledDetector, WorkerBug, WorkerCrash, WorkerPool

    settings = settings or ServeSettings()
    settings.check()
    limit = settings.max_upload_bytes
    if settings.isolation == "process":
        pool = WorkerPool(loader if loader is not None else PickledDetector(detector), process_upload,
                          settings.workers, settings.queue, refusal=MediaError, batch_handler=process_batch,
                          max_batch=settings.max_batch, max_delay_s=settings.max_delay_ms / 1000)
    else:
        pool = Gate(settings.workers, settings.queue)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        if isinstance(pool, WorkerPool):
            pool.start()  # the workers load the detector while the server starts taking connections
        yield
        pool.shutdown()

    app = FastAPI(title="fakescope", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Deepfake and AI-generated image detection: POST an image or video to /v1/detect.")
    app.state.detector = detector
    app.state.gate = pool
    app.state.settings = settings
    page = resources.files("fakescope.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    app.add_middleware(SecurityHeaders, page_csp=page_csp(page))
    common = {k.decode(): v.decode() for k, v in security_headers()}

    def error(status: int, message: str, headers: dict | None = None, **extra) -> JSONResponse:
        return JSONResponse({"error": message, "status": status, **extra}, status_code=status,
                            headers={**common, **({"Retry-After": "1"} if status == 503 else {}), **(headers or {})})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return error(422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception):  # a bug: logged with its traceback, JSON 500
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error(500, f"internal error ({type(exc).__name__})")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        out = {"status": "ok", "model": detector.name, "model_version": detector.version,
               "active": pool.active, "capacity": pool.capacity}
        if isinstance(pool, WorkerPool):
            out["workers"] = {"ready": pool.ready, "of": pool.workers, "replaced": pool.replaced}
            if pool.ready == 0 and pool.failure:
                out["workers"]["failure"] = pool.failure
            out["batching"] = {"max_batch": pool.max_batch, "max_delay_ms": settings.max_delay_ms,
                               "batches": pool.batches, "batched": pool.batched, "split": pool.split}
        return out

    @app.get("/v1/model")
    async def model_info() -> dict[str, Any]:
        return {**detector.info(), "max_upload_bytes": limit}

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
            raise MediaError(413, f"upload of {int(declared)} bytes is larger than the limit of "
                                  f"{settings.max_upload_mb:g} MB")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit + MULTIPART_OVERHEAD:
                raise MediaError(413, f"upload larger than the limit of {settings.max_upload_mb:g} MB")
        if not request.headers.get("content-type", "").startswith("multipart/form-data") and len(body) > limit:
            raise MediaError(413, f"upload of {len(body)} bytes is larger than the limit of "
                                  f"{settings.max_upload_mb:g} MB")
        return bytes(body)

    @app.post("/v1/detect")
    async def detect(request: Request, details: bool = False, operating_point: str | None = None,
                     filename: str | None = None):
        """Score one upload. Query: ``details`` (pictures for the page), ``operating_point`` (``fpr1``, ``fpr5``,
        ``eer`` or a threshold, for this request), ``filename`` (the name of a raw-body upload)."""
        from starlette.requests import ClientDisconnect

        unknown = sorted(set(request.query_params) - DETECT_QUERY)
        if unknown:
            return error(422, f"unknown query parameter(s): {', '.join(safe_name(u, '?')[:40] for u in unknown)} "
                              f"(known: {', '.join(sorted(DETECT_QUERY))})")
        if operating_point is not None:
            try:
                detector.operating(operating_point)
            except FakescopeError as exc:
                return error(422, f"operating_point: {exc}")

        if isinstance(pool, WorkerPool) and pool.ready == 0 and pool.failure:
            return error(503, f"no scoring worker could start: {pool.failure}")
        # a slot first: an upload is read only when it can be scored, so the bodies in memory stay bounded
        if not pool.acquire():
            return error(503, f"busy: {pool.capacity} requests are already in progress or waiting; retry later")
        try:
            body = await asyncio.wait_for(read_body(request), timeout=settings.timeout_s)
        except MediaError as exc:
            pool.release()
            return error(exc.status, exc.message)
        except asyncio.TimeoutError:
            pool.release()
            return error(408, f"the upload did not arrive within {settings.timeout_s:g} s")
        except ClientDisconnect:
            pool.release()
            return error(400, "the client closed the connection before the upload was complete")
        except BaseException:
            pool.release()
            raise
        ctype = request.headers.get("content-type", "")
        name = filename if not ctype.startswith("multipart/form-data") else None
        args = (body, ctype, name, details, operating_point, limit, settings.max_details_faces)
        if isinstance(pool, WorkerPool):
            fut = pool.run(args, settings.timeout_s)
        else:
            fut = pool.run(process_upload, detector, *args)
        try:
            record = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), timeout=settings.timeout_s)
        except (asyncio.TimeoutError, JobTimeout):
            fut.cancel()  # a job still waiting is dropped; a running one is killed at the same deadline
            return error(504, f"scoring took longer than {settings.timeout_s:g} s")
        except MediaError as exc:
            return error(exc.status, exc.message)
        except WorkerCrash as exc:
            return error(500, f"the upload could not be scored: {exc}")
        except WorkerBug as exc:  # a bug, not bad input: log it, answer 500 in JSON
            log.error("detect failed: %s\n%s", exc, exc.trace)
            return error(500, f"internal error ({exc})")
        except Exception as exc:
            log.exception("detect failed")
            return error(500, f"internal error ({type(exc).__name__}: {exc})")
        if record.get("error"):
            return JSONResponse({**record, "status": 422}, status_code=422, headers=common)
        return JSONResponse(record, headers=common)

    return app


def batching(settings: ServeSettings, detector=None) -> str:
    """The batching settings, in words (for ``detector``: a face-stage model's images are scored one at a time)."""
    from fakescope.serve.batching import batchable

    if settings.max_batch == 1 or settings.isolation != "process":
        return "no batching"
    if detector is not None and not batchable(detector):
        return "no batching (each input alone with this detector)"
    return f"batches of up to {settings.max_batch} within {settings.max_delay_ms:g} ms"


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None,
          echo=print, log_level: str = "info", allowed_hosts: tuple[str, ...] | list[str] = (),
          api_key_file: str | None = None, no_auth: bool = False, **detector_options) -> None:
    """Load ``model`` once (each worker process gets a copy) and serve it with uvicorn until interrupted.

    Listening on anything but loopback needs ``api_key_file`` (clients send ``Authorization: Bearer KEY``) or an
    explicit ``no_auth``; requests must name an allowed host (loopback names, ``host``, ``allowed_hosts``)."""
    import functools

    from fakescope.errors import ConfigError
    from fakescope.utils.optional import require

    require("fastapi", extra="serve", purpose="fakescope serve")
    require("uvicorn", extra="serve", purpose="fakescope serve")
    require("python_multipart", extra="serve", purpose="uploads in fakescope serve")
    from fakescope.inference.fusion import load_scorer
    from fakescope.serve.security import allowed_hosts as host_list
    from fakescope.serve.security import is_loopback, read_api_key
    from fakescope.serve.server import run_server

    settings = settings or ServeSettings()
    settings.check()
    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"--port must lie in 0..65535, got {port}")
    hosts = host_list(host, list(allowed_hosts))
    if api_key_file and no_auth:
        raise ConfigError("--api-key-file and --no-auth contradict each other: give one")
    key = read_api_key(api_key_file) if api_key_file else None
    if key is None and not no_auth and not is_loopback(host):
        raise ConfigError(f"listening on {host} (not loopback) needs an API key: --api-key-file FILE (clients send "
                          "'Authorization: Bearer KEY'), or --no-auth to serve without one (behind a proxy that "
                          "authenticates)")
    from fakescope.serve.workers import PickledDetector

    detector = load_scorer(model, **detector_options)
    try:  # the workers get the detector loaded here (a registry entry added at run time is known only here)
        loader = PickledDetector(detector)
    except ConfigError:  # one that cannot be pickled (an ONNX Runtime session, a user's module): each worker loads it
        loader = functools.partial(load_scorer, model, **detector_options)
    app = create_app(detector, settings, loader=loader)
    auth = (f"API key from {api_key_file} required (Authorization: Bearer KEY) on all but / and /healthz"
            if key else "none (--no-auth)" if no_auth else "none (loopback only)")
    echo(f"fakescope serve: model {detector.name} ({detector.version}, {detector.backend} on {detector.device}); "
         f"http://{'[' + host + ']' if ':' in host else host}:{port}/  (upload limit {settings.max_upload_mb:g} MB, "
         f"{settings.workers} worker process(es), queue {settings.queue}, timeout {settings.timeout_s:g} s, "
         f"{batching(settings, detector)}, "
         f"{settings.max_connections} connections, header timeout {settings.header_timeout_s:g} s)")
    echo(f"authentication: {auth}; answers to Host: "
         f"{'any (--allowed-hosts *)' if hosts is None else ', '.join(sorted(hosts))}")
    if key is None and not is_loopback(host):
        echo(f"warning: listening on {host} without authentication (--no-auth): anyone who can reach it can use it")
    run_server(app, host=host, port=port, limits=settings.limits(), keep_alive_s=settings.keep_alive_s,
               log_level=log_level, hosts=hosts, api_key=key)
