"""Bring your own detector: ``-m py:my_detector.py``, a Python file that exposes ``predict(path) -> float`` (P(fake)
in [0, 1]) and, optionally, ``predict_batch(paths) -> list[float]``, scored under the same protocol, outputs
and reports as fakescope's own detectors.

The file may also set ``NAME`` (the name records and reports use; default: the file's stem), ``VERSION`` and
``THRESHOLD`` (default 0.5). A score that is not a number in [0, 1], a ``predict`` that raises, or a
``predict_batch`` that returns the wrong number of scores is that file's ``error`` in its record, naming the
detector and the input; the other inputs go on. The file runs as Python code in this process: load only files
you trust, as you would ``import`` them.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from fakescope.errors import CheckpointError
from fakescope.inference.inputs import Missing, skip_reason
from fakescope.inference.pipeline import Detector
from fakescope.inference.records import RECORD_FIELDS
from fakescope.inference.verdict import label_of

PREFIX = "py:"
log = logging.getLogger(__name__)


def load_module(path: str | Path):
    """Import the Python file at ``path`` as a module of its own (:class:`CheckpointError` naming the file when it
    is missing, does not import, or has no ``predict``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{PREFIX}{path}: no such Python file (a user detector is a .py file exposing "
                              "predict(path) -> float)")
    name = f"fakescope_user_detector_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CheckpointError(f"{PREFIX}{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise CheckpointError(f"{PREFIX}{path}: importing it failed ({type(exc).__name__}: {exc})") from None
    if not callable(getattr(module, "predict", None)):
        raise CheckpointError(f"{PREFIX}{path}: has no function predict(path) -> float")
    return module


def fixed_threshold(scorer, operating_point: str | None, threshold: float | None) -> tuple[float, str, str]:
    """``(threshold, "fixed", source)`` of a scorer without fitted operating points (user detectors, fusions)."""
    from fakescope.errors import ConfigError

    value = threshold if threshold is not None else operating_point
    if value is None or value == "fixed":
        return scorer.threshold, "fixed", scorer.threshold_source
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"operating point '{value}': {scorer.name} has no fitted operating points (those need a "
                          "calibrated checkpoint); give a threshold in [0, 1]") from None
    if not 0.0 <= number <= 1.0:
        raise ConfigError(f"threshold {number}: give a number in [0, 1]")
    return number, "fixed", "threshold given"


def check_score(value: Any, who: str, path: str) -> float:
    """``value`` as a P(fake) in [0, 1], or ValueError saying what it was."""
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {who} returned {type(value).__name__} {str(value)[:60]!r}, not a number") from None
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise ValueError(f"{path}: {who} returned {score!r}, not a probability in [0, 1]")
    return score


class UserDetector:
    """A user's detector file, with the parts of :class:`~fakescope.inference.Detector` that detect, eval and
    fuse use: ``name``, ``version``, ``threshold``, ``batch_size``, :meth:`predict`, :meth:`predict_paths`,
    :meth:`run_items` and :meth:`skipped_record`."""

    backend = "python"
    modality = "image"
    demonstration = False
    reads_files = True  # it is given file paths (the service writes an upload to a temporary file first)
    provenance = False  # the service adds no provenance of its own
    face_pipeline = None
    device = "cpu"

    def __init__(self, spec: str, *, batch_size: int = 16) -> None:
        self.path = Path(spec[len(PREFIX):] if spec.startswith(PREFIX) else spec).expanduser()
        self.module = load_module(self.path)
        self.source = f"{PREFIX}{self.path}"
        self.name = str(getattr(self.module, "NAME", self.path.stem))
        self.version = str(getattr(self.module, "VERSION", "user"))
        self.threshold = float(getattr(self.module, "THRESHOLD", 0.5))
        if not 0.0 <= self.threshold <= 1.0:
            raise CheckpointError(f"{self.source}: THRESHOLD {self.threshold} is not in [0, 1]")
        self.operating_point, self.threshold_source = "fixed", f"{self.source} (THRESHOLD)"
        self.batch_size = max(1, int(batch_size))
        batch = getattr(self.module, "predict_batch", None)
        self._batch: Callable[[list[str]], Iterable] | None = batch if callable(batch) else None

    def operating(self, operating_point: str | None = None, threshold: float | None = None
                  ) -> tuple[float, str, str]:
        """A fixed threshold: its own (None), or a number in [0, 1]; a named point needs a calibrated checkpoint."""
        return fixed_threshold(self, operating_point, threshold)

    relabel = Detector.relabel  # ``record`` at another operating point: the same as a checkpoint's

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "model_version": self.version, "modality": self.modality,
                "threshold": self.threshold, "operating_point": self.operating_point,
                "threshold_source": self.threshold_source, "backend": self.backend, "calibrated": False,
                "demonstration": False}

    def predict_paths(self, paths: list[str]) -> list[float | Exception]:
        """A score or the error for each path, in order (``predict_batch`` when the file has it; a batch that
        fails is scored again one by one, so that one bad file costs only its own score)."""
        who = f"user detector {self.name} ({self.path.name})"
        if self._batch is not None and len(paths) > 1:
            try:
                values = list(self._batch(list(paths)))
                if len(values) != len(paths):
                    raise ValueError(f"predict_batch returned {len(values)} scores for {len(paths)} files")
                return [self._checked(v, who + " predict_batch", p) for v, p in zip(values, paths)]
            except Exception as exc:  # noqa: BLE001 - fall back to one at a time: each file gets its own answer
                log.warning("%s: predict_batch failed on %d files (%s: %s); scoring them one by one", who,
                            len(paths), type(exc).__name__, exc)
        out: list[float | Exception] = []
        for p in paths:
            try:
                out.append(check_score(self.module.predict(p), who, p))
            except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
                out.append(exc if isinstance(exc, ValueError) and p in str(exc)
                           else RuntimeError(f"{p}: {who} failed ({type(exc).__name__}: {exc})"))
        return out

    @staticmethod
    def _checked(value: Any, who: str, path: str) -> float | Exception:
        try:
            return check_score(value, who, path)
        except ValueError as exc:
            return exc

    def record(self, path: str, result: float | Exception | None, started: float) -> dict[str, Any]:
        rec = dict.fromkeys(RECORD_FIELDS)
        rec.update(path=path, kind="image", threshold=self.threshold, operating_point=self.operating_point,
                   threshold_source=self.threshold_source, model=self.name, model_version=self.version,
                   backend=self.backend, demonstration=False, calibrated=False)
        if isinstance(result, Exception):
            rec["error"] = str(result)
        elif result is not None:
            rec.update(score=result, model_score=result, label=label_of(result, self.threshold))
        rec["seconds"] = round(time.perf_counter() - started, 4)
        return rec

    def predict(self, x, *, name: str | None = None, details: bool = False) -> dict[str, Any]:  # noqa: ARG002
        return next(self.run_items([(x, name, None)]))

    def run_items(self, items: Iterable[tuple[Any, str | None, dict | None]], *, details: bool = False,  # noqa: ARG002
                  num_workers: int = 0, collected: list | None = None) -> Iterator[dict[str, Any]]:  # noqa: ARG002
        """Records of ``(input, name, extra)`` items, in order, ``batch_size`` files at a time. Inputs must be file
        paths (a user detector reads files itself)."""
        chunk: list[tuple[Any, str, dict | None]] = []
        for x, name, extra in items:
            chunk.append((x, name or str(x), extra))
            if len(chunk) >= self.batch_size:
                yield from self._chunk(chunk)
                chunk = []
        yield from self._chunk(chunk)

    def _chunk(self, chunk: list[tuple[Any, str, dict | None]]) -> Iterator[dict[str, Any]]:
        started = time.perf_counter()
        results: dict[int, float | Exception] = {}
        todo = []
        for i, (x, name, _) in enumerate(chunk):
            if isinstance(x, Missing):
                results[i] = RuntimeError(x.error if name in x.error else f"{name}: {x.error}")
            elif not isinstance(x, (str, os.PathLike)) or not Path(x).is_file():
                results[i] = RuntimeError(f"{name}: a user detector scores files; this is not a file")
            else:
                todo.append(i)
        for i, res in zip(todo, self.predict_paths([str(chunk[i][0]) for i in todo])):
            results[i] = res
        for i, (_, name, extra) in enumerate(chunk):
            rec = self.record(name, results[i], started)
            if extra:
                rec.update(extra)
            yield rec

    def skipped_record(self, path: str) -> dict[str, Any]:
        rec = self.record(path, None, time.perf_counter())
        rec.update(kind="skipped", error=skip_reason(path))
        return rec
