"""Scoring in worker processes: untrusted bytes are parsed, decoded and scored where they cannot stall the service.

Decoding an upload (Pillow, FFmpeg), reading its metadata and running the model are CPU-bound and partly run in
C code that holds Python's global interpreter lock. Run in a thread of the server's process, one hostile upload
that keeps a decoder busy holds the lock, so the event loop cannot answer anything, ``/healthz`` included, and a
thread cannot be stopped once it has started. Here the work runs in separate processes instead:

* ``workers`` processes are started with the ``spawn`` method (a fresh interpreter: nothing of the server's
  threads or event loop is inherited); each loads the detector once, at its start, and then scores one upload
  at a time, or a batch of uploads that arrived together (:mod:`fakescope.serve.batching`);
* every process has a thread of the server that hands it jobs from one shared queue, over a pipe, and waits for
  the answer without holding the lock;
* each job has a hard deadline (``timeout_s`` from the moment it was submitted): a process still at work when it
  passes is killed (``SIGKILL``) and a fresh one started in its place, so a stuck upload costs one process for
  at most ``timeout_s``, never the service; a job whose deadline passes while it waits in the queue is dropped
  without being started;
* a process that dies on an upload (the kernel's out-of-memory killer, a crash in a decoder) is replaced the
  same way and its request is answered with an error.

* a batch has a deadline of its own, a share of its jobs' time; a batch that fails as a whole (past that
  deadline, its process ended, an error for all) is scored again one job at a time, each with its own deadline,
  so each request gets its own answer or its own error.

Memory: each worker holds its own copy of the detector and its libraries (about 300-400 MB for a small model,
plus the model's weights and the largest upload being decoded; with batching, the uploads of a batch as bytes).
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from fakescope.serve.batching import BATCH_SHARE, fallback_order, gather
from fakescope.serve.slots import Slots
from fakescope.serve.worker_main import PickledDetector, worker_main, worker_setup  # noqa: F401 (re-exported)

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
    ``handler(detector, *args)`` runs in the worker; it must be importable (a module-level function). With
    ``batch_handler`` and ``max_batch`` above 1, jobs that arrive together go to a worker together
    (:mod:`fakescope.serve.batching`: ``batch_handler(detector, [args, ...], progress)``, a result or an
    exception per job); a batch that fails as a whole is scored again one job at a time.
    """

    def __init__(self, loader: Callable[[], Any], handler: Callable[..., Any], workers: int, queue_size: int,
                 setup: dict[str, Any] | None = None, start_method: str = START_METHOD,
                 refusal: Callable[[int, str], Exception] | None = None,
                 batch_handler: Callable[..., list] | None = None, max_batch: int = 1,
                 max_delay_s: float = 0.005) -> None:
        if workers < 1 or queue_size < 0 or max_batch < 1 or max_delay_s < 0:
            raise ValueError("workers and max_batch must be at least 1, queue and max_delay_s at least 0")
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
        self._batch_handler = batch_handler
        self.max_batch = max_batch if batch_handler is not None else 1
        self.max_delay_s = max_delay_s
        self.batches = 0  # batches of two jobs or more answered ...
        self.batched = 0  # ... the jobs in them
        self.split = 0  # batches that failed as a whole and were scored again one job at a time
        self._held = 0  # jobs taken from the queue by the workers' threads and not yet answered

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
        proc = self._ctx.Process(target=worker_main,
                                 args=(child, self._loader, self._setup, self._handler, self._batch_handler),
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
            jobs = gather(self._jobs, job, self.max_batch, self.max_delay_s, self._take, self._arriving)
            try:
                if len(jobs) == 1:
                    worker = self._one(index, worker, jobs[0])
                elif jobs:
                    worker = self._batch(index, worker, jobs)
            finally:
                with self._lock:
                    self._held -= len(jobs)
        if worker is not None:
            proc, conn = worker
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(2.0)
            self._stop(index, proc, conn)

    def _take(self, job: _Job) -> bool:
        """Start ``job`` (``False``: its request was answered while it waited, or its deadline has passed)."""
        if not job.future.set_running_or_notify_cancel():
            return False
        if job.deadline <= time.monotonic():
            job.future.set_exception(JobTimeout("the deadline passed while the job waited in the queue"))
            return False
        with self._lock:
            self._held += 1
        return True

    def _arriving(self) -> int:
        """Requests admitted that no worker has yet: uploading, or queued (a batch waits for them, briefly)."""
        with self._lock:
            return self.active - self._held

    def _one(self, index: int, worker, job: _Job):
        """Score ``job`` alone within its deadline; the worker afterwards (``None``: killed or lost)."""
        while worker is None:  # after a batch that failed: a fresh worker first
            if self._closed:
                job.future.set_exception(WorkersUnavailable("the service is shutting down"))
                return None
            if job.deadline <= time.monotonic():
                job.future.set_exception(JobTimeout("the deadline passed while a worker was started"))
                return None
            worker = self._spawn(index)
            if worker is None:
                time.sleep(min(RETRY_AFTER_FAILURE_S, max(0.0, job.deadline - time.monotonic())))
        remaining = job.deadline - time.monotonic()
        if remaining <= 0:
            job.future.set_exception(JobTimeout("the deadline passed while the job waited"))
            return worker
        proc, conn = worker
        try:
            conn.send(("one", job.args))
            reply = conn.recv() if conn.poll(remaining) else None
        except (EOFError, OSError):
            reply = ("crash",)
        if reply is not None and reply[0] != "crash":
            self._answer(job, reply)
            return worker
        # past its deadline, or the process has ended: it is replaced by a fresh one
        how = self._lost(index, proc, conn, deadline=reply is None)
        if reply is None:
            job.future.set_exception(JobTimeout("the worker was killed at the deadline"))
        else:
            job.future.set_exception(WorkerCrash(f"the worker process scoring it ended ({how}"
                                                 f"{', perhaps out of memory' if proc.exitcode == -9 else ''})"))
        return None

    def _batch(self, index: int, worker, jobs: list[_Job]):
        """Score ``jobs`` together; a batch that fails as a whole is scored again one job at a time."""
        proc, conn = worker
        start = time.monotonic()
        until = start + BATCH_SHARE * (max(job.deadline for job in jobs) - start)  # see batching.BATCH_SHARE
        at, reply = None, None
        try:
            conn.send(("batch", [job.args for job in jobs]))
            while conn.poll(max(0.0, until - time.monotonic())):
                message = conn.recv()
                if message[0] != "at":
                    reply = message
                    break
                at = message[1]
        except (EOFError, OSError):
            reply = ("crash",)
        if reply is not None and reply[0] == "batch" and len(reply[1]) == len(jobs):
            for job, answer in zip(jobs, reply[1]):
                self._answer(job, answer)
            with self._lock:
                self.batches += 1
                self.batched += len(jobs)
            return worker
        if reply is None or reply[0] == "crash":
            how = self._lost(index, proc, conn, deadline=reply is None, batch=len(jobs))
            why = f"its worker was {'killed at the batch deadline' if reply is None else how}"
            worker = None
        else:
            why = str(reply[1])
        with self._lock:
            self.split += 1
        log.warning("a batch of %d jobs failed (%s): each is scored again on its own", len(jobs), why)
        for job in fallback_order(jobs, at):
            worker = self._one(index, worker, job)
        return worker

    def _lost(self, index: int, proc, conn, deadline: bool, batch: int = 0) -> str:
        """Stop a worker past a deadline or that has ended, and count it replaced; how it ended, in words."""
        with self._lock:
            self.ready -= 1
            self.replaced += 1
        self._stop(index, proc, conn)
        code = proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        what = f"a batch of {batch} jobs" if batch else "a job"
        if deadline:
            log.warning("%s passed its deadline: worker %d (pid %s) killed and replaced", what, index, proc.pid)
        else:
            log.error("worker %d (pid %s) ended while scoring %s (%s); replaced", index, proc.pid, what, how)
        return how

    def _answer(self, job: _Job, reply: tuple) -> None:
        kind = reply[0]
        if kind == "ok":
            job.future.set_result(reply[1])
        elif kind == "refused":
            job.future.set_exception(self._refusal(reply[1], reply[2]))
        else:
            job.future.set_exception(WorkerBug(reply[1], reply[2]))
