"""``fakescope calibrate``: temperature scaling and operating points fitted on validation data, stored in the
checkpoint (``config.json``, section ``calibration``) for ``detect --operating-point`` and the service.

What is stored: the temperature ``T`` (``calibrated = sigmoid(logit(score) / T)``), the thresholds at the equal
error rate and at 1% and 5% false-positive rate on the validation data (on the model's own score scale: the
calibration is monotone, so the same samples fall on each side; detect and serve show them on the calibrated
scale), the operating point used when none is asked for, the data's name and size per class, and the expected
calibration error before and after (:mod:`fakescope.metrics.calibration`).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fakescope.config import DataSource
from fakescope.errors import ConfigError, DataError
from fakescope.eval.evaluate import _as_sources, pick_device, score_source
from fakescope.metrics.calibration import (OPERATING_POINTS, TARGET_FPR, apply_temperature,
                                           default_operating_point, expected_calibration_error, fit_temperature,
                                           operating_points, shown_threshold)


def fit_calibration(labels: Sequence[int], scores: Sequence[float], data: str,
                    default_point: str | None = None) -> dict[str, Any]:
    """The ``calibration`` section for these validation scores (both classes needed). ``default_point``: the
    operating point detect and serve use when given none (default: ``fpr1``, ``fpr5`` under 100 reals)."""
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=np.float64)
    n_real, n_fake = int((y == 0).sum()), int((y == 1).sum())
    if not n_real or not n_fake:
        raise DataError(f"{data}: calibration needs real and fake validation samples (has {n_real} real, "
                        f"{n_fake} fake)")
    t = fit_temperature(y, s)
    small = [name for name, target in TARGET_FPR.items() if target * n_real < 1]
    if default_point is not None and default_point not in OPERATING_POINTS:
        raise ConfigError(f"default operating point '{default_point}': choose {', '.join(OPERATING_POINTS)}")
    cal = {
        "temperature": t,
        "thresholds": operating_points(y, s),
        "data": data, "n": int(y.size), "n_real": n_real, "n_fake": n_fake,
        "ece_before": expected_calibration_error(y, s),
        "ece_after": expected_calibration_error(y, apply_temperature(s, t)),
        "fitted": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        # with fewer than 100 reals, the 1%-FPR threshold lets no validation real through: it is only an estimate
        "too_few_reals_for": small,
    }
    cal["default_operating_point"] = default_point or default_operating_point(cal)
    return cal


def calibrate_checkpoint(checkpoint: str | Path, sources: Sequence[DataSource | str], *, batch_size: int = 64,
                         num_workers: int = 2, device: str | None = None, name: str | None = None,
                         default_point: str | None = None, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Score ``sources`` (validation data) with the checkpoint, fit, and write the section into its config."""
    from fakescope.zoo.checkpoint import CONFIG, load, read_config, resolve

    folder = resolve(checkpoint)
    model = load(folder, device=str(pick_device(device)))
    srcs = _as_sources(sources)
    if not srcs:
        raise DataError("no validation data given")
    labels, scores = [], []
    for src in srcs:
        sc = score_source(model, src, batch_size=batch_size, num_workers=num_workers)
        labels.append(sc.labels)
        scores.append(sc.scores)
        if sc.skipped:
            echo(f"  warning: {src.name}: {len(sc.skipped)} unreadable sample(s) skipped")
    data = name or ", ".join(s.name or s.path for s in srcs)
    cal = fit_calibration(np.concatenate(labels), np.concatenate(scores), data, default_point)
    config = read_config(folder)
    config["calibration"] = cal
    (folder / CONFIG).write_text(json.dumps(config, indent=2, default=str))
    thr = ", ".join(f"{k} {shown_threshold(v, cal['temperature']):.4g}" for k, v in cal["thresholds"].items())
    echo(f"calibrated {folder} on {data} ({cal['n_real']} real, {cal['n_fake']} fake): temperature "
         f"{cal['temperature']:.3f}, ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}; thresholds on the "
         f"calibrated P(fake): {thr}; default operating point {cal['default_operating_point']}")
    if cal["too_few_reals_for"]:
        echo(f"  note: under {int(1 / min(TARGET_FPR.values()))} real samples: "
             f"{', '.join(cal['too_few_reals_for'])} is only an estimate")
    return cal
