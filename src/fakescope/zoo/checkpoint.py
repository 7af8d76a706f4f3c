"""The fakescope checkpoint: a folder with weights, config and a model card.

::

    model/
      model.safetensors   the detector's state dict
      config.json         model name and full config, modality, label map (0 real, 1 fake), training data,
                          validation metrics, version. The model config holds the preprocessing once,
                          face stage included (``model.config.preprocess``)
      README.md           model card

:func:`load` rebuilds the detector from ``config.json`` (never downloading
backbone weights: everything comes from ``model.safetensors``) and refuses
weights that do not match it, listing missing, unexpected and mis-shaped keys.
A checkpoint saved before the face stage was stored loads with the face crop
inference used then, and a warning that names the missing field.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import warnings
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fakescope._version import __version__
from fakescope.errors import CheckpointError
from fakescope.models.base import LABELS, DetectorModel
from fakescope.zoo.card import model_card
from fakescope.zoo.hub import sha256_of as weights_sha256  # noqa: F401  (the name export and inference use)
from fakescope.models.registry import create_model, model_entry
from fakescope.models.state import check_state_shapes, load_state_strict, meta_init_skipped
from fakescope.preprocess import LEGACY_FACE_CROP, FaceCropConfig, PreprocessConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"

# registered detectors that older fakescope versions served with face crops (their variants too)
LEGACY_FACE_MODELS = ("sfcl_hcmf", "efficientnet_b4", "sdr")


def save(model: DetectorModel, path: str | Path, *, training: dict[str, Any] | None = None,
         validation: dict[str, Any] | None = None, notes: str = "", extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a checkpoint folder; returns the folder. ``extra``: more sections of ``config.json``
    (a converted release's ``pretrained`` record); ``notes``: more text for the model card."""
    from safetensors.torch import save_file

    if model.registry_name is None:
        raise CheckpointError("only models built with fakescope.create_model can be saved (registry name unknown)")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS), metadata={"format": "pt", "fakescope_version": __version__})
    config = {
        "fakescope_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model.describe(),
        "labels": {str(k): v for k, v in LABELS.items()},
        "training": training or {},
        "validation": validation or {},
        **(extra or {}),
    }
    (path / CONFIG).write_text(json.dumps(config, indent=2, default=str))
    (path / CARD).write_text(model_card(config, notes))
    return path


# what a checkpoint config may be: a real one is a few kB, nested about 6 levels deep
MAX_CONFIG_BYTES = 16 << 20
MAX_CONFIG_DEPTH = 64
# the operating points a calibration section holds thresholds for (fakescope.metrics.calibration.OPERATING_POINTS)
CALIBRATION_POINTS = ("eer", "fpr1", "fpr5")


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow")


class _ModelSection(_Section):
    name: str
    config: dict[str, Any]
    modality: str = "image"


class _Calibration(_Section):
    temperature: float = Field(gt=0, allow_inf_nan=False)
    thresholds: dict[str, float]
    data: str = ""
    n_real: int = Field(default=0, ge=0)
    n_fake: int = Field(default=0, ge=0)
    default_operating_point: str | None = None
    too_few_reals_for: list[str] = Field(default_factory=list)

    @field_validator("thresholds")
    @classmethod
    def _every_point(cls, value: dict[str, float]) -> dict[str, float]:
        lacking = [p for p in CALIBRATION_POINTS if p not in value]
        if lacking:
            raise ValueError(f"no threshold for {', '.join(lacking)}")
        if not all(math.isfinite(v) for v in value.values()):
            raise ValueError("a threshold is not a finite number")
        return value


class _CheckpointConfig(_Section):
    """The sections of ``config.json`` that loading and scoring read, with their types (others are kept as
    they are)."""

    model: _ModelSection
    fakescope_version: str = "unknown"
    labels: dict[str, str] = Field(default_factory=dict)
    calibration: _Calibration | None = None
    intended_use: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    export: dict[str, Any] | None = None

    @field_validator("calibration", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return value or None


def read_config(path: str | Path) -> dict[str, Any]:
    """The checkpoint folder's ``config.json``, checked (see :func:`read_config_file`)."""
    return read_config_file(resolve(path) / CONFIG)


def read_config_file(file: str | Path) -> dict[str, Any]:
    """A checkpoint config (``config.json``, or the ``.json`` exported beside an ONNX model), checked before
    anything uses it: at most :data:`MAX_CONFIG_BYTES`, UTF-8, JSON, an object nested at most
    :data:`MAX_CONFIG_DEPTH` levels, and the sections loading reads of the right types (``model.name`` a string,
    ``model.config`` an object, a ``calibration`` with a positive temperature and a threshold per operating
    point, ...). Every problem is a :class:`CheckpointError` naming the file."""
    file = Path(file)
    try:
        size = file.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{file}: {size / 2**20:.1f} MiB, too large for a checkpoint config (at most "
                                  f"{MAX_CONFIG_BYTES >> 20} MiB; a real one is a few kB)")
        raw = file.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{file}: cannot read the checkpoint config ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{file}: not UTF-8 text (byte {exc.start}: {exc.reason}); a checkpoint config is "
                              "JSON in UTF-8") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise CheckpointError(f"{file}: nested too deeply to read (a checkpoint config is nested at most "
                              f"{MAX_CONFIG_DEPTH} levels)") from None
    except ValueError as exc:  # json.JSONDecodeError, and numbers past Python's digit limit
        raise CheckpointError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{file}: holds a JSON {type(data).__name__}; a checkpoint config is a JSON object")
    deepest = _depth(data, MAX_CONFIG_DEPTH)
    if deepest > MAX_CONFIG_DEPTH:
        raise CheckpointError(f"{file}: nested more than {MAX_CONFIG_DEPTH} levels deep (a checkpoint config is "
                              "nested about 6)")
    try:
        _CheckpointConfig.model_validate(data)
    except ValidationError as exc:
        raise CheckpointError(f"{file}: not a fakescope checkpoint config ({_problems(exc)})") from None
    return data


def _problems(exc: ValidationError, prefix: str = "") -> str:
    """A pydantic error in one line: ``field.path: message`` for the first few problems."""
    out = []
    for e in exc.errors()[:5]:
        where = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "") or "top level"
        out.append(f"{where}: {e['msg']}")
    more = len(exc.errors()) - len(out)
    return "; ".join(out) + (f"; and {more} more" if more > 0 else "")


def _depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests lists and objects (counting stops past ``limit``); no recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def resolve(path: str | Path) -> Path:
    """The checkpoint folder at ``path`` (a training run folder's ``model/`` too); an error if incomplete."""
    path = Path(path)
    if path.is_dir() and not (path / CONFIG).exists() and (path / "model" / CONFIG).exists():
        path = path / "model"  # a training run folder
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_dir():
        raise CheckpointError(f"{path}: a checkpoint is a folder with {WEIGHTS} and {CONFIG}")
    for name in (WEIGHTS, CONFIG):
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: incomplete checkpoint, {name} is missing")
    return path


def _legacy_face_stage(config: dict[str, Any]) -> FaceCropConfig | None:
    """The face crop that inference made for a checkpoint saved before the face stage was stored."""
    inference = config.get("inference") or {}
    if isinstance(inference, dict) and "faces" in inference:
        return LEGACY_FACE_CROP if inference["faces"] else None
    name = (config.get("model") or {}).get("name")
    try:
        cls = model_entry(name).cls if name else None
    except KeyError:
        cls = None
    if cls is None:
        return None
    if cls.input_domain is not None:
        return LEGACY_FACE_CROP if cls.input_domain == "face" else None
    return LEGACY_FACE_CROP if any(cls is model_entry(base).cls for base in LEGACY_FACE_MODELS) else None


def checkpoint_preprocess(config: dict[str, Any], source: str = "checkpoint") -> PreprocessConfig:
    """A checkpoint config's preprocessing, face stage included.

    Checkpoints saved before the face stage was stored lack ``model.config.preprocess.face``: they get the face
    crop inference made then (a 1.3 x box crop of 256 px for face-forgery detectors, none for others) and a
    warning that names the missing field.
    """
    model_cfg = (config.get("model") or {}).get("config") or {}
    raw = model_cfg.get("preprocess", config.get("preprocess"))
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: the config has no model.config.preprocess section")
    raw = dict(raw)
    if "face" not in raw:
        face = _legacy_face_stage(config)
        what = "the face crop of earlier versions: " + face.describe() if face else "no face crop, as before"
        warnings.warn(f"{source}: the checkpoint has no model.config.preprocess.face field (saved by fakescope "
                      f"{config.get('fakescope_version', 'unknown')}, before checkpoints stored their face stage); "
                      f"using {what}. Train or save it again to store the face stage.", UserWarning, stacklevel=3)
        raw["face"] = None if face is None else face.model_dump(mode="json")
    try:
        return PreprocessConfig.model_validate(raw)
    except ValidationError as exc:
        raise CheckpointError(f"{source}: bad preprocessing in the config ({_problems(exc, 'preprocess')})") from None
    except Exception as exc:
        raise CheckpointError(f"{source}: bad preprocessing in the config ({exc})") from None


def load(path: str | Path, device: str | None = None) -> DetectorModel:
    """Rebuild a detector from a checkpoint folder (or a training run folder) and load its weights strictly."""
    from safetensors.torch import load_file

    path = resolve(path)
    config = read_config(path)
    try:
        name = config["model"]["name"]
        model_cfg = dict(config["model"]["config"])
    except (KeyError, TypeError):
        raise CheckpointError(f"{path / CONFIG}: lacks model.name / model.config") from None
    model_cfg["preprocess"] = checkpoint_preprocess(config, str(path)).model_dump(mode="json")
    # all weights come from model.safetensors: never download or read backbone weights again
    model_cfg["pretrained"] = False
    model_cfg["weights"] = None
    shapes = weight_shapes(path / WEIGHTS)
    # the network is first built on the meta device (no memory), within bounds set by the weights file, and its
    # parameter shapes compared with the file's: a config that does not fit its weights is refused before any
    # tensor is allocated. Only then is it built for real.
    _build(name, model_cfg, shapes, path, meta=True)  # None (unchecked) when the model needs real tensors to build
    model = _build(name, model_cfg, shapes, path, meta=False)
    try:
        state = load_file(str(path / WEIGHTS))
    except Exception as exc:
        raise CheckpointError(f"{path / WEIGHTS}: cannot read weights ({exc})") from None
    check_finite(state, str(path / WEIGHTS))
    load_state_strict(model, state, source=str(path / WEIGHTS))
    model.eval()
    if device:
        model.to(device)
    return model


def _build(name: str, model_cfg: dict[str, Any], shapes: dict[str, tuple[int, ...]], path: Path, *,
           meta: bool) -> DetectorModel | None:
    """``create_model`` within the bounds of the weights file, its parameter shapes checked against the file's.

    ``meta``: built on the meta device (no memory); None when the model's construction needs real tensors."""
    import contextlib

    import torch

    try:
        with _BuildGuard(shapes, path / CONFIG, name), \
                (meta_init_skipped() if meta else contextlib.nullcontext()), \
                torch.device("meta") if meta else contextlib.nullcontext():
            model = create_model(name, **model_cfg)
    except CheckpointError:
        raise
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0]}") from None
    except Exception as exc:
        if meta and not isinstance(exc, ValidationError):
            return None
        raise CheckpointError(f"{path / CONFIG}: cannot build model '{name}': {exc}") from None
    check_state_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()}, shapes, str(path / WEIGHTS),
                       f"{type(model).__name__} that {CONFIG} describes")
    return model


def weight_shapes(file: str | Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, from its header alone (no tensor is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: tuple(int(d) for d in f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:
        raise CheckpointError(f"{file}: cannot read weights ({type(exc).__name__}: {exc})") from None


class _BuildGuard:
    """While a model is built in this thread: stop when it registers many more tensors, tensor elements or
    modules than its weights file holds (a config asking for a network far larger than its weights)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], config_file: Path, name: str) -> None:
        import threading

        self.thread = threading.get_ident()
        self.source, self.name = config_file, name
        held = sum(math.prod(s) for s in shapes.values())
        # built models register up to about twice what they save (buffers not saved, tensors replaced)
        self.limits = {"tensors": 4 * len(shapes) + 256, "elements": 3 * held + (1 << 22),
                       "modules": 4 * len(shapes) + 1024}
        self.counts = dict.fromkeys(self.limits, 0)
        self.held = (len(shapes), held)
        self.hooks: list[Any] = []

    def _add(self, what: str, n: int) -> None:
        import threading

        if threading.get_ident() != self.thread:
            return
        self.counts[what] += n
        if self.counts[what] > self.limits[what]:
            raise CheckpointError(
                f"{self.source}: the config asks for a network far larger than its weights (model '{self.name}': "
                f"over {self.limits[what]:,} {what} while building it, against {self.held[0]:,} tensors of "
                f"{self.held[1]:,} elements in {WEIGHTS}); refused before it was built")

    def _tensor(self, module, name, tensor):
        if tensor is not None:
            self._add("tensors", 1)
            self._add("elements", int(tensor.numel()))

    def _module(self, module, name, submodule):
        self._add("modules", 1)

    def __enter__(self) -> "_BuildGuard":
        from torch.nn.modules import module as torch_module

        self.hooks = [torch_module.register_module_parameter_registration_hook(self._tensor),
                      torch_module.register_module_buffer_registration_hook(self._tensor),
                      torch_module.register_module_module_registration_hook(self._module)]
        return self

    def __exit__(self, *exc) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks = []


def check_finite(state: dict[str, Any], source: str) -> None:
    """Raise :class:`CheckpointError` when a floating-point tensor holds NaN or infinity (a diverged training
    run, or a damaged file): every score of such a model would be NaN."""
    import torch

    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f", ... ({len(bad)} in all)" if len(bad) > 5 else "")
        raise CheckpointError(f"{source}: {len(bad)} weight tensor(s) hold NaN or infinite values ({shown}); the "
                              "model cannot score anything (a diverged training run, or a damaged file)")
