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
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from fakescope._version import __version__
from fakescope.errors import CheckpointError
from fakescope.models.base import LABELS, DetectorModel
from fakescope.models.registry import model_entry
from fakescope.models.weights import load_state_strict
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
    (path / CARD).write_text(_model_card(config, notes))
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    path = resolve(path)
    try:
        return json.loads((path / CONFIG).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path / CONFIG}: not valid JSON ({exc})") from None


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
    except Exception as exc:
        raise CheckpointError(f"{source}: bad preprocessing in the config ({exc})") from None


def load(path: str | Path, device: str | None = None) -> DetectorModel:
    """Rebuild a detector from a checkpoint folder (or a training run folder) and load its weights strictly."""
    from safetensors.torch import load_file

    from fakescope.models.registry import create_model

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
    try:
        model = create_model(name, **model_cfg)
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0]}") from None
    except Exception as exc:
        raise CheckpointError(f"{path / CONFIG}: cannot build model '{name}': {exc}") from None
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


def weights_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a weights file (ties an exported model to the checkpoint it came from)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _model_card(config: dict[str, Any], notes: str) -> str:
    m = config["model"]
    pp = m["config"]["preprocess"]
    val = config.get("validation") or {}
    train = config.get("training") or {}
    face = pp.get("face")
    # the Hugging Face Hub reads this header when the card is a repository's README (fakescope push)
    header = ["---", "library_name: fakescope", "tags: [deepfake-detection, fakescope]"]
    licence_id = (config.get("pretrained") or {}).get("license_id")
    header += [f"license: {licence_id}"] if licence_id else []
    lines = header + [
        "---",
        "",
        f"# {m['name']} (fakescope {config['fakescope_version']})",
        "",
        f"Detector `{m['name']}`, input modality **{m['modality']}**, "
        f"{m['num_parameters']:,} parameters ({m['num_trainable_parameters']:,} trainable when saved).",
        "",
        "Output: one logit per input; `sigmoid(logit)` is the probability that the input is **fake** "
        "(label 1; 0 is real).",
        "",
        "## Preprocessing",
        "",
        "- face stage: " + (FaceCropConfig.model_validate(face).describe() if face else "none (whole images)"),
        f"- input size {pp['input_size']} px, policy `{pp['policy']}`, interpolation `{pp['interpolation']}`",
        f"- normalisation mean {tuple(pp['mean'])}, std {tuple(pp['std'])}",
    ]
    if pp.get("clip_len"):
        lines.append(f"- clips of {pp['clip_len']} frames")
    if train:
        lines += ["", "## Training", ""]
        lines += [f"- {k}: {v}" for k, v in train.items()]
    if val:
        lines += ["", "## Validation (used to select this checkpoint)", ""]
        lines += [f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in val.items()]
    if notes:
        lines += ["", notes]
    lines += ["", "Load with `fakescope.load(path)`; evaluate with `fakescope eval PATH --data ...`.", ""]
    return "\n".join(lines)
