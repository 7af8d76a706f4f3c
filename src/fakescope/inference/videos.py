"""The video path of :class:`~fakescope.inference.Detector`: frames sampled from a video (a file, or a list of
frames) and made into model inputs, through the face path where the checkpoint has a face stage, and the model's
scores mapped back to the video's frames.

* An image detector scores ``num_frames`` frames spread evenly over the video (as ``prepare`` samples them) one
  by one; the video's score is the mean of the frame scores.
* A clip detector scores windows of ``clip_len`` consecutive frames (at most ``max_clips``, spread over the
  video; a shorter video is padded with its last frame); the video's score is the mean of the clip scores.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image

from fakescope.errors import DataError
from fakescope.inference.faces import clip_faces, frame_faces
from fakescope.inference.job import Job, keep_canvas, keep_input, note_region
from fakescope.media.video import FrameStream, VideoReadError, even_indices, probe
from fakescope.metrics.calibration import round_sig


def prepare_video(detector, job: Job, video, path: str, known: bool = True) -> None:
    """``job.inputs``: the video's sampled frames (or their faces), one model input a frame or a clip.
    ``known`` False: a file that is no image, and may be no video either."""
    try:
        if detector.modality == "clip":
            prepare_clips(detector, job, video, path)
        else:
            prepare_frames(detector, job, video, path)
    except VideoReadError as exc:
        if not known and exc.reason == "cannot-open":
            raise DataError(f"{path}: neither an image nor a video that can be decoded") from None
        if exc.reason == "no-video-stream":  # a sound file: say what it holds
            raise DataError(f"{path}: no video stream to score ({exc.detail.split('(', 1)[-1].rstrip(')')})"
                            ) from None
        raise


def sample_frames(record: dict[str, Any], video, num_frames: int, start: int | None = None
                  ) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, frame)`` of the sampled frames, read one at a time; sets ``record``'s frame fields.

    ``start`` None: ``num_frames`` frames spread evenly over the video (as ``prepare`` samples them);
    otherwise ``num_frames`` consecutive frames from ``start`` (a clip).
    """
    if isinstance(video, list):
        indices = (even_indices(np.arange(len(video), dtype=float), num_frames) if start is None
                   else list(range(start, min(start + num_frames, len(video)))))
        record.update(frame_indices=list(indices), frame_times=None)
        for i in indices:
            yield i, video[i]
        return
    mode, first = ("even", 0) if start is None else ("stride", start)
    with FrameStream(video, num_frames=num_frames, mode=mode, stride=1, start=first) as fs:
        record.update(frame_indices=list(fs.indices), frame_times=[round(t, 4) for t in fs.times])
        for i, _, frame in fs:
            yield i, frame


def prepare_frames(detector, job: Job, video, path: str) -> None:
    """An image detector on a video: each sampled frame (or its main face) one model input."""
    frames = sample_frames(job.record, video, detector.num_frames)
    if detector.face_pipeline is not None:
        tensors, owners = frame_faces(detector, job, frames, path)
    else:
        tensors, owners = [], []
        for n, (_, frame) in enumerate(frames):
            keep_input(job, frame)
            pil = Image.fromarray(frame)
            if n == 0:
                note_region(detector, job, pil.size, "frame")
            keep_canvas(detector, job, pil)
            tensors.append(detector._pre(pil))
            owners.append([n])
        job.n_frames = len(tensors)
    job.inputs = torch.stack(tensors)
    job.frame_of_input = owners


def prepare_clips(detector, job: Job, video, path: str) -> None:
    """A clip detector on a video: each window of ``clip_len`` frames (or their faces) one model input."""
    t = int(detector.preprocess.clip_len)
    total = len(video) if isinstance(video, list) else probe(video).num_frames
    indices: list[int] = []
    times: list[float] = []
    tensors, owners, faces_found, boxes = [], [], 0, []
    for start in clip_starts(total, t, detector.max_clips):
        sampled: dict[str, Any] = {}
        frames = list(sample_frames(sampled, video, t, start=start))
        span = list(range(len(indices), len(indices) + len(frames)))
        indices += sampled["frame_indices"]
        times += sampled["frame_times"] or []
        keep_input(job, frames[0][1])
        pixels = [f for _, f in frames]
        if detector.face_pipeline is not None:
            pixels, found, clip_boxes = clip_faces(detector, job, frames)
            faces_found += found
            boxes += clip_boxes
            if pixels is None:
                continue  # no face anywhere in this clip
        if not tensors:
            note_region(detector, job, (frames[0][1].shape[1], frames[0][1].shape[0]), "frame")
        pil = [Image.fromarray(f) for f in pixels]
        if detector.face_pipeline is None:
            keep_canvas(detector, job, pil[len(pil) // 2])  # the map of a clip is drawn over its middle frame
        pil += [pil[-1]] * (t - len(pil))  # a video shorter than a clip: repeat its last frame
        tensors.append(detector._pre.clip(pil))
        owners.append(span)
    job.n_frames = len(indices)
    job.record.update(frame_indices=indices, frame_times=times or None)
    if detector.face_pipeline is not None:
        job.record["faces_found"] = faces_found
        job.record["face_boxes"] = boxes
    if not tensors:
        raise DataError(f"{path}: no face found in the {len(indices)} frames read (this detector scores "
                        "face crops)")
    job.inputs = torch.stack(tensors)
    job.frame_of_input = owners


def clip_starts(total: int, length: int, max_clips: int) -> list[int]:
    """Start frames of at most ``max_clips`` non-overlapping windows of ``length`` spread over ``total`` frames."""
    if total <= length:
        return [0]
    n = min(max_clips, total // length)
    return sorted(set(np.linspace(0, total - length, n).round().astype(int).tolist()))


def video_score(job: Job, scores: list[float], modality: str) -> float:
    """A video's score (the mean of its model inputs'); sets the record's ``frame_scores`` (and ``clip_scores``)."""
    rec = job.record
    per_frame: list[float | None] = [None] * job.n_frames
    for s, span in zip(scores, job.frame_of_input):
        for i in span:
            per_frame[i] = round_sig(s)
    if modality == "clip":
        rec["clip_scores"] = [round_sig(s) for s in scores]
    rec["frame_scores"] = per_frame
    return float(np.mean(scores))
