"""The one face pipeline of fakescope: frames -> detections -> tracks -> selected faces -> crops.

``fakescope prepare`` runs it on the sampled frames of every video and saves the crops; ``fakescope detect``,
``fakescope serve`` and :class:`fakescope.Detector` run it on the frames they sample and score the crops. Both
build it from the same :class:`~fakescope.preprocess.FaceCropConfig` (the data's, stored in the checkpoint),
so a detector is served the pixels it was trained on.

>>> pipe = FacePipeline(FaceCropConfig(crop="align", margin=1.25, size=224))
>>> video = pipe.video()
>>> for index, frame in frames:          # RGB uint8 [H, W, 3], in frame order
...     video.add(index, frame)
>>> result = video.finish()              # per frame: the selected faces and their crops

Frames go to the detector in batches (the first frame alone with the tracked search, whose later batches
search only for faces of the main face's size, see :func:`~fakescope.faces.tracking.track_face`). Only the
crops of the faces found are kept, not the frames, so memory does not grow with a video's length.

On the CPU the detector always runs on one torch thread, one detection at a time per process: convolutions
split over several threads add up in another order, and the boxes and landmarks then move by a few
millionths of a pixel, enough to change an aligned crop's pixels. So the crops do not depend on the thread
count of the process that makes them (one thread is also the fastest for MTCNN's small layers; use worker
processes for more cores). A GPU's numerics differ from the CPU's: crops made on one and served on the other
can differ by a grey level here and there.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import torch

from fakescope.faces.crop import face_crop
from fakescope.faces.detector import Face, FaceDetector, create_detector
from fakescope.faces.tracking import search_again, select_faces, track_face
from fakescope.preprocess import FaceCropConfig


@dataclass(frozen=True)
class FaceCrop:
    """One selected face: the frame it is in, the detection (``track`` 0 is the main face) and its crop."""

    index: int
    face: Face
    crop: np.ndarray = field(repr=False)


@dataclass
class FaceResult:
    """The faces of a video (or an image: one frame, index 0)."""

    indices: list[int]  # the frames seen, in order
    faces: list[list[FaceCrop]]  # per frame: the selected faces (select=largest: none or one)
    found: int = 0  # faces the detector found in all frames, before selection
    tracked: int = 0  # frames searched for the main face's size only
    searched_again: int = 0  # of those, frames searched for every size again

    @property
    def frames_with_face(self) -> int:
        return sum(1 for f in self.faces if f)

    def crops(self) -> list[FaceCrop]:
        """Every selected face, in frame order."""
        return [c for faces in self.faces for c in faces]


_CPU_DETECTION = threading.Lock()
# frames wait for the detector in batches of its batch size, and of at most this many pixels in all: a batch of
# eight 1080p frames (16.6 MP) as ever, but large frames one or a few at a time, so that the frames held at once
# stay bounded (a 4096x4096 video would otherwise hold 400 MB of frames)
BATCH_PIXELS = 20_000_000


@contextlib.contextmanager
def one_cpu_thread(detector: FaceDetector) -> Iterator[None]:
    """Run ``detector`` on one torch thread (a CPU detector), one detection at a time in this process."""
    device = getattr(detector, "device", None)
    if device is not None and torch.device(device).type != "cpu":
        yield
        return
    with _CPU_DETECTION:
        before = torch.get_num_threads()
        if before != 1:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if before != 1:
                torch.set_num_threads(before)


def detector_options(cfg: FaceCropConfig) -> dict:
    """The constructor options a face stage sets for its detector backend."""
    return {"detect_size": cfg.detect_size, "min_face": cfg.min_face} if cfg.detector == "mtcnn" else {}


class FacePipeline:
    """A face stage made runnable: its detector (made once) and its crop."""

    def __init__(self, cfg: FaceCropConfig, detector: FaceDetector | None = None, *, weights: str | None = None,
                 device: str = "cpu") -> None:
        self.cfg = cfg
        self.detector = detector if detector is not None else create_detector(
            cfg.detector, weights=weights, device=device, **detector_options(cfg))

    @property
    def batch_size(self) -> int:
        return max(int(getattr(self.detector, "batch_size", 8) or 8), 1)

    @property
    def tracking(self) -> bool:
        """Whether videos get the tracked search (the detector must take a smallest face size)."""
        return (self.cfg.search == "track" and self.cfg.select == "largest"
                and bool(getattr(self.detector, "takes_min_size", False)))

    def crop(self, frame: np.ndarray, face: Face) -> np.ndarray:
        """``face`` cut out of ``frame`` as the face stage says."""
        return face_crop(frame, face.box, face.landmarks, mode=self.cfg.crop, size=self.cfg.size,
                         margin=self.cfg.margin)

    def video(self) -> "VideoFaces":
        """A run over the frames of one video, fed one frame at a time."""
        return VideoFaces(self)

    def run(self, frames: Iterable[tuple[int, np.ndarray]]) -> FaceResult:
        """The faces of ``(index, frame)`` pairs of one video (or of one image, as a single frame)."""
        video = self.video()
        for index, frame in frames:
            video.add(index, frame)
        return video.finish()


class VideoFaces:
    """The face stage over one video's frames, which arrive one by one (see :class:`FacePipeline`)."""

    def __init__(self, pipeline: FacePipeline) -> None:
        self.pipe = pipeline
        self.indices: list[int] = []
        self.detected: list[list[Face]] = []  # the faces found in each frame seen
        self._crops: list[dict] = []  # per frame: box -> crop of that face
        self._batch: list[tuple[int, np.ndarray]] = []
        self._batch_pixels = 0
        self._tracking = pipeline.tracking
        self._tracked = self._again = 0

    def add(self, index: int, frame: np.ndarray) -> None:
        self._batch.append((index, frame))
        self._batch_pixels += frame.shape[0] * frame.shape[1]
        # tracked search: the first frame alone (searched for every size), then batches of the detector's size
        if len(self._batch) >= (1 if self._tracking and not self.detected else self.pipe.batch_size) or \
                self._batch_pixels + self._batch_pixels // len(self._batch) > BATCH_PIXELS:
            self._flush()

    def finish(self) -> FaceResult:
        """Detect in the frames still waiting, then select the faces over the whole video."""
        self._flush()
        chosen = select_faces(self.detected, self.pipe.cfg.select)
        faces = [[FaceCrop(idx, f, crops[f.box]) for f in frame_faces]
                 for idx, frame_faces, crops in zip(self.indices, chosen, self._crops)]
        return FaceResult(list(self.indices), faces, found=sum(len(f) for f in self.detected),
                          tracked=self._tracked, searched_again=self._again)

    def _detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        """Every face (full search), or faces of at least the tracked size with a full search of the frames
        where :func:`~fakescope.faces.tracking.search_again` says the main face may have been missed."""
        detector = self.pipe.detector
        track = track_face(self.detected) if self._tracking else None
        if track is None:
            with one_cpu_thread(detector):
                return detector.detect(frames)
        with one_cpu_thread(detector):
            found = detector.detect(frames, min_size=track.min_size)
        self._tracked += len(frames)
        again = [i for i, faces in enumerate(found) if search_again(faces, track)]
        if again:
            self._again += len(again)
            with one_cpu_thread(detector):
                again_found = detector.detect([frames[i] for i in again])
            for i, faces in zip(again, again_found):
                found[i] = faces
        return found

    def _flush(self) -> None:
        if not self._batch:
            return
        frames = [f for _, f in self._batch]
        for (idx, frame), faces in zip(self._batch, self._detect(frames)):
            self.indices.append(idx)
            self.detected.append(faces)
            self._crops.append({face.box: self.pipe.crop(frame, face) for face in faces})
        self._batch.clear()
        self._batch_pixels = 0
