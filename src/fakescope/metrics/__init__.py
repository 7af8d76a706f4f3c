"""Detection metrics, computed with scikit-learn.

Conventions: label 1 = fake (the positive class), scores are P(fake).

* ``auc``: ROC AUC (``sklearn.metrics.roc_auc_score``).
* ``ap``: average precision with fake as positive (``average_precision_score``).
* ``acc``: accuracy of ``score >= threshold`` (default 0.5).
* ``real_acc`` / ``fake_acc``: accuracy on each class separately.
* ``eer``: equal error rate, where the false-positive rate equals the
  false-negative rate on the ROC curve (linearly interpolated between the two
  ROC points that bracket the crossing).
* ``video_auc``: ROC AUC of per-video scores, each the mean of that video's
  frame (or clip) scores. Videos are grouped by their full id, never by a folder
  basename (``Deepfakes/000`` and ``Face2Face/000`` are different videos).

* ``tpr_at_fpr1`` / ``tpr_at_fpr5``: the fraction of fakes caught when at most 1% / 5% of reals are flagged
  (the ROC curve's TPR at that FPR), the figures trust-and-safety teams read.
* ``ece``: expected calibration error of the scores as probabilities (15 bins;
  :mod:`fakescope.metrics.calibration`).

A metric that is undefined (AUC on one class only) is ``None`` (``null`` in JSON).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import numpy as np

from fakescope.metrics.calibration import expected_calibration_error, tpr_at_fpr

METRIC_KEYS = ("n", "auc", "ap", "acc", "eer", "real_acc", "fake_acc")


def _two_classes(labels: np.ndarray) -> bool:
    return labels.size > 0 and np.unique(labels).size == 2


def equal_error_rate(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """EER: the error rate where FPR = FNR, interpolated on the ROC curve."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if not _two_classes(y):
        return None
    from sklearn.metrics import roc_curve  # here: scikit-learn takes 1-2 s to import, scoring needs none of it

    fpr, tpr, _ = roc_curve(y, s)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # starts at 1 (fpr=0, fnr=1) and ends at -1 (fpr=1, fnr=0)
    i = int(np.argmax(diff <= 0))  # first ROC point at or past the crossing
    if diff[i] == 0:
        return float(fpr[i])
    # linear interpolation between points i-1 and i
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def video_scores(scores: Sequence[float], labels: Sequence[int], video_ids: Sequence[str | None]
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Mean score and label per video (ids in first-seen order); samples without an id are ignored."""
    sums: "OrderedDict[str, list[float]]" = OrderedDict()
    vlabel: dict[str, int] = {}
    for s, y, v in zip(scores, labels, video_ids):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            continue
        v = str(v)
        if v in vlabel and vlabel[v] != int(y):
            raise ValueError(f"video '{v}' has frames with different labels")
        vlabel[v] = int(y)
        sums.setdefault(v, []).append(float(s))
    ids = list(sums)
    return (np.array([np.mean(sums[v]) for v in ids]), np.array([vlabel[v] for v in ids], dtype=int), ids)


def compute_metrics(labels: Sequence[int], scores: Sequence[float], video_ids: Sequence[str | None] | None = None,
                    threshold: float = 0.5) -> dict[str, float | int | None]:
    """All metrics for one test set (see the module docstring)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {s.shape}")
    if s.size and not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinity")
    pred = (s >= threshold).astype(int)
    out: dict[str, float | int | None] = {"n": int(y.size)}
    both = _two_classes(y)
    out["auc"] = float(roc_auc_score(y, s)) if both else None
    out["ap"] = float(average_precision_score(y, s)) if both else None
    out["acc"] = float((pred == y).mean()) if y.size else None
    out["eer"] = equal_error_rate(y, s)
    out["real_acc"] = float((pred[y == 0] == 0).mean()) if (y == 0).any() else None
    out["fake_acc"] = float((pred[y == 1] == 1).mean()) if (y == 1).any() else None
    out["tpr_at_fpr1"] = tpr_at_fpr(y, s, 0.01)
    out["tpr_at_fpr5"] = tpr_at_fpr(y, s, 0.05)
    out["ece"] = expected_calibration_error(y, s)
    if video_ids is not None and any(v not in (None, "") for v in video_ids):
        vs, vy, ids = video_scores(s, y, video_ids)
        out["n_videos"] = len(ids)
        out["video_auc"] = float(roc_auc_score(vy, vs)) if _two_classes(vy) else None
    return out


def mean_metrics(per_set: dict[str, dict]) -> dict[str, float | None]:
    """Unweighted mean over test sets of every metric that is defined in all of them."""
    keys = [k for k in ("auc", "ap", "acc", "eer", "real_acc", "fake_acc", "tpr_at_fpr1", "tpr_at_fpr5", "ece",
                        "video_auc")
            if any(k in m for m in per_set.values())]
    out: dict[str, float | None] = {}
    for k in keys:
        vals = [m.get(k) for m in per_set.values()]
        out[k] = float(np.mean(vals)) if vals and all(v is not None for v in vals) else None
    out["n"] = int(sum(m.get("n", 0) for m in per_set.values()))
    return out
