"""Detectors: the registry, the shared interface and the registered architectures (released weights by name,
checkpoints and downloads: :mod:`fakescope.zoo`).

>>> import fakescope.models as fm
>>> fm.list_models()          # every registered detector
>>> model = fm.create_model("simple_cnn", preprocess={"input_size": 64})
"""

import warnings as _warnings

from fakescope.models.base import LABELS, DetectorConfig, DetectorModel, LossOutput
from fakescope.models.registry import (
    MODELS,
    ModelEntry,
    create_model,
    default_preprocess,
    list_models,
    model_config_class,
    model_entry,
    register_model,
    register_variant,
    resolve_model_config,
)
from fakescope.preprocess import FaceCropConfig, PreprocessConfig

# Importing a model package registers its detectors: one package per paper, and the baselines.
from fakescope.models import baselines  # noqa: E402,F401
from fakescope.models import sfcl_hcmf  # noqa: E402,F401
from fakescope.models import sdr  # noqa: E402,F401
from fakescope.models import fssnet  # noqa: E402,F401

__all__ = [
    "LABELS",
    "MODELS",
    "DetectorConfig",
    "DetectorModel",
    "FaceCropConfig",
    "LossOutput",
    "ModelEntry",
    "PreprocessConfig",
    "create_model",
    "default_preprocess",
    "list_models",
    "model_config_class",
    "model_entry",
    "register_model",
    "register_variant",
    "resolve_model_config",
]


def __getattr__(name: str):
    if name == "Detector":  # the nn.Module base class's name until 0.1; fakescope.Detector runs a checkpoint
        _warnings.warn("fakescope.models.Detector is now fakescope.models.DetectorModel (fakescope.Detector is "
                       "the inference class)", DeprecationWarning, stacklevel=2)
        return DetectorModel
    raise AttributeError(f"module 'fakescope.models' has no attribute {name!r}")
