"""Inputs made into jobs (:class:`~fakescope.inference.job.Job`) for :class:`~fakescope.inference.Detector`:
each decoded by its content, its provenance read, and sent down the image path (:mod:`.images`) or the video
path (:mod:`.videos`); in this process, or in DataLoader worker processes that prepare while the model scores."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from torch.utils.data import IterableDataset, get_worker_info

from fakescope.errors import ConfigError
from fakescope.inference.images import prepare_image
from fakescope.inference.inputs import decode_input, describe
from fakescope.inference.job import Job, error_message, new_record
from fakescope.inference.videos import prepare_video
from fakescope.media.provenance import read_provenance


def prepare(detector, x, name: str | None, details: bool, extra: dict | None = None) -> Job:
    """The job of one input; an input that cannot be read or prepared gets a record with its ``error``."""
    path = name or describe(x)
    job = Job(new_record(detector, path), time.perf_counter())
    if extra:
        job.record.update(extra)
    try:
        kind, payload = decode_input(x, path)
        if detector.provenance and isinstance(x, (str, os.PathLike)):
            try:
                job.record["provenance"] = read_provenance(x)
            except Exception as exc:  # metadata that cannot be read never costs the score
                why = f"{type(exc).__name__}: {exc}"
                job.record["provenance"] = {"found": False, "summary": f"not read ({why})", "readers": [],
                                            "warnings": [f"provenance: not read ({why})"]}
        if details:
            job.details = {"input": None, "faces": []}
        if kind == "image":
            prepare_image(detector, job, payload, path)
        else:
            prepare_video(detector, job, payload, path, known=kind == "video")
        job.record["kind"] = "image" if kind == "image" else "video"
    except Exception as exc:  # one bad input never stops the others
        job.record["error"] = error_message(exc, path)
        job.inputs = None
    return job


def prepare_jobs(detector, items: Iterable[tuple[Any, str | None, dict | None]], *, details: bool = False,
                 num_workers: int = 0, collected: list | None = None) -> Iterator[Job]:
    """The jobs of ``(input, name, extra)`` items, in order (see :meth:`Detector.run_items`)."""
    if num_workers < 0:
        raise ConfigError(f"num_workers must be 0 or more, got {num_workers}")
    if num_workers == 0:
        return (prepare(detector, x, name, details, extra) for x, name, extra in items)
    if detector.face_pipeline is not None and str(detector.device).startswith("cuda"):
        raise ConfigError("input workers (num_workers > 0) with a face stage on a GPU: the face detector "
                          "cannot run on the GPU in worker processes; use num_workers 0, or device cpu")
    import multiprocessing

    from torch.utils.data import DataLoader

    loader = DataLoader(_Prepared(detector, items, details, collected), batch_size=None, num_workers=num_workers,
                        prefetch_factor=2, pin_memory=str(detector.device).startswith("cuda"),
                        multiprocessing_context=multiprocessing.get_context("fork"))
    return _unpack(loader, collected)


@dataclass
class _Collected:
    """What the walk of the inputs gathered in worker 0 (files skipped by their name), sent back at its end."""

    items: list


class _Prepared(IterableDataset):
    """Inputs decoded, face-cropped and preprocessed in DataLoader workers: worker ``k`` of ``n`` prepares items
    ``k, k + n, ...``; the loader hands them back in turn, so in input order."""

    def __init__(self, detector, items: Iterable, details: bool, collected: list | None) -> None:
        self.detector, self.items, self.details, self.collected = detector, items, details, collected

    def __iter__(self) -> Iterator[Job | _Collected]:
        info = get_worker_info()
        k, n = (0, 1) if info is None else (info.id, info.num_workers)
        for i, (x, name, extra) in enumerate(self.items):
            if i % n == k:
                yield prepare(self.detector, x, name, self.details, extra)
        if k == 0 and self.collected:  # what the walk gathered on the way, once
            yield _Collected(list(self.collected))


def _unpack(loader, collected: list | None) -> Iterator[Job]:
    for item in loader:
        if isinstance(item, _Collected):
            if collected is not None:
                collected.extend(item.items)
            continue
        yield item
