"""Datasets: ForenSynths-style folders (:mod:`fakescope.data.layouts`) and manifest CSVs
(:mod:`fakescope.data.manifest`), as images or as clips.

A ``track`` other than 0 (a second or third face of a video, written by
``fakescope prepare --faces all``) makes the sample's video id
``<video_id>/face<track>``, so each face is a video of its own for clips and
video-level metrics.

An unreadable image is skipped with a warning and counted (``skipped`` in every
batch), never replaced by another sample.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from fakescope.data.layouts import scan_folder
from fakescope.data.manifest import Sample, read_manifest
from fakescope.data.transforms import Preprocessor, warn_skip
from fakescope.errors import DataError
from fakescope.media.image import load_image
from fakescope.preprocess import PreprocessConfig

def load_samples(path: str, split: str | None = None, max_n: int | None = None, seed: int = 0) -> list[Sample]:
    """Samples of one source; an empty source is an error naming it."""
    p = Path(path)
    samples = read_manifest(p, split) if p.suffix.lower() == ".csv" else scan_folder(p)
    if not samples:
        what = f" (split '{split}')" if split else ""
        raise DataError(f"{path}{what}: the split is empty (no samples)")
    if max_n is not None and len(samples) > max_n:
        rng = random.Random(seed)
        keep = sorted(rng.sample(range(len(samples)), max_n))
        samples = [samples[i] for i in keep]
    return samples


class ImageDataset(Dataset):
    """One item per image: ``{"image": uint8 [3,S,S], "label", "index", "orig_size": (w, h) of the file}``."""

    def __init__(self, samples: list[Sample], preprocessor: Preprocessor, name: str = "") -> None:
        self.samples = samples
        self.pre = preprocessor
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def video_ids(self) -> list[str | None]:
        return [s.video_id for s in self.samples]

    def paths(self) -> list[str]:
        return [s.path for s in self.samples]

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        try:
            img = load_image(s.path)
            image = self.pre(img)
        except Exception as exc:
            warn_skip(s.path, str(exc))
            return {"index": index, "error": f"{s.path}: {exc}"}
        # the file's own size: an image smaller than the model's input was enlarged to fit it
        return {"image": image, "label": s.label, "index": index, "orig_size": img.size}


@dataclass(frozen=True)
class ClipItem:
    video_id: str
    label: int
    frames: tuple[Sample, ...]
    padded: int = 0  # how many repeated frames were appended


class ClipDataset(Dataset):
    """Clips of ``clip_len`` frames, grouped by video id and ordered by frame index.

    Training: one item per video, a random contiguous window each time.
    Evaluation: every non-overlapping window; a short tail (or a video shorter
    than ``clip_len``) is padded by repeating its last frame and marked.
    """

    def __init__(self, samples: list[Sample], preprocessor: Preprocessor, clip_len: int, train: bool,
                 name: str = "") -> None:
        self.pre = preprocessor
        self.clip_len = clip_len
        self.train = train
        self.name = name
        videos: dict[str, list[Sample]] = defaultdict(list)
        for s in samples:
            if s.video_id is None:
                raise DataError(f"{s.path}: clip models need frames grouped by video (a video folder or a "
                                "video_id column); this sample has no video id")
            videos[s.video_id].append(s)
        self.videos = {k: sorted(v, key=lambda s: (s.frame_index if s.frame_index is not None else -1, s.path))
                       for k, v in sorted(videos.items())}
        for vid, frames in self.videos.items():
            if len({f.label for f in frames}) != 1:
                raise DataError(f"video '{vid}': its frames carry different labels")
        self.items: list[ClipItem] = []
        for vid, frames in self.videos.items():
            if train:
                self.items.append(ClipItem(vid, frames[0].label, tuple(frames)))
                continue
            for start in range(0, len(frames), clip_len):
                chunk = frames[start:start + clip_len]
                if start > 0 and len(chunk) < clip_len and len(frames) >= clip_len:
                    # a short tail of a long video: take the last full window instead of padding
                    chunk = frames[-clip_len:]
                pad = clip_len - len(chunk)
                self.items.append(ClipItem(vid, frames[0].label, tuple(chunk), pad))
                if start + clip_len >= len(frames):
                    break

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[int]:
        return [it.label for it in self.items]

    def video_ids(self) -> list[str]:
        return [it.video_id for it in self.items]

    def paths(self) -> list[str]:
        return [it.frames[0].path for it in self.items]

    def __getitem__(self, index: int) -> dict[str, Any]:
        it = self.items[index]
        frames = list(it.frames)
        padded = it.padded
        if self.train:
            if len(frames) >= self.clip_len:
                start = random.randint(0, len(frames) - self.clip_len)
                frames = frames[start:start + self.clip_len]
                padded = 0
            else:
                padded = self.clip_len - len(frames)
        try:
            images = [load_image(f.path) for f in frames]
        except Exception as exc:
            warn_skip(it.video_id, str(exc))
            return {"index": index, "error": f"video {it.video_id}: {exc}"}
        images += [images[-1]] * padded
        return {"image": self.pre.clip(images), "label": it.label, "index": index, "padded": padded}


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the good items; report the unreadable ones under ``skipped``."""
    good = [b for b in batch if "error" not in b]
    skipped = [(b["index"], b["error"]) for b in batch if "error" in b]
    out: dict[str, Any] = {"skipped": skipped}
    if good:
        out["image"] = torch.stack([b["image"] for b in good])
        out["label"] = torch.tensor([b["label"] for b in good], dtype=torch.long)
        out["index"] = torch.tensor([b["index"] for b in good], dtype=torch.long)
        if "padded" in good[0]:
            out["padded"] = torch.tensor([b["padded"] for b in good], dtype=torch.long)
        if "orig_size" in good[0]:
            out["orig_size"] = torch.tensor([b["orig_size"] for b in good], dtype=torch.long)  # [N, 2] (w, h)
    else:
        out["image"] = None
        out["label"] = torch.zeros(0, dtype=torch.long)
        out["index"] = torch.zeros(0, dtype=torch.long)
    return out


def build_dataset(samples: list[Sample], preprocess: PreprocessConfig, modality: str, train: bool, augment=None, perturb=None,
                  name: str = "") -> ImageDataset | ClipDataset:
    """The dataset a model of ``modality`` reads, with its own preprocessing."""
    pre = Preprocessor(preprocess, train=train, augment=augment, perturb=perturb)
    if modality == "clip":
        if not preprocess.clip_len:
            raise DataError(f"dataset '{name}': a clip model needs preprocess.clip_len")
        return ClipDataset(samples, pre, preprocess.clip_len, train=train, name=name)
    return ImageDataset(samples, pre, name=name)
