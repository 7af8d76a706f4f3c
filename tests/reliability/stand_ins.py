"""Detectors for the service's tests that misbehave on cue, picklable so that worker processes can load them.

:class:`StuckDetector` scores like the detector it wraps, except for uploads with particular names: one named
:data:`HOLD_NAME` holds Python's global interpreter lock for ``hold_s`` seconds in C code, as a decoder stuck on
a hostile file does (deterministic: the C library's ``sleep`` called without releasing the lock, no CPU used);
one named :data:`CRASH_NAME` ends its process as the kernel's out-of-memory killer would.
"""

from __future__ import annotations

import ctypes
import os
import signal

HOLD_NAME = "hold-the-lock.png"
CRASH_NAME = "crash.png"


def hold_gil(seconds: int) -> None:
    """Sleep ``seconds`` in C with the interpreter lock held (ctypes.PyDLL does not release it)."""
    ctypes.PyDLL(None).sleep(int(seconds))


class StuckDetector:
    def __init__(self, real, hold_s: int = 30) -> None:
        self.real, self.hold_s = real, hold_s

    def __getattr__(self, name):
        if name in ("real", "hold_s"):  # not set yet while unpickling
            raise AttributeError(name)
        return getattr(self.real, name)

    def predict(self, x, name=None, **kw):
        if name == HOLD_NAME:
            hold_gil(self.hold_s)
        elif name == CRASH_NAME:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.real.predict(x, name=name, **kw)
