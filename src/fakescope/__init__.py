"""fakescope: generalizable deepfake and AI-generated image detection.

The top-level names are imported lazily so that ``import fakescope`` stays
cheap and a missing optional extra never breaks an unrelated command.

* :class:`Detector` runs a trained detector on files, folders, images and videos (:mod:`fakescope.inference`);
* :func:`load` and :func:`save` read and write checkpoint folders (:mod:`fakescope.zoo.checkpoint`);
* :func:`create_model` and :func:`list_models` build registered detectors (:mod:`fakescope.models`);
* :func:`list_pretrained` names the released detectors :func:`load` accepts (:mod:`fakescope.zoo`).
"""

from __future__ import annotations

from fakescope._version import __version__

__all__ = ["Detector", "__version__", "create_model", "list_models", "list_pretrained", "load", "save"]


def __getattr__(name: str):
    if name in ("create_model", "list_models"):
        from fakescope import models

        return getattr(models, name)
    if name == "list_pretrained":  # released detectors by name (ARCH.TAG)
        from fakescope.zoo import list_pretrained

        return list_pretrained
    if name == "load":  # a checkpoint folder, a pretrained name or a Hub id
        from fakescope.zoo.pretrained import load_pretrained

        return load_pretrained
    if name == "save":
        from fakescope.zoo.checkpoint import save

        return save
    if name == "Detector":
        from fakescope.inference import Detector

        return Detector
    raise AttributeError(f"module 'fakescope' has no attribute {name!r}")
