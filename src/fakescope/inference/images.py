"""The image path of :class:`~fakescope.inference.Detector`: an image made into its one model input (through
the face path where the checkpoint has a face stage), and its score read back; and how batches of model inputs
(images, frames, clips) are scored (:class:`Scoring`: batch size and memory layout, given or measured, batch norms
folded, precision, lanes, torch.compile)."""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from fakescope.errors import CompileError, DataError
from fakescope.inference.faces import image_face
from fakescope.inference.job import Job, keep_canvas, keep_input, note_region
from fakescope.inference.folding import fold_batchnorm
from fakescope.inference.stream import BatchChoice

log = logging.getLogger(__name__)


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


# ------------------------------------------------------------------------------------------- scoring
BF16_CHECKED = 32  # with bf16: inputs also scored in float32, to say how far apart the two are


class Scoring:
    """What :class:`~fakescope.inference.Detector` does with a batch of model inputs: its batch size and memory
    layout (given, or measured by :class:`BatchTuner`), its precision, its lanes, and ``torch.compile``."""

    compile = False  # score with torch.compile of the scoring model (:meth:`_compiled`)
    _measuring = False  # while the batch tuner times the model: the eager model (compiling each batch tried is slow)
    _in_lanes = False  # while lanes score, the model's layout stays as it is
    lanes_now = 1  # the lanes about to score (batches are measured for that many in flight)

    def lanes_for(self, details: bool = False, num_workers: int = 0) -> int:
        """How many lanes score these inputs (1: the calling thread does it all); see :class:`InferenceOptions`."""
        if (details or num_workers or self.explain is not None or self.face_pipeline is not None
                or str(self.device) != "cpu" or self.compile):
            return 1
        return self.lanes or torch.get_num_threads()

    def speed_text(self) -> str:
        """How inputs are scored, in words: batch size and layout per input shape, lanes, precision."""
        lanes = self.lanes_for()
        parts = [f"{'x'.join(map(str, shape))}: batch {c.batch}{', channels-last' if c.channels_last else ''}"
                 + (f" ({c.source}, {c.ms_per_input:.1f} ms an input)" if c.ms_per_input else "")
                 for shape, c in self.__dict__.get("_choices", {}).items()] or [f"batch {self.batch_size}"]
        return ("; ".join(parts) + (f"; {lanes} lanes" if lanes > 1 else "") + ("; bf16" if self.bf16 else "")
                + ("; torch.compile" if self.compile else ""))

    def input_shape(self) -> tuple[int, ...]:
        """One model input's shape, as the preprocessing makes it."""
        s = int(self.preprocess.input_size)
        return (int(self.preprocess.clip_len), 3, s, s) if self.modality == "clip" else (3, s, s)

    @property
    def scoring_model(self):
        """The model that scores: :attr:`model`, or with ``batch_size='auto'`` its copy made faster (batch norms
        folded into the convolutions before them, :func:`~fakescope.inference.folding.fold_batchnorm`; its layout
        set)."""
        return self.__dict__.get("_fast_model") or self.model

    def set_layout(self, channels_last: bool) -> None:
        """Score in the channels-last memory layout (PyTorch models) or the contiguous one."""
        if self.backend == "torch" and bool(channels_last) != self.channels_last:
            set_memory_format(self.scoring_model, channels_last)
            self.channels_last = bool(channels_last)

    def set_backend_threads(self, threads: int) -> None:
        """The backend's threads a call (0: its default), for lanes that each make their own calls (onnxruntime;
        PyTorch's are set per thread)."""
        setter = getattr(self.model, "set_threads", None)
        if setter is not None:
            setter(threads)

    def batch_choice(self, shape: tuple[int, ...]) -> BatchChoice:
        """Batch size and layout for model inputs of ``shape``: as given, or measured (``batch_size='auto'``)."""
        if not self.auto_batch:
            return BatchChoice(self.batch_size, self.channels_last)
        choices = self.__dict__.setdefault("_choices", {})
        if shape in choices:
            return choices[shape]
        try:
            if self.backend == "torch" and "_fast_model" not in self.__dict__ and not self._in_lanes:
                self._fast_model = fold_batchnorm(self.model, shape, self.device)
            self._measuring = True
            try:
                choice = self.tuner.choose(self, shape, layouts=not self._in_lanes)
            finally:
                self._measuring = False
        except Exception as exc:  # a model that fails on random pixels: scored as given, its errors in the records
            log.warning("%s: batch size not measured for inputs of shape %s (%s: %s); batch %d used",
                        self.name, shape, type(exc).__name__, exc, self.batch_size)
            choice = BatchChoice(self.batch_size, self.channels_last)
        if not self._in_lanes:
            self.set_layout(choice.channels_last)
        choices[shape] = choice
        return choice

    @torch.inference_mode()
    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """P(fake) of one batch of model inputs, in this detector's layout and precision."""
        n = len(x)
        if self.compile and self.backend == "torch" and not self._measuring:
            # one compiled graph per input shape: a short batch is padded with zeros, their scores dropped
            size = self.batch_choice(tuple(x.shape[1:])).batch
            if n < size:
                x = torch.cat([x, x.new_zeros((size - n, *x.shape[1:]))])
        return self._forward(x, self.bf16)[:n]

    @torch.inference_mode()
    def _forward(self, x: torch.Tensor, bf16: bool) -> torch.Tensor:
        if self.backend != "torch":
            return self.model.predict_proba(x).float().cpu()
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        compiled = self.compile and not self._measuring
        if compiled and not x.is_inference():  # an inference tensor always: another kind would recompile the graph
            x = x.clone()
        if compiled:
            return self._run_compiled(x, bf16)
        with torch.autocast(str(self.device).split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            return self.scoring_model.predict_proba(x).float().cpu()

    def _run_compiled(self, x: torch.Tensor, bf16: bool) -> torch.Tensor:
        """The compiled model's scores of ``x``. The first call at an input shape compiles its graph: a failure
        there is the compiler's, not the batch's, and would recur at every batch (each trying to compile again),
        so it is raised once as a :class:`~fakescope.errors.CompileError` that stops the run."""
        shape = tuple(x.shape)
        done = self.__dict__.setdefault("_compiled_shapes", set())
        try:
            with torch.autocast(str(self.device).split(":")[0], dtype=torch.bfloat16, enabled=bf16):
                scores = self._compiled(shape[1:])(x).float().cpu()
        except Exception as exc:
            if shape in done:
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise CompileError(f"{self.name}: torch.compile could not compile the model for inputs of shape "
                               f"{list(shape)} ({type(exc).__name__}: {first}); score without --compile") from exc
        done.add(shape)
        return scores

    def _compiled(self, shape: tuple[int, ...]):
        """``predict_proba`` of the scoring model (batch norms folded where they fold) under ``torch.compile``
        (inductor; ``dynamic=False``: a graph per input shape, as :meth:`_score` pads short batches). Made at the
        first call; the graph itself is compiled at the first batch (a minute or more for a large model on a CPU,
        less with inductor's on-disk cache warm)."""
        with self._lock:
            fn = self.__dict__.get("_compiled_fn")
            if fn is None:
                if "_fast_model" not in self.__dict__:
                    self._fast_model = fold_batchnorm(self.model, shape, self.device)
                log.info("%s: compiling the model with torch.compile at its first batch", self.name)
                fn = self._compiled_fn = torch.compile(self.scoring_model.predict_proba, dynamic=False)
            return fn

    def _score_all(self, x: torch.Tensor) -> torch.Tensor:
        """P(fake) of model inputs of one shape, in batches of the size chosen for it."""
        size = self.batch_choice(tuple(x.shape[1:])).batch
        out = []
        for start in range(0, len(x), size):
            part = x[start:start + size]
            out.append(self._score(part))
            if self.bf16 and (self.bf16_check is None or self.bf16_check["inputs"] < BF16_CHECKED):
                self._check_bf16(part, out[-1])
        return torch.cat(out)

    def _check_bf16(self, x: torch.Tensor, scores: torch.Tensor) -> None:
        """Score ``x`` in float32 too, and keep how far the bf16 scores are from it."""
        diff = (self._forward(x, False) - scores).abs()
        with self._lock:
            c = self.bf16_check or {"inputs": 0, "max_abs_diff": 0.0, "sum_abs_diff": 0.0}
            c["inputs"] += len(diff)
            c["max_abs_diff"] = max(c["max_abs_diff"], float(diff.max()))
            c["sum_abs_diff"] += float(diff.sum())
            c["mean_abs_diff"] = c["sum_abs_diff"] / c["inputs"]
            self.bf16_check = c


@torch.no_grad()
def set_memory_format(model, channels_last: bool) -> None:
    """Every 4-D parameter and buffer of ``model`` (convolution weights) in the channels-last layout, or back to the
    contiguous one. Unlike ``model.to(memory_format=...)`` this leaves tensors of other ranks as they are (a 3-D
    convolution's 5-D weight has no channels-last layout of rank 4, and ``to`` raises on it)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for t in [*model.parameters(), *model.buffers()]:
        if t.dim() == 4:
            t.data = t.data.contiguous(memory_format=fmt)
