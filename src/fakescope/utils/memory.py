"""glibc's allocator settings for long scoring runs: freed buffers returned to the system, or kept for reuse.

``return_freed_buffers`` (``fakescope eval``, and ``detect`` with DataLoader workers): with workers, every batch
arrives as a new buffer of a few hundred KiB. glibc's allocator raises its mmap threshold when such buffers are
freed (up to 32 MiB), so later ones come from the heap, and the heap keeps what was freed: measured on 40,000
crops, the scoring process's RSS climbed by 100-200 MiB and stayed there, with nothing referencing the memory. A
fixed threshold (128 KiB, glibc's starting value) makes every batch buffer its own mapping, returned when freed:
RSS stayed flat.

``reuse_freed_buffers`` (``detect`` scoring in the process, the default): there each layer's output is allocated
anew, and a fresh mapping for each is page-faulted in, which cost nearly as much as the convolutions (NPR at 256
px, batch 1, one thread: 102-107 ms an image with every buffer over 128 KiB mapped afresh, against 55-57 ms with
freed buffers reused; ``docs/speed.md``). The thresholds are set where glibc's own adaptive setting ends up after
its first large buffers, from the start.

A ``MALLOC_MMAP_THRESHOLD_`` in the environment wins in both (glibc reads it at start-up), and other C
libraries are left alone.

``huge_pages_for_large_tensors`` (every ``fakescope`` command, before torch is imported): a layer output over
32 MiB (EfficientNet-B4's second stage at 380 px holds 4 x 144 x 190 x 190 floats, 83 MiB, at batch 4) is past
glibc's largest mmap threshold, so it is mapped afresh and faulted in 4 KiB page by page at every batch; zero-filling
one such buffer took 127-163 ms. torch's CPU allocator asks the kernel for transparent huge pages (2 MiB) on
buffers of 2 MiB and more when ``THP_MEM_ALLOC_ENABLE=1`` is in the environment at its first allocation: SFCL-HCMF's
eager forward at batch 4 went from 1.42 s to 0.94 s (docs/sfcl_hcmf.md). Where the kernel's THP setting is
``never`` the variable changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers
M_MMAP_THRESHOLD = -3
THRESHOLD = 128 * 1024
REUSE_MMAP_THRESHOLD = 32 << 20  # glibc's largest
REUSE_TRIM_THRESHOLD = 64 << 20  # what a batch frees at the top of the heap is kept for the next one


def _mallopt(settings: dict[int, int]) -> bool:
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return all([bool(mallopt(param, value)) for param, value in settings.items()])


def return_freed_buffers() -> bool:
    """Fix glibc's mmap threshold at 128 KiB for this process; ``True`` when it was set here."""
    return _mallopt({M_MMAP_THRESHOLD: THRESHOLD})


def reuse_freed_buffers() -> bool:
    """Keep freed buffers of up to 32 MiB in the heap for reuse; ``True`` when it was set here."""
    return _mallopt({M_MMAP_THRESHOLD: REUSE_MMAP_THRESHOLD, M_TRIM_THRESHOLD: REUSE_TRIM_THRESHOLD})


def huge_pages_for_large_tensors() -> bool:
    """Set ``THP_MEM_ALLOC_ENABLE=1`` for torch; ``True`` when set here (Linux, torch not yet imported, not set)."""
    if not sys.platform.startswith("linux") or "THP_MEM_ALLOC_ENABLE" in os.environ or "torch" in sys.modules:
        return False  # torch reads the variable once, at its first allocation: too late once it is imported
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    return True


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what the platform says where that file cannot be read."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
    except OSError:  # not Linux: the platform's own name below
        names = []
    return names[0] if names else (platform.processor() or platform.machine() or "unknown CPU")
