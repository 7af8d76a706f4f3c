"""Units of work of ``fakescope prepare`` (a video, a chunk of images of one folder, the extracted frames of
one video), how they are split between the jobs of a cluster array, and the rows and records they give."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakescope.prepare.adapters import Item
from fakescope.utils.paths import name_bytes

IMAGE_CHUNK = 2000  # images per unit of work (and per record file)


@dataclass(frozen=True)
class Unit:
    key: str
    kind: str  # video | images | frames
    items: tuple[Item, ...]


def make_units(items: list[Item]) -> list[Unit]:
    """Videos one by one; images in chunks per folder; extracted frames grouped by video."""
    units: list[Unit] = []
    images: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
    frames: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
    for it in items:
        if it.kind == "video":
            units.append(Unit(f"video:{it.split}:{it.video_id or it.path}", "video", (it,)))
        elif it.kind == "frame":
            frames[(it.split, it.method, it.video_id or "")].append(it)
        else:
            images[(it.split, it.method, str(Path(it.path).parent))].append(it)
    for (split, method, vid), its in sorted(frames.items()):
        units.append(Unit(f"frames:{split}:{method}:{vid}", "frames", tuple(its)))
    for (split, method, folder), its in sorted(images.items()):
        for i in range(0, len(its), IMAGE_CHUNK):
            units.append(Unit(f"images:{split}:{method}:{folder}:{i // IMAGE_CHUNK}", "images",
                              tuple(its[i:i + IMAGE_CHUNK])))
    return units


def shard_of(key: str, num_shards: int) -> int:
    return int(hashlib.sha1(name_bytes(key)).hexdigest(), 16) % num_shards


def failure(item: Item, reason: str, detail: str) -> dict[str, str]:
    return {"path": item.path, "reason": reason, "detail": detail, "dataset": item.dataset, "method": item.method,
            "split": item.split, "video_id": item.video_id or ""}


def video_entry(item: Item) -> dict[str, Any]:
    """A video's line of ``videos.csv`` before anything is known of it (failed until it succeeds)."""
    return {"video_id": item.video_id, "path": item.path, "label": item.label, "dataset": item.dataset,
            "method": item.method, "split": item.split, "status": "failed", "reason": ""}


def failed_video(item: Item, reason: str, detail: str, video: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of a video that failed (``video``: what is known of it so far)."""
    video = video if video is not None else video_entry(item)
    video["reason"] = reason
    return {"video": video, "failures": [failure(item, reason, detail)], "rows": []}


def row(item: Item, path: str, **extra) -> dict[str, Any]:
    """A manifest row of ``item`` (``extra``: the face's frame index, box, score and track)."""
    out = {"path": path, "label": item.label, "dataset": item.dataset, "method": item.method, "split": item.split,
           "video_id": item.video_id or "", "frame_index": "" if item.frame_index is None else item.frame_index,
           "box": "", "score": "", "track": ""}
    out.update(extra)
    return out

