"""The face path of :class:`~fakescope.inference.Detector`, for checkpoints with a face stage: faces found,
chosen and cut out by the face pipeline that made the training crops (:class:`~fakescope.faces.FacePipeline`),
the crops scored in place of the pictures, and the boxes of the faces scored in the record."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from PIL import Image

from fakescope.errors import DataError
from fakescope.inference.job import Job, keep_face, keep_input, note_region


def face_box(index: int, face) -> list[float]:
    """``[frame index, x1, y1, x2, y2]`` of a scored face, in the frame's pixels."""
    return [float(index)] + [round(float(v), 1) for v in face.box]


def image_face(detector, job: Job, img: Image.Image, path: str) -> Image.Image:
    """The image's main face (track 0), cut out as ``prepare`` cuts it."""
    result = detector.face_pipeline.run([(0, np.asarray(img))])
    job.record["faces_found"] = result.found
    if not result.frames_with_face:
        raise DataError(f"{path}: no face found (this detector scores face crops)")
    main = result.faces[0][0]
    job.record["face_boxes"] = [face_box(main.index, main.face)]
    keep_face(job, main.crop)
    return Image.fromarray(main.crop)


def frame_faces(detector, job: Job, frames: Iterable[tuple[int, np.ndarray]], path: str
                ) -> tuple[list[torch.Tensor], list[list[int]]]:
    """The video's main face in every sampled frame, as ``prepare`` crops it: the model inputs, and for each the
    position of its frame. Frames go through the face pipeline one by one; only the crops are kept."""
    faces = detector.face_pipeline.video()
    position = {}
    for n, (i, frame) in enumerate(frames):
        keep_input(job, frame)
        if n == 0:
            note_region(detector, job, (frame.shape[1], frame.shape[0]), "frame")
        position[i] = n
        faces.add(i, frame)
    result = faces.finish()
    job.n_frames = len(result.indices)
    job.record["faces_found"] = result.found
    job.record["face_boxes"] = [face_box(f[0].index, f[0].face) for f in result.faces if f]
    tensors, owners = [], []
    for found in result.faces:
        if found:
            main = found[0]
            keep_face(job, main.crop)
            tensors.append(detector._pre(Image.fromarray(main.crop)))
            owners.append([position[main.index]])
    if not tensors:
        raise DataError(f"{path}: no face found in any of the {job.n_frames} sampled frames "
                        "(this detector scores face crops)")
    return tensors, owners


def clip_faces(detector, job: Job, frames: list[tuple[int, np.ndarray]]
               ) -> tuple[list[np.ndarray] | None, int, list[list[float]]]:
    """The face crops of a clip's frames (a frame without a face takes the nearest frame's face), the faces
    found and the boxes scored; no crops (``None``) when no frame of the clip has a face."""
    result = detector.face_pipeline.run(frames)
    chosen = fill_gaps([f[0].face if f else None for f in result.faces])
    if chosen is None:
        return None, result.found, []
    crops = [detector.face_pipeline.crop(frame, face) for (_, frame), face in zip(frames, chosen)]
    for crop in crops:
        keep_face(job, crop)
    return crops, result.found, [face_box(i, face) for (i, _), face in zip(frames, chosen)]


def fill_gaps(faces: list) -> list | None:
    """Frames without a face take the face of the nearest frame that has one; ``None`` if no frame has one."""
    have = [i for i, f in enumerate(faces) if f is not None]
    if not have:
        return None
    return [f if f is not None else faces[min(have, key=lambda j: abs(j - i))] for i, f in enumerate(faces)]
