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

Here: :class:`Detector` (loading, thresholds, the batching loop). Each input becomes a job (:mod:`.loader`) down
the image path (:mod:`.images`) or the video path (:mod:`.videos`), through the face path (:mod:`.faces`) where
the checkpoint has a face stage; its scores become the record's verdict (:mod:`.verdict`) and, where asked, its
explanation (:mod:`.visual`).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from fakescope.data.transforms import Preprocessor
from fakescope.errors import CheckpointError, CompileError, ConfigError
from fakescope.faces import FacePipeline
from fakescope.inference.backends import load_model
from fakescope.inference.images import Scoring, image_score
from fakescope.inference.inputs import Missing, iter_inputs, skip_reason
from fakescope.inference.job import Job, new_record
from fakescope.inference.loader import prepare_jobs
from fakescope.inference.stream import DEFAULT_TUNER, run_lanes
from fakescope.inference.verdict import give_verdict, label_of, resolve_threshold
from fakescope.inference.videos import video_score
from fakescope.inference.visual import cam_picture, write_explanation
from fakescope.metrics.calibration import OPERATING_POINTS
from fakescope.preprocess import VIDEO_FRAMES, FaceCropConfig


@dataclass(frozen=True)
class InferenceOptions:
    """The options of :class:`Detector` (and of ``fakescope detect`` and ``serve``), with their defaults.

    ``threshold``: ``label`` is ``fake`` when ``score >= threshold`` (``score``: the P(fake) shown, calibrated where
    the checkpoint is). ``operating_point``: ``eer``, ``fpr1`` or ``fpr5`` take the threshold the checkpoint's
    calibration chose on its validation data (``fakescope calibrate``), a number is a fixed threshold (as
    ``threshold``). Neither given: a calibrated checkpoint's default operating point, else 0.5.
    ``batch_size``: model inputs per forward pass (images, frames or clips); ``auto``: the fastest per input for
    this model and machine, and the faster memory layout, measured at first use and cached
    (:class:`~fakescope.inference.stream.BatchTuner`). ``lanes``: on a CPU, threads that each decode, preprocess
    and score a share of the inputs with one torch thread of their own
    (:func:`~fakescope.inference.stream.run_lanes`; records stay in input order); 0: one per torch CPU thread;
    1: everything in the calling thread. Lanes need a detector without a face stage or explanations, and no
    ``num_workers``; elsewhere inputs are scored in the calling thread. ``bf16``: score in bfloat16 (autocast;
    PyTorch only); the first inputs are also scored in float32 and :attr:`Detector.bf16_check` says how far apart
    the two are. ``compile``: score with ``torch.compile`` of the model (batch norms folded; PyTorch only, not
    with ``bf16``): each input shape's graph is compiled at its first batch (a minute or more for a large model on
    a CPU), every forward pass then runs at the batch size (short batches padded), without lanes; worth it for long
    runs (docs/speed.md). ``faces``: ``auto`` follows the checkpoint's face stage; ``on`` forces one (the
    checkpoint's, else ``prepare``'s default), ``off`` scores whole images. ``num_frames``: frames sampled from a
    video for image detectors. ``max_clips``: clips scored per video for clip detectors.
    ``face_detector_weights``: the face detector's weights file or folder, where they are not installed.
    ``explain``: a folder where each scored input gets a Grad-CAM overlay PNG (the model input, its highest
    scoring frame for a video) and, for a video, its score timeline; the record's ``explanation`` lists them.
    ``provenance``: read what each file says of its origin into the record's ``provenance``
    (:mod:`fakescope.media.provenance`); the service reads it from the upload.
    """

    threshold: float | None = None
    operating_point: str | None = None
    batch_size: int | str = 32
    lanes: int = 1
    bf16: bool = False
    compile: bool = False
    faces: str = "auto"
    num_frames: int = VIDEO_FRAMES  # as prepare samples them, so detect scores the frames it cropped
    max_clips: int = 4
    face_detector_weights: str | None = None
    explain: str | None = None
    provenance: bool = True

    def check(self) -> None:
        if self.threshold is not None and not 0.0 <= float(self.threshold) <= 1.0:
            raise ConfigError(f"threshold must lie in [0, 1], got {self.threshold}")
        if self.batch_size != "auto" and (isinstance(self.batch_size, bool) or not str(self.batch_size).isdigit()
                                          or int(self.batch_size) < 1):
            raise ConfigError(f"batch size must be 'auto' or a whole number of at least 1, got {self.batch_size}")
        if int(self.lanes) < 0:
            raise ConfigError(f"lanes must be 0 (one per CPU thread) or more, got {self.lanes}")
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


class Detector(Scoring):
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
        self.auto_batch = opt.batch_size == "auto"
        self.batch_size = 32 if self.auto_batch else int(opt.batch_size)
        self.block_size = self.batch_size  # inputs dealt to each of several processes in turn: never measured
        self.lanes = int(opt.lanes)
        self.tuner = DEFAULT_TUNER
        self.channels_last = False
        self.bf16 = bool(opt.bf16)
        self.bf16_check: dict[str, Any] | None = None  # scores in bf16 against float32 on the first inputs
        self._lock = threading.Lock()
        if self.bf16 and backend != "torch":
            raise ConfigError("bf16 scoring needs the PyTorch backend, not onnx")
        self.compile = bool(opt.compile)
        if self.compile and (backend != "torch" or self.bf16):
            raise ConfigError("compile needs the PyTorch backend in float32 (not onnx, not bf16)")
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
        return next(self._run(prepare_jobs(self, [(x, name, None)], details=details)))

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
        lanes = self.lanes_for(details, num_workers)
        if lanes < 2:
            yield from self._run(prepare_jobs(self, items, details=details, num_workers=num_workers,
                                              collected=collected))
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, threads // lanes))  # threads started from here on take this many
        if self.backend != "torch":
            self.set_backend_threads(max(1, threads // lanes))
        try:
            self.lanes_now = lanes
            choice = self.batch_choice(self.input_shape())  # measured before the lanes start: alone
            self._in_lanes = True
            yield from run_lanes(self, items, lanes, chunk=choice.batch)
        finally:
            self._in_lanes, self.lanes_now = False, 1
            torch.set_num_threads(threads)
            if self.backend != "torch":
                self.set_backend_threads(0)

    # ----------------------------------------------------------- pipeline
    def _run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        pending: list[Job] = []
        count = 0
        limit = self.batch_choice(self.input_shape()).batch if self.auto_batch else self.batch_size
        for job in jobs:
            pending.append(job)
            count += 0 if job.inputs is None else len(job.inputs)
            if count >= limit:
                yield from self._finish(pending)
                pending, count = [], 0
        yield from self._finish(pending)

    def skipped_record(self, path: str) -> dict[str, Any]:
        """The record of a file a folder walk left out (``kind: "skipped"``; ``error`` says why)."""
        rec = new_record(self, path)
        rec.update(kind="skipped", error=skip_reason(path))
        return rec

    def _finish(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        """Score the jobs' model inputs (grouped by shape, in batches) and fill their records, in order."""
        groups: dict[tuple[int, ...], list[Job]] = {}
        for j in jobs:
            if j.inputs is not None and j.record["error"] is None:
                groups.setdefault(tuple(j.inputs.shape[1:]), []).append(j)
        scores: dict[int, list[float]] = {}
        failed: dict[int, str] = {}
        for group in groups.values():
            try:
                flat = self._score_all(torch.cat([j.inputs for j in group])).tolist()
            except CompileError:  # the same for every batch: the run stops, records already given are kept
                raise
            except Exception as exc:  # e.g. out of memory: these inputs fail, the next batch may not
                failed.update((id(j), f"the model failed on this batch ({type(exc).__name__}: {exc})")
                              for j in group)
                continue
            offset = 0
            for j in group:
                scores[id(j)] = flat[offset:offset + len(j.inputs)]
                offset += len(j.inputs)
        for job in jobs:
            rec = job.record
            if id(job) in failed:
                rec["error"] = f"{rec['path']}: {failed[id(job)]}"
            elif id(job) in scores:
                self._fill_scores(job, scores[id(job)])
            rec["seconds"] = round(time.perf_counter() - job.started, 4)
            if job.details is not None:
                rec["details"] = job.details
            job.inputs = job.canvases = None
            yield rec

    def _fill_scores(self, job: Job, scores: list[float]) -> None:
        """The record's scores and verdict from its model inputs' scores, and its explanations."""
        rec = job.record
        score = image_score(scores) if rec["kind"] == "image" else video_score(job, scores, self.modality)
        give_verdict(rec, score, self.temperature, self.threshold)
        if self.explain is not None and rec["error"] is None:
            write_explanation(self, job, scores)
        if job.details is not None and rec["error"] is None:
            job.details["cam"] = cam_picture(self, job, scores)
