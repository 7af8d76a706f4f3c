"""Worker processes for ``fakescope prepare --workers N``, and the memory figures the run reports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from fakescope.errors import DataError
from fakescope.faces import FacePipeline
from fakescope.prepare.adapters import Item
from fakescope.prepare.options import PrepareOptions
from fakescope.prepare.units import Unit, failed_video
from fakescope.prepare.video_job import VideoReader, process_video


def make_pipeline(opt: PrepareOptions) -> FacePipeline:
    """The face pipeline of a run (its detector made once, on ``opt.device``)."""
    return FacePipeline(opt.face, weights=opt.detector_weights, device=opt.device)


def trim_heap() -> None:
    """Give the memory freed by a finished video back to the system (glibc's ``malloc_trim``; else nothing)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def auto_workers(cap: int = 8) -> int:
    """Worker processes for ``--workers auto``: one per CPU core this process may use, at most ``cap``
    (each worker holds a detector and a video's frames, about 0.5 GiB at 1080p)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, cap))


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (``VmHWM``; ``ru_maxrss`` where there is no ``/proc``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# ---------------------------------------------------------- worker processes
_WORKER: dict[str, Any] = {}


def _worker_init(opt: PrepareOptions, sys_path: list[str]) -> None:
    """Set up a worker process: death with its parent, the parent's import path (for detector plug-ins), one
    torch thread, the detector."""
    import sys

    from fakescope.prepare.lifecycle import die_with_parent

    die_with_parent()  # the fork server (or, without one, the run itself): never an orphan under PID 1
    import signal

    def stop(signum, frame):  # the run is stopping: leave the video (its temporary folder is removed), exit
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    for p in sys_path:
        if p not in sys.path:
            sys.path.append(p)
    import torch

    torch.set_num_threads(1)  # the face pipeline detects on one thread; nothing else here uses torch's
    _WORKER["pipeline"] = make_pipeline(opt)


def _worker_video(item: Item, opt: PrepareOptions, out: str) -> dict[str, Any]:
    """One video in a worker process (frames read ahead in a thread when ``prefetch``); its record."""
    pipeline = _WORKER["pipeline"]
    reader = VideoReader([item], opt, depth=pipeline.batch_size) if opt.prefetch else None
    try:
        rec = process_video(item, pipeline, opt, Path(out), reader.messages(0) if reader else None)
    finally:
        if reader is not None:
            reader.close()
    trim_heap()
    rec["peak_mib"] = peak_rss_mib()
    return rec


def _file_size(unit: Unit) -> int:
    try:
        return os.path.getsize(unit.items[0].path)
    except OSError:
        return 0


def _ping() -> int:
    return os.getpid()


def _crashed(unit: Unit) -> dict[str, Any]:
    return failed_video(unit.items[0], "worker-crashed",
                         "the worker process preparing this video died (a crash in the decoder or detector, or "
                         "killed, for example by the out-of-memory killer); the other videos went on")


class WorkerPool:
    """Videos prepared by worker processes; records come back to the caller, who writes them.

    Workers start from a fork server that has imported torch and fakescope
    (``spawn`` where there is none), make their detector once, and are
    replaced after ``videos_per_worker`` videos. Videos go out largest file
    first (a long video started last leaves the other workers idle at the
    end). At most twice as many
    videos as workers are in flight. When a worker dies, the pool is
    rebuilt and each video that was in flight is tried again alone; the one
    that kills its worker again is recorded as failed (``worker-crashed``).
    """

    def __init__(self, opt: PrepareOptions, out: Path) -> None:
        import multiprocessing as mp
        import sys

        self.opt, self.out = opt, str(out)
        methods = mp.get_all_start_methods()
        self.ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        if self.ctx.get_start_method() == "forkserver":
            # lifecycle, imported first there, makes the fork server die with this process
            self.ctx.set_forkserver_preload(["fakescope.prepare.lifecycle", "torch", "av", "fakescope.faces",
                                             "fakescope.prepare"])
        self.sys_path = list(sys.path)
        self._started = False  # a worker has finished a video: the workers do start

    def _pool(self, workers: int):
        from concurrent.futures import ProcessPoolExecutor

        if self.ctx.get_start_method() == "forkserver":
            _start_fork_server()
        return ProcessPoolExecutor(max_workers=workers, mp_context=self.ctx, initializer=_worker_init,
                                   initargs=(self.opt, self.sys_path),
                                   max_tasks_per_child=self.opt.videos_per_worker or None)

    def _check_workers_start(self) -> None:
        """Raise a clear error when a worker dies before any video (a setup problem, not a bad video)."""
        from concurrent.futures.process import BrokenProcessPool

        if self._started:
            return
        pool = self._pool(1)
        try:
            pool.submit(_ping).result()
        except BrokenProcessPool:
            raise DataError(
                "prepare: the worker processes could not start (their error is printed above). A script that "
                "calls prepare() with workers must start from an `if __name__ == \"__main__\":` block, as "
                "Python's multiprocessing requires; or use workers=0 (--workers 0)") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self._started = True

    def run(self, units: list[Unit]) -> Iterator[tuple[Unit, dict[str, Any]]]:
        """``(unit, record)`` for every video unit, in the order they finish."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        # largest files first (popped from the end): a long video started last would leave the other
        # workers idle at the end of the run
        pending = sorted(units, key=_file_size)
        suspects: list[Unit] = []  # in flight when a worker died: each is tried again alone
        while pending or suspects:
            if suspects:
                unit = suspects.pop()
                pool = self._pool(1)
                try:
                    rec = pool.submit(_worker_video, unit.items[0], self.opt, self.out).result()
                except BrokenProcessPool:
                    self._check_workers_start()
                    rec = _crashed(unit)
                except BaseException:
                    _kill_workers(pool)
                    raise
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)
                yield unit, rec
                continue
            pool = self._pool(self.opt.workers)
            running: dict[Any, Unit] = {}
            try:
                while pending or running:
                    while pending and len(running) < 2 * self.opt.workers:
                        unit = pending.pop()
                        running[pool.submit(_worker_video, unit.items[0], self.opt, self.out)] = unit
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    broken = False
                    for fut in done:
                        unit = running.pop(fut)
                        try:
                            rec = fut.result()
                        except BrokenProcessPool:
                            suspects.append(unit)
                            broken = True
                            continue
                        self._started = True
                        yield unit, rec
                    if broken:  # every video still in flight is lost with the pool: try each again alone
                        suspects.extend(running.values())
                        running.clear()
                        break
            except BaseException:  # interrupted (SIGTERM, Ctrl-C): the videos in flight are dropped, not awaited
                _kill_workers(pool)
                raise
            finally:
                for fut in running:
                    fut.cancel()
                pool.shutdown(wait=True, cancel_futures=True)


def _start_fork_server() -> None:
    """Start the fork server now, from this thread, naming this process in its environment so that it dies
    with it (:mod:`fakescope.prepare.lifecycle`); the name is removed again at once."""
    from multiprocessing import forkserver

    from fakescope.prepare.lifecycle import GUARD_VAR

    os.environ[GUARD_VAR] = str(os.getpid())
    try:
        forkserver.ensure_running()
    finally:
        os.environ.pop(GUARD_VAR, None)


def _kill_workers(pool, grace_s: float = 2.0) -> None:
    """End a pool's worker processes now, so that shutting the pool down does not wait for their videos: SIGTERM
    first (a worker removes the temporary folder of its video and leaves), SIGKILL for any still there after
    ``grace_s`` (the next run removes what it leaves)."""
    import time

    procs = list(getattr(pool, "_processes", {}).values())
    for proc in procs:
        try:
            proc.terminate()
        except (OSError, AttributeError):
            pass
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.join(max(deadline - time.monotonic(), 0.0))
            if proc.is_alive():
                proc.kill()
        except (OSError, AttributeError, AssertionError):
            pass

