"""fakescope: generalizable deepfake and AI-generated image detection.

The top-level names are imported lazily so that ``import fakescope`` stays
cheap and a missing optional extra never breaks an unrelated command.

* :class:`Detector` runs a trained detector on files, folders, images and videos (:mod:`fakescope.inference`);
* :func:`load` and :func:`save` read and write checkpoint folders (:mod:`fakescope.models.checkpoint`);
* :func:`create_model` and :func:`list_models` build registered detectors (:mod:`fakescope.models`).
"""

from __future__ import annotations

from fakescope._version import __version__

__all__ = ["Detector", "__version__", "create_model", "list_models", "load", "save"]


def __getattr__(name: str):
    if name in ("create_model", "list_models"):
        from fakescope import models

        return getattr(models, name)
    if name == "load":  # a checkpoint folder, a pretrained name or a Hub id
        from fakescope.models.pretrained import load_pretrained

        return load_pretrained
    if name == "save":
        from fakescope.models.checkpoint import save

        return save
    if name == "Detector":
        from fakescope.inference import Detector

        return Detector
    raise AttributeError(f"module 'fakescope' has no attribute {name!r}")
