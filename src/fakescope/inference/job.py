"""One input on its way through :class:`~fakescope.inference.Detector` (:class:`Job`): its record, its model
inputs and how their scores map back to its frames, and what it keeps for explanations and ``details``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from fakescope.errors import DataError
from fakescope.inference.records import RECORD_FIELDS
from fakescope.inference.verdict import region_warning


@dataclass
class Job:
    """One input on its way through the pipeline: its record, model inputs and how scores map back."""

    record: dict[str, Any]
    started: float
    inputs: torch.Tensor | None = None  # [N, 3, S, S] or [N, T, 3, S, S] uint8
    frame_of_input: list[list[int]] = field(default_factory=list)  # input n -> positions in the frame list
    n_frames: int = 0
    details: dict[str, Any] | None = None
    canvases: list[np.ndarray] | None = None  # per model input, the picture it came from (explanations only)

    def pin_memory(self) -> "Job":  # the DataLoader's pin-memory thread calls this
        if self.inputs is not None:
            self.inputs = self.inputs.pin_memory()
        return self


def new_record(detector, path: str) -> dict[str, Any]:
    """An empty record for ``path`` with what it says of the detector (model, version, threshold, ...)."""
    rec = dict.fromkeys(RECORD_FIELDS)
    rec.update(path=path, threshold=detector.threshold, operating_point=detector.operating_point,
               threshold_source=detector.threshold_source, model=detector.name, model_version=detector.version,
               backend=detector.backend, demonstration=detector.demonstration)
    return rec


def error_message(exc: Exception, path: str) -> str:
    """The record's ``error`` for an input that failed: the message, naming the input."""
    msg = str(exc) or type(exc).__name__
    if not isinstance(exc, DataError):
        msg = f"{type(exc).__name__}: {msg}"
    return msg if path in msg else f"{path}: {msg}"


def note_region(detector, job: Job, size: tuple[int, int], what: str = "image") -> None:
    """The record's ``region``: what of the picture (w, h) the model scores; a warning when under 25% of it."""
    if detector.face_pipeline is not None:
        w, h = size
        s = detector.preprocess.input_size
        face = detector.face
        job.record["region"] = {"policy": "face", "input_size": s, "image_size": [w, h], "box": None,
                                "fraction": None, "text": f"face crops ({face.crop}, margin "
                                f"{face.margin:g}) of {w} x {h}, resized to {s} x {s}; boxes in face_boxes"}
        return
    region = detector._pre.region(size)
    job.record["region"] = region
    warning = region_warning(region, what)
    if warning:
        job.record["warnings"] = [warning]


def keep_input(job: Job, picture: np.ndarray) -> None:
    """With ``details``: the input picture (a video's first frame) the record shows."""
    if job.details is not None and job.details["input"] is None:
        job.details["input"] = picture


def keep_face(job: Job, crop: np.ndarray, limit: int = 16) -> None:
    """With ``details``: a face crop scored (at most ``limit``)."""
    if job.details is not None and len(job.details["faces"]) < limit:
        job.details["faces"].append(crop)


def keep_canvas(detector, job: Job, img: Image.Image, max_side: int = 640) -> None:
    """Keep the picture a model input came from, at most ``max_side`` pixels, for its explanation."""
    if detector.explain is None and job.details is None:
        return
    small = img.convert("RGB")
    small.thumbnail((max_side, max_side))
    job.canvases = (job.canvases or []) + [np.asarray(small)]
