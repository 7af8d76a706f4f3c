"""An exclusive lock on an output file or folder, held while a run writes it: a second run on the same output
is refused at once, naming the output and the process that holds it (``fcntl.flock`` on ``OUT.lock`` beside the
output, which holds that process's id; the kernel lets go of it when that process ends, however it ends)."""

from __future__ import annotations

import os
from pathlib import Path

from fakescope.errors import DataError

try:
    import fcntl
except ImportError:  # not POSIX: no lock (the output is still written one whole record at a time)
    fcntl = None


def lock_path(target: str | os.PathLike) -> Path:
    target = Path(target)
    return target.parent / (target.name + ".lock")


class OutputLock:
    """Held from construction to :meth:`release` (or the end of the process)."""

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = Path(target)
        self.path = lock_path(self.target)
        self._fd: int | None = None
        if fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _pid_in(fd)
                os.close(fd)
                who = f"another fakescope run (pid {pid})" if pid else "another fakescope run"
                raise DataError(f"{self.target}: {who} is writing this output (locked by {self.path}); wait for "
                                "it to end, or give another --out") from None
            try:  # the run that held it may have removed the lock file between our open and our lock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:  # removed while still locked: a run that opened it meanwhile sees another file and tries again
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None


def _pid_in(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
