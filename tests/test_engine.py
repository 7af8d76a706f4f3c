"""The training engine on the tiny synthetic benchmark (a few seconds per run)."""

from __future__ import annotations

import csv
import json
import math
import warnings

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from conftest import tiny_experiment, write_images
from fakescope.errors import ConfigError, DataError
from fakescope.train.engine import train
from fakescope.workflows import run_experiment
from fakescope.train.optim import lr_factor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def quiet(msg: str) -> None:
    pass


def history(run_dir) -> list[dict]:
    with open(run_dir / "history.csv") as fh:
        return list(csv.DictReader(fh))


class Crash(Callback):
    """Simulates an interruption at the start of a given epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


class CountBatches(Callback):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.epochs.append(trainer.current_epoch)


def test_train_writes_checkpoints_logs_and_report(tmp_path, tiny_synth):
    cfg = tiny_experiment(tmp_path, tiny_synth)
    result, evaluation = run_experiment(cfg, echo=quiet)
    run = result.run_dir
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "config.yaml").is_file() and (run / "summary.json").is_file()
    assert list((run / "logs" / "tensorboard").rglob("events.out.tfevents.*")), "no TensorBoard events"
    assert list((run / "logs" / "csv").rglob("metrics.csv")), "no CSV log"
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(0.0 <= float(r["val/auc"]) <= 1.0 for r in rows)
    # the exported checkpoint is the best epoch on the validation metric
    best = max(rows, key=lambda r: float(r["val/auc"]))
    meta = json.loads((result.checkpoint / "config.json").read_text())
    assert meta["training"]["selected_epoch"] == int(best["epoch"])
    assert meta["validation"]["auc"] == pytest.approx(float(best["val/auc"]))
    assert "validation" in meta["training"]["selected_on"]
    # operating points fitted on the validation data after training (fakescope calibrate's section)
    cal = meta["calibration"]
    assert cal["data"] == "validation data (data.val)" and cal["n"] == 48  # tiny_synth: 24 val images a class
    assert set(cal["thresholds"]) == {"eer", "fpr1", "fpr5"}
    assert (run / "eval" / "plots" / "reliability.png").is_file()
    # trained only on the built-in synthetic benchmark: a demonstration, and it says so
    assert meta["intended_use"]["demonstration"] is True
    assert "Demonstration model" in (result.checkpoint / "README.md").read_text()
    from fakescope.inference import Detector

    det = Detector.from_pretrained(result.checkpoint, device="cpu")
    assert det.predict(np.zeros((32, 32, 3), np.uint8))["demonstration"] is True
    # the test sets were evaluated after training, one row per generator
    ev = json.loads((run / "eval" / "metrics.json").read_text())
    assert set(ev["sets"]) == {"tconv", "nearest", "bilinear", "pixelshuffle", "diffusion"}
    assert ev["sets"]["tconv"]["n"] == 32
    assert evaluation["mean"]["auc"] == pytest.approx(ev["mean"]["auc"])
    assert json.loads((run / "summary.json").read_text())["test_mean"] == ev["mean"]


def test_resume_after_interruption_keeps_finished_epochs(tmp_path, tiny_synth):
    cfg = tiny_experiment(tmp_path, tiny_synth, "trainer.max_epochs=3")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, extra_callbacks=[Crash(epoch=2)], echo=quiet)
    last = torch.load(tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1 and "optimizer_states" in last and "lr_schedulers" in last
    # a second plain start refuses to overwrite the run
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, echo=quiet)
    counter = CountBatches()
    result = train(cfg, resume=True, extra_callbacks=[counter], echo=quiet)
    assert set(counter.epochs) == {2}, "only the unfinished epoch is trained again"
    rows = history(result.run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and steps[2] == 3 * steps[0]  # the step counter continued
    assert result.checkpoint is not None


def test_resume_without_a_run_is_an_error(tmp_path, tiny_synth):
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(tiny_experiment(tmp_path, tiny_synth), resume=True, echo=quiet)


def test_early_stopping_with_patience(tmp_path, tiny_synth):
    # an improvement of at least 2 in AUC is impossible: stop after 1 + patience epochs
    cfg = tiny_experiment(tmp_path, tiny_synth, "trainer.max_epochs=10", "trainer.early_stopping.patience=1",
                          "trainer.early_stopping.min_delta=2.0", "eval.after_training=false")
    result = train(cfg, echo=quiet)
    assert len(history(result.run_dir)) == 2


def test_gradient_accumulation_halves_optimizer_steps(tmp_path, tiny_synth):
    one = train(tiny_experiment(tmp_path / "a", tiny_synth, "trainer.max_epochs=1", "eval.after_training=false"),
                echo=quiet)
    two = train(tiny_experiment(tmp_path / "b", tiny_synth, "trainer.max_epochs=1", "eval.after_training=false",
                                "trainer.accumulate_grad_batches=2"), echo=quiet)
    s1, s2 = int(history(one.run_dir)[0]["step"]), int(history(two.run_dir)[0]["step"])
    assert s1 == 6 and s2 == 3  # 96 images / batch 16 = 6 batches


def test_bf16_mixed_precision_on_cpu(tmp_path, tiny_synth):
    result = train(tiny_experiment(tmp_path, tiny_synth, "trainer.precision=bf16", "trainer.max_epochs=1",
                                   "eval.after_training=false"), echo=quiet)
    rows = history(result.run_dir)
    assert math.isfinite(float(rows[0]["val/loss"]))


def test_fp16_without_a_gpu_is_a_clear_error(tmp_path, tiny_synth):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="bf16"):
        train(tiny_experiment(tmp_path, tiny_synth, "trainer.precision=16"), echo=quiet)


def test_deterministic_runs_are_identical(tmp_path, tiny_synth):
    from safetensors.torch import load_file

    outs, drawn = [], []
    for sub in ("a", "b"):
        r = train(tiny_experiment(tmp_path / sub, tiny_synth, "trainer.deterministic=true", "trainer.max_epochs=1",
                                  "eval.after_training=false", "seed=3"), echo=quiet)
        outs.append(load_file(str(r.checkpoint / "model.safetensors")))
        drawn.append(json.loads((r.checkpoint / "config.json").read_text())["training"]["initial_weights_sha256"])
    assert outs[0].keys() == outs[1].keys()
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])
    assert drawn[0] == drawn[1]


def test_the_checkpoint_records_the_weights_its_seed_drew(tmp_path, tiny_synth):
    """The fingerprint of the initial weights (which another CPU's kernels may draw otherwise from the same seed) is
    that of the model the seed builds, not of the trained one, and another seed draws others."""
    import lightning as L
    from safetensors.torch import load_file

    from fakescope.train.module import DetectorModule
    from fakescope.utils.fingerprint import weights_sha256

    recorded, cfgs = {}, {}
    for seed in (3, 4):
        cfgs[seed] = tiny_experiment(tmp_path / str(seed), tiny_synth, "trainer.max_epochs=1",
                                     "eval.after_training=false", f"seed={seed}")
        r = train(cfgs[seed], echo=quiet)
        recorded[seed] = json.loads((r.checkpoint / "config.json").read_text())["training"]["initial_weights_sha256"]
        assert recorded[seed] != weights_sha256(load_file(str(r.checkpoint / "model.safetensors")))  # trained
    L.seed_everything(3, workers=True, verbose=False)
    assert recorded[3] == weights_sha256(DetectorModule(cfgs[3].to_dict()).model)
    assert recorded[3] != recorded[4] and len(recorded[3]) == 64


def test_data_errors_name_the_problem(tmp_path, tiny_synth):
    with pytest.raises(DataError, match="data.val is empty"):
        train(tiny_experiment(tmp_path, tiny_synth, "data.val=[]"), echo=quiet)
    with pytest.raises(DataError, match="share"):
        train(tiny_experiment(tmp_path, tiny_synth, "data.val=test/tconv"), echo=quiet)
    with pytest.raises(DataError, match="not found"):
        train(tiny_experiment(tmp_path, tiny_synth, "data.train=nowhere"), echo=quiet)
    write_images(tmp_path / "onlyreal" / "0_real", 4)
    with pytest.raises(DataError, match="only one class"):
        train(tiny_experiment(tmp_path, tiny_synth, f"data.val={tmp_path / 'onlyreal'}"), echo=quiet)


def test_unreadable_training_image_is_skipped_and_reported(tmp_path):
    root = tmp_path / "d"
    for split in ("train", "val"):
        write_images(root / split / "0_real", 8, kind="smooth", seed=1)
        write_images(root / split / "1_fake", 8, kind="noise", seed=2)
    (root / "train" / "0_real" / "0003.png").write_bytes(b"\x89PNG broken")
    cfg = tiny_experiment(tmp_path, root, "data.test=[]", "trainer.max_epochs=1")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        result = train(cfg, echo=quiet)
    skipped = (result.run_dir / "skipped.txt").read_text()
    assert "0003.png" in skipped
    assert json.loads((result.run_dir / "summary.json").read_text())["skipped"] >= 1


def test_lr_schedule_warmup_then_cosine():
    f = lambda s: lr_factor(s, total_steps=10, warmup_steps=2, schedule="cosine", min_ratio=0.1)  # noqa: E731
    assert f(0) == pytest.approx(0.5) and f(1) == pytest.approx(1.0)
    assert f(2) == pytest.approx(1.0)
    assert f(6) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert f(10) == pytest.approx(0.1) and f(50) == pytest.approx(0.1)
    values = [f(s) for s in range(2, 11)]
    assert values == sorted(values, reverse=True)
    assert lr_factor(5, total_steps=10, warmup_steps=0, schedule="constant", min_ratio=0.0) == 1.0


def test_param_lr_groups(tmp_path):
    from fakescope.config import OptimConfig
    from fakescope.models import create_model
    from fakescope.train.optim import build_optimizer

    m = create_model("simple_cnn_tiny")
    opt = build_optimizer(m, OptimConfig(lr=1e-4, param_lr={"head.": 1e-2}))
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == [1e-4, 1e-2]
    head = next(g for g in opt.param_groups if g["lr"] == 1e-2)
    assert sum(p.numel() for p in head["params"]) == sum(p.numel() for p in m.head.parameters())
    with pytest.raises(ConfigError, match="no trainable parameter"):
        build_optimizer(m, OptimConfig(param_lr={"nothing.": 1.0}))


@pytest.mark.parametrize("ties, expected", [("first", 0), ("last", 2)])
def test_equal_selection_metrics_keep_the_first_or_take_the_latest_epoch(tmp_path, tiny_synth, ties, expected):
    # val/n (the samples scored) is the same every epoch: a tie at every epoch
    cfg = tiny_experiment(tmp_path, tiny_synth, "trainer.max_epochs=3", "trainer.monitor=val/n",
                          "trainer.monitor_mode=max", "trainer.early_stopping.enabled=false",
                          f"trainer.monitor_ties={ties}")
    result = train(cfg, echo=quiet)
    assert result.best["epoch"] == expected
    assert json.loads((result.checkpoint / "config.json").read_text())["training"]["selected_epoch"] == expected
