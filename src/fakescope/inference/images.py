"""The image path of :class:`~fakescope.inference.Detector`: an image made into its one model input (through
the face path where the checkpoint has a face stage), and its score read back."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fakescope.errors import DataError
from fakescope.inference.faces import image_face
from fakescope.inference.job import Job, keep_canvas, keep_input, note_region


def prepare_image(detector, job: Job, img: Image.Image, path: str) -> None:
    """``job.inputs``: the image (or its main face) as the model's evaluation preprocessing makes it."""
    if detector.modality == "clip":
        raise DataError(f"{path}: this detector ({detector.name}) scores videos, in clips of "
                        f"{detector.preprocess.clip_len} frames; give it a video, not an image")
    keep_input(job, np.asarray(img))
    note_region(detector, job, img.size)
    keep_canvas(detector, job, img)
    if detector.face_pipeline is not None:
        img = image_face(detector, job, img, path)
    job.inputs = detector._pre(img).unsqueeze(0)
    job.frame_of_input = [[]]


def image_score(scores: list[float]) -> float:
    """An image's score: that of its one model input."""
    return scores[0]
