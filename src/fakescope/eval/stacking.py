"""Fitting a fusion's stacker and judging it on generators it never saw (leave one generator out).

Features are a matrix ``X [n, k]`` (NaN where a value is missing), labels ``y`` (1 = fake) and, for each sample,
the generator its test set is named for. The stacker is scikit-learn's ``LogisticRegression`` (L2, C = 1) on
``X`` with each missing value replaced by its column's mean over the fitting data (so a missing value moves the
log-odds by nothing). Leave-one-generator-out: for each generator G, the stacker is fitted on every other
generator and scored on G, beside each member alone on G; a fusion is only worth its members where it beats the
best of them on generators it did not see (the table says so, generator by generator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from fakescope.errors import DataError


@dataclass
class Fitted:
    coef: list[float]
    intercept: float
    impute: list[float]

    def predict(self, X: np.ndarray) -> np.ndarray:
        Xf = np.where(np.isnan(X), np.asarray(self.impute)[None, :], X)
        z = self.intercept + Xf @ np.asarray(self.coef)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def fit_stacker(X: np.ndarray, y: np.ndarray, *, C: float = 1.0) -> Fitted:
    """Logistic regression on ``X`` (NaN: the column's mean); both classes are needed."""
    from sklearn.linear_model import LogisticRegression

    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise DataError("fitting a fusion needs real and fake samples (only one class was given)")
    with np.errstate(invalid="ignore"):
        impute = np.nanmean(np.where(np.isnan(X).all(axis=0)[None, :], 0.0, X), axis=0)
    Xf = np.where(np.isnan(X), impute[None, :], X)
    lr = LogisticRegression(C=C, max_iter=5000).fit(Xf, y)
    return Fitted([float(c) for c in lr.coef_[0]], float(lr.intercept_[0]), [float(v) for v in impute])


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    ok = ~np.isnan(s)
    if ok.sum() < 2 or len(np.unique(y[ok])) < 2:
        return None
    return float(roc_auc_score(y[ok], s[ok]))


def leave_one_generator_out(X: np.ndarray, y: np.ndarray, generators: Sequence[str], members: Sequence[str],
                            *, C: float = 1.0) -> dict[str, Any]:
    """Per held-out generator: the fusion fitted on the others against each member alone (AUC), and the mean.

    ``members`` name the first ``len(members)`` columns of ``X`` (each member's logit). Needs two or more
    generators, each with real and fake samples."""
    X, y, g = np.asarray(X, dtype=np.float64), np.asarray(y), np.asarray(generators)
    names = list(dict.fromkeys(g.tolist()))
    if len(names) < 2:
        raise DataError(f"leave-one-generator-out needs two or more generators; the data names one ({names[0]}): "
                        "give one test set per generator")
    rows = []
    for held in names:
        test, train = g == held, g != held
        if len(np.unique(y[test])) < 2:
            raise DataError(f"generator {held}: its test set needs real and fake samples")
        fitted = fit_stacker(X[train], y[train], C=C)
        fused = _auc(y[test], fitted.predict(X[test]))
        per = {m: _auc(y[test], X[test, i]) for i, m in enumerate(members)}
        known = {m: a for m, a in per.items() if a is not None}
        best = max(known, key=known.get) if known else None
        rows.append({"held_out": held, "n": int(test.sum()), "fusion_auc": fused, "members_auc": per,
                     "best_member": best, "best_member_auc": known.get(best) if best else None,
                     "gain": None if fused is None or best is None else fused - known[best]})
    mean = {k: float(np.mean([r[k] for r in rows])) if all(r[k] is not None for r in rows) else None
            for k in ("fusion_auc", "best_member_auc")}
    return {"protocol": "leave one generator out", "rows": rows, "mean": mean,
            "fusion_beats_best_member": sum(1 for r in rows if r["gain"] is not None and r["gain"] > 0)}


def logo_markdown(table: dict[str, Any], members: Sequence[str]) -> str:
    """The leave-one-generator-out table as markdown."""
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    head = ["held-out generator", "n", "fusion AUC", *[f"{m} AUC" for m in members], "best member", "gain"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table["rows"]:
        gain = "n/a" if r["gain"] is None else f"{r['gain']:+.4f}"
        lines.append("| " + " | ".join([r["held_out"], str(r["n"]), f(r["fusion_auc"]),
                                         *[f(r["members_auc"][m]) for m in members], str(r["best_member"]), gain])
                     + " |")
    m = table["mean"]
    lines.append(f"| **mean** | | {f(m['fusion_auc'])} | " + " | ".join("" for _ in members)
                 + f" | best-member mean {f(m['best_member_auc'])} | |")
    return "\n".join(lines)
