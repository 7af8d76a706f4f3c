"""The registry of detectors and ``create_model(name, **overrides)``, in the style of timm.

>>> from fakescope.models import create_model, list_models
>>> list_models("simple_cnn*")
['simple_cnn', 'simple_cnn_tiny']
>>> model = create_model("simple_cnn", preprocess={"input_size": 64})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from fakescope.models.base import DetectorConfig, DetectorModel
from fakescope.preprocess import FaceCropConfig, PreprocessConfig
from fakescope.registry import Registry
from fakescope.schema import deep_merge

D = TypeVar("D", bound=type[DetectorModel])


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type[DetectorModel]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    paper: str | None = None

    @property
    def config_class(self) -> type[DetectorConfig]:
        return self.cls.config_class

    @property
    def modality(self) -> str:
        return self.cls.modality


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(
    name: str, *, defaults: dict[str, Any] | None = None, description: str = "", paper: str | None = None
) -> Callable[[D], D]:
    """Class decorator: register a :class:`DetectorModel` subclass under ``name``."""

    def wrap(cls: D) -> D:
        if not (isinstance(cls, type) and issubclass(cls, DetectorModel)):
            raise TypeError(f"register_model({name!r}) expects a DetectorModel subclass, got {cls!r}")
        _add(ModelEntry(name, cls, dict(defaults or {}), description or (cls.__doc__ or "").strip().split("\n")[0],
                        paper))
        return cls

    return wrap


def register_variant(name: str, base: str, *, description: str = "", **defaults: Any) -> None:
    """Register ``name`` as ``base`` with different config defaults (e.g. a tiny test size)."""
    parent = model_entry(base)
    _add(ModelEntry(name, parent.cls, deep_merge(parent.defaults, defaults), description or parent.description,
                    parent.paper))


def _add(entry: ModelEntry) -> None:
    if entry.name in MODELS and MODELS.get(entry.name).cls is not entry.cls:
        raise ValueError(f"model name {entry.name!r} is already registered by {MODELS.get(entry.name).cls.__name__}")
    MODELS.add(entry.name, entry, description=entry.description, paper=entry.paper, replace=True)


def list_models(pattern: str = "*", modality: str | None = None) -> list[str]:
    """Sorted names of registered detectors matching a shell-style ``pattern``."""
    return [n for n in MODELS.names(pattern) if modality is None or MODELS.get(n).modality == modality]


def model_entry(name: str) -> ModelEntry:
    return MODELS.get(name)


def model_config_class(name: str) -> type[DetectorConfig]:
    return model_entry(name).config_class


def resolve_model_config(name: str, overrides: dict[str, Any] | None = None) -> DetectorConfig:
    """The typed config of model ``name``: class defaults <- variant defaults <- ``overrides``.

    A face-forgery detector (``input_domain = "face"``) whose config does not say otherwise gets the face stage
    that ``fakescope prepare`` makes by default (training then takes the one its data declares).
    Raises ``pydantic.ValidationError`` on unknown keys or bad values.
    """
    entry = model_entry(name)
    merged = deep_merge(entry.defaults, dict(overrides or {}))
    cfg = entry.config_class.model_validate(merged)
    _default_face_stage(entry, merged.get("preprocess"), cfg.preprocess)
    return cfg


def _default_face_stage(entry: ModelEntry, given: Any, pp: PreprocessConfig) -> None:
    """A face model whose config does not mention ``face`` gets the face stage ``prepare`` makes by default."""
    face_given = isinstance(given, dict) and "face" in given
    if not face_given and entry.cls.input_domain == "face" and pp.face is None:
        pp.face = FaceCropConfig()


def default_preprocess(name: str) -> PreprocessConfig:
    """The preprocessing model ``name`` uses unless its config says otherwise.

    Unlike :func:`resolve_model_config` this needs none of the fields a model requires (``hf_classifier``'s hub
    name, for one), so listings can show every registered model.
    """
    entry = model_entry(name)
    given = entry.defaults.get("preprocess")
    if given is None:  # the config class's own default
        pp = entry.config_class.model_fields["preprocess"].get_default(call_default_factory=True)
    else:  # as pydantic validates it inside the config: a given dict replaces the class default whole
        pp = PreprocessConfig.model_validate(given)
    _default_face_stage(entry, given, pp)
    return pp


def create_model(name: str, **overrides: Any) -> DetectorModel:
    """Build a registered detector. ``overrides`` are config fields (nested dicts allowed)."""
    cfg = resolve_model_config(name, overrides)
    cls = model_entry(name).cls
    ignored = [f for f in ("weights", "pretrained") if getattr(cfg, f, None) and f not in cls.reads]
    if ignored:
        from fakescope.errors import ConfigError

        raise ConfigError(f"create_model('{name}'): {' and '.join(ignored)}={getattr(cfg, ignored[0])!r} would be "
                          f"ignored: {name} has no pretrained backbone that reads it. Load a fakescope checkpoint "
                          "with fakescope.load(path), or a state dict with model.load_state_dict(...)")
    model = cls(cfg)
    model.registry_name = name
    return model
