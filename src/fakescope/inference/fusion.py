"""One verdict from several detectors and the file's own evidence: a fusion model (``fakescope fuse`` fits it).

A fusion folder holds ``fusion.json`` (:class:`FusionSpec`): its members (any ``-m`` value: a checkpoint folder,
a released name, a Hub id, an ``.onnx`` file, ``py:file.py``), the signals it weighs (:mod:`.signals`), and a
stacker: logistic regression over the features ``[logit of each member's P(fake), each signal in {0, 1}]``,
z = b + sum_i w_i x_i and P(fake) = sigmoid(z). A feature that is missing for a file (a member that failed on it,
a signal that could not be read) takes its mean over the fitting data, so it moves z by nothing; the record says
which were missing. Each record gives the fused verdict, every member's score, and each feature's contribution
w_i (x_i - mean_i) to z in plain words. Loading a fusion whose members cannot be found is an error naming them.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from pydantic import Field, ValidationError, model_validator

from fakescope.errors import CheckpointError, ConfigError, FakescopeError
from fakescope.inference.inputs import Missing, skip_reason
from fakescope.inference.records import RECORD_FIELDS
from fakescope.inference.signals import SIGNALS, read_signals
from fakescope.inference.user_detector import PREFIX as PY_PREFIX
from fakescope.inference.user_detector import UserDetector, fixed_threshold
from fakescope.inference.verdict import label_of
from fakescope.schema import Strict

FUSION_FILE = "fusion.json"
DEFAULT = "default"  # what detect and serve load with no -m (default_fusion.json beside this module)
DEFAULT_FILE = Path(__file__).with_name("default_fusion.json")
LOGIT_CLIP = 12.0  # |logit| of a member's P(fake) is clipped here (P within about 6e-6 of 0 or 1)


class Member(Strict):
    name: str = Field(min_length=1)
    spec: str = Field(min_length=1, description="what -m takes: a folder, a released name, hf-hub:..., .onnx, py:")


class Stacker(Strict):
    kind: Literal["logistic_regression"] = "logistic_regression"
    features: list[str]
    coef: list[float]
    intercept: float
    impute: list[float] = Field(description="each feature's mean over the fitting data (a missing value's stand-in)")

    @model_validator(mode="after")
    def _lengths(self) -> "Stacker":
        if not len(self.features) == len(self.coef) == len(self.impute):
            raise ValueError("stacker: features, coef and impute must have one value per feature")
        return self


class FusionSpec(Strict):
    format: Literal["fakescope-fusion"] = "fakescope-fusion"
    version: Literal[1] = 1
    name: str = "fusion"
    members: list[Member] = Field(min_length=1)
    signals: list[str] = Field(default_factory=lambda: list(SIGNALS))
    stacker: Stacker
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    fit: dict[str, Any] = Field(default_factory=dict, description="how it was fitted: data, protocol, results")

    @model_validator(mode="after")
    def _features(self) -> "FusionSpec":
        unknown = sorted(set(self.signals) - set(SIGNALS))
        if unknown:
            raise ValueError(f"unknown signal(s) {', '.join(unknown)} (known: {', '.join(SIGNALS)})")
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"member names must differ: {names}")
        if self.stacker.features != names + list(self.signals):
            raise ValueError(f"stacker features {self.stacker.features} must be the members then the signals "
                             f"{names + list(self.signals)}")
        return self

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FUSION_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=1))
        os.replace(tmp, path)
        return folder


def is_fusion(spec: str | os.PathLike) -> bool:
    p = Path(spec).expanduser()
    return (p.is_dir() and (p / FUSION_FILE).is_file()) or (p.name == FUSION_FILE and p.is_file())


def read_fusion(spec: str | os.PathLike) -> tuple[FusionSpec, Path]:
    """The validated spec of a fusion folder (or its ``fusion.json``) and the folder."""
    p = Path(spec).expanduser()
    file = p if p.is_file() else p / FUSION_FILE
    folder = file.parent
    try:
        return FusionSpec.model_validate(json.loads(file.read_text())), folder
    except (OSError, ValueError, ValidationError) as exc:
        raise CheckpointError(f"{file}: not a valid fusion file ({type(exc).__name__}: {exc})"
                              ) from None


def load_scorer(spec: str | os.PathLike, **options):
    """Whatever ``-m`` names, loaded: ``py:file.py`` (:class:`UserDetector`), a fusion folder
    (:class:`FusionDetector`), ``default`` (the default fusion, :data:`DEFAULT_FILE`), or anything
    :meth:`Detector.from_pretrained` takes (checkpoint folders, released names, Hub ids, ``.onnx`` files).

    For a user detector or a fusion, ``threshold`` and ``operating_point`` apply to its own score (a fusion's
    members keep theirs; it reads their scores, not their labels), and ``explain`` is refused (Grad-CAM needs one
    network); the other options go to a fusion's members."""
    text = str(spec)
    own = text.startswith(PY_PREFIX) or (text == DEFAULT and not Path(text).exists()) or is_fusion(text)
    if not own:
        from fakescope.inference.pipeline import Detector

        return Detector.from_pretrained(text, **options)
    threshold, point = options.pop("threshold", None), options.pop("operating_point", None)
    if options.pop("explain", None):
        raise ConfigError(f"{text}: --explain draws a Grad-CAM map of one network; a fusion or a user detector has "
                          "none (explain one of its members instead)")
    if text.startswith(PY_PREFIX):
        scorer = UserDetector(text, batch_size=files_per_call(options))
    elif text == DEFAULT and not Path(text).exists():
        scorer = FusionDetector.load(DEFAULT_FILE, optional=True, **options)
    else:
        scorer = FusionDetector.load(text, **options)
    if threshold is not None or point is not None:
        scorer.threshold, scorer.operating_point, scorer.threshold_source = scorer.operating(point, threshold)
    return scorer


def files_per_call(options: dict[str, Any]) -> int:
    """Files a user detector or a fusion takes at a time: ``batch_size`` where it is a number, else 16 (``auto``
    is measured by the members that are networks)."""
    batch = options.get("batch_size")
    return int(batch) if isinstance(batch, int) or str(batch).isdigit() else 16


def _resolve_member(spec: str, folder: Path) -> str:
    """A member's spec with a relative path taken from the fusion folder (where ``fuse`` wrote it)."""
    body = spec[len(PY_PREFIX):] if spec.startswith(PY_PREFIX) else spec
    if not Path(body).is_absolute() and (folder / body).exists():
        body = str(folder / body)
    return PY_PREFIX + body if spec.startswith(PY_PREFIX) else body


def logit(p: float) -> float:
    p = min(max(float(p), 1e-12), 1 - 1e-12)
    return max(-LOGIT_CLIP, min(LOGIT_CLIP, math.log(p / (1 - p))))


class FusionDetector:
    """A fitted fusion, with what detect, eval and serve use of a detector (``name``, ``version``, ``threshold``,
    ``batch_size``, :meth:`run_items`, :meth:`predict`, :meth:`skipped_record`, :meth:`info`)."""

    backend = "fusion"
    modality = "image"
    demonstration = False
    operating_point = "fixed"
    reads_files = True  # it is given file paths (the service writes an upload to a temporary file first)
    provenance = False  # its records carry the provenance its signals read
    face_pipeline = None
    device = "cpu"

    def __init__(self, spec: FusionSpec, members: dict[str, Any], *, source: str, batch_size: int = 16,
                 unavailable: dict[str, str] | None = None) -> None:
        self.spec, self.members, self.source = spec, members, source
        self.unavailable = dict(unavailable or {})  # member -> why it could not be loaded (optional members)
        self.name, self.version, self.threshold = spec.name, f"fusion-{spec.version}", spec.threshold
        self.threshold_source = f"{source} (fusion threshold)"
        self.batch_size = max(1, int(batch_size))

    @classmethod
    def load(cls, spec: str | os.PathLike, *, optional: bool = False, **options) -> "FusionDetector":
        """``optional``: a member that cannot be loaded is left out (each record says so and why) instead of
        being an error; the default does this, so that offline the signals still answer."""
        fusion, folder = read_fusion(spec)
        members, failed = {}, []
        for m in fusion.members:
            try:
                members[m.name] = load_scorer(_resolve_member(m.spec, folder), **options)
            except FakescopeError as exc:
                failed.append(f"{m.name} ({m.spec}): {exc}")
        if failed and not optional:
            raise CheckpointError(f"{folder / FUSION_FILE}: {len(failed)} member(s) cannot be loaded:\n  "
                                  + "\n  ".join(failed))
        gone = {f.split(" ", 1)[0]: f for f in failed}
        return cls(fusion, members, source=fusion.name if optional else str(folder), unavailable=gone,
                   batch_size=files_per_call(options))

    def operating(self, operating_point: str | None = None, threshold: float | None = None
                  ) -> tuple[float, str, str]:
        return fixed_threshold(self, operating_point, threshold)

    relabel = UserDetector.relabel

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "model_version": self.version, "modality": self.modality,
                "threshold": self.threshold, "operating_point": self.operating_point,
                "threshold_source": self.threshold_source, "backend": self.backend, "calibrated": True,
                "demonstration": False, "members": [m.name for m in self.spec.members], "signals": self.spec.signals,
                "unavailable": self.unavailable}

    def predict(self, x, *, name: str | None = None, details: bool = False) -> dict[str, Any]:  # noqa: ARG002
        return next(self.run_items([(x, name, None)]))

    def run_items(self, items: Iterable[tuple[Any, str | None, dict | None]], *, details: bool = False,  # noqa: ARG002
                  num_workers: int = 0, collected: list | None = None) -> Iterator[dict[str, Any]]:  # noqa: ARG002
        chunk: list[tuple[Any, str | None, dict | None]] = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= self.batch_size:
                yield from self._chunk(chunk)
                chunk = []
        yield from self._chunk(chunk)

    def _chunk(self, chunk: list[tuple[Any, str | None, dict | None]]) -> Iterator[dict[str, Any]]:
        if not chunk:
            return
        started = time.perf_counter()
        scored = {name: list(det.run_items([(x, n, None) for x, n, _ in chunk]))
                  for name, det in self.members.items()}
        for i, (x, name, extra) in enumerate(chunk):
            path = name or str(x)
            member_recs = {m: recs[i] for m, recs in scored.items()}
            member_recs.update({m: {"error": f"not loaded: {why}"} for m, why in self.unavailable.items()})
            signals = read_signals(str(x)) if isinstance(x, (str, os.PathLike)) and Path(x).is_file() else \
                {"features": dict.fromkeys(SIGNALS), "reasons": [], "missing": dict.fromkeys(SIGNALS, "not a file")}
            rec = self.fuse(path, member_recs, signals)
            if isinstance(x, Missing):  # unreadable or unsupported: its own reason, not the members' echo of it
                rec.update(error=x.error if path in x.error else f"{path}: {x.error}", score=None, label=None)
            rec["seconds"] = round(time.perf_counter() - started, 4)
            if extra:
                rec.update(extra)
            yield rec

    def fuse(self, path: str, member_recs: dict[str, dict[str, Any]], signals: dict[str, Any]) -> dict[str, Any]:
        """The fused record of one file from its members' records and its signals."""
        st = self.spec.stacker
        rec = dict.fromkeys(RECORD_FIELDS)
        rec.update(path=path, threshold=self.threshold, operating_point=self.operating_point,
                   threshold_source=self.threshold_source, model=self.name, model_version=self.version,
                   backend=self.backend, demonstration=False, calibrated=True,
                   kind=next((r.get("kind") for r in member_recs.values() if r.get("kind")), "image"),
                   provenance=signals.get("provenance"))
        values: dict[str, float | None] = {}
        members: dict[str, Any] = {}
        missing: list[str] = []
        for m, r in member_recs.items():
            ok = r.get("error") is None and r.get("score") is not None
            values[m] = logit(r["score"]) if ok else None
            members[m] = {"score": r.get("score"), "error": r.get("error")}
            if not ok:
                missing.append(f"{m}: {r.get('error') or 'no score'}")
        for s in self.spec.signals:
            values[s] = signals["features"].get(s)
            if values[s] is None:
                missing.append(f"{s}: {signals['missing'].get(s, 'not read')}")
        found = [s for s in self.spec.signals if values.get(s)]
        if all(values[m] is None for m in member_recs) and not found:
            rec["error"] = f"{path}: no member could score it and no signal was found ({'; '.join(missing)})"
        z, parts = st.intercept, []
        for f, w, mean in zip(st.features, st.coef, st.impute):
            x = mean if values.get(f) is None else values[f]
            z += w * x
            parts.append((w * (x - mean), f, values.get(f)))
        p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
        reasons = []
        for c, f, v in sorted(parts, key=lambda t: -abs(t[0])):
            if v is None or (f not in members and not v and abs(c) < 0.005):  # a signal not found that moves nothing
                continue
            what = (f"{f} {members[f]['score']:.3g}" if f in members
                    else next((s for s in signals["reasons"] if _about(s, f)), f"{f}: {'found' if v else 'not found'}"))
            reasons.append(f"{what} ({'raises' if c >= 0 else 'lowers'} the fused log-odds by {abs(c):.2f})")
        if rec["error"] is None:
            rec.update(score=round(p, 6), model_score=round(p, 6), label=label_of(p, self.threshold))
        rec.update(members=members, signals={s: values[s] for s in self.spec.signals}, reasons=reasons,
                   warnings=[f"missing: {m}" for m in missing] or None)
        return rec

    def skipped_record(self, path: str) -> dict[str, Any]:
        rec = dict.fromkeys(RECORD_FIELDS)
        rec.update(path=path, kind="skipped", error=skip_reason(path), model=self.name, model_version=self.version,
                   threshold=self.threshold, backend=self.backend)
        return rec


def _about(sentence: str, signal: str) -> bool:
    low = sentence.lower()
    return {"watermark": "watermark" in low, "c2pa": "c2pa" in low or "xmp" in low,
            "metadata": "metadata" in low}.get(signal, False)
