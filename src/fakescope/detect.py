"""Run a trained detector on your own images and videos.

>>> import fakescope
>>> det = fakescope.Detector.from_pretrained("runs/quickstart/model")
>>> det.predict("photo.jpg")                       # also a PIL image, a numpy array or a video path
{'path': 'photo.jpg', 'kind': 'image', 'score': 0.93, 'label': 'fake', ...}
>>> for record in det.predict_many(["folder/", "clips/*.mp4"]):
...     print(record["path"], record["score"])

The pipeline follows the checkpoint's own config:

* **AI-generated-image detectors** (``policy: crop`` or ``resize_crop``) see the whole image through their
  evaluation preprocessing: the centre crop at native resolution (resized first only when the image is
  smaller than the input), exactly as in ``fakescope eval``.
* **Face-forgery detectors** (SFCL-HCMF, EfficientNet-B4, SDR, or any checkpoint whose config says
  ``inference.faces: true``) see face crops: MTCNN finds the faces, the largest one is cut out as a square of
  1.3 x its box (the crop that ``fakescope prepare`` makes for training, 256 px), and the model's
  preprocessing is applied to that crop. An image or video without a face gets a record with an error.
* **Videos** with an image detector: ``num_frames`` frames spread evenly over the video (32 by default, the
  DeepfakeBench convention) are scored one by one; the video's score is the mean of the frame scores.
* **Clip detectors** (SDR): windows of ``clip_len`` consecutive frames (at most ``max_clips``, spread over
  the video; a shorter video is padded with its last frame); the video's score is the mean of the clip scores.

Every input gives one record (:data:`RECORD_FIELDS`): ``score`` is P(fake), ``label`` is ``fake`` when
``score >= threshold``. A file that cannot be read or scored gets ``error`` (naming the problem) and no score;
the other files go on.
"""

from __future__ import annotations

import glob
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from fakescope.errors import CheckpointError, ConfigError, DataError

RECORD_FIELDS = ("path", "kind", "score", "label", "threshold", "faces_found", "frame_scores", "frame_indices",
                 "frame_times", "clip_scores", "model", "model_version", "backend", "error", "seconds")
# the registered detectors that were built for face crops (their variants too)
FACE_MODELS = ("sfcl_hcmf", "efficientnet_b4", "sdr")


def media_extensions() -> tuple[str, ...]:
    from fakescope.data.transforms import IMAGE_EXTENSIONS
    from fakescope.data.video import VIDEO_EXTENSIONS

    return tuple(IMAGE_EXTENSIONS) + tuple(VIDEO_EXTENSIONS)


# ------------------------------------------------------------------ inputs
def expand_inputs(paths: Sequence[str | os.PathLike]) -> list[tuple[str, str | None]]:
    """Files, folders (searched recursively for images and videos) and glob patterns -> ``(path, error)``.

    A path that does not exist, or a pattern that matches nothing, comes back with an error so that it is
    reported in the output like any other failure. Order: as given; inside a folder or pattern, sorted.
    """
    exts = media_extensions()
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()

    def add(p: str, err: str | None = None) -> None:
        if err is None:
            if p in seen:
                return
            seen.add(p)
        out.append((p, err))

    for raw in paths:
        p = os.path.expanduser(str(raw))
        if os.path.isdir(p):
            found = sorted(str(Path(root) / f) for root, _, files in os.walk(p) for f in files
                           if f.lower().endswith(exts) and not f.startswith("."))
            if not found:
                add(p, "folder holds no image or video file")
            for f in found:
                add(f)
        elif os.path.exists(p):
            add(p)
        elif glob.has_magic(p):
            matches = sorted(glob.glob(p, recursive=True))
            files = [m for m in matches if os.path.isfile(m)]
            for d in (m for m in matches if os.path.isdir(m)):
                files += sorted(str(Path(root) / f) for root, _, fs in os.walk(d) for f in fs
                                if f.lower().endswith(exts) and not f.startswith("."))
            if not files:
                add(p, "pattern matches no file")
            for f in files:
                add(f)
        else:
            add(p, "file not found")
    return out


def _load_pil(path: str) -> Image.Image | None:
    """The image at ``path`` as RGB; ``None`` when PIL does not recognise the file as an image."""
    from fakescope.data.transforms import to_rgb

    try:
        img = Image.open(path)
    except (Image.UnidentifiedImageError, ValueError):
        return None
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc})") from None
    try:
        with img:
            img.load()
            return to_rgb(img)
    except Exception as exc:
        raise DataError(f"{path}: cannot decode the {img.format or ''} image: truncated or corrupt "
                        f"({type(exc).__name__}: {exc})") from None


def array_to_pil(arr: np.ndarray) -> Image.Image:
    """``[H, W]``, ``[H, W, 3|4]`` or ``[3, H, W]`` uint8 (or float in [0, 1]) -> RGB PIL image."""
    from fakescope.data.transforms import to_rgb

    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise DataError(f"an image array must be [H, W], [H, W, 3] or [H, W, 4]; got shape {a.shape}")
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating):
            if not np.isfinite(a).all():
                raise DataError("the image array holds NaN or infinite values")
            a = a * 255.0 if a.max() <= 1.0 else a
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return to_rgb(Image.fromarray(np.ascontiguousarray(a)))


def log_spectrum(image: Image.Image | np.ndarray, max_side: int = 512) -> np.ndarray:
    """Log-magnitude Fourier spectrum of the image's luminance, centred, scaled to uint8 ``[H, W]``.

    The centre crop of at most ``max_side`` pixels is used (generator fingerprints are local and periodic,
    and the crop keeps this cheap); a Hann window keeps the image border from drawing a cross.
    """
    img = image if isinstance(image, Image.Image) else array_to_pil(image)
    g = np.asarray(img.convert("L"), dtype=np.float64)
    h, w = g.shape
    s_h, s_w = min(h, max_side), min(w, max_side)
    top, left = (h - s_h) // 2, (w - s_w) // 2
    g = g[top:top + s_h, left:left + s_w]
    g = (g - g.mean()) * np.outer(np.hanning(s_h), np.hanning(s_w))
    mag = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(g))))
    lo, hi = np.percentile(mag, 1), np.percentile(mag, 99.9)
    return np.clip((mag - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- pipeline
def uses_faces(config: dict[str, Any]) -> bool:
    """Whether a checkpoint's detector was built for face crops.

    ``inference.faces`` in the checkpoint config decides when present; otherwise the registered detectors
    of :data:`FACE_MODELS` (and their variants) are face-forgery detectors.
    """
    inference = config.get("inference") or {}
    if isinstance(inference, dict) and "faces" in inference:
        return bool(inference["faces"])
    name = (config.get("model") or {}).get("name")
    if not name:
        return False
    from fakescope.models import model_entry

    try:
        cls = model_entry(name).cls
    except KeyError:
        return False
    if getattr(cls, "input_domain", None) is not None:
        return cls.input_domain == "face"
    return any(cls is model_entry(base).cls for base in FACE_MODELS)


@dataclass
class _Job:
    """One input on its way through the pipeline: its record, model inputs and how scores map back."""

    record: dict[str, Any]
    started: float
    inputs: torch.Tensor | None = None  # [N, 3, S, S] or [N, T, 3, S, S] uint8
    frame_of_input: list[list[int]] = field(default_factory=list)  # input n -> positions in the frame list
    n_frames: int = 0
    details: dict[str, Any] | None = None


def _resolve_device(device: str | None) -> str:
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device '{device}': {exc}") from None
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}': CUDA is not available on this machine (use --device cpu)")
    return str(device)


def _weights_digest(path: Path) -> str:
    from fakescope.export import weights_sha256

    return weights_sha256(path)[:12]


class Detector:
    """A trained detector with the pipeline its checkpoint calls for. Build it with :meth:`from_pretrained`.

    Options (all keyword arguments of :meth:`from_pretrained`):

    ``threshold`` (0.5): ``label`` is ``fake`` when ``score >= threshold``.
    ``device`` (``auto``): ``cpu``, ``cuda``, ``cuda:1``; ``auto`` takes a GPU when there is one.
    ``batch_size`` (32): model inputs per forward pass (images, frames or clips).
    ``faces`` (``auto``): ``auto`` follows the checkpoint; ``on``/``off`` force face crops on or off.
    ``num_frames`` (32): frames sampled from a video for image detectors.
    ``max_clips`` (4): clips scored per video for clip detectors.
    ``face_detector`` (``mtcnn``), ``face_margin`` (1.3), ``face_size`` (256): the face crop, as in
    ``fakescope prepare``; ``detect_size`` (640): frames are downscaled to it for face detection.
    ``backend`` (``torch``): or ``onnx`` (image detectors exported with ``fakescope export``).
    """

    def __init__(self, model, config: dict[str, Any], *, source: str, backend: str = "torch", device: str = "cpu",
                 threshold: float = 0.5, batch_size: int = 32, faces: str | bool = "auto", num_frames: int = 32,
                 max_clips: int = 4, face_detector: str = "mtcnn", face_margin: float = 1.3, face_size: int = 256,
                 detect_size: int = 640, version: str | None = None) -> None:
        from fakescope.data.transforms import Preprocessor
        from fakescope.models.base import PreprocessConfig

        if not 0.0 <= float(threshold) <= 1.0:
            raise ConfigError(f"threshold must lie in [0, 1], got {threshold}")
        if int(batch_size) < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        if int(num_frames) < 1 or int(max_clips) < 1:
            raise ConfigError("num_frames and max_clips must be at least 1")
        self.model = model
        self.config = config
        self.source = source
        self.backend = backend
        self.device = device
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        self.num_frames = int(num_frames)
        self.max_clips = int(max_clips)
        self.face_margin = float(face_margin)
        self.face_size = int(face_size)
        self.preprocess = model.preprocess if hasattr(model, "preprocess") else \
            PreprocessConfig.model_validate(config["preprocess"])
        self.modality = getattr(model, "modality", None) or config.get("model", {}).get("modality", "image")
        self.name = (config.get("model") or {}).get("name") or "unknown"
        self.version = version or str(config.get("fakescope_version", "unknown"))
        self._pre = Preprocessor(self.preprocess, train=False)
        if self.modality == "clip" and not self.preprocess.clip_len:
            raise CheckpointError(f"{source}: a clip model without preprocess.clip_len")
        if faces in ("auto", None):
            self.faces = uses_faces(config)
        elif faces in ("on", True, "true", "yes"):
            self.faces = True
        elif faces in ("off", False, "false", "no"):
            self.faces = False
        else:
            raise ConfigError(f"faces='{faces}': choose auto, on or off")
        self.face_detector = None
        if self.faces:  # a missing face detector is a setup problem: say so now, not once per file
            from fakescope.data.faces import create_detector

            self.face_detector = create_detector(face_detector, device=device if backend == "torch" else "cpu",
                                                 detect_size=detect_size)

    # -------------------------------------------------------- construction
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, backend: str | None = None, onnx: str | None = None,
                        device: str | None = "auto", **options) -> "Detector":
        """Load a checkpoint folder (or training run folder), or an exported ``.onnx`` file.

        ``backend='onnx'`` with a checkpoint folder uses its ``model.onnx`` (or ``onnx=FILE``).
        Raises :class:`CheckpointError` for a missing or broken checkpoint.
        """
        device = _resolve_device(device)
        path = Path(path)
        if onnx is not None or path.suffix == ".onnx" or backend == "onnx":
            from fakescope.export import OnnxImageModel

            from fakescope.export import weights_sha256

            folder = None if path.suffix == ".onnx" else _checkpoint_dir(path)
            if onnx is None:
                onnx = path if folder is None else folder / "model.onnx"
            model = OnnxImageModel(onnx, device=device)
            exported_from = (model.config.get("export") or {}).get("weights_sha256")
            if folder is not None:
                from fakescope.checkpoint import WEIGHTS

                current = weights_sha256(folder / WEIGHTS)
                if exported_from != current:
                    raise CheckpointError(f"{onnx} was not exported from the weights now in {folder} (export it "
                                          f"again: fakescope export {folder} --format onnx)")
            digest = exported_from[:12] if exported_from else _weights_digest(Path(onnx))
            version = f"{model.config.get('fakescope_version', 'unknown')}+{digest}"
            return cls(model, model.config, source=str(onnx), backend="onnx", device=device, version=version,
                       **options)
        if backend not in (None, "torch"):
            raise ConfigError(f"backend '{backend}': choose torch or onnx")
        from fakescope.checkpoint import WEIGHTS, load, read_config

        folder = _checkpoint_dir(path)
        config = read_config(folder)
        model = load(folder, device=device).eval()
        version = f"{config.get('fakescope_version', 'unknown')}+{_weights_digest(folder / WEIGHTS)}"
        return cls(model, config, source=str(folder), backend="torch", device=device, version=version, **options)

    def info(self) -> dict[str, Any]:
        """What the service's ``/v1/model`` and the web page show."""
        return {"name": self.name, "model_version": self.version, "fakescope_version": self.config.get(
                    "fakescope_version"), "modality": self.modality, "input_size": self.preprocess.input_size,
                "policy": self.preprocess.policy, "clip_len": self.preprocess.clip_len, "faces": self.faces,
                "threshold": self.threshold, "backend": self.backend, "device": self.device,
                "labels": self.config.get("labels", {"0": "real", "1": "fake"})}

    # ------------------------------------------------------------- public
    def predict(self, x, *, name: str | None = None, details: bool = False) -> dict[str, Any]:
        """Score one input: a file path (image or video), a PIL image, a numpy array, or a list of frames.

        A 4-D array ``[T, H, W, 3]`` or a list of frames is scored as a video. Returns the record
        (:data:`RECORD_FIELDS`); with ``details=True`` it also holds ``details``: the input image (first
        frame for videos) and the face crops used, as arrays.
        """
        return next(self._run([(x, name)], details=details))

    def predict_many(self, inputs: Iterable, *, details: bool = False, progress=None) -> Iterator[dict[str, Any]]:
        """Records for many inputs, in order, batching model calls across them.

        ``inputs``: paths, folders and glob patterns are expanded (:func:`expand_inputs`); PIL images and
        arrays are taken as they are. ``progress``: a callable invoked with each finished record.
        """
        items: list[tuple[Any, str | None]] = []
        for x in inputs:
            if isinstance(x, (str, os.PathLike)):
                items += [(p if err is None else _Missing(err), p) for p, err in expand_inputs([x])]
            else:
                items.append((x, None))
        for rec in self._run(items, details=details):
            if progress is not None:
                progress(rec)
            yield rec

    # ----------------------------------------------------------- pipeline
    def _run(self, items: Iterable[tuple[Any, str | None]], details: bool) -> Iterator[dict[str, Any]]:
        pending: list[_Job] = []
        count = 0
        for x, name in items:
            job = self._prepare(x, name, details)
            pending.append(job)
            count += 0 if job.inputs is None else len(job.inputs)
            if count >= self.batch_size:
                yield from self._finish(pending)
                pending, count = [], 0
        yield from self._finish(pending)

    def _new_record(self, path: str, kind: str | None) -> dict[str, Any]:
        rec = dict.fromkeys(RECORD_FIELDS)
        rec.update(path=path, kind=kind, threshold=self.threshold, model=self.name, model_version=self.version,
                   backend=self.backend)
        return rec

    def _prepare(self, x, name: str | None, details: bool) -> _Job:
        started = time.perf_counter()
        path = name or _describe(x)
        job = _Job(self._new_record(path, None), started)
        try:
            if isinstance(x, _Missing):
                raise DataError(f"{path}: {x.error}")
            kind, payload = self._decode(x, path)
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

    def _decode(self, x, path: str):
        """-> ("image", PIL image) or ("video", path or list of frames)."""
        from fakescope.data.video import is_video_file

        if isinstance(x, Image.Image):
            from fakescope.data.transforms import to_rgb

            return "image", to_rgb(x)
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if isinstance(x, np.ndarray):
            if x.ndim == 4:
                return "video", [np.asarray(array_to_pil(f)) for f in x]
            return "image", array_to_pil(x)
        if isinstance(x, (list, tuple)):
            if not x:
                raise DataError("an empty list of frames")
            return "video", [np.asarray(f.convert("RGB") if isinstance(f, Image.Image) else array_to_pil(f))
                             for f in x]
        if isinstance(x, (str, os.PathLike)):
            p = str(x)
            if not os.path.exists(p):
                raise DataError(f"{p}: file not found")
            if os.path.isdir(p):
                raise DataError(f"{p}: is a folder (predict_many expands folders)")
            if os.path.getsize(p) == 0:
                raise DataError(f"{p}: empty file (0 bytes)")
            if is_video_file(p):
                return "video", p
            img = _load_pil(p)
            if img is not None:
                return "image", img
            return "unknown", p  # not an image: the video reader says whether it is a video
        raise DataError(f"cannot score an object of type {type(x).__name__}; give a path, a PIL image or an array")

    def _face_crop(self, frame: np.ndarray, face) -> np.ndarray:
        from fakescope.data.align import crop_box

        return crop_box(frame, face.box, size=self.face_size, margin=self.face_margin)

    def _prepare_image(self, job: _Job, img: Image.Image, path: str) -> None:
        if self.modality == "clip":
            raise DataError(f"{path}: this detector ({self.name}) scores videos, in clips of "
                            f"{self.preprocess.clip_len} frames; give it a video, not an image")
        if job.details is not None:
            job.details["input"] = np.asarray(img)
        if self.faces:
            frame = np.asarray(img)
            found = self.face_detector.detect([frame])[0]
            job.record["faces_found"] = len(found)
            if not found:
                raise DataError(f"{path}: no face found (this detector scores face crops)")
            crop = self._face_crop(frame, max(found, key=lambda f: f.area))
            if job.details is not None:
                job.details["faces"].append(crop)
            img = Image.fromarray(crop)
        job.inputs = self._pre(img).unsqueeze(0)
        job.frame_of_input = [[]]

    def _prepare_video(self, job: _Job, video, path: str, known: bool = True) -> None:
        from fakescope.data.video import VideoReadError

        try:
            self._prepare_frames(job, video, path)
        except VideoReadError as exc:
            if not known and exc.reason in ("cannot-open", "no-video-stream"):
                raise DataError(f"{path}: neither an image nor a video that can be decoded") from None
            raise

    def _prepare_frames(self, job: _Job, video, path: str) -> None:
        if self.modality == "clip":
            self._prepare_clips(job, video, path)
            return
        if isinstance(video, list):
            idx = _even(len(video), self.num_frames)
            frames, indices, times = [video[i] for i in idx], idx, None
        else:
            from fakescope.data.video import read_frames

            sampled = read_frames(video, num_frames=self.num_frames, mode="even")
            frames, indices, times = sampled.frames, sampled.indices, [round(t, 4) for t in sampled.times]
        job.n_frames = len(frames)
        job.record.update(frame_indices=list(indices), frame_times=times)
        if job.details is not None:
            job.details["input"] = frames[0]
        tensors, owners = [], []
        if self.faces:
            from fakescope.data.faces import select_faces

            detected = self.face_detector.detect(frames)
            job.record["faces_found"] = sum(len(f) for f in detected)
            # the video's main face in every frame, as `fakescope prepare` crops the training data
            for i, (frame, found) in enumerate(zip(frames, select_faces(detected, "largest"))):
                if found:
                    crop = self._face_crop(frame, found[0])
                    if job.details is not None and len(job.details["faces"]) < 16:
                        job.details["faces"].append(crop)
                    tensors.append(self._pre(Image.fromarray(crop)))
                    owners.append([i])
            if not tensors:
                raise DataError(f"{path}: no face found in any of the {len(frames)} sampled frames "
                                "(this detector scores face crops)")
        else:
            for i, frame in enumerate(frames):
                tensors.append(self._pre(Image.fromarray(frame)))
                owners.append([i])
        job.inputs = torch.stack(tensors)
        job.frame_of_input = owners

    def _prepare_clips(self, job: _Job, video, path: str) -> None:
        t = int(self.preprocess.clip_len)
        if isinstance(video, list):
            total = len(video)
            windows = _windows(total, t, self.max_clips)
            clips = [(list(range(s, min(s + t, total))), [video[i] for i in range(s, min(s + t, total))])
                     for s in windows]
            times = None
        else:
            from fakescope.data.video import probe, read_frames

            total = probe(video).num_frames
            clips, times = [], []
            for s in _windows(total, t, self.max_clips):
                sampled = read_frames(video, num_frames=t, mode="stride", stride=1, start=s)
                clips.append((sampled.indices, sampled.frames))
                times += [round(x, 4) for x in sampled.times]
        indices = [i for idx, _ in clips for i in idx]
        job.n_frames = len(indices)
        job.record.update(frame_indices=indices, frame_times=times or None)
        if job.details is not None:
            job.details["input"] = clips[0][1][0]
        tensors, owners, pos, faces_found = [], [], 0, 0
        for idx, frames in clips:
            span = list(range(pos, pos + len(frames)))
            pos += len(frames)
            if self.faces:
                detected = self.face_detector.detect(frames)
                faces_found += sum(len(f) for f in detected)
                from fakescope.data.faces import select_faces

                chosen = _fill_gaps([f[0] if f else None for f in select_faces(detected, "largest")])
                if chosen is None:
                    continue  # no face anywhere in this clip
                frames = [self._face_crop(fr, face) for fr, face in zip(frames, chosen)]
                if job.details is not None:
                    job.details["faces"] += frames[:max(0, 16 - len(job.details["faces"]))]
            pil = [Image.fromarray(f) for f in frames]
            pil += [pil[-1]] * (t - len(pil))  # a video shorter than a clip: repeat its last frame
            tensors.append(self._pre.clip(pil))
            owners.append(span)
        if self.faces:
            job.record["faces_found"] = faces_found
        if not tensors:
            raise DataError(f"{path}: no face found in the {len(indices)} frames read (this detector scores "
                            "face crops)")
        job.inputs = torch.stack(tensors)
        job.frame_of_input = owners

    @torch.inference_mode()
    def _score(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "torch":
            return self.model.predict_proba(x.to(self.device)).float().cpu()
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
                offset += n
            rec["seconds"] = round(time.perf_counter() - job.started, 4)
            if job.details is not None:
                rec["details"] = job.details
            job.inputs = None
            yield rec

    def _fill_scores(self, job: _Job, scores: list[float]) -> None:
        rec = job.record
        if rec["kind"] == "image":
            score = scores[0]
        elif self.modality == "clip":
            per_frame: list[float | None] = [None] * job.n_frames
            for s, span in zip(scores, job.frame_of_input):
                for i in span:
                    per_frame[i] = round(s, 6)
            rec["clip_scores"] = [round(s, 6) for s in scores]
            rec["frame_scores"] = per_frame
            score = float(np.mean(scores))
        else:
            per_frame = [None] * job.n_frames
            for s, span in zip(scores, job.frame_of_input):
                per_frame[span[0]] = round(s, 6)
            rec["frame_scores"] = per_frame
            score = float(np.mean(scores))
        if not math.isfinite(score):
            rec["error"] = f"{rec['path']}: the model returned a non-finite score"
            return
        rec["score"] = round(float(score), 6)
        rec["label"] = "fake" if score >= self.threshold else "real"


@dataclass
class _Missing:
    error: str


def _checkpoint_dir(path: Path) -> Path:
    from fakescope.checkpoint import _resolve

    return _resolve(path)


def _describe(x) -> str:
    if isinstance(x, (str, os.PathLike)):
        return str(x)
    if isinstance(x, Image.Image):
        return getattr(x, "filename", "") or "<PIL image>"
    if isinstance(x, np.ndarray):
        return f"<array {'x'.join(map(str, x.shape))}>"
    if isinstance(x, (list, tuple)):
        return f"<{len(x)} frames>"
    return f"<{type(x).__name__}>"


def _message(exc: Exception, path: str) -> str:
    msg = str(exc) or type(exc).__name__
    if not isinstance(exc, DataError):
        msg = f"{type(exc).__name__}: {msg}"
    return msg if path in msg else f"{path}: {msg}"


def _even(total: int, n: int) -> list[int]:
    if total <= n:
        return list(range(total))
    return sorted(set(np.linspace(0, total - 1, n).round().astype(int).tolist()))


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


# ------------------------------------------------------------------ output
def csv_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as a CSV row: lists become JSON text, missing values empty cells."""
    row = {}
    for k in RECORD_FIELDS:
        v = rec.get(k)
        row[k] = "" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else v
    return row


def json_record(rec: dict[str, Any]) -> str:
    return json.dumps({k: rec.get(k) for k in RECORD_FIELDS})
