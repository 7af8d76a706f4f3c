"""Detectors: the registry, the shared interface and the registered models.

>>> import fakescope.models as fm
>>> fm.list_models()          # every registered detector
>>> model = fm.create_model("simple_cnn", preprocess={"input_size": 64})
"""

from fakescope.models.base import (
    LABELS,
    Detector,
    DetectorConfig,
    LossOutput,
    PreprocessConfig,
)
from fakescope.models.registry import (
    create_model,
    list_models,
    model_config_class,
    model_entry,
    register_model,
    register_variant,
    resolve_model_config,
)

# Importing a model module registers its detectors.
from fakescope.models import baselines  # noqa: E402,F401
from fakescope.models import sfcl_hcmf  # noqa: E402,F401
from fakescope.models import sdr  # noqa: E402,F401
from fakescope.models import fssnet  # noqa: E402,F401

__all__ = [
    "LABELS",
    "Detector",
    "DetectorConfig",
    "LossOutput",
    "PreprocessConfig",
    "create_model",
    "list_models",
    "model_config_class",
    "model_entry",
    "register_model",
    "register_variant",
    "resolve_model_config",
]
