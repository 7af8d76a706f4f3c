"""The verdict of a record: one scale for the P(fake) shown, the threshold and the label (calibrated where the
checkpoint is: :func:`fakescope.metrics.calibration.shown_score`), which operating point chose the threshold, and
the warning when a model scored only a small part of the picture."""

from __future__ import annotations

import math
from typing import Any

from fakescope.errors import ConfigError
from fakescope.metrics.calibration import (OPERATING_POINTS, TARGET_FPR, default_operating_point, round_sig,
                                           shown_score, shown_threshold)

MIN_REGION = 0.25  # a record warns when the model scored less than this share of the picture


def label_of(score: float, threshold: float) -> str:
    """The label of a shown P(fake) at a threshold on the same scale."""
    return "fake" if score >= threshold else "real"


def give_verdict(rec: dict[str, Any], score: float, temperature: float | None, threshold: float) -> None:
    """Fill ``rec``'s verdict from the network's P(fake) ``score``: ``model_score``, the ``score`` shown (calibrated
    where the checkpoint is: ``temperature``), its frame and clip scores on that scale, and the ``label``; a
    non-finite score is an ``error``."""
    if not math.isfinite(score):
        rec["error"] = f"{rec['path']}: the model returned a non-finite score"
        return
    # one number is shown as P(fake) and decides the label: calibrated where the checkpoint is (frame and clip
    # scores on the same scale, so a timeline is read against the same threshold)
    rec["model_score"] = round_sig(score)
    rec["score"] = shown_score(score, temperature)
    rec["calibrated"] = temperature is not None
    if temperature is not None:
        for key in ("frame_scores", "clip_scores"):
            if rec.get(key):
                rec[key] = [None if v is None else shown_score(v, temperature) for v in rec[key]]
    rec["label"] = label_of(rec["score"], threshold)


def resolve_threshold(operating_point: str | None, threshold: float | None, calibration: dict | None, source: str
               ) -> tuple[float, str, str]:
    """``(threshold, operating point, where it comes from)``, the threshold on the scale of the shown P(fake)
    (calibrated where the checkpoint is). No choice given: a calibrated checkpoint's default operating point, else
    the fixed 0.5."""
    op = operating_point
    if op is None and threshold is None and calibration:
        op = default_operating_point(calibration)
        default = "the checkpoint's default operating point: "
    else:
        default = ""
    if op in OPERATING_POINTS:
        if not calibration:
            raise ConfigError(f"{source}: operating point '{op}' needs a calibrated checkpoint: run "
                              "`fakescope calibrate CHECKPOINT --data VALIDATION_DATA` first (or give a threshold)")
        c = calibration
        what = "the equal error rate" if op == "eer" else f"{round(TARGET_FPR[op] * 100)}% false-positive rate"
        return (shown_threshold(float(c["thresholds"][op]), c["temperature"]), op,
                f"{default}{what} on {c['data']} ({c['n_real']} real, {c['n_fake']} fake; {c.get('fitted', '')})")
    value = float(op) if op is not None else 0.5 if threshold is None else float(threshold)
    scale = "calibrated P(fake)" if calibration else "P(fake)"
    return value, "fixed", f"fixed threshold on the {scale}"


def region_warning(region: dict[str, Any], what: str = "image") -> str | None:
    """The warning for a scored region (:meth:`fakescope.data.transforms.Preprocessor.region`) under
    :data:`MIN_REGION` of the ``what`` (image or frame)."""
    if region["fraction"] is None or region["fraction"] >= MIN_REGION:
        return None
    return (f"the model saw {region['fraction']:.1%} of the {what} ({region['text']}; policy {region['policy']}): "
            "the rest was not scored")
