"""Experiment configs: the typed schema (:mod:`.schema`) and the layered YAML loader (:mod:`.loader`).

>>> from fakescope.config import load_config
>>> cfg = load_config("quickstart", ["optim.lr=1e-3"])
"""

from fakescope.config.loader import (BASE_KEY, CLI_SOURCE, PACKAGED_CONFIGS, apply_overrides, dump_config,
                                     format_validation_error, load_config, load_layers, parse_override, read_yaml,
                                     resolve_config_path)
from fakescope.config.schema import (AugmentConfig, DataConfig, DataSource, EarlyStoppingConfig, EvalConfig,
                                     ExperimentConfig, ModelSection, OptimConfig, RobustnessConfig, TrainerConfig)
from fakescope.schema import Strict

__all__ = ["AugmentConfig", "BASE_KEY", "CLI_SOURCE", "DataConfig", "DataSource", "EarlyStoppingConfig",
           "EvalConfig", "ExperimentConfig", "ModelSection", "OptimConfig", "PACKAGED_CONFIGS", "RobustnessConfig",
           "Strict", "TrainerConfig", "apply_overrides", "dump_config", "format_validation_error", "load_config",
           "load_layers", "parse_override", "read_yaml", "resolve_config_path"]
