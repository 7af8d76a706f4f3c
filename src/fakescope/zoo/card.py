"""The model card of a fakescope checkpoint (its ``README.md``): what the detector is, its preprocessing, how it
was trained and validated; the Hugging Face Hub reads its header when the card is a repository's README."""

from __future__ import annotations

from typing import Any

from fakescope.preprocess import FaceCropConfig


def model_card(config: dict[str, Any], notes: str) -> str:
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
