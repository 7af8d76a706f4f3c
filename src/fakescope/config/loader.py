"""Layered YAML experiment configs validated into typed objects.

Layers, lowest first:

1. the defaults declared once, as field defaults of the classes of :mod:`fakescope.config.schema`
   (and, for the ``model`` section, of each detector's own config class);
2. the ``_base_`` files an experiment file names (recursively, relative to it);
3. the experiment file itself;
4. ``key=value`` overrides from the command line (dotted keys, YAML values).

Every key is validated; an unknown or misspelled key is a :class:`ConfigError`
that names the key, the file (or the command line) it came from, and the
closest valid keys.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fakescope.config.schema import ExperimentConfig
from fakescope.errors import ConfigError
from fakescope.models import model_config_class, resolve_model_config
from fakescope.schema import deep_merge

BASE_KEY = "_base_"
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
CLI_SOURCE = "command line"

# ------------------------------------------------------------------ loading
Provenance = dict[tuple[str, ...], str]


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read one YAML mapping; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); save the config "
                          "as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{p}: malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{p}: malformed YAML: lists or mappings nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _merge(base: dict, layer: dict, prov: Provenance, source: str) -> dict:
    """:func:`~fakescope.schema.deep_merge` of ``layer`` over ``base``, noting in ``prov`` that ``source``
    set every key of ``layer`` (a value that replaces a whole section drops the section's older notes)."""
    _note(base, layer, prov, source, ())
    return deep_merge(base, copy.deepcopy(layer))


def _note(base: Any, layer: dict, prov: Provenance, source: str, prefix: tuple[str, ...]) -> None:
    for key, value in layer.items():
        if not isinstance(key, str):
            raise ConfigError(f"{source}: keys must be strings, got {key!r}")
        path = (*prefix, key)
        below = base.get(key) if isinstance(base, dict) else None
        if isinstance(value, dict) and isinstance(below, dict):
            _note(below, value, prov, source, path)
        else:
            for p in [p for p in prov if p[: len(path)] == path]:
                del prov[p]
            _mark(value, prov, source, path)
        prov[path] = source


def _mark(value: Any, prov: Provenance, source: str, path: tuple[str, ...]) -> None:
    prov[path] = source
    if isinstance(value, dict):
        for k, v in value.items():
            _mark(v, prov, source, (*path, str(k)))


def load_layers(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> tuple[dict, Provenance]:
    """Merge a config file over its ``_base_`` files; returns the dict and where each key came from."""
    p = Path(path).resolve()
    if p in _seen:
        chain = " -> ".join(str(s) for s in (*_seen, p))
        raise ConfigError(f"{path}: circular _base_ chain: {chain}")
    data = read_yaml(path)
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: {BASE_KEY} must be a file name or a list of file names")
    merged: dict = {}
    prov: Provenance = {}
    for base in bases:
        base_path = (p.parent / base) if not os.path.isabs(base) else Path(base)
        if not base_path.is_file():
            raise ConfigError(f"{path}: {BASE_KEY} file '{base}' not found (looked at {base_path})")
        base_data, base_prov = load_layers(base_path, (*_seen, p))
        merged = _merge(merged, base_data, prov, "")
        prov.update(base_prov)
    merged = _merge(merged, data, prov, str(path))
    return merged, prov


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    if "=" not in text:
        raise ConfigError(f"{CLI_SOURCE}: override '{text}' is not of the form key=value (e.g. optim.lr=1e-3)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{CLI_SOURCE}: override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "1e-3" as a string
    return tuple(key.split(".")), value


def apply_overrides(data: dict, prov: Provenance, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        layer: dict = {}
        node = layer
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        data = _merge(data, layer, prov, f"{CLI_SOURCE} ({text})")
    return data


def _source_of(loc: tuple[str, ...], prov: Provenance, default: str) -> str:
    for n in range(len(loc), 0, -1):
        src = prov.get(tuple(loc[:n]))
        if src:
            return src
    return default


def _fields_at(model_cls: type[BaseModel], loc: tuple) -> list[str]:
    """Valid field names of the config class that owns ``loc``'s last key."""
    cls: Any = model_cls
    for part in loc[:-1]:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return []
        field = cls.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        cls = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), ann)
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return list(cls.model_fields)
    return []


def format_validation_error(
    exc: ValidationError, model_cls: type[BaseModel], prov: Provenance, default_source: str,
    prefix: tuple[str, ...] = (),
) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(str(x) for x in err["loc"])
        full = (*prefix, *loc)
        dotted = ".".join(full) or "(top level)"
        source = _source_of(full, prov, default_source)
        if err["type"] == "extra_forbidden":
            valid = _fields_at(model_cls, loc)
            close = difflib.get_close_matches(loc[-1], valid, n=3) if valid else []
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            if valid and not close:
                hint = f"; valid keys here: {', '.join(sorted(valid))}"
            lines.append(f"{source}: unknown key '{dotted}'{hint}")
        elif err["type"] == "missing":
            lines.append(f"{source}: required key '{dotted}' is missing")
        else:
            lines.append(f"{source}: '{dotted}': {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


PACKAGED_CONFIGS = Path(__file__).parent.parent / "configs"


def resolve_config_path(path: str | os.PathLike) -> Path:
    """A config file path, or the name of a packaged config (``quickstart``, ``fssnet/progan``)."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_absolute():  # 'fssnet/progan' or 'fssnet/progan.yaml' also name a packaged config
        packaged = PACKAGED_CONFIGS / (p if p.suffix in (".yaml", ".yml") else Path(f"{p}.yaml"))
        if packaged.is_file():
            return packaged
    raise ConfigError(f"{p}: config file not found" + (
        "" if p.is_absolute() else f" (nor a packaged config; see {PACKAGED_CONFIGS})"))


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                data: dict | None = None, validate_model: bool = True) -> ExperimentConfig:
    """Load an experiment config: defaults <- ``_base_`` files <- ``path`` <- ``overrides``.

    ``data`` may be given instead of ``path`` (a dict already in memory).
    With ``validate_model`` the ``model`` section is checked against the
    registered detector's config class as well.
    """
    prov: Provenance = {}
    if path is not None:
        path = resolve_config_path(path)
        merged, prov = load_layers(path)
        source = str(path)
    else:
        merged, source = copy.deepcopy(data or {}), "<dict>"
        _mark(merged, prov, source, ())
    merged = apply_overrides(merged, prov, list(overrides or []))
    try:
        cfg = ExperimentConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, ExperimentConfig, prov, source)) from None
    if validate_model:
        try:
            resolve_model_config(cfg.model.name, cfg.model.kwargs)
        except ValidationError as exc:
            cls = model_config_class(cfg.model.name)
            raise ConfigError(format_validation_error(exc, cls, prov, source, prefix=("model",))) from None
        except KeyError as exc:
            raise ConfigError(f"{_source_of(('model', 'name'), prov, source)}: {exc.args[0]}") from None
    return cfg


def dump_config(cfg: ExperimentConfig, path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(cfg.to_dict(), fh, sort_keys=False)
