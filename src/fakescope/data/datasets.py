"""Datasets: ForenSynths-style folders and manifest CSVs, as images or as clips.

Folder layout (ForenSynths / UniversalFakeDetect, and what ``fakescope synth`` writes)::

    root/[any/sub/folders/]0_real/*.png      label 0
    root/[any/sub/folders/]1_fake/*.png      label 1
    root/.../0_real/<video>/<frame>.png      frames of one video (video id = its folder)

Manifest CSV (what data preparation writes; paths relative to the CSV)::

    path,label[,dataset,method,split,video_id,frame_index,box,score,track,...]

A ``track`` other than 0 (a second or third face of a video, written by
``fakescope prepare --faces all``) makes the sample's video id
``<video_id>/face<track>``, so each face is a video of its own for clips and
video-level metrics.

An unreadable image is skipped with a warning and counted (``skipped`` in every
batch), never replaced by another sample.
"""

from __future__ import annotations

import csv
import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import Dataset

from fakescope.errors import DataError
from fakescope.data.transforms import IMAGE_EXTENSIONS, Preprocessor, is_image_file, load_image, warn_skip

LABEL_DIRS = {"0_real": 0, "1_fake": 1}
MANIFEST_REQUIRED = ("path", "label")
MANIFEST_COLUMNS = ("path", "label", "dataset", "method", "split", "video_id", "frame_index",
                    "box", "score", "track")


@dataclass(frozen=True)
class Sample:
    path: str
    label: int
    video_id: str | None = None
    frame_index: int | None = None
    method: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


_DIGITS = re.compile(r"(\d+)(?!.*\d)")


def _frame_index(name: str) -> int | None:
    m = _DIGITS.search(Path(name).stem)
    return int(m.group(1)) if m else None


def scan_folder(root: str | Path) -> list[Sample]:
    """Every image under the ``0_real``/``1_fake`` folders of ``root``, in sorted order."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: data path not found")
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder in ForenSynths layout (or a manifest .csv)")
    label_dirs: list[tuple[Path, int]] = []
    if root.name in LABEL_DIRS:
        label_dirs.append((root, LABEL_DIRS[root.name]))
    for dirpath, dirnames, _ in os.walk(root, followlinks=True):
        dirnames.sort()
        for d in list(dirnames):
            if d in LABEL_DIRS:
                label_dirs.append((Path(dirpath) / d, LABEL_DIRS[d]))
                dirnames.remove(d)  # do not look for label folders inside label folders
    if not label_dirs:
        raise DataError(
            f"{root}: no 0_real/ or 1_fake/ folder found; expected ForenSynths layout "
            "(root/[subfolders/]0_real/*.png and root/[subfolders/]1_fake/*.png) or a manifest .csv"
        )
    samples: list[Sample] = []
    for label_dir, label in label_dirs:
        method = str(label_dir.parent.relative_to(root)) if label_dir != root else ""
        method = "" if method == "." else method
        found = 0
        for dirpath, dirnames, filenames in os.walk(label_dir, followlinks=True):
            dirnames.sort()
            here = Path(dirpath)
            in_video = here != label_dir
            video_id = str(here.relative_to(root)) if in_video else None
            for name in sorted(filenames):
                if not is_image_file(name):
                    continue
                found += 1
                samples.append(Sample(str(here / name), label, video_id,
                                      _frame_index(name) if in_video else None, method))
        if found == 0:
            raise DataError(f"{label_dir}: label folder has no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return samples


def csv_rows(path: str | Path, required: Sequence[str], what: str = "CSV") -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a CSV file with a header; missing required columns are an error."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        missing = [c for c in required if c not in cols]
        if missing:
            raise DataError(f"{path}: {what} lacks the column(s) {', '.join(missing)} (has: {', '.join(cols)})")
        yield from enumerate(reader, start=2)


def read_manifest(path: str | Path, split: str | None = None) -> list[Sample]:
    """Rows of a manifest CSV (paths relative to its folder), optionally one split only."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    base = path.parent
    samples: list[Sample] = []
    for lineno, row in csv_rows(path, MANIFEST_REQUIRED, what="manifest"):
        if split is not None and row.get("split", "") != split:
            continue
        try:
            label = int(row["label"])
            if label not in (0, 1):
                raise ValueError
        except (TypeError, ValueError):
            raise DataError(f"{path}, line {lineno}: label must be 0 (real) or 1 (fake), "
                            f"got {row['label']!r}") from None
        p = row["path"]
        if not p:
            raise DataError(f"{path}, line {lineno}: empty path")
        fi = row.get("frame_index") or None
        try:
            fi = int(fi) if fi not in (None, "") else None
        except ValueError:
            raise DataError(f"{path}, line {lineno}: frame_index must be an integer, got {fi!r}") from None
        video_id = row.get("video_id") or None
        track = (row.get("track") or "").strip()
        if video_id and track not in ("", "0"):
            video_id = f"{video_id}/face{track}"
        extra = {k: v for k, v in row.items() if k not in ("path", "label", "video_id", "frame_index", "method")}
        samples.append(Sample(str(base / p) if not os.path.isabs(p) else p, label, video_id, fi,
                              row.get("method", "") or "", extra))
    return samples


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


def build_dataset(samples: list[Sample], preprocess, modality: str, train: bool, augment=None, perturb=None,
                  name: str = "") -> ImageDataset | ClipDataset:
    """The dataset a model of ``modality`` reads, with its own preprocessing."""
    pre = Preprocessor(preprocess, train=train, augment=augment, perturb=perturb)
    if modality == "clip":
        if not preprocess.clip_len:
            raise DataError(f"dataset '{name}': a clip model needs preprocess.clip_len")
        return ClipDataset(samples, pre, preprocess.clip_len, train=train, name=name)
    return ImageDataset(samples, pre, name=name)
