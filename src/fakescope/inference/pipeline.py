"""Run a trained detector on your own images and videos.

>>> import fakescope
>>> det = fakescope.Detector.from_pretrained("runs/quickstart/model")
>>> det.predict("photo.jpg")                       # also a PIL image, a numpy array or a video path
{'path': 'photo.jpg', 'kind': 'image', 'score': 0.93, 'label': 'fake', ...}
>>> for record in det.predict_many(["folder/", "clips/*.mp4"]):
...     print(record["path"], record["score"])

The pipeline follows the checkpoint's own preprocessing (``model.config.preprocess``):

* **The face stage** (``preprocess.face``): where the checkpoint has one (face-forgery detectors trained on
  ``fakescope prepare`` crops), faces are found, chosen and cut out by the same face pipeline and settings that
  made the training crops (:class:`~fakescope.faces.FacePipeline`): the crops scored are those ``prepare`` writes
  for the same frames. An image or video without a face gets a record with an error. Detectors of whole images
  (AI-generated image detectors) have none.
* **The pixel stage**: the model's evaluation preprocessing, exactly as in ``fakescope eval`` (the centre crop at
  native resolution for ``policy: crop``, a resize for ``policy: resize``, ...).
* **Videos** with an image detector: ``num_frames`` frames spread evenly over the video (32 by default, the
  DeepfakeBench convention and ``fakescope prepare``'s) are scored one by one; the video's score is the mean of
  the frame scores.
* **Clip detectors** (SDR): windows of ``clip_len`` consecutive frames (at most ``max_clips``, spread over
  the video; a shorter video is padded with its last frame); the video's score is the mean of the clip scores.

Every input gives one record (:data:`~fakescope.inference.records.RECORD_FIELDS`): ``score`` is P(fake) (the
calibrated probability where the checkpoint is calibrated; ``model_score`` is the network's own), ``label`` is
``fake`` when ``score >= threshold``, on that same scale. A file that cannot be read or scored gets ``error`` (naming the
problem) and no score; the other files go on.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from fakescope.data.transforms import Preprocessor
from fakescope.errors import CheckpointError, ConfigError, DataError
from fakescope.faces import FacePipeline
from fakescope.inference.backends import load_model
from fakescope.inference.inputs import Missing, decode_input, describe, iter_inputs, skip_reason
from fakescope.inference.records import RECORD_FIELDS
from fakescope.inference.verdict import label_of, region_warning, resolve_threshold
from fakescope.metrics.calibration import OPERATING_POINTS, round_sig, shown_score
from fakescope.media.provenance import read_provenance
from fakescope.media.video import FrameStream, VideoReadError, even_indices, probe
from fakescope.preprocess import VIDEO_FRAMES, FaceCropConfig
from fakescope.utils.paths import safe_name


@dataclass(frozen=True)
class InferenceOptions:
    """The options of :class:`Detector` (and of ``fakescope detect`` and ``serve``), with their defaults.

    ``threshold``: ``label`` is ``fake`` when ``score >= threshold`` (``score``: the P(fake) shown, calibrated where
    the checkpoint is). ``operating_point``: ``eer``, ``fpr1`` or ``fpr5`` take the threshold the checkpoint's
    calibration chose on its validation data (``fakescope calibrate``), a number is a fixed threshold (as
    ``threshold``). Neither given: a calibrated checkpoint's default operating point, else 0.5.
    ``batch_size``: model inputs per forward pass (images, frames or clips). ``faces``: ``auto`` follows the checkpoint's face stage; ``on`` forces one
    (the checkpoint's, else ``prepare``'s default), ``off`` scores whole images. ``num_frames``: frames sampled
    from a video for image detectors. ``max_clips``: clips scored per video for clip detectors.
    ``face_detector_weights``: the face detector's weights file or folder, where they are not installed.
    ``explain``: a folder where each scored input gets a Grad-CAM overlay PNG (the model input, its highest
    scoring frame for a video) and, for a video, its score timeline; the record's ``explanation`` lists them.
    ``provenance``: read what each file says of its origin into the record's ``provenance``
    (:mod:`fakescope.media.provenance`); the service reads it from the upload.
    """

    threshold: float | None = None
    operating_point: str | None = None
    batch_size: int = 32
    faces: str = "auto"
    num_frames: int = VIDEO_FRAMES  # as prepare samples them, so detect scores the frames it cropped
    max_clips: int = 4
    face_detector_weights: str | None = None
    explain: str | None = None
    provenance: bool = True

    def check(self) -> None:
        if self.threshold is not None and not 0.0 <= float(self.threshold) <= 1.0:
            raise ConfigError(f"threshold must lie in [0, 1], got {self.threshold}")
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if int(self.num_frames) < 1 or int(self.max_clips) < 1:
            raise ConfigError("num_frames and max_clips must be at least 1")
        if self.faces not in ("auto", "on", "off"):
            raise ConfigError(f"faces='{self.faces}': choose auto, on or off")
        if self.operating_point is not None and self.operating_point not in OPERATING_POINTS:
            try:
                value = float(self.operating_point)
            except ValueError:
                value = -1.0
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"operating point '{self.operating_point}': choose {', '.join(OPERATING_POINTS)} "
                                  "or a threshold in [0, 1]")


@dataclass
class _Job:
    """One input on its way through the pipeline: its record, model inputs and how scores map back."""

    record: dict[str, Any]
    started: float
    inputs: torch.Tensor | None = None  # [N, 3, S, S] or [N, T, 3, S, S] uint8
    frame_of_input: list[list[int]] = field(default_factory=list)  # input n -> positions in the frame list
    n_frames: int = 0
    details: dict[str, Any] | None = None
    canvases: list[np.ndarray] | None = None  # per model input, the picture it came from (explanations only)

    def pin_memory(self) -> "_Job":  # the DataLoader's pin-memory thread calls this
        if self.inputs is not None:
            self.inputs = self.inputs.pin_memory()
        return self


@dataclass
class _Collected:
    """What the walk of the inputs gathered in worker 0 (files skipped by their name), sent back at its end."""

    items: list


class _Prepared(IterableDataset):
    """Inputs decoded, face-cropped and preprocessed in DataLoader workers: worker ``k`` of ``n`` prepares items
    ``k, k + n, ...``; the loader hands them back in turn, so in input order."""

    def __init__(self, detector: "Detector", items: Iterable, details: bool, collected: list | None) -> None:
        self.detector, self.items, self.details, self.collected = detector, items, details, collected

    def __iter__(self) -> Iterator[_Job | _Collected]:
        info = get_worker_info()
        k, n = (0, 1) if info is None else (info.id, info.num_workers)
        for i, (x, name, extra) in enumerate(self.items):
            if i % n == k:
                yield self.detector._prepare(x, name, self.details, extra)
        if k == 0 and self.collected:  # what the walk gathered on the way, once
            yield _Collected(list(self.collected))


def _unpack(loader, collected: list | None) -> Iterator[_Job]:
    for item in loader:
        if isinstance(item, _Collected):
            if collected is not None:
                collected.extend(item.items)
            continue
        yield item


class Detector:
    """A trained detector with the pipeline its checkpoint calls for. Build it with :meth:`from_pretrained`.

    Options: those of :class:`InferenceOptions` (keyword arguments), plus ``device`` (``auto``: a GPU when there
    is one) and ``backend`` (``torch``, or ``onnx`` for image detectors exported with ``fakescope export``).
    """

    def __init__(self, model, config: dict[str, Any], *, source: str, backend: str = "torch", device: str = "cpu",
                 version: str | None = None, **options) -> None:
        opt = InferenceOptions(**options)
        opt.check()
        self.options = opt
        self.model = model
        self.config = config
        self.source = source
        self.backend = backend
        self.device = device
        self.calibration = config.get("calibration") or None
        self.temperature = float(self.calibration["temperature"]) if self.calibration else None
        self.threshold, self.operating_point, self.threshold_source = self.operating(opt.operating_point,
                                                                                     opt.threshold)
        self.batch_size = int(opt.batch_size)
        self.num_frames = int(opt.num_frames)
        self.max_clips = int(opt.max_clips)
        self.preprocess = model.preprocess
        self.modality = getattr(model, "modality", None) or config.get("model", {}).get("modality", "image")
        self.name = (config.get("model") or {}).get("name") or "unknown"
        self.version = version or str(config.get("fakescope_version", "unknown"))
        # a checkpoint trained only on the built-in synthetic benchmark says so in every record
        intended = config.get("intended_use") or {}
        self.demonstration = bool(intended.get("demonstration"))
        self.demonstration_note = str(intended.get("note", "")) if self.demonstration else ""
        self._pre = Preprocessor(self.preprocess, train=False)
        if self.modality == "clip" and not self.preprocess.clip_len:
            raise CheckpointError(f"{source}: a clip model without preprocess.clip_len")
        face = self.preprocess.face
        if opt.faces == "on" and face is None:
            face = FaceCropConfig()
        elif opt.faces == "off":
            face = None
        self.face: FaceCropConfig | None = face
        # a missing face detector is a setup problem: say so now, not once per file
        self.provenance = bool(opt.provenance)
        self.explain = None if opt.explain is None else Path(opt.explain)
        if self.explain is not None:
            if backend != "torch":
                raise ConfigError("explanations (Grad-CAM) need the PyTorch backend, not onnx")
            self.explain.mkdir(parents=True, exist_ok=True)
        self.face_pipeline = None if face is None else FacePipeline(
            face, weights=opt.face_detector_weights, device=device if backend == "torch" else "cpu")

    def operating(self, operating_point: str | None = None, threshold: float | None = None
                  ) -> tuple[float, str, str]:
        """``(threshold, operating point, its source)`` for these choices (:class:`InferenceOptions`'); the
        service's per-request ``operating_point`` goes through here too."""
        opt = InferenceOptions(operating_point=operating_point, threshold=threshold)
        opt.check()
        return resolve_threshold(opt.operating_point, opt.threshold, self.calibration, self.source)

    def relabel(self, record: dict[str, Any], operating_point: str | None) -> dict[str, Any]:
        """``record`` at another operating point (its score does not change)."""
        thr, op, src = self.operating(operating_point)
        record.update(threshold=thr, operating_point=op, threshold_source=src)
        if record.get("score") is not None:
            record["label"] = label_of(record["score"], thr)
        return record

    @property
    def faces(self) -> bool:
        """Whether inputs go through a face stage."""
        return self.face is not None

    @property
    def face_detector(self):
        return None if self.face_pipeline is None else self.face_pipeline.detector

    # -------------------------------------------------------- construction
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, backend: str | None = None, onnx: str | None = None,
                        device: str | None = "auto", weights_file: str | os.PathLike | None = None,
                        **options) -> "Detector":
        """Load a checkpoint folder (or training run folder), a pretrained detector by name
        (``cnndetection_resnet50.blur_jpg_prob0.5``; see :func:`fakescope.models.list_pretrained`), a fakescope
        checkpoint on the Hugging Face Hub (``hf-hub:user/name[@revision]``), or an exported ``.onnx`` file.

        ``backend='onnx'`` with a checkpoint folder uses its ``model.onnx`` (or ``onnx=FILE``). ``weights_file``:
        the official weights of a pretrained name, downloaded by hand (checked like a download).
        Raises :class:`CheckpointError` for a missing or broken checkpoint.
        """
        loaded = load_model(path, backend=backend, onnx=onnx, device=device, weights_file=weights_file)
        return cls(loaded.model, loaded.config, source=loaded.source, backend=loaded.backend, device=loaded.device,
                   version=loaded.version, **options)

    def info(self) -> dict[str, Any]:
        """What the service's ``/v1/model`` and the web page show."""
        return {"name": self.name, "model_version": self.version, "fakescope_version": self.config.get(
                    "fakescope_version"), "modality": self.modality, "input_size": self.preprocess.input_size,
                "policy": self.preprocess.policy, "clip_len": self.preprocess.clip_len, "faces": self.faces,
                "face_stage": None if self.face is None else self.face.model_dump(mode="json"),
                "threshold": self.threshold, "operating_point": self.operating_point,
                "threshold_source": self.threshold_source, "calibrated": bool(self.calibration),
                "backend": self.backend, "device": self.device,
                "demonstration": self.demonstration, "demonstration_note": self.demonstration_note,
                "labels": self.config.get("labels", {"0": "real", "1": "fake"})}

    # ------------------------------------------------------------- public
    def predict(self, x, *, name: str | None = None, details: bool = False) -> dict[str, Any]:
        """Score one input: a file path (image or video), a PIL image, a numpy array, or a list of frames.

        A 4-D array ``[T, H, W, 3]`` or a list of frames is scored as a video. Returns the record; with
        ``details=True`` it also holds ``details``: the input image (first frame for videos) and the face crops
        used, as arrays.
        """
        return next(self.run_items([(x, name, None)], details=details))

    def predict_many(self, inputs: Iterable, *, details: bool = False, progress=None, num_workers: int = 0
                     ) -> Iterator[dict[str, Any]]:
        """Records for many inputs, in order, batching model calls across them.

        ``inputs``: paths, folders and glob patterns are expanded as they are reached (:func:`iter_inputs`); PIL
        images and arrays are taken as they are. ``progress``: a callable invoked with each finished record.
        ``num_workers``: decode, find faces and preprocess in that many DataLoader worker processes (bounded
        prefetch, pinned memory on a GPU) while the model scores; 0 does it all in this process. A file a folder
        holds that is not media by its name gets a record too, after the others (``kind: "skipped"``, ``error``
        says why).
        """
        skipped: list[str] = []

        def items() -> Iterator[tuple[Any, str | None, None]]:
            for x in inputs:
                if isinstance(x, (str, os.PathLike)):
                    for p, err in iter_inputs([x], skipped):
                        yield (p if err is None else Missing(err)), p, None
                else:
                    yield x, None, None

        def records() -> Iterator[dict[str, Any]]:
            yield from self.run_items(items(), details=details, num_workers=num_workers, collected=skipped)
            # the files the folders held that are not media by their name: a record each, after the scored ones
            yield from (self.skipped_record(p) for p in dict.fromkeys(skipped))

        for rec in records():
            if progress is not None:
                progress(rec)
            yield rec

    def run_items(self, items: Iterable[tuple[Any, str | None, dict | None]], *, details: bool = False,
                  num_workers: int = 0, collected: list | None = None) -> Iterator[dict[str, Any]]:
        """Records of ``(input, name, extra)`` items, in order; ``extra`` (a dict or None) is added to the record.

        With ``num_workers``, each worker process iterates ``items`` itself (they must be reproducible: paths
        from a walk, not a one-shot stream from another process) and prepares every ``num_workers``-th one.
        ``collected``: a list that iterating ``items`` fills (files skipped by a walk); worker 0's copy is
        brought back into it.
        """
        if num_workers < 0:
            raise ConfigError(f"num_workers must be 0 or more, got {num_workers}")
        if num_workers == 0:
            yield from self._run((self._prepare(x, name, details, extra) for x, name, extra in items))
            return
        if self.face_pipeline is not None and str(self.device).startswith("cuda"):
            raise ConfigError("input workers (num_workers > 0) with a face stage on a GPU: the face detector "
                              "cannot run on the GPU in worker processes; use num_workers 0, or device cpu")
        import multiprocessing

        from torch.utils.data import DataLoader

        loader = DataLoader(_Prepared(self, items, details, collected), batch_size=None, num_workers=num_workers,
                            prefetch_factor=2, pin_memory=str(self.device).startswith("cuda"),
                            multiprocessing_context=multiprocessing.get_context("fork"))
        yield from self._run(_unpack(loader, collected))

    # ----------------------------------------------------------- pipeline
    def _run(self, jobs: Iterable[_Job]) -> Iterator[dict[str, Any]]:
        pending: list[_Job] = []
        count = 0
        for job in jobs:
            pending.append(job)
            count += 0 if job.inputs is None else len(job.inputs)
            if count >= self.batch_size:
                yield from self._finish(pending)
                pending, count = [], 0
        yield from self._finish(pending)

    def skipped_record(self, path: str) -> dict[str, Any]:
        """The record of a file a folder walk left out (``kind: "skipped"``; ``error`` says why)."""
        rec = self._new_record(path)
        rec.update(kind="skipped", error=skip_reason(path))
        return rec

    def _new_record(self, path: str) -> dict[str, Any]:
        rec = dict.fromkeys(RECORD_FIELDS)
        rec.update(path=path, threshold=self.threshold, operating_point=self.operating_point,
                   threshold_source=self.threshold_source, model=self.name, model_version=self.version,
                   backend=self.backend, demonstration=self.demonstration)
        return rec

    def _prepare(self, x, name: str | None, details: bool, extra: dict | None = None) -> _Job:
        path = name or describe(x)
        job = _Job(self._new_record(path), time.perf_counter())
        if extra:
            job.record.update(extra)
        try:
            kind, payload = decode_input(x, path)
            if self.provenance and isinstance(x, (str, os.PathLike)):
                try:
                    job.record["provenance"] = read_provenance(x)
                except Exception as exc:  # metadata that cannot be read never costs the score
                    why = f"{type(exc).__name__}: {exc}"
                    job.record["provenance"] = {"found": False, "summary": f"not read ({why})", "readers": [],
                                                "warnings": [f"provenance: not read ({why})"]}
            if details:
                job.details = {"input": None, "faces": []}
            if kind == "image":
                self._prepare_image(job, payload, path)
            else:
                self._prepare_video(job, payload, path, known=kind == "video")
            job.record["kind"] = "image" if kind == "image" else "video"
        except Exception as exc:  # one bad input never stops the others
            job.record["error"] = _message(exc, path)
            job.inputs = None
        return job

    def _keep_face(self, job: _Job, crop: np.ndarray, limit: int = 16) -> None:
        if job.details is not None and len(job.details["faces"]) < limit:
            job.details["faces"].append(crop)

    def _prepare_image(self, job: _Job, img: Image.Image, path: str) -> None:
        if self.modality == "clip":
            raise DataError(f"{path}: this detector ({self.name}) scores videos, in clips of "
                            f"{self.preprocess.clip_len} frames; give it a video, not an image")
        if job.details is not None:
            job.details["input"] = np.asarray(img)
        self._note_region(job, img.size)
        self._keep_canvas(job, img)
        if self.face_pipeline is not None:
            result = self.face_pipeline.run([(0, np.asarray(img))])
            job.record["faces_found"] = result.found
            if not result.frames_with_face:
                raise DataError(f"{path}: no face found (this detector scores face crops)")
            crop = result.faces[0][0].crop  # the main face (track 0)
            job.record["face_boxes"] = [_box(result.faces[0][0])]
            self._keep_face(job, crop)
            img = Image.fromarray(crop)
        job.inputs = self._pre(img).unsqueeze(0)
        job.frame_of_input = [[]]

    def _prepare_video(self, job: _Job, video, path: str, known: bool = True) -> None:
        try:
            if self.modality == "clip":
                self._prepare_clips(job, video, path)
            else:
                self._prepare_frames(job, video, path)
        except VideoReadError as exc:
            if not known and exc.reason == "cannot-open":
                raise DataError(f"{path}: neither an image nor a video that can be decoded") from None
            if exc.reason == "no-video-stream":  # a sound file: say what it holds
                raise DataError(f"{path}: no video stream to score ({exc.detail.split('(', 1)[-1].rstrip(')')})"
                                ) from None
            raise

    def _frames(self, job: _Job, video, num_frames: int, start: int | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, frame)`` of the sampled frames, read one at a time; sets the record's frame fields.

        ``start`` None: ``num_frames`` frames spread evenly over the video (as ``prepare`` samples them);
        otherwise ``num_frames`` consecutive frames from ``start`` (a clip).
        """
        if isinstance(video, list):
            indices = (even_indices(np.arange(len(video), dtype=float), num_frames) if start is None
                       else list(range(start, min(start + num_frames, len(video)))))
            job.record.update(frame_indices=list(indices), frame_times=None)
            for i in indices:
                yield i, video[i]
            return
        mode, first = ("even", 0) if start is None else ("stride", start)
        with FrameStream(video, num_frames=num_frames, mode=mode, stride=1, start=first) as fs:
            job.record.update(frame_indices=list(fs.indices), frame_times=[round(t, 4) for t in fs.times])
            for i, _, frame in fs:
                yield i, frame

    def _prepare_frames(self, job: _Job, video, path: str) -> None:
        tensors, owners, position = [], [], {}
        if self.face_pipeline is None:
            for n, (i, frame) in enumerate(self._frames(job, video, self.num_frames)):
                if job.details is not None and n == 0:
                    job.details["input"] = frame
                pil = Image.fromarray(frame)
                if n == 0:
                    self._note_region(job, pil.size, "frame")
                self._keep_canvas(job, pil)
                tensors.append(self._pre(pil))
                owners.append([n])
            job.n_frames = len(tensors)
        else:  # frames go through the face pipeline one by one; only the crops are kept
            faces = self.face_pipeline.video()
            for n, (i, frame) in enumerate(self._frames(job, video, self.num_frames)):
                if job.details is not None and n == 0:
                    job.details["input"] = frame
                if n == 0:
                    self._note_region(job, (frame.shape[1], frame.shape[0]), "frame")
                position[i] = n
                faces.add(i, frame)
            result = faces.finish()
            job.n_frames = len(result.indices)
            job.record["faces_found"] = result.found
            job.record["face_boxes"] = [_box(f[0]) for f in result.faces if f]
            for frame_faces in result.faces:  # the video's main face in every frame, as prepare crops it
                if frame_faces:
                    main = frame_faces[0]
                    self._keep_face(job, main.crop)
                    tensors.append(self._pre(Image.fromarray(main.crop)))
                    owners.append([position[main.index]])
            if not tensors:
                raise DataError(f"{path}: no face found in any of the {job.n_frames} sampled frames "
                                "(this detector scores face crops)")
        job.inputs = torch.stack(tensors)
        job.frame_of_input = owners

    def _prepare_clips(self, job: _Job, video, path: str) -> None:
        t = int(self.preprocess.clip_len)
        total = len(video) if isinstance(video, list) else probe(video).num_frames
        indices: list[int] = []
        times: list[float] = []
        tensors, owners, faces_found, boxes = [], [], 0, []
        for start in _windows(total, t, self.max_clips):
            clip_job = _Job(self._new_record(path), 0.0)
            frames = list(self._frames(clip_job, video, t, start=start))
            span = list(range(len(indices), len(indices) + len(frames)))
            indices += clip_job.record["frame_indices"]
            times += clip_job.record["frame_times"] or []
            if job.details is not None and job.details["input"] is None:
                job.details["input"] = frames[0][1]
            pixels = [f for _, f in frames]
            if self.face_pipeline is not None:
                result = self.face_pipeline.run(frames)
                faces_found += result.found
                chosen = _fill_gaps([f[0].face if f else None for f in result.faces])
                if chosen is None:
                    continue  # no face anywhere in this clip
                pixels = [self.face_pipeline.crop(frame, face) for frame, face in zip(pixels, chosen)]
                boxes += [[float(i)] + [round(float(v), 1) for v in face.box] for (i, _), face in zip(frames, chosen)]
                for crop in pixels:
                    self._keep_face(job, crop)
            if not tensors:
                self._note_region(job, (frames[0][1].shape[1], frames[0][1].shape[0]), "frame")
            pil = [Image.fromarray(f) for f in pixels]
            if self.face_pipeline is None:
                self._keep_canvas(job, pil[len(pil) // 2])  # the map of a clip is drawn over its middle frame
            pil += [pil[-1]] * (t - len(pil))  # a video shorter than a clip: repeat its last frame
            tensors.append(self._pre.clip(pil))
            owners.append(span)
        job.n_frames = len(indices)
        job.record.update(frame_indices=indices, frame_times=times or None)
        if self.face_pipeline is not None:
            job.record["faces_found"] = faces_found
            job.record["face_boxes"] = boxes
        if not tensors:
            raise DataError(f"{path}: no face found in the {len(indices)} frames read (this detector scores "
                            "face crops)")
        job.inputs = torch.stack(tensors)
        job.frame_of_input = owners

    def _note_region(self, job: _Job, size: tuple[int, int], what: str = "image") -> None:
        """The record's ``region``: what of the picture (w, h) the model scores; a warning when under 25% of it."""
        if self.face_pipeline is not None:
            w, h = size
            s = self.preprocess.input_size
            job.record["region"] = {"policy": "face", "input_size": s, "image_size": [w, h], "box": None,
                                    "fraction": None, "text": f"face crops ({self.face.crop}, margin "
                                    f"{self.face.margin:g}) of {w} x {h}, resized to {s} x {s}; boxes in face_boxes"}
            return
        region = self._pre.region(size)
        job.record["region"] = region
        warning = region_warning(region, what)
        if warning:
            job.record["warnings"] = [warning]

    def _keep_canvas(self, job: _Job, img: Image.Image, max_side: int = 640) -> None:
        """Keep the picture a model input came from, at most ``max_side`` pixels, for its explanation."""
        if self.explain is None and job.details is None:
            return
        small = img.convert("RGB")
        small.thumbnail((max_side, max_side))
        job.canvases = (job.canvases or []) + [np.asarray(small)]

    @torch.inference_mode()
    def _score(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "torch":
            return self.model.predict_proba(x.to(self.device, non_blocking=True)).float().cpu()
        return self.model.predict_proba(x).float().cpu()

    def _finish(self, jobs: list[_Job]) -> Iterator[dict[str, Any]]:
        live = [j for j in jobs if j.inputs is not None and j.record["error"] is None]
        scores: list[torch.Tensor] = []
        failure = None
        if live:
            x = torch.cat([j.inputs for j in live])
            try:
                for start in range(0, len(x), self.batch_size):
                    scores.append(self._score(x[start:start + self.batch_size]))
            except Exception as exc:  # e.g. out of memory: these inputs fail, the next batch may not
                failure = f"the model failed on this batch ({type(exc).__name__}: {exc})"
        flat = torch.cat(scores).tolist() if scores and failure is None else []
        offset = 0
        for job in jobs:
            rec = job.record
            if job in live:
                n = len(job.inputs)
                if failure is not None:
                    rec["error"] = f"{rec['path']}: {failure}"
                else:
                    self._fill_scores(job, flat[offset:offset + n])
                    if self.explain is not None and rec["error"] is None:
                        self._explain(job, flat[offset:offset + n])
                    if job.details is not None and rec["error"] is None:
                        job.details["cam"] = self._cam_picture(job, flat[offset:offset + n])
                offset += n
            rec["seconds"] = round(time.perf_counter() - job.started, 4)
            if job.details is not None:
                rec["details"] = job.details
            job.inputs = job.canvases = None
            yield rec

    def _cam_picture(self, job: _Job, scores: list[float]) -> Image.Image | None:
        """The heatmap overlay of the job's highest-scoring model input (:func:`fakescope.models.explain.explain`:
        Grad-CAM; FSSNet its SBCA attention; SDR gradient saliency); ``None`` where there is none (the ONNX backend,
        a model that cannot be explained)."""
        from fakescope.inference.visual import cam_on_image, cam_overlay
        from fakescope.models.explain import explain

        if self.backend != "torch":
            return None
        best = int(np.argmax(scores))
        try:
            cam = explain(self.model, job.inputs[best:best + 1].to(self.device))[0].cpu().numpy()
        except ConfigError:
            return None
        region = job.record.get("region") or {}
        if job.canvases and region.get("box") and best < len(job.canvases):  # over the whole picture, region marked
            canvas = job.canvases[best]
            scale = canvas.shape[1] / region["image_size"][0]
            return cam_on_image(canvas, cam, [v * scale for v in region["box"]])
        pixels = job.inputs[best]
        if pixels.dim() == 4:  # a clip: the map (averaged over time) over its middle frame
            pixels = pixels[len(pixels) // 2]
        return cam_overlay(pixels.permute(1, 2, 0).numpy(), cam)

    def _explain(self, job: _Job, scores: list[float]) -> None:
        """Write the Grad-CAM overlay of the job's highest-scoring model input (and a video's timeline)."""
        from fakescope.inference.visual import score_timeline

        rec = job.record
        stem = self.explain / safe_name(rec["path"])
        written = []
        try:
            picture = self._cam_picture(job, scores)
            if picture is None:
                raise ConfigError(f"Grad-CAM cannot explain {self.name}")
            picture.save(f"{stem}.cam.png")
            written.append(f"{stem}.cam.png")
            if rec["kind"] == "video":
                score_timeline(rec, self.threshold).save(f"{stem}.timeline.png")
                written.append(f"{stem}.timeline.png")
            elif rec.get("face_boxes") and os.path.isfile(rec["path"]):  # the face scored, on the image
                from fakescope.inference.visual import draw_boxes

                draw_boxes(rec["path"], [b[1:] for b in rec["face_boxes"]]).save(f"{stem}.faces.png")
                written.append(f"{stem}.faces.png")
        except Exception as exc:  # an explanation that cannot be made never costs the score
            written.append(f"(no explanation: {type(exc).__name__}: {exc})")
        rec["explanation"] = written

    def _fill_scores(self, job: _Job, scores: list[float]) -> None:
        rec = job.record
        if rec["kind"] == "image":
            score = scores[0]
        else:
            per_frame: list[float | None] = [None] * job.n_frames
            for s, span in zip(scores, job.frame_of_input):
                for i in span:
                    per_frame[i] = round_sig(s)
            if self.modality == "clip":
                rec["clip_scores"] = [round_sig(s) for s in scores]
            rec["frame_scores"] = per_frame
            score = float(np.mean(scores))
        if not math.isfinite(score):
            rec["error"] = f"{rec['path']}: the model returned a non-finite score"
            return
        # one number is shown as P(fake) and decides the label: calibrated where the checkpoint is (frame and clip
        # scores on the same scale, so a timeline is read against the same threshold)
        rec["model_score"] = round_sig(score)
        rec["score"] = shown_score(score, self.temperature)
        rec["calibrated"] = self.temperature is not None
        if self.temperature is not None:
            for key in ("frame_scores", "clip_scores"):
                if rec.get(key):
                    rec[key] = [None if v is None else shown_score(v, self.temperature) for v in rec[key]]
        rec["label"] = label_of(rec["score"], self.threshold)


def _box(crop) -> list[float]:
    """``[frame index, x1, y1, x2, y2]`` of a scored face, in the frame's pixels."""
    return [float(crop.index)] + [round(float(v), 1) for v in crop.face.box]


def _message(exc: Exception, path: str) -> str:
    msg = str(exc) or type(exc).__name__
    if not isinstance(exc, DataError):
        msg = f"{type(exc).__name__}: {msg}"
    return msg if path in msg else f"{path}: {msg}"


def _windows(total: int, length: int, max_clips: int) -> list[int]:
    """Start frames of at most ``max_clips`` non-overlapping windows of ``length`` spread over ``total`` frames."""
    if total <= length:
        return [0]
    n = min(max_clips, total // length)
    return sorted(set(np.linspace(0, total - length, n).round().astype(int).tolist()))


def _fill_gaps(faces: list) -> list | None:
    """Frames without a face take the face of the nearest frame that has one; ``None`` if no frame has one."""
    have = [i for i, f in enumerate(faces) if f is not None]
    if not have:
        return None
    return [f if f is not None else faces[min(have, key=lambda j: abs(j - i))] for i, f in enumerate(faces)]
