"""The fakescope checkpoint: a folder with weights, config and a model card.

::

    model/
      model.safetensors   the detector's state dict
      config.json         model name and full config (preprocessing included), modality,
                          label map (0 real, 1 fake), training data, validation metrics, version
      README.md           model card

:func:`load` rebuilds the detector from ``config.json`` (never downloading
backbone weights: everything comes from ``model.safetensors``) and refuses
weights that do not match it, listing missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from fakescope import __version__
from fakescope.errors import CheckpointError
from fakescope.models.backbones import load_state_strict
from fakescope.models.base import LABELS, Detector

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"


def save(model: Detector, path: str | Path, *, training: dict[str, Any] | None = None,
         validation: dict[str, Any] | None = None, notes: str = "") -> Path:
    """Write ``model`` as a checkpoint folder; returns the folder."""
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
        "preprocess": model.preprocess.model_dump(mode="json"),
        "labels": {str(k): v for k, v in LABELS.items()},
        "training": training or {},
        "validation": validation or {},
    }
    (path / CONFIG).write_text(json.dumps(config, indent=2, default=str))
    (path / CARD).write_text(_model_card(config, notes))
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    path = _resolve(path)
    try:
        return json.loads((path / CONFIG).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path / CONFIG}: not valid JSON ({exc})") from None


def _resolve(path: str | Path) -> Path:
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


def load(path: str | Path, device: str | None = None) -> Detector:
    """Rebuild a detector from a checkpoint folder (or a training run folder) and load its weights strictly."""
    from safetensors.torch import load_file

    from fakescope.models import create_model

    path = _resolve(path)
    config = read_config(path)
    try:
        name = config["model"]["name"]
        model_cfg = dict(config["model"]["config"])
    except (KeyError, TypeError):
        raise CheckpointError(f"{path / CONFIG}: lacks model.name / model.config") from None
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
    load_state_strict(model, state, source=str(path / WEIGHTS))
    model.eval()
    if device:
        model.to(device)
    return model


def _model_card(config: dict[str, Any], notes: str) -> str:
    m = config["model"]
    pp = config["preprocess"]
    val = config.get("validation") or {}
    train = config.get("training") or {}
    lines = [
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
