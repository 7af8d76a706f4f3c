"""Operating points and calibration: thresholds chosen on validation scores hold their false-positive rate on
held-out samples of the same distributions; temperature scaling recovers a known distortion; ``fakescope
calibrate`` stores them in the checkpoint and ``detect --operating-point`` uses them and says so."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fakescope.cli import main
from fakescope.metrics import compute_metrics
from fakescope.metrics.calibration import (apply_temperature, expected_calibration_error, fit_temperature,
                                           operating_points, reliability, tpr_at_fpr)
from test_detect import make_checkpoint


def draw(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Known class-conditional densities: real scores ~ Beta(2, 5), fake scores ~ Beta(5, 2)."""
    y = rng.integers(0, 2, n)
    return y, np.where(y == 1, rng.beta(5, 2, n), rng.beta(2, 5, n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thresholds_hold_their_false_positive_rate_on_held_out_samples(seed):
    rng = np.random.default_rng(seed)
    ops = operating_points(*draw(rng, 20_000))  # validation: ~10,000 reals
    y, s = draw(rng, 400_000)  # held out
    fpr = {k: float((s[y == 0] >= ops[k]).mean()) for k in ops}
    # README.md quotes these runs: held-out FPR 0.95-1.04% at fpr1 and 5.06-5.25% at fpr5 over seeds 0-2
    assert 0.00945 <= fpr["fpr1"] < 0.01045 and 0.05055 <= fpr["fpr5"] < 0.05255, fpr
    fnr = float((s[y == 1] < ops["eer"]).mean())
    assert abs(fpr["eer"] - fnr) <= 0.01, (fpr["eer"], fnr)  # the densities are mirror images: EER at 0.5
    assert ops["fpr1"] > ops["fpr5"] > ops["eer"]


def test_a_threshold_never_lets_more_reals_through_on_its_own_data():
    rng = np.random.default_rng(3)
    for n in (7, 99, 100, 101, 1000):
        y = np.r_[np.zeros(n, int), np.ones(5, int)]
        s = np.r_[rng.random(n), np.ones(5)]
        ops = operating_points(y, s)
        assert (s[:n] >= ops["fpr1"]).sum() <= int(0.01 * n) and (s[:n] >= ops["fpr5"]).sum() <= int(0.05 * n)


def test_temperature_scaling_recovers_a_known_distortion():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 50_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)  # calibrated logits z
    over = 1 / (1 + np.exp(-3 * z))  # an over-confident model: logits 3x too large
    t = fit_temperature(y, over)
    assert t == pytest.approx(3.0, rel=0.05)
    before, after = expected_calibration_error(y, over), expected_calibration_error(y, apply_temperature(over, t))
    assert after < 0.02 < 0.1 < before


def test_eval_metrics_read_by_trust_and_safety_teams():
    y = np.r_[np.zeros(100, int), np.ones(100, int)]
    s = np.r_[np.linspace(0, 0.5, 100), np.linspace(0.3, 1.0, 100)]
    m = compute_metrics(y, s)
    assert m["tpr_at_fpr1"] == tpr_at_fpr(y, s, 0.01) and 0 < m["tpr_at_fpr1"] < m["tpr_at_fpr5"] <= 1
    assert m["tpr_at_fpr5"] == pytest.approx(float((s[100:] > s[:100][-6]).mean()), abs=0.011)
    bins: list[list[tuple[int, float]]] = [[] for _ in range(15)]  # ECE again, written out: 15 equal-width bins
    for label, score in zip(y.tolist(), s.tolist()):
        bins[min(int(score * 15), 14)].append((label, score))
    ece = sum(abs(sum(b[0] for b in got) - sum(b[1] for b in got)) for got in bins if got) / len(y)
    assert m["ece"] == pytest.approx(ece, abs=1e-12) and m["ece"] > 0.01


# 12 scored samples, written out; 15 equal-width bins of P(fake): bin k holds [k/15, (k+1)/15), and a score of 1.0
# goes into the last bin. Per non-empty bin (the binary reliability diagram: "accuracy" is the fraction that is
# fake, "confidence" the mean P(fake)):
#   bin  range          scores (label)                      count  fraction fake  mean P(fake)     |gap| * count
#    0   [0.000, 0.067)  0.02 (0) 0.05 (0)                       2      0             0.035           2 * 0.035 = 0.07
#    3   [0.200, 0.267)  0.21 (0) 0.25 (1) 0.23 (0)              3      1/3           0.69/3 = 0.23   |1 - 0.69| = 0.31
#    7   [0.467, 0.533)  0.50 (1) 0.48 (0)                       2      1/2           0.49            2 * 0.01 = 0.02
#   12   [0.800, 0.867)  0.82 (1) 0.85 (0) 0.84 (1)              3      2/3           2.51/3          |2 - 2.51| = 0.51
#   14   [0.933, 1.000]  0.95 (1) 1.00 (1)                       2      1             0.975           2 * 0.025 = 0.05
# ECE = (0.07 + 0.31 + 0.02 + 0.51 + 0.05) / 12 = 0.96 / 12 = 0.08
HAND_TABLE = [(0.02, 0), (0.05, 0), (0.21, 0), (0.25, 1), (0.23, 0), (0.50, 1), (0.48, 0), (0.82, 1), (0.85, 0),
              (0.84, 1), (0.95, 1), (1.00, 1)]
HAND_BINS = {0: (2, 0.0, 0.035), 3: (3, 1 / 3, 0.23), 7: (2, 0.5, 0.49), 12: (3, 2 / 3, 2.51 / 3), 14: (2, 1.0, 0.975)}


def test_ece_and_reliability_bins_match_a_table_computed_by_hand():
    s = [score for score, _ in HAND_TABLE]
    y = [label for _, label in HAND_TABLE]
    conf, frac, count = reliability(y, s)
    assert len(conf) == len(frac) == len(count) == 15
    for k in range(15):
        if k in HAND_BINS:
            n, fake, mean = HAND_BINS[k]
            assert (count[k], frac[k], conf[k]) == (n, pytest.approx(fake, abs=1e-9), pytest.approx(mean, abs=1e-9)), k
        else:  # an empty bin: no count, no fraction, no mean
            assert count[k] == 0 and np.isnan(frac[k]) and np.isnan(conf[k]), k
    assert expected_calibration_error(y, s) == pytest.approx(0.08, abs=1e-9)
    assert compute_metrics(np.array(y), np.array(s))["ece"] == pytest.approx(0.08, abs=1e-9)  # what eval reports
    # perfectly calibrated bins give 0; every sample in the wrong corner gives 1
    assert expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0, abs=1e-9)
    assert expected_calibration_error([1, 0], [0.0, 1.0]) == pytest.approx(1.0, abs=1e-9)


@pytest.fixture(scope="module")
def calibrated(tiny_synth, tmp_path_factory):
    ckpt = make_checkpoint(tmp_path_factory.mktemp("cal") / "model")
    assert main(["calibrate", str(ckpt), "--data", str(tiny_synth / "val"), "--num-workers", "0",
                 "--device", "cpu", "--name", "tiny val"]) == 0
    return ckpt


def test_calibrate_stores_operating_points_with_the_data_that_chose_them(calibrated, tiny_synth):
    cal = json.loads((calibrated / "config.json").read_text())["calibration"]
    assert cal["data"] == "tiny val" and cal["n_real"] > 0 and cal["n_fake"] > 0
    assert cal["n"] == cal["n_real"] + cal["n_fake"] and cal["temperature"] > 0
    assert set(cal["thresholds"]) == {"eer", "fpr1", "fpr5"}
    assert cal["too_few_reals_for"] == (["fpr1"] if cal["n_real"] < 100 else [])


def test_detect_uses_the_operating_point_and_says_which(calibrated, tiny_synth, tmp_path, capsys):
    cal = json.loads((calibrated / "config.json").read_text())["calibration"]
    files = sorted((tiny_synth / "val").rglob("*.png"))[:6]
    out = tmp_path / "r.jsonl"
    assert main(["detect", *map(str, files), "-m", str(calibrated), "--operating-point", "fpr5", "-o", str(out),
                 "--progress", "off"]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    t = cal["temperature"]
    for r in recs:  # the threshold on the calibrated scale, to 4 significant digits, rounded up
        exact = float(apply_temperature(cal["thresholds"]["fpr5"], t))
        assert r["threshold"] >= exact and r["threshold"] == pytest.approx(exact, rel=1e-3)
        assert len(f"{r['threshold']:.10e}".split("e")[0].rstrip("0").replace(".", "")) <= 4
        assert r["operating_point"] == "fpr5" and r["calibrated"] is True
        assert "5% false-positive rate on tiny val" in r["threshold_source"]
        # the label is decided on the number shown as P(fake), the calibrated one
        assert r["score"] == pytest.approx(float(apply_temperature(r["model_score"], t)), rel=1e-5)
        assert r["label"] == ("fake" if r["score"] >= r["threshold"] else "real")
        # and it is the label the model's own score gets at the model-scale threshold (calibration is monotone)
        assert r["label"] == ("fake" if r["model_score"] >= cal["thresholds"]["fpr5"] else "real") or \
            abs(r["model_score"] - cal["thresholds"]["fpr5"]) < 1e-3 * cal["thresholds"]["fpr5"]
    assert main(["detect", str(files[0]), "-m", str(calibrated), "--operating-point", "0.3"]) == 0
    rec = json.loads(capsys.readouterr().out.splitlines()[0])
    assert (rec["threshold"], rec["operating_point"]) == (0.3, "fixed")
    assert "calibrated P(fake)" in rec["threshold_source"]


def test_a_calibrated_checkpoint_defaults_to_its_own_operating_point(calibrated, tiny_synth, capsys):
    cal = json.loads((calibrated / "config.json").read_text())["calibration"]
    f = next((tiny_synth / "val").rglob("*.png"))
    assert main(["detect", str(f), "-m", str(calibrated)]) == 0
    rec = json.loads(capsys.readouterr().out.splitlines()[0])
    point = cal["default_operating_point"]
    assert point == ("fpr5" if cal["n_real"] < 100 else "fpr1")
    assert rec["operating_point"] == point and rec["threshold_source"].startswith("the checkpoint's default")
    assert rec["threshold"] == pytest.approx(float(apply_temperature(cal["thresholds"][point], cal["temperature"])),
                                             rel=1e-3)
    assert main(["detect", str(f), "-m", str(calibrated), "--threshold", "0.5"]) == 0  # an explicit choice wins
    rec = json.loads(capsys.readouterr().out.splitlines()[0])
    assert (rec["operating_point"], rec["threshold"]) == ("fixed", 0.5)


def test_an_uncalibrated_checkpoint_says_how_to_calibrate(tmp_path, tiny_synth, capsys):
    ckpt = make_checkpoint(tmp_path / "plain")
    f = next((tiny_synth / "val").rglob("*.png"))
    assert main(["detect", str(f), "-m", str(ckpt), "--operating-point", "fpr1"]) == 2
    assert "fakescope calibrate" in capsys.readouterr().err
    assert main(["detect", str(f), "-m", str(ckpt), "--operating-point", "fpr2"]) == 2
    assert main(["detect", str(f), "-m", str(ckpt)]) == 0
    rec = json.loads(capsys.readouterr().out.splitlines()[0])
    assert (rec["operating_point"], rec["calibrated"], rec["threshold"]) == ("fixed", False, 0.5)
    assert rec["score"] == rec["model_score"]
