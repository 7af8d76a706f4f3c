"""One registry type for everything fakescope looks up by name: models, face detectors, dataset adapters,
paper tables.

>>> from fakescope.registry import Registry
>>> COLOURS = Registry("colour")
>>> @COLOURS.register("red", description="the colour of fakes")
... def red(): ...
>>> COLOURS.names()
['red']
>>> COLOURS.get("rde")                 # an unknown name is an error that suggests the close ones
Traceback (most recent call last):
...
KeyError: "unknown colour 'rde'; did you mean 'red'? (registered: red)"
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> objects (classes, functions, tables), each with a description and any other facts.

    ``error`` is the exception an unknown name raises (a :class:`KeyError` by default; a registry whose
    names come from users' files may raise the project's error type for that input instead).
    """

    def __init__(self, kind: str, error: Callable[[str], Exception] = KeyError) -> None:
        self.kind = kind
        self.error = error
        self._objects: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}

    def add(self, name: str, obj: T, *, description: str = "", replace: bool = False, **info: Any) -> T:
        """Register ``obj`` under ``name``; the same object may be registered again, another one only with
        ``replace``."""
        if name in self._objects and self._objects[name] is not obj and not replace:
            raise ValueError(f"{self.kind} name {name!r} is already registered ({self._objects[name]!r})")
        if not description:
            doc = getattr(obj, "__doc__", None) or ""
            description = doc.strip().split("\n")[0] if doc.strip() else ""
        self._objects[name] = obj
        self._info[name] = {"description": description, **info}
        return obj

    def register(self, name: str, *, description: str = "", **info: Any) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def wrap(obj: T) -> T:
            return self.add(name, obj, description=description, **info)

        return wrap

    def remove(self, name: str) -> None:
        """Forget ``name`` (plug-ins and tests that registered something for a while)."""
        self._objects.pop(name, None)
        self._info.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._objects[name]
        except KeyError:
            raise self.error(self.unknown(name)) from None

    def unknown(self, name: str) -> str:
        """The message for an unknown ``name``: the close names, and every registered one."""
        close = difflib.get_close_matches(name, list(self._objects), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (registered: {', '.join(self.names()) or 'none'})"

    def info(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._info[name])

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style ``pattern``."""
        return sorted(n for n in self._objects if fnmatch.fnmatch(n, pattern))

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._objects[name]

    def __contains__(self, name: object) -> bool:
        return name in self._objects

    def __len__(self) -> int:
        return len(self._objects)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
