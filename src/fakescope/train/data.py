"""Building datasets and loaders from a config, for training and for evaluation."""

from __future__ import annotations

import os
from collections import Counter

import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from fakescope.config import DataConfig, DataSource, ExperimentConfig
from fakescope.data.datasets import Sample, build_dataset, collate, load_samples
from fakescope.errors import DataError

try:  # lightning is a core dependency, but keep this module importable without it
    import lightning as L

    _Base = L.LightningDataModule
except ImportError:  # pragma: no cover
    _Base = object  # type: ignore[assignment,misc]


def resolve_sources(data: DataConfig, sources: list[DataSource]) -> list[DataSource]:
    out: list[DataSource] = []
    for s in sources:
        out.extend(data.resolve(s))
    return out


def gather_samples(data: DataConfig, sources: list[DataSource], seed: int = 0) -> list[Sample]:
    samples: list[Sample] = []
    for src in resolve_sources(data, sources):
        samples.extend(load_samples(src.path, src.split, data.max_per_source, seed))
    return samples


def class_counts(samples: list[Sample]) -> dict[int, int]:
    c = Counter(s.label for s in samples)
    return {0: c.get(0, 0), 1: c.get(1, 0)}


def make_loader(dataset, batch_size: int, num_workers: int, *, shuffle: bool = False, sampler=None,
                drop_last: bool = False) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
        num_workers=num_workers, collate_fn=collate, drop_last=drop_last,
        persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
    )


class DetectorDataModule(_Base):
    """Train and validation loaders for one experiment (the test sets are evaluated separately)."""

    def __init__(self, cfg: ExperimentConfig, preprocess, modality: str) -> None:
        super().__init__()
        self.cfg = cfg
        self.preprocess = preprocess
        self.modality = modality
        self.train_dataset = None
        self.val_dataset = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        d = self.cfg.data
        if not d.train:
            raise DataError("data.train is empty: name at least one training folder or manifest")
        if not d.val:
            raise DataError("data.val is empty: a validation set is needed to select the checkpoint "
                            "(the test set is never used for that)")
        train = gather_samples(d, d.train, self.cfg.seed)
        val = gather_samples(d, d.val, self.cfg.seed)
        _check_no_overlap(d)
        counts = class_counts(val)
        monitor = self.cfg.trainer.selection_metric[0]
        if any(m in monitor for m in ("auc", "ap", "eer")) and min(counts.values()) == 0:
            raise DataError(f"validation data has only one class ({counts[0]} real, {counts[1]} fake): "
                            f"'{monitor}' is undefined; add both classes or monitor val/acc or val/loss")
        if min(class_counts(train).values()) == 0:
            c = class_counts(train)
            raise DataError(f"training data has only one class ({c[0]} real, {c[1]} fake)")
        self.train_dataset = build_dataset(train, self.preprocess, self.modality, train=True, augment=d.augment,
                                           name="train")
        self.val_dataset = build_dataset(val, self.preprocess, self.modality, train=False, name="val")

    def train_dataloader(self) -> DataLoader:
        d = self.cfg.data
        ds = self.train_dataset
        sampler = None
        if d.balance == "classes":
            labels = ds.labels
            counts = Counter(labels)
            weights = torch.tensor([1.0 / counts[y] for y in labels], dtype=torch.double)
            sampler = WeightedRandomSampler(weights, num_samples=len(labels), replacement=True)
        return make_loader(ds, d.batch_size, d.num_workers, shuffle=True, sampler=sampler,
                           drop_last=len(ds) > d.batch_size)

    def val_dataloader(self) -> DataLoader:
        d = self.cfg.data
        return make_loader(self.val_dataset, d.eval_batch_size or d.batch_size, d.num_workers)


def _check_no_overlap(d: DataConfig) -> None:
    """Validation must not be a test set (the checkpoint is selected on it)."""
    val = {os.path.realpath(s.path) for s in resolve_sources(d, d.val)}
    test = {os.path.realpath(s.path) for s in resolve_sources(d, d.test)} if d.test else set()
    both = sorted(val & test)
    if both:
        raise DataError(f"data.val and data.test share {', '.join(both)}: select checkpoints on validation "
                        "data that is not a test set")
