"""Lazy imports of optional dependencies with an error that names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from fakescope.errors import MissingExtraError


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the pip extra.

    >>> np = require("numpy", extra="core")
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised through monkeypatching in tests
        what = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"the optional dependency '{module}' is needed{what} but is not installed "
            f"({exc}). Install it with: pip install 'fakescope[{extra}]'"
        ) from exc
