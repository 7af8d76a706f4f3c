"""File names made from free text (method, test-set and model names)."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(text: str) -> str:
    """A file-name-safe version of a name: runs of other characters become ``_`` (``unnamed`` if none is left)."""
    return _UNSAFE.sub("_", text).strip("._") or "unnamed"
