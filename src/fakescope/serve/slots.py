"""Admission to the service's work: a fixed number of slots, each held by one request until its job really ends."""

from __future__ import annotations

import threading


class Slots:
    """``capacity`` slots: :meth:`acquire` takes one (``False``: none is free), :meth:`release` gives it back
    (``_release`` too, as a future's done-callback)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.active = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take a slot (``False``: none is free); give it back with :meth:`release`."""
        with self._lock:
            if self.active >= self.capacity:
                return False
            self.active += 1
            return True

    def release(self) -> None:
        self._release(None)

    def _release(self, _fut) -> None:
        with self._lock:
            self.active -= 1
