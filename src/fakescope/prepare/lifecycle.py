"""How a ``fakescope prepare`` run starts and ends: worker processes that die with their parent, SIGTERM and
SIGINT turned into a clean stop, and the temporary files of an earlier run that was killed removed.

A run killed with ``kill -9`` (or by the out-of-memory killer) gets no chance to clean up, so cleaning up is
the next run's job and the kernel's:

* the fork server that starts the workers, and each worker, ask the kernel for SIGKILL when their parent
  dies (``PR_SET_PDEATHSIG``; the fork server imports this module first): killing the main process takes the
  fork server with it, and the fork server its workers, instead of leaving them running under PID 1;
* a video's crops are written into ``crops/.../.<video>.tmp-<pid>/`` and renamed into place when complete;
  a folder like that left by a killed run is removed when the video is prepared again, and at the start of
  every run for the videos of its shard.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

PR_SET_PDEATHSIG = 1
STALE_FILE_S = 600.0  # a leftover temporary file (manifest, record) this old belongs to no live writer


def die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere nothing happens).

    Returns whether it was arranged. When the parent is already gone (the process was re-parented to PID 1
    before this ran), exits at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent == 1 or os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    return True


class Stopped(KeyboardInterrupt):
    """SIGTERM (or SIGINT) arrived: the run stops at once, keeping what it finished."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`Stopped` in the main thread while the block runs (elsewhere: nothing)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Stopped(signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def remove_temporaries(final: Path) -> int:
    """Remove the temporary folders of ``final`` left by earlier runs (``.<name>.tmp-<pid>``); their count."""
    n = 0
    parent = final.parent
    if not parent.is_dir():
        return 0
    prefix = f".{final.name}.tmp-"
    for entry in os.scandir(parent):
        if entry.name.startswith(prefix):
            shutil.rmtree(entry.path, ignore_errors=True) if entry.is_dir(follow_symlinks=False) else \
                _unlink(entry.path)
            n += 1
    return n


def sweep(out: Path, finals: Iterable[Path]) -> int:
    """At the start of a run: remove the temporary crop folders of the videos in ``finals`` (this shard's), and
    temporary files of the manifests and records older than :data:`STALE_FILE_S`; the count removed."""
    by_parent: dict[Path, set[str]] = {}
    for f in finals:
        by_parent.setdefault(f.parent, set()).add(f.name)
    removed = 0
    for parent, names in by_parent.items():
        if not parent.is_dir():
            continue
        for entry in os.scandir(parent):
            name = entry.name
            if name.startswith(".") and ".tmp-" in name and name[1:name.rindex(".tmp-")] in names:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    _unlink(entry.path)
                removed += 1
    now = time.time()
    for folder in (out, out / ".records", *(p for p in (out / "sets").glob("*") if p.is_dir())):
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(".") and ".tmp-" in entry.name and entry.is_file(follow_symlinks=False):
                try:
                    old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_FILE_S
                except OSError:
                    continue
                if old:
                    _unlink(entry.path)
                    removed += 1
    return removed


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


GUARD_VAR = "FAKESCOPE_FORKSERVER_GUARD"


def _guard_fork_server() -> None:
    """In the fork server of a run (which imports this module first; the run names itself in GUARD_VAR while it
    starts the server): die with the run, or exit now if the run is already gone."""
    owner = os.environ.pop(GUARD_VAR, "")
    if not owner.isdigit():
        return
    if os.getppid() == int(owner):
        die_with_parent()
        return
    try:
        os.kill(int(owner), 0)
    except ProcessLookupError:  # the run died while this server was starting
        os._exit(1)
    except OSError:
        pass


_guard_fork_server()
