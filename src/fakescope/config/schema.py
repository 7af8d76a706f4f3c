"""The typed experiment config: data, optimiser, trainer, evaluation and the model section.

Defaults are declared once, as field defaults of these classes (and, for the ``model`` section, of each
detector's own config class); :mod:`fakescope.config.loader` layers YAML files and overrides over them.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fakescope.errors import ConfigError
from fakescope.schema import Strict


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
    monitor_ties: Literal["first", "last"] = Field(
        default="first", description="epochs with equal selection metrics: keep the first, or take the latest "
                                     "(when validation cannot tell epochs apart, e.g. AUC 1.0 from the first epoch)")

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

