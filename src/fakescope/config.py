"""Layered YAML experiment configs validated into typed objects.

Layers, lowest first:

1. the defaults declared once, as field defaults of the pydantic classes below
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
import re
import glob
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fakescope.errors import ConfigError

BASE_KEY = "_base_"
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
CLI_SOURCE = "command line"


class Strict(BaseModel):
    """A config object that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------- data
class DataSource(Strict):
    """One dataset: a folder in ForenSynths layout or a manifest CSV.

    A string is accepted as shorthand for ``{path: ...}``. A path with a glob
    (``test/*``) expands to one source per match, named after the match.
    """

    path: str
    name: str | None = None
    split: str | None = Field(default=None, description="manifest only: keep rows of this split")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, (str, os.PathLike)):
            return {"path": str(value)}
        return value


class AugmentConfig(Strict):
    """Training-time augmentation (evaluation never augments).

    Everything but the horizontal flip is off by default: blur, JPEG
    re-compression and colour jitter change the frequency content that the
    frequency-domain detectors learn from, and their papers train without
    them. A clip gets one draw, applied identically to all its frames.
    """

    hflip: bool = True
    blur_prob: float = Field(default=0.0, ge=0.0, le=1.0)
    blur_sigma: tuple[float, float] = (0.1, 3.0)
    jpeg_prob: float = Field(default=0.0, ge=0.0, le=1.0)
    jpeg_quality: tuple[int, int] = (30, 100)
    jitter_prob: float = Field(default=0.0, ge=0.0, le=1.0, description="probability of colour jitter")
    brightness: float = Field(default=0.3, ge=0.0, description="jitter: factor drawn from [1-b, 1+b]")
    contrast: float = Field(default=0.3, ge=0.0, description="jitter: factor drawn from [1-c, 1+c]")
    saturation: float = Field(default=0.3, ge=0.0, description="jitter: factor drawn from [1-s, 1+s]")
    hue: float = Field(default=0.05, ge=0.0, le=0.5, description="jitter: hue shift drawn from [-h, h] turns")

    @field_validator("blur_sigma", "jpeg_quality")
    @classmethod
    def _ordered(cls, value: tuple) -> tuple:
        if value[0] > value[1]:
            raise ValueError(f"range must be (low, high), got {value}")
        return value


class DataConfig(Strict):
    root: str | None = Field(default=None, description="relative source paths are resolved against it")
    train: list[DataSource] = Field(default_factory=list)
    val: list[DataSource] = Field(default_factory=list)
    test: list[DataSource] = Field(default_factory=list)
    batch_size: int = Field(default=32, ge=1)
    eval_batch_size: int | None = Field(default=None, ge=1)
    num_workers: int = Field(default=2, ge=0)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    balance: Literal["none", "classes"] = "none"
    max_per_source: int | None = Field(default=None, ge=1, description="debug: keep at most N samples per source")

    @field_validator("train", "val", "test", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, (str, dict)):
            return [value]
        return value

    def resolve(self, source: DataSource) -> list[DataSource]:
        """Absolute path(s) for ``source``: joins ``root`` and expands globs."""
        path = source.path
        if self.root and not os.path.isabs(path):
            path = os.path.join(self.root, path)
        path = os.path.expanduser(path)
        if glob.has_magic(path):
            matches = sorted(p for p in glob.glob(path) if os.path.isdir(p) or p.endswith(".csv"))
            if not matches:
                raise ConfigError(f"data source '{source.path}': the pattern {path} matches no folder or manifest")
            return [
                DataSource(path=m, name=_default_name(m) if source.name is None else f"{source.name}/{_default_name(m)}",
                           split=source.split)
                for m in matches
            ]
        name = source.name or _default_name(path)
        return [DataSource(path=path, name=name, split=source.split)]


def _default_name(path: str) -> str:
    """A test set's name: a folder's name, a manifest's stem; ``prepare``'s ``DATASET/sets/<split>/all.csv``
    is named after ``DATASET`` (so ``celebdf_v2/sets/test/all.csv`` is the set ``celebdf_v2``)."""
    p = Path(path)
    if p.suffix != ".csv":
        return p.name
    if p.stem == "all" and len(p.parents) >= 3 and p.parents[1].name == "sets":
        return p.parents[2].name
    return p.stem


# -------------------------------------------------------------------- optim
class OptimConfig(Strict):
    name: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(default=1e-4, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = Field(default=0.9, ge=0, description="sgd only")
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = Field(default=0, ge=0)
    warmup_epochs: float = Field(default=0.0, ge=0, description="alternative to warmup_steps")
    min_lr: float = Field(default=0.0, ge=0)
    param_lr: dict[str, float] = Field(
        default_factory=dict,
        description="learning rate per parameter-name prefix, e.g. {'head.': 1e-3}; the rest use lr",
    )


# ------------------------------------------------------------------ trainer
class EarlyStoppingConfig(Strict):
    enabled: bool = True
    monitor: str = "val/auc"
    mode: Literal["max", "min"] = "max"
    patience: int = Field(default=6, ge=0)
    min_delta: float = 0.0


class TrainerConfig(Strict):
    max_epochs: int = Field(default=10, ge=1)
    max_steps: int = -1
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = Field(default=1, ge=1)
    strategy: str = "auto"
    precision: Literal["auto", "32", "bf16", "16"] = "32"
    accumulate_grad_batches: int = Field(default=1, ge=1)
    gradient_clip_val: float | None = None
    deterministic: bool = False
    cudnn_benchmark: bool = Field(default=True, description="let cuDNN pick the fastest convolution algorithms "
                                  "(inputs have a fixed size here); off when deterministic")
    log_every_n_steps: int = Field(default=10, ge=1)
    check_val_every_n_epoch: int = Field(default=1, ge=1)
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    progress_bar: bool | Literal["auto"] = Field(default="auto", description="auto: only on a terminal")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    monitor: str | None = Field(
        default=None, description="checkpoint selection metric; defaults to early_stopping.monitor"
    )
    monitor_mode: Literal["max", "min"] | None = None

    @property
    def selection_metric(self) -> tuple[str, str]:
        return (self.monitor or self.early_stopping.monitor, self.monitor_mode or self.early_stopping.mode)


# --------------------------------------------------------------------- eval
class RobustnessConfig(Strict):
    """Perturbation levels for the robustness sweep (level 0 = clean is always included)."""

    jpeg_quality: list[int] = Field(default_factory=lambda: [90, 70, 50, 30])
    blur_sigma: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0, 3.0])
    downscale: list[float] = Field(default_factory=lambda: [0.75, 0.5, 0.25])
    noise_sigma: list[float] = Field(default_factory=lambda: [0.01, 0.03, 0.05, 0.1])


class EvalConfig(Strict):
    threshold: float = Field(default=0.5, gt=0, lt=1)
    after_training: bool = Field(default=True, description="evaluate data.test after training")
    robustness: bool = False
    robustness_levels: RobustnessConfig = Field(default_factory=RobustnessConfig)


# -------------------------------------------------------------------- model
class ModelSection(BaseModel):
    """``name`` picks a registered detector; every other key is one of its config fields.

    The other keys are validated against the detector's own config class by
    :func:`load_config` (through the registry), so a misspelt model key is an
    error like any other.
    """

    model_config = ConfigDict(extra="allow")

    name: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ExperimentConfig(Strict):
    name: str = "experiment"
    output_dir: str = "runs"
    seed: int = 0
    model: ModelSection
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ------------------------------------------------------------------ loading
Provenance = dict[tuple[str, ...], str]


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read one YAML mapping; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{p}: malformed YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _merge(base: dict, layer: dict, prov: Provenance, source: str, prefix: tuple[str, ...] = ()) -> dict:
    """Deep-merge ``layer`` into ``base`` (dicts merge, everything else replaces)."""
    out = dict(base)
    for key, value in layer.items():
        if not isinstance(key, str):
            raise ConfigError(f"{source}: keys must be strings, got {key!r}")
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, prov, source, path)
        else:
            out[key] = copy.deepcopy(value)
            for p in [p for p in prov if p[: len(path)] == path]:
                del prov[p]
            _mark(value, prov, source, path)
        prov[path] = source
    return out


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


PACKAGED_CONFIGS = Path(__file__).parent / "configs"


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
        from fakescope.models.registry import model_config_class, resolve_model_config

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
