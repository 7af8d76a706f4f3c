"""fakescope: generalizable deepfake and AI-generated image detection.

The top-level names are imported lazily so that ``import fakescope`` stays
cheap and a missing optional extra never breaks an unrelated command.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Detector", "__version__", "create_model", "list_models", "load", "save"]


def __getattr__(name: str):
    if name in ("create_model", "list_models"):
        from fakescope import models

        return getattr(models, name)
    if name in ("load", "save"):
        from fakescope import checkpoint

        return getattr(checkpoint, name)
    if name == "Detector":
        from fakescope.detect import Detector

        return Detector
    raise AttributeError(f"module 'fakescope' has no attribute {name!r}")
