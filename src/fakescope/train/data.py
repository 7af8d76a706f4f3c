"""Building the training and validation datasets and loaders from a config, and the face stage they declare."""

from __future__ import annotations

import os
from collections import Counter

from typing import Callable

import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from fakescope.config import DataConfig, DataSource, ExperimentConfig
from fakescope.data.datasets import Sample, build_dataset, load_samples
from fakescope.data.loaders import make_loader
from fakescope.data.manifest import FaceStage, read_face_stage
from fakescope.errors import ConfigError, DataError
from fakescope.models import model_entry, resolve_model_config

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


def data_face_stage(data: DataConfig) -> FaceStage | None:
    """The face stage that the training and validation sources declare (``None``: none declares one).

    Sources that declare different face stages are an error naming both.
    """
    declared = [st for st in (read_face_stage(src.path) for src in resolve_sources(data, [*data.train, *data.val]))
                if st.declared]
    for other in declared[1:]:
        if other.face != declared[0].face:
            raise DataError(f"the training data disagree on the face stage: {declared[0].source} declares "
                            f"{declared[0].describe()}, {other.source} declares {other.describe()}; prepare them "
                            "with the same face settings")
    return declared[0] if declared else None


def with_data_face_stage(cfg: ExperimentConfig, echo: Callable[[str], None] = print) -> ExperimentConfig:
    """``cfg`` with the model's face stage (``model.preprocess.face``) taken from its training data.

    A face stage set in the config must match the data's. Where the data declare none (folders, manifests
    written by hand), the config's stands; a face-forgery detector is warned about then, because its checkpoint
    will crop faces at inference as the config (or ``fakescope prepare``'s default) says.
    """
    kwargs = cfg.model.kwargs
    given = isinstance(kwargs.get("preprocess"), dict) and "face" in kwargs["preprocess"]
    model_face = resolve_model_config(cfg.model.name, kwargs).preprocess.face
    stage = data_face_stage(cfg.data)
    if stage is None:
        if not given and model_entry(cfg.model.name).cls.input_domain == "face":
            echo(f"warning: the training data declare no face stage (folders, or manifests not written by fakescope "
                 f"prepare); the checkpoint of this face-forgery detector will crop faces as fakescope prepare does by "
                 f"default ({model_face.describe() if model_face else 'none'}). Set model.preprocess.face to the "
                 "crop your data were made with (null: whole images).")
        return cfg
    if given and model_face != stage.face:
        what = model_face.describe() if model_face else "none (whole images)"
        raise ConfigError(f"model.preprocess.face in the config ({what}) differs from the training data's "
                          f"({stage.source}: {stage.describe()}); remove it to take the data's")
    pre = resolve_model_config(cfg.model.name, kwargs).preprocess.model_copy(update={"face": stage.face})
    new = cfg.to_dict()
    new["model"]["preprocess"] = pre.model_dump(mode="json")
    return ExperimentConfig.model_validate(new)


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
