"""File names made from free text (method, test-set and model names)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def walk(root: str | Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` that follows symbolic links to folders (datasets are often linked in) but enters each real
    folder once: a link back to a parent, or two links to one folder, cannot make it loop or repeat."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if os.path.realpath(os.path.join(dirpath, d)) not in seen]
        yield dirpath, dirnames, filenames


def name_bytes(text: str) -> bytes:
    """A name (a path, a unit's key) as bytes for hashing: UTF-8, and a file name that is not valid UTF-8 (which
    Python holds with surrogate escapes) as its own bytes, so that every name hashes, and hashes the same."""
    return text.encode("utf-8", "surrogateescape")


def safe_name(text: str) -> str:
    """A file-name-safe version of a name: runs of other characters become ``_`` (``unnamed`` if none is left)."""
    return _UNSAFE.sub("_", text).strip("._") or "unnamed"
