"""Face detectors: what a backend is (:class:`FaceDetector`), the faces it returns (:class:`Face`), and the
registry that ``fakescope prepare --detector NAME`` and a checkpoint's face stage pick a backend from.

Backends: ``mtcnn`` (:mod:`fakescope.faces.mtcnn`, the default) and ``dlib``
(:mod:`fakescope.faces.dlib_detector`). Others plug in through :func:`register_detector`, or as
``package.module:Class`` (see :func:`create_detector`); a backend implements :meth:`FaceDetector.detect` on a
list of RGB frames.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fakescope.errors import DataError
from fakescope.registry import Registry

@dataclass(frozen=True)
class Face:
    """One detected face in frame pixel coordinates.

    ``box`` is ``(x1, y1, x2, y2)``; ``landmarks`` are five ``(x, y)`` points in
    image order: left eye, right eye, nose tip, left mouth corner, right mouth
    corner ("left" = left side of the image), or ``None`` when the backend gives none.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None
    track: int = 0

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


class FaceDetector(abc.ABC):
    """A face detector backend.

    ``detect`` takes RGB ``uint8`` frames ``[H, W, 3]`` (the frames of one
    video usually share a size, which lets a backend batch them) and returns,
    for each frame, the faces found in it (any order, ``track`` left at 0).

    A backend with ``takes_min_size = True`` also takes ``min_size``, the
    smallest face to search for in frame pixels (``fakescope prepare`` uses
    it after a video's first frame, see :func:`track_face`); for faces well
    above that size it must find what a search for every size finds.
    """

    name: str = "detector"
    gives_landmarks: bool = False
    takes_min_size: bool = False

    @abc.abstractmethod
    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        ...



# --------------------------------------------------------------- registry
FACE_DETECTORS: Registry[type[FaceDetector]] = Registry("face detector", error=DataError)


def register_detector(name: str):
    """Class decorator: make a :class:`FaceDetector` available as ``--detector NAME``."""
    return FACE_DETECTORS.register(name)


def list_detectors() -> list[str]:
    return FACE_DETECTORS.names()


def create_detector(name: str = "mtcnn", weights: str | None = None, device: str = "cpu",
                    **options) -> FaceDetector:
    """A detector by registered name, or ``package.module:ClassName`` for a user's own backend.

    ``weights`` (a file or folder) and ``options`` are passed to the backend's
    constructor; ``device`` too, when the backend accepts it.
    """
    if ":" in name:
        mod_name, _, cls_name = name.partition(":")
        try:
            cls = getattr(importlib.import_module(mod_name), cls_name)
        except (ImportError, AttributeError) as exc:
            raise DataError(f"face detector '{name}': cannot import {cls_name} from {mod_name} ({exc})") from None
    elif name in FACE_DETECTORS:
        cls = FACE_DETECTORS.get(name)
    else:
        raise DataError(FACE_DETECTORS.unknown(name) + "; or give a backend class as package.module:ClassName")
    kwargs = dict(options)
    if weights is not None:
        kwargs["weights"] = weights
    try:
        return cls(device=device, **kwargs)
    except TypeError:
        return cls(**kwargs)
