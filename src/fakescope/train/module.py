"""The LightningModule that trains any registered detector."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F

from fakescope.config import ExperimentConfig
from fakescope.metrics import compute_metrics
from fakescope.models import create_model
from fakescope.train.optim import build_optimizer, build_scheduler

VAL_KEYS = ("auc", "ap", "acc", "eer", "real_acc", "fake_acc", "video_auc")


def rng_state() -> dict[str, Any]:
    """Python's, numpy's and torch's (CPU and CUDA) generator states, in types ``weights_only`` loading accepts."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state(),
                             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                                       float(gauss))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np

    random.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in state["python"]))
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class DetectorModule(L.LightningModule):
    """Wraps a detector: loss terms, validation metrics, optimizer and schedule.

    Hyperparameters are the experiment config as a plain dict, so Lightning
    checkpoints load with ``weights_only=True``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg = ExperimentConfig.model_validate(config)
        self.model = create_model(self.cfg.model.name, **self.cfg.model.kwargs)
        self.val_history: list[dict[str, float]] = []
        self.skipped: list[str] = []
        self._val_out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # -- training ----------------------------------------------------------
    def _note_skipped(self, batch: dict) -> None:
        if batch.get("skipped"):
            self.skipped.extend(err for _, err in batch["skipped"])

    def training_step(self, batch: dict, batch_idx: int):
        self._note_skipped(batch)
        if batch["image"] is None:
            return None
        x = self.model.normalize(batch["image"])
        out = self.model.compute_loss(x, batch["label"])
        n = batch["label"].numel()
        self.log("train/loss", out.total, prog_bar=True, batch_size=n)
        for name, value in out.terms.items():
            self.log(f"train/{name}", value, batch_size=n)
        return out.total

    # -- validation --------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_out = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._note_skipped(batch)
        if batch["image"] is None:
            return
        logits = self.model(self.model.normalize(batch["image"])).float()
        loss = F.binary_cross_entropy_with_logits(logits, batch["label"].float())
        self.log("val/loss", loss, sync_dist=True, batch_size=batch["label"].numel())
        self._val_out.append((torch.sigmoid(logits).cpu(), batch["label"].cpu(), batch["index"].cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val_out:
            return
        scores = torch.cat([o[0] for o in self._val_out]).tolist()
        labels = torch.cat([o[1] for o in self._val_out]).tolist()
        index = torch.cat([o[2] for o in self._val_out]).tolist()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list = [None] * dist.get_world_size()
            dist.all_gather_object(parts, (scores, labels, index))
            scores, labels, index = [sum((p[i] for p in parts), []) for i in range(3)]
        # a DistributedSampler pads with repeated samples: keep each index once
        seen: dict[int, tuple[float, int]] = {}
        for s, y, i in zip(scores, labels, index):
            seen.setdefault(i, (s, y))
        order = sorted(seen)
        dm = self.trainer.datamodule
        vids = dm.val_dataset.video_ids() if dm is not None else None
        metrics = compute_metrics([seen[i][1] for i in order], [seen[i][0] for i in order],
                                  [vids[i] for i in order] if vids else None, self.cfg.eval.threshold)
        logged = {f"val/{k}": float(metrics[k]) for k in VAL_KEYS if metrics.get(k) is not None}
        logged["val/n"] = float(len(order))  # samples scored once each, across all ranks
        self.log_dict(logged, sync_dist=True, prog_bar=False)
        if not self.trainer.sanity_checking:
            loss = self.trainer.callback_metrics.get("val/loss")
            row = {"epoch": int(self.current_epoch), "step": int(self.global_step), **logged}
            if loss is not None:
                row["val/loss"] = float(loss)
            self.val_history = [r for r in self.val_history if r["epoch"] != row["epoch"]] + [row]
        self._val_out = []

    # -- state kept across resume -------------------------------------------
    # The random number generators are saved with every checkpoint (at the end of an epoch) and restored as the
    # resumed run loads it, before its data loader is made, so that the data order, the augmentations and
    # dropout continue as in a run never interrupted (with trainer.deterministic=true, a resumed run then equals
    # an uninterrupted one).
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["fakescope_val_history"] = self.val_history
        checkpoint["fakescope_rng"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.val_history = list(checkpoint.get("fakescope_val_history", []))
        if checkpoint.get("fakescope_rng") is not None:
            set_rng_state(checkpoint["fakescope_rng"])

    # -- optimisation --------------------------------------------------------
    def configure_optimizers(self):
        optimizer = build_optimizer(self.model, self.cfg.optim)
        total = int(self.trainer.estimated_stepping_batches)
        if not math.isfinite(total) or total <= 0:
            total = 1
        epochs = max(self.trainer.max_epochs or 1, 1)
        scheduler = build_scheduler(optimizer, self.cfg.optim, total, max(total // epochs, 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
