"""One meaning of score, threshold and label, checked on the quickstart's own model: ``run_quickstart`` (the
packaged quickstart config: NPR, 64 px centre crop; on a smaller benchmark, two epochs) trains it, calibrates it on
its validation data and evaluates it; then ``fakescope detect`` runs it at its 1%-FPR operating point. Every record's
label must follow from the P(fake) it shows and the threshold beside it, and say what part of the picture the model
scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakescope.cli import main
from fakescope.metrics.calibration import apply_temperature


@pytest.fixture(scope="module")
def quickstart_model(tmp_path_factory):
    from fakescope.config import load_config
    from fakescope.synth import SynthConfig, generate
    from fakescope.workflows import run_experiment

    root = tmp_path_factory.mktemp("qs")
    synth = SynthConfig(out=str(root / "synth"), size=32, train_per_class=64, val_per_class=100,
                        test_per_class=16, videos_per_class={"train": 0, "val": 0, "test": 0})
    generate(synth, log=lambda m: None)
    cfg = load_config("quickstart", [f"data.root={root / 'synth'}", f"output_dir={root / 'runs'}",
                                     "trainer.max_epochs=2", "data.num_workers=0", "trainer.progress_bar=false"])
    log: list[str] = []
    result, _ = run_experiment(cfg, evaluate_after=False, echo=log.append)  # trains, then calibrates on data.val
    ckpt = result.checkpoint
    return ckpt, root / "synth", json.loads((ckpt / "config.json").read_text())["calibration"], log


def detect(args, out: Path) -> list[dict]:
    assert main(["detect", *map(str, args), "-o", str(out), "--progress", "off"]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_epochs_are_counted_the_way_the_log_prints_them(quickstart_model):
    log = quickstart_model[3]
    printed = [line.split(",")[0] for line in log if line.startswith("epoch ")]
    assert printed == ["epoch 1/2", "epoch 2/2"]
    (selected,) = [line for line in log if line.startswith("selected epoch ")]
    assert selected.split()[2] in ("1/2", "2/2")


def test_labels_follow_the_probability_shown_at_fpr1(quickstart_model, tmp_path):
    ckpt, synth, cal, _ = quickstart_model
    recs = detect([synth / "val", synth / "test", "-m", ckpt, "--operating-point", "fpr1"], tmp_path / "r.jsonl")
    assert len(recs) == 2 * 100 + 5 * 2 * 16 and all(r["error"] is None for r in recs)
    exact = float(apply_temperature(cal["thresholds"]["fpr1"], cal["temperature"]))
    for r in recs:
        assert r["label"] == ("fake" if r["score"] >= r["threshold"] else "real"), r
        assert r["calibrated"] is True and r["operating_point"] == "fpr1"
        assert r["score"] == pytest.approx(float(apply_temperature(r["model_score"], cal["temperature"])), rel=1e-4)
        assert float(f"{r['threshold']:.4g}") == r["threshold"] and exact <= r["threshold"] <= exact * 1.001
        assert r["region"]["text"] == "the whole 32 x 32, resized to 64 x 64", r
        assert not r.get("warnings"), r
    val_reals = [r for r in recs if "/val/" in r["path"] and r["label"] == "real" and "0_real" in r["path"]]
    assert len(val_reals) >= 99  # at most 1% of the 100 validation reals flagged, as the operating point promises


def test_both_labels_at_the_equal_error_rate_and_the_default_point(quickstart_model, tmp_path, capsys):
    ckpt, synth, cal, _ = quickstart_model
    recs = detect([synth / "val", "-m", ckpt, "--operating-point", "eer"], tmp_path / "e.jsonl")
    assert {r["label"] for r in recs} == {"real", "fake"}  # the EER threshold is a validation score: both sides
    assert all(r["label"] == ("fake" if r["score"] >= r["threshold"] else "real") for r in recs)
    assert cal["default_operating_point"] == "fpr1"  # 100 validation reals: enough for a 1% estimate
    f = next((synth / "val").rglob("*.png"))
    assert main(["detect", str(f), "-m", str(ckpt)]) == 0
    rec = json.loads(capsys.readouterr().out.splitlines()[0])
    assert rec["operating_point"] == "fpr1" and rec["threshold_source"].startswith("the checkpoint's default")


def test_the_record_says_which_region_was_scored_and_warns_when_small(quickstart_model, tmp_path):
    ckpt = quickstart_model[0]
    rng = np.random.default_rng(0)
    big = tmp_path / "big.png"
    Image.fromarray(rng.integers(0, 256, (600, 512, 3), dtype=np.uint8)).save(big)
    (rec,) = detect([big, "-m", ckpt, "--explain", tmp_path / "x"], tmp_path / "b.jsonl")
    assert rec["region"]["text"] == "centre 64 x 64 of 512 x 600" and rec["region"]["box"] == [224, 268, 288, 332]
    assert rec["region"]["fraction"] == pytest.approx(64 * 64 / (512 * 600), abs=1e-4)
    assert len(rec["warnings"]) == 1 and "1.3% of the image" in rec["warnings"][0]
    cam = Image.open(rec["explanation"][0])  # the heatmap over the whole photo, not over the 64 px crop alone
    assert cam.size == (512, 600)
    px = np.asarray(cam.convert("RGB")).astype(int)
    assert (px[268, 224:288] >= 250).all() and (px[300, 224] >= 250).all()  # the scored region outlined in white
    photo = np.asarray(Image.open(big).convert("RGB")).astype(int)
    outside = np.abs(px[:200] - photo[:200] * 0.55).max()  # the rest is the photo, dimmed: it was not scored
    assert outside <= 1
