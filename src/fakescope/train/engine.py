"""``fakescope train``: Lightning Trainer set-up, resume, and export of the selected checkpoint.

Run folder (``output_dir/name``)::

    config.yaml               the resolved config
    checkpoints/best.ckpt     best on the validation metric (Lightning format, resumable)
    checkpoints/last.ckpt     end of the last finished epoch (``--resume`` starts here)
    logs/tensorboard/...      TensorBoard
    logs/csv/version_N/       Lightning CSV logs (a new version per resume)
    history.csv               one row per finished epoch, validation metrics (kept across resumes)
    model/                    the selected checkpoint as a fakescope checkpoint (safetensors)
    summary.json              the selected epoch and its validation metrics

The model's face stage is taken from the training data (:func:`fakescope.train.data.with_data_face_stage`).
Evaluating the test sets after training is the caller's (:func:`fakescope.workflows.run_experiment`, which
``fakescope train`` runs).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from fakescope.config import ExperimentConfig, dump_config
from fakescope.data.layouts import generators_seen
from fakescope.errors import ConfigError
from fakescope.utils import console
from fakescope.utils.console import quiet_lightning, show_progress
from fakescope.utils.fingerprint import weights_sha256

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path | None
    best: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    skipped: list[str] = field(default_factory=list)


def _precision(requested: str, accelerator: str) -> str:
    cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    if requested == "auto":
        if cuda:
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return "32-true"
    if requested == "16" and not cuda:
        raise ConfigError("trainer.precision: fp16 mixed precision needs a CUDA GPU; use bf16 on a CPU")
    return {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}[requested]


def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def epoch_lines(echo: Callable[[str], None], monitor: str):
    """A callback that prints one line per epoch (for runs without a progress bar: logs, CI, pipes)."""
    import time

    from lightning.pytorch.callbacks import Callback

    class EpochLines(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.started, self.losses = time.perf_counter(), []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if loss is not None:
                self.losses.append(float(loss))

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if not trainer.is_global_zero:
                return
            m = trainer.callback_metrics
            parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
            if self.losses:
                parts.append(f"train loss {sum(self.losses) / len(self.losses):.4f}")
            for key in dict.fromkeys((monitor, "val/auc", "val/loss")):
                if key in m:
                    parts.append(f"{key} {float(m[key]):.4f}")
            parts.append(f"{time.perf_counter() - self.started:.1f} s")
            echo(", ".join(parts))

    return EpochLines()


def _latest_of_equal():
    from lightning.pytorch.callbacks import ModelCheckpoint

    class LatestOfEqual(ModelCheckpoint):
        """Keeps the best checkpoint, and a later epoch whose metric equals the best (``monitor_ties: last``)."""

        def check_monitor_top_k(self, trainer, current=None) -> bool:
            if current is None or len(self.best_k_models) < self.save_top_k:
                return super().check_monitor_top_k(trainer, current)
            best = self.best_k_models[self.kth_best_model_path]
            better_or_equal = bool(current >= best if self.mode == "max" else current <= best)
            return trainer.strategy.reduce_boolean_decision(better_or_equal)

    return LatestOfEqual


def build_trainer(cfg: ExperimentConfig, extra_callbacks: list | None = None,
                  echo: Callable[[str], None] | None = None):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    quiet_lightning()
    LatestOfEqual = _latest_of_equal()
    t = cfg.trainer
    run_dir = cfg.run_dir
    monitor, mode = t.selection_metric
    callbacks: list = [
        # best on the validation metric (the checkpoint that gets exported) ...
        (LatestOfEqual if t.monitor_ties == "last" else ModelCheckpoint)(
            dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode=mode, save_top_k=1,
            auto_insert_metric_name=False, enable_version_counter=False),
        # ... and the end of every epoch, for --resume (Lightning's save_last only writes when top-k does)
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                        every_n_epochs=1, auto_insert_metric_name=False, enable_version_counter=False),
        LearningRateMonitor(logging_interval="step"),
    ]
    if t.early_stopping.enabled:
        es = t.early_stopping
        callbacks.append(EarlyStopping(monitor=es.monitor, mode=es.mode, patience=es.patience,
                                       min_delta=es.min_delta, check_finite=True))
    progress = show_progress(t.progress_bar)
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, t.log_every_n_steps)))
    elif echo is not None:
        callbacks.append(epoch_lines(echo, monitor))
    callbacks += list(extra_callbacks or [])
    loggers = [
        TensorBoardLogger(save_dir=str(run_dir / "logs"), name="tensorboard", default_hp_metric=False),
        CSVLogger(save_dir=str(run_dir / "logs"), name="csv"),
    ]
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=_precision(t.precision, t.accelerator), max_epochs=t.max_epochs, max_steps=t.max_steps,
        accumulate_grad_batches=t.accumulate_grad_batches, gradient_clip_val=t.gradient_clip_val,
        deterministic=t.deterministic, benchmark=t.cudnn_benchmark and not t.deterministic,
        log_every_n_steps=t.log_every_n_steps,
        check_val_every_n_epoch=t.check_val_every_n_epoch, limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches, enable_progress_bar=progress, callbacks=callbacks,
        logger=loggers, default_root_dir=str(run_dir), num_sanity_val_steps=0,
        enable_model_summary=console.VERBOSE,
    )


def train(cfg: ExperimentConfig, *, resume: bool = False, overwrite: bool = False,
          extra_callbacks: list | None = None, echo: Callable[[str], None] = print) -> TrainResult:
    """Train ``cfg``; returns where the selected checkpoint was exported."""
    import lightning as L

    from fakescope.zoo.checkpoint import save
    from fakescope.train.data import DetectorDataModule, with_data_face_stage
    from fakescope.train.module import DetectorModule

    run_dir = cfg.run_dir
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise ConfigError(f"--resume: {last} not found (nothing to resume in {run_dir})")
    if resume:
        check_resumable(last)
    if not resume and last.exists() and not overwrite:
        raise ConfigError(f"{run_dir} already holds a training run; pass --resume to continue it, --overwrite to "
                          "start again, or set another name/output_dir")
    if not resume and overwrite and (run_dir / "checkpoints").exists():
        for f in (run_dir / "checkpoints").glob("*.ckpt"):
            f.unlink()

    cfg = with_data_face_stage(cfg, echo)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if _rank() == 0:
        dump_config(cfg, run_dir / "config.yaml")
    module = DetectorModule(cfg.to_dict())
    initial_weights = weights_sha256(module.model)  # what the seed drew here: another CPU's kernels may draw otherwise
    dm = DetectorDataModule(cfg, module.model.preprocess, module.model.modality)
    trainer = build_trainer(cfg, extra_callbacks, echo)
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None, weights_only=True)

    result = TrainResult(run_dir=run_dir, checkpoint=None, epochs=int(trainer.current_epoch),
                         skipped=list(module.skipped))
    if not trainer.is_global_zero:
        return result
    _write_history(run_dir / "history.csv", module.val_history)
    if module.skipped:
        (run_dir / "skipped.txt").write_text("\n".join(module.skipped) + "\n")
        echo(f"warning: {len(module.skipped)} unreadable sample(s) were skipped; listed in {run_dir / 'skipped.txt'}")

    ckpt_cb = trainer.checkpoint_callback
    best_path = Path(ckpt_cb.best_model_path) if ckpt_cb and ckpt_cb.best_model_path else last
    if not best_path.is_file():
        raise ConfigError(f"training finished without a checkpoint in {run_dir / 'checkpoints'}")
    state = torch.load(str(best_path), map_location="cpu", weights_only=True)
    best_epoch = int(state.get("epoch", -1))
    weights = {k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    module.model.load_state_dict(weights, strict=True)
    best_row = next((r for r in module.val_history if r["epoch"] == best_epoch), {})
    monitor, mode = cfg.trainer.selection_metric
    result.best = {"epoch": best_epoch, "monitor": monitor, "mode": mode, **best_row}

    data = cfg.data
    from fakescope.train.data import resolve_sources

    training = {
        "experiment": cfg.name,
        "train_data": [s.path for s in data.train],
        # the generators training saw, where the data say (eval reports seen and unseen test sets apart)
        "generators_seen": sorted({g for s in resolve_sources(data, data.train) for g in generators_seen(s.path)}),
        "val_data": [s.path for s in data.val],
        "epochs_run": int(trainer.current_epoch),
        "selected_epoch": best_epoch,
        "selected_on": f"{monitor} ({mode}) on the validation data",
        "optimizer": cfg.optim.name,
        "lr": cfg.optim.lr,
        "batch_size": data.batch_size,
        "seed": cfg.seed,
        "initial_weights_sha256": initial_weights,
    }
    validation = {k.split("/", 1)[1]: v for k, v in best_row.items() if k.startswith("val/")}
    extra, notes = demonstration_record(cfg)
    result.checkpoint = save(module.model.cpu(), run_dir / "model", training=training, validation=validation,
                             extra=extra, notes=notes)
    # counted from 1, as the log prints epochs ("epoch 8/8"); summary.json and metrics.csv keep Lightning's 0-based index
    echo(f"selected epoch {best_epoch + 1}/{trainer.max_epochs} on {monitor}; checkpoint: {result.checkpoint}")

    (run_dir / "summary.json").write_text(json.dumps(
        {"best": result.best, "checkpoint": str(result.checkpoint), "epochs_run": result.epochs,
         "skipped": len(result.skipped)}, indent=2, default=str))
    return result


DEMONSTRATION = ("a demonstration: trained only on fakescope's built-in synthetic benchmark, whose fakes come from "
                 "small random generators, not a detector for real photographs or videos")


def check_resumable(path: Path) -> None:
    """Raise :class:`CheckpointError` naming ``path`` when it is not a training checkpoint that can be resumed
    from: truncated, not a torch file, holding objects other than tensors and plain data (``weights_only``
    refuses them: nothing in it is executed), or lacking the training state."""
    from fakescope.errors import CheckpointError

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CheckpointError(f"--resume: {path} cannot be read as a training checkpoint: truncated, corrupt or not "
                              f"a torch file, or it holds objects other than tensors and plain data ({first}); "
                              "start again with --overwrite") from None
    needed = ("state_dict", "epoch", "optimizer_states", "loops")
    lacking = [k for k in needed if not isinstance(state, dict) or k not in state]
    if lacking:
        raise CheckpointError(f"--resume: {path} is not a training checkpoint (it lacks {', '.join(lacking)}); "
                              "start again with --overwrite")


def demonstration_record(cfg: ExperimentConfig) -> tuple[dict[str, Any], str]:
    """``intended_use`` of a checkpoint trained only on the built-in synthetic benchmark, and its model card line."""
    from fakescope.data.layouts import synthetic_benchmark
    from fakescope.train.data import resolve_sources

    sources = resolve_sources(cfg.data, cfg.data.train)
    if not sources or not all(synthetic_benchmark(s.path) for s in sources):
        return {}, ""
    return ({"intended_use": {"demonstration": True, "note": DEMONSTRATION}},
            f"**Demonstration model.** This checkpoint is {DEMONSTRATION}.")


def _write_history(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = ["epoch", "step"] + sorted({k for r in rows for k in r} - {"epoch", "step"})
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in sorted(rows, key=lambda r: r["epoch"]):
            w.writerow(r)
