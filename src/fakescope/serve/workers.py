"""Scoring in worker processes: untrusted bytes are parsed, decoded and scored where they cannot stall the service.

Decoding an upload (Pillow, FFmpeg), reading its metadata and running the model are CPU-bound and partly run in
C code that holds Python's global interpreter lock. Run in a thread of the server's process, one hostile upload
that keeps a decoder busy holds the lock, so the event loop cannot answer anything, ``/healthz`` included, and a
thread cannot be stopped once it has started. Here the work runs in separate processes instead:

* ``workers`` processes are started with the ``spawn`` method (a fresh interpreter: nothing of the server's
  threads or event loop is inherited); each loads the detector once, at its start, and then scores one upload
  at a time;
* every process has a thread of the server that hands it jobs from one shared queue, over a pipe, and waits for
  the answer without holding the lock;
* each job has a hard deadline (``timeout_s`` from the moment it was submitted): a process still at work when it
  passes is killed (``SIGKILL``) and a fresh one started in its place, so a stuck upload costs one process for
  at most ``timeout_s``, never the service; a job whose deadline passes while it waits in the queue is dropped
  without being started;
* a process that dies on an upload (the kernel's out-of-memory killer, a crash in a decoder) is replaced the
  same way and its request is answered with an error.

Memory: each worker holds its own copy of the detector and its libraries (about 300-400 MB for a small model,
plus the model's weights and the largest upload being decoded).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from fakescope.serve.slots import Slots

log = logging.getLogger("fakescope.serve")

START_METHOD = "spawn"
START_TIMEOUT_S = 300.0  # a worker that has not loaded its detector by then is given up (and retried)
RETRY_AFTER_FAILURE_S = 5.0


class JobTimeout(Exception):
    """A job was not done by its deadline (its worker, if it had one, was killed and replaced)."""


class WorkerCrash(Exception):
    """The worker process scoring a job ended without an answer (killed by the system, or crashed)."""


class WorkerBug(Exception):
    """An unexpected exception in the worker (not bad input): the message, and the worker's traceback."""

    def __init__(self, message: str, trace: str) -> None:
        super().__init__(message)
        self.trace = trace


class WorkersUnavailable(Exception):
    """No worker could be started (the message says why)."""


class PickledDetector:
    """A detector sent to the workers as its pickle; each worker unpickles it once, at its start."""

    def __init__(self, detector) -> None:
        from fakescope.errors import ConfigError

        try:
            self.data = pickle.dumps(detector)
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


def _worker_main(conn, loader: Callable[[], Any], setup: dict[str, Any], handler: Callable[..., Any]) -> None:
    """A worker process: load the detector, then answer jobs ``args`` with ``handler(detector, *args)``."""
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
            args = conn.recv()
        except (EOFError, OSError):  # the server has gone
            return
        if args is None:
            return
        try:
            reply: tuple = ("ok", handler(detector, *args))
        except Exception as exc:
            status = getattr(exc, "status", None)
            if isinstance(status, int) and hasattr(exc, "message"):  # bad input, with the status to answer
                reply = ("refused", status, exc.message)
            else:
                reply = ("bug", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        try:
            conn.send(reply)
        except Exception as exc:  # an answer that cannot be pickled is a bug too
            conn.send(("bug", f"the answer could not be sent ({type(exc).__name__}: {exc})", ""))


@dataclass
class _Job:
    args: tuple
    deadline: float  # time.monotonic()
    future: Future


class WorkerPool(Slots):
    """``workers`` processes scoring jobs from one queue, with a deadline per job; ``queue`` more jobs may wait.

    Admission works like :class:`fakescope.serve.app.Gate` (both are :class:`~fakescope.serve.slots.Slots`):
    :meth:`acquire` takes a slot (``False`` when ``workers + queue`` are taken), :meth:`run` submits the job in
    it, and the slot is given back when the job really ends: answered, dropped from the queue at its deadline, or
    its worker killed.
    ``handler(detector, *args)`` runs in the worker; it must be importable (a module-level function).
    """

    def __init__(self, loader: Callable[[], Any], handler: Callable[..., Any], workers: int, queue_size: int,
                 setup: dict[str, Any] | None = None, start_method: str = START_METHOD,
                 refusal: Callable[[int, str], Exception] | None = None) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError("workers must be at least 1 and queue at least 0")
        super().__init__(workers + queue_size)
        self.workers = workers
        self.ready = 0  # workers that have loaded the detector and take jobs
        self.replaced = 0  # workers killed at a deadline or lost, and started again
        self.failure: str | None = None  # why the last worker start failed, if it did
        self._loader, self._handler = loader, handler
        self._refusal = refusal or (lambda status, message: RuntimeError(message))
        self._setup = setup if setup is not None else worker_setup()
        self._ctx = multiprocessing.get_context(start_method)
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._procs: dict[int, Any] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False

    # -- admission: acquire and release (Slots), run ------------------------------------------------------------
    def run(self, args: tuple, timeout_s: float) -> Future:
        """Submit ``args`` (in a slot taken with :meth:`acquire`), to be done within ``timeout_s`` from now.

        The future ends with the handler's result, or :class:`JobTimeout`, :class:`WorkerCrash`,
        :class:`WorkerBug`, or the handler's own refusal (an exception with ``status`` and ``message``, rebuilt
        in this process by ``refusal(status, message)``)."""
        fut: Future = Future()
        fut.add_done_callback(self._release)
        if self._closed:
            fut.set_exception(WorkersUnavailable("the service is shutting down"))
            return fut
        self.start()
        self._jobs.put(_Job(args, time.monotonic() + timeout_s, fut))
        return fut

    # -- the workers ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers' threads (each starts its process); does nothing when they run already."""
        with self._lock:
            if self._threads or self._closed:
                return
            for index in range(self.workers):
                t = threading.Thread(target=self._serve_jobs, args=(index,), name=f"fakescope-worker-{index}",
                                     daemon=True)
                self._threads.append(t)
                t.start()

    def pids(self) -> list[int]:
        """The process ids of the workers now running."""
        with self._lock:
            return [p.pid for p in self._procs.values() if p.pid is not None]

    def shutdown(self) -> None:
        """Stop the workers (killed if they do not end within 2 s) and fail the jobs still waiting."""
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        with self._lock:
            procs = list(self._procs.values())
        deadline = time.monotonic() + 2.0
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(WorkersUnavailable("the service is shutting down"))

    def _spawn(self, index: int):
        """Start worker ``index`` and wait until its detector is loaded: ``(process, pipe)`` or ``None``."""
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(child, self._loader, self._setup, self._handler),
                                 name=f"fakescope-worker-{index}", daemon=True)
        try:
            proc.start()
        except Exception as exc:
            self.failure = f"could not start a worker process ({type(exc).__name__}: {exc})"
            log.error("%s", self.failure)
            return None
        finally:
            child.close()
        with self._lock:
            self._procs[index] = proc
        message: tuple = ("failed", f"the worker did not load the detector within {START_TIMEOUT_S:g} s")
        try:
            if parent.poll(START_TIMEOUT_S):
                message = parent.recv()
        except (EOFError, OSError):
            message = ("failed", f"the worker process ended while loading the detector (exit code "
                                 f"{proc.exitcode})")
        if message[0] == "ready" and not self._closed:
            with self._lock:
                self.ready += 1
                self.failure = None
            log.debug("worker %d ready (pid %s)", index, proc.pid)
            return proc, parent
        if message[0] != "ready":
            self.failure = str(message[1])
            log.error("a scoring worker could not start: %s", self.failure)
        self._stop(index, proc, parent)
        return None

    def _stop(self, index: int, proc, conn) -> None:
        if proc.is_alive():
            proc.kill()
        proc.join(5.0)
        conn.close()
        with self._lock:
            if self._procs.get(index) is proc:
                del self._procs[index]

    def _serve_jobs(self, index: int) -> None:
        worker = None
        while not self._closed:
            if worker is None:
                worker = self._spawn(index)
                if worker is None:
                    time.sleep(RETRY_AFTER_FAILURE_S)
                    continue
            job = self._jobs.get()
            if job is None:
                break
            if not job.future.set_running_or_notify_cancel():  # its request was answered while it waited
                continue
            remaining = job.deadline - time.monotonic()
            if remaining <= 0:
                job.future.set_exception(JobTimeout("the deadline passed while the job waited in the queue"))
                continue
            proc, conn = worker
            try:
                conn.send(job.args)
                reply = conn.recv() if conn.poll(remaining) else None
            except (EOFError, OSError):
                reply = ("crash",)
            if reply is not None and reply[0] != "crash":
                self._answer(job, reply)
                continue
            # past its deadline, or the process has ended: it is replaced by a fresh one
            with self._lock:
                self.ready -= 1
                self.replaced += 1
            self._stop(index, proc, conn)
            worker = None
            if reply is None:
                log.warning("a job passed its deadline: worker %d (pid %s) killed and replaced", index, proc.pid)
                job.future.set_exception(JobTimeout("the worker was killed at the deadline"))
            else:
                code = proc.exitcode
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                log.error("worker %d (pid %s) ended while scoring (%s); replaced", index, proc.pid, how)
                job.future.set_exception(WorkerCrash(f"the worker process scoring it ended ({how}"
                                                     f"{', perhaps out of memory' if code == -9 else ''})"))
        if worker is not None:
            proc, conn = worker
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(2.0)
            self._stop(index, proc, conn)

    def _answer(self, job: _Job, reply: tuple) -> None:
        kind = reply[0]
        if kind == "ok":
            job.future.set_result(reply[1])
        elif kind == "refused":
            job.future.set_exception(self._refusal(reply[1], reply[2]))
        else:
            job.future.set_exception(WorkerBug(reply[1], reply[2]))
