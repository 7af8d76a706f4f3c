"""One registry of detectors and ``create_model(name, **overrides)``, in the style of timm.

>>> from fakescope.models import create_model, list_models
>>> list_models("simple_cnn*")
['simple_cnn', 'simple_cnn_tiny']
>>> model = create_model("simple_cnn", preprocess={"input_size": 64})
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from fakescope.models.base import Detector, DetectorConfig

D = TypeVar("D", bound=type[Detector])


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type[Detector]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    paper: str | None = None

    @property
    def config_class(self) -> type[DetectorConfig]:
        return self.cls.config_class

    @property
    def modality(self) -> str:
        return self.cls.modality


_REGISTRY: dict[str, ModelEntry] = {}


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def register_model(
    name: str, *, defaults: dict[str, Any] | None = None, description: str = "", paper: str | None = None
) -> Callable[[D], D]:
    """Class decorator: register a :class:`Detector` subclass under ``name``."""

    def wrap(cls: D) -> D:
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise TypeError(f"register_model({name!r}) expects a Detector subclass, got {cls!r}")
        _add(ModelEntry(name, cls, dict(defaults or {}), description or (cls.__doc__ or "").strip().split("\n")[0], paper))
        return cls

    return wrap


def register_variant(name: str, base: str, *, description: str = "", **defaults: Any) -> None:
    """Register ``name`` as ``base`` with different config defaults (e.g. a tiny test size)."""
    parent = model_entry(base)
    _add(ModelEntry(name, parent.cls, _deep_merge(parent.defaults, defaults), description or parent.description,
                    parent.paper))


def _add(entry: ModelEntry) -> None:
    if entry.name in _REGISTRY and _REGISTRY[entry.name].cls is not entry.cls:
        raise ValueError(f"model name {entry.name!r} is already registered by {_REGISTRY[entry.name].cls.__name__}")
    _REGISTRY[entry.name] = entry


def list_models(pattern: str = "*", modality: str | None = None) -> list[str]:
    """Sorted names of registered detectors matching a shell-style ``pattern``."""
    return sorted(
        n for n, e in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern) and (modality is None or e.modality == modality)
    )


def model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown model {name!r}{hint} (registered: {', '.join(list_models())})") from None


def model_config_class(name: str) -> type[DetectorConfig]:
    return model_entry(name).config_class


def resolve_model_config(name: str, overrides: dict[str, Any] | None = None) -> DetectorConfig:
    """The typed config of model ``name``: class defaults <- variant defaults <- ``overrides``.

    Raises ``pydantic.ValidationError`` on unknown keys or bad values.
    """
    entry = model_entry(name)
    return entry.config_class.model_validate(_deep_merge(entry.defaults, dict(overrides or {})))


def create_model(name: str, **overrides: Any) -> Detector:
    """Build a registered detector. ``overrides`` are config fields (nested dicts allowed)."""
    cfg = resolve_model_config(name, overrides)
    model = model_entry(name).cls(cfg)
    model.registry_name = name
    return model
