"""The worker process's side of :mod:`fakescope.serve.workers`: the detector it loads once, at its start, and the
loop that answers the jobs the server's thread sends it over a pipe, one at a time or as a batch
(:mod:`fakescope.serve.batching`)."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any


_LOCKS = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}


class _Pickler(pickle.Pickler):
    """A pickler that sends a lock as a fresh one (a lock cannot cross to another process, and a worker needs its
    own anyway)."""

    def reducer_override(self, obj):
        make = _LOCKS.get(type(obj))
        return NotImplemented if make is None else (make, ())


class PickledDetector:
    """A detector sent to the workers as its pickle; each worker unpickles it once, at its start."""

    def __init__(self, detector) -> None:
        import io

        from fakescope.errors import ConfigError

        try:
            buf = io.BytesIO()
            _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(detector)
            self.data = buf.getvalue()
        except Exception as exc:
            raise ConfigError(f"the detector cannot be sent to worker processes ({type(exc).__name__}: {exc}); "
                              "give create_app a picklable loader= or use ServeSettings(isolation='thread')") from None

    def __call__(self):
        return pickle.loads(self.data)


def worker_setup() -> dict[str, Any]:
    """What a worker takes over from the server's process: the pixel budget and torch's thread count."""
    import sys

    from fakescope.media import limits

    setup: dict[str, Any] = {"max_megapixels": limits._override}
    if "torch" in sys.modules:
        setup["threads"] = sys.modules["torch"].get_num_threads()
    return setup


def failure_reply(exc: BaseException) -> tuple:
    """The reply for a job that raised: a refusal (bad input, with the status to answer) or a bug."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and hasattr(exc, "message"):
        return ("refused", status, exc.message)
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return ("bug", f"{type(exc).__name__}: {exc}", trace)


def worker_main(conn, loader: Callable[[], Any], setup: dict[str, Any], handler: Callable[..., Any],
                 batch_handler: Callable[..., list] | None = None) -> None:
    """A worker process: load the detector, then answer ``("one", args)`` with ``handler(detector, *args)`` and
    ``("batch", [args, ...])`` with ``batch_handler(detector, [args, ...], progress)`` (a result or an exception
    per job; ``progress(i)`` tells the server which job it is at)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server shuts workers down
    try:
        from fakescope.media import limits

        if setup.get("max_megapixels") is not None:
            limits.set_max_megapixels(setup["max_megapixels"])
        if setup.get("threads"):
            import torch

            torch.set_num_threads(setup["threads"])
        detector = loader()
    except BaseException as exc:  # reported to the server, which logs it and retries
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server has gone
            return
        if message is None:
            return
        kind, payload = message
        try:
            if kind == "batch" and batch_handler is not None:
                results = batch_handler(detector, payload, lambda i: conn.send(("at", i)))
                reply: tuple = ("batch", [failure_reply(r) if isinstance(r, BaseException) else ("ok", r)
                                          for r in results])
            else:
                reply = ("ok", handler(detector, *payload))
        except Exception as exc:
            reply = failure_reply(exc)
        try:
            conn.send(reply)
        except Exception as exc:  # an answer that cannot be pickled is a bug too
            conn.send(("bug", f"the answer could not be sent ({type(exc).__name__}: {exc})", ""))
