"""dlib's face detectors as a :class:`~fakescope.faces.detector.FaceDetector` backend (``--detector dlib``)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from fakescope.errors import DataError, MissingExtraError, WeightsUnavailableError
from fakescope.faces.detector import Face, FaceDetector, register_detector


@register_detector("dlib")
class DlibDetector(FaceDetector):
    """dlib's HOG detector (built in, no file), or its CNN detector with the user's ``.dat`` file.

    ``weights``: ``mmod_human_face_detector.dat`` for the CNN detector; ``landmarks``:
    ``shape_predictor_68_face_landmarks.dat`` (or DeepfakeBench's 81-point one) for five landmarks.
    Needs ``pip install dlib-bin`` (prebuilt wheels; no compile).
    """

    name = "dlib"

    def __init__(self, weights: str | None = None, landmarks: str | None = None, upsample: int = 0) -> None:
        try:
            import dlib  # type: ignore[import-not-found]
        except ImportError as exc:
            raise MissingExtraError(f"the dlib face detector needs dlib: pip install dlib-bin ({exc})") from exc
        for f in (weights, landmarks):
            if f is not None and not Path(f).is_file():
                raise WeightsUnavailableError(f"{f}: dlib model file not found")
        self._cnn = weights is not None
        self._det = dlib.cnn_face_detection_model_v1(weights) if self._cnn else dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(landmarks) if landmarks else None
        self.gives_landmarks = self._shape is not None
        self.upsample = upsample

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        out = []
        for frame in frames:
            frame = np.ascontiguousarray(frame)
            faces = []
            for d in self._det(frame, self.upsample):
                rect, score = (d.rect, float(d.confidence)) if self._cnn else (d, 1.0)
                pts = None
                if self._shape is not None:
                    shape = self._shape(frame, rect)
                    pts = _five_points([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)])
                faces.append(Face((rect.left(), rect.top(), rect.right(), rect.bottom()), score, pts))
            out.append(faces)
        return out


def _five_points(pts: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """The five points DeepfakeBench takes from dlib's 68- (or 81-) point shape: 37, 44, 30, 49, 55."""
    if len(pts) < 68:
        raise DataError(f"dlib shape predictor gave {len(pts)} points; five-point alignment needs the 68- or "
                        "81-point model (shape_predictor_68_face_landmarks.dat)")
    return tuple((float(pts[i][0]), float(pts[i][1])) for i in (37, 44, 30, 49, 55))

