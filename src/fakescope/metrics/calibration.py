"""Calibration and operating points: temperature scaling, thresholds at a chosen false-positive rate or at the
equal error rate, expected calibration error, TPR at a fixed FPR.

Label 1 = fake (the positive class), scores are P(fake). A *false positive* is a real sample scored fake.

* Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): the calibrated
  probability is ``sigmoid(logit(p) / T)``, ``T`` fitted by minimising the negative log-likelihood on validation
  data. It is monotone, so it moves no sample across a threshold chosen on the same scores: the checkpoint
  stores thresholds on the model's own score scale, and inference maps them onto the calibrated one
  (:func:`shown_threshold`), the scale of the P(fake) a user is shown and the label is decided on.
* ``threshold_at_fpr(y, s, 0.01)``: the lowest threshold at which at most 1% of the real validation samples
  score ``>=`` it (its FPR on that data is at most the target, and as close to it as the ties allow).
* ``threshold_at_eer``: the ROC threshold where FPR and FNR are closest.
* ``expected_calibration_error``: 15 equal-width bins of the predicted P(fake); the weighted mean over bins of
  ``|fraction fake - mean predicted|`` (the binary form of Guo et al.'s ECE).
* ``tpr_at_fpr``: the TPR of the ROC curve at the largest FPR not above the target.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Sequence

import numpy as np

TARGET_FPR = {"fpr1": 0.01, "fpr5": 0.05}
OPERATING_POINTS = ("eer", "fpr1", "fpr5")
EPS = 1e-12  # float32 sigmoid outputs reach 1e-12 and below; clipping them flattens the calibrated tail


def _arrays(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {s.shape}")
    return y, s


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(p: np.ndarray | float, temperature: float) -> np.ndarray:
    """``sigmoid(logit(p) / T)``."""
    return 1.0 / (1.0 + np.exp(-logit(p) / float(temperature)))


def _to_sig(x: float, digits: int, rounding: str) -> float:
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return x
    d = Decimal(repr(x))  # the shortest decimal that reads back as x
    return float(d.quantize(Decimal(1).scaleb(d.adjusted() - digits + 1), rounding=rounding))


def round_sig(x: float, digits: int = 6) -> float:
    """``x`` to ``digits`` significant digits, rounded down (a P(fake) of 2.3e-09 stays 2.3e-09, not 0.0). Rounded
    down, a shown score reaches a threshold of fewer digits (:func:`ceil_sig`) exactly when the unrounded one does."""
    return _to_sig(x, digits, ROUND_FLOOR)


def ceil_sig(x: float, digits: int = 4) -> float:
    """The smallest number of ``digits`` significant digits that is ``>= x``: a threshold printed that way lets no
    sample through that the exact threshold kept below it. ``x`` is first taken to 12 significant digits, so that
    float noise (0.0010000000000000002 from a temperature of 1) does not move it up a step."""
    return _to_sig(float(f"{x:.12g}"), digits, ROUND_CEILING) if x > 0 else float(x)


def shown_score(p: float, temperature: float | None) -> float:
    """The P(fake) shown for the model's score ``p``: calibrated when there is a temperature, 6 significant digits."""
    return round_sig(float(apply_temperature(p, temperature)) if temperature else float(p))


def shown_threshold(model_threshold: float, temperature: float | None) -> float:
    """A threshold chosen on the model's scores, on the scale of :func:`shown_score`, to 4 significant digits
    (rounded up). Sample ``p`` is labelled fake when ``shown_score(p) >= shown_threshold(t)``."""
    return ceil_sig(float(apply_temperature(model_threshold, temperature)) if temperature else model_threshold)


def default_operating_point(calibration: dict[str, Any]) -> str:
    """The operating point a calibrated checkpoint uses unless told otherwise: the one it stores, else 1% FPR, or
    5% FPR where the validation data had too few reals for a 1% estimate."""
    stored = calibration.get("default_operating_point")
    if stored in OPERATING_POINTS:
        return stored
    return "fpr5" if "fpr1" in (calibration.get("too_few_reals_for") or []) else "fpr1"


def fit_temperature(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The ``T`` that minimises the validation negative log-likelihood of ``sigmoid(logit(p) / T)``."""
    import torch

    y, s = _arrays(labels, scores)
    if y.size == 0 or np.unique(y).size < 2:
        raise ValueError("temperature scaling needs validation samples of both classes")
    z = torch.as_tensor(logit(s))
    t = torch.as_tensor(y, dtype=torch.float64)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def nll():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z / log_t.exp(), t)
        loss.backward()
        return loss

    opt.step(nll)
    return float(log_t.detach().exp())


def threshold_at_fpr(labels: Sequence[int], scores: Sequence[float], target: float) -> float:
    """The lowest threshold whose FPR on these samples (reals with ``score >= threshold``) is at most ``target``."""
    y, s = _arrays(labels, scores)
    real = np.sort(s[y == 0])
    if real.size == 0:
        raise ValueError("a threshold at a false-positive rate needs real samples")
    k = int(math.floor(target * real.size + 1e-9))  # reals allowed at or above the threshold
    if k >= real.size:
        return float(real[0])
    return float(np.nextafter(real[real.size - k - 1], np.inf))  # just above the highest real that must be below


def threshold_at_eer(labels: Sequence[int], scores: Sequence[float]) -> float:
    y, s = _arrays(labels, scores)
    from sklearn.metrics import roc_curve  # here: scikit-learn takes 1-2 s to import, scoring needs none of it

    fpr, tpr, thr = roc_curve(y, s)
    i = int(np.argmin(np.abs((1 - tpr) - fpr)[1:])) + 1  # the first ROC point is the threshold 'inf'
    return float(min(thr[i], 1.0))


def tpr_at_fpr(labels: Sequence[int], scores: Sequence[float], target: float) -> float | None:
    y, s = _arrays(labels, scores)
    if np.unique(y).size < 2:
        return None
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, s)
    return float(tpr[fpr <= target + 1e-12].max())


def reliability(labels: Sequence[int], scores: Sequence[float], bins: int = 15
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin of predicted P(fake): ``(mean predicted, fraction fake, count)`` (NaN where a bin is empty)."""
    y, s = _arrays(labels, scores)
    which = np.minimum((s * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(which, weights=s, minlength=bins) / count
        frac = np.bincount(which, weights=y.astype(float), minlength=bins) / count
    return conf, frac, count


def expected_calibration_error(labels: Sequence[int], scores: Sequence[float], bins: int = 15) -> float | None:
    y, _ = _arrays(labels, scores)
    if y.size == 0:
        return None
    conf, frac, count = reliability(labels, scores, bins)
    keep = count > 0
    return float(np.sum(count[keep] * np.abs(frac[keep] - conf[keep])) / count.sum())


def operating_points(labels: Sequence[int], scores: Sequence[float]) -> dict[str, float]:
    """The thresholds of :data:`OPERATING_POINTS` on these samples."""
    out = {"eer": threshold_at_eer(labels, scores)}
    out.update({name: threshold_at_fpr(labels, scores, t) for name, t in TARGET_FPR.items()})
    return out
