"""DataLoaders over fakescope's datasets, one recipe for training, validation and evaluation."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from fakescope.data.datasets import collate


def make_loader(dataset, batch_size: int, num_workers: int, *, shuffle: bool = False, sampler=None,
                drop_last: bool = False) -> DataLoader:
    """Unreadable samples are reported in each batch's ``skipped`` (see :func:`~fakescope.data.datasets.collate`)."""
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
        num_workers=num_workers, collate_fn=collate, drop_last=drop_last,
        persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
    )
