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
                                           operating_points, tpr_at_fpr)
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
    assert abs(fpr["fpr1"] - 0.01) <= 0.01 and abs(fpr["fpr5"] - 0.05) <= 0.01, fpr
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
    assert 0 <= m["ece"] <= 1


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
