"""Adapters of data laid out by hand: a folder of real/fake sub-folders, a CSV list, DeepfakeBench's JSON."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterator

from fakescope.data.layouts import LABEL_ALIASES, frame_number, label_folders
from fakescope.errors import DataError
from fakescope.media.video import is_video_file
from fakescope.prepare.adapters import (SPLIT_ALIASES, SPLITS, AdapterOptions, Item, files, label_word, media,
                                        read_csv, register_adapter, split_of)


@register_adapter("folder", "a folder with 0_real/1_fake (or real/fake) sub-folders of videos or images")
def folder(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    name = root.name
    for label_dir, label in label_folders(root, LABEL_ALIASES):
        rel = label_dir.parent.relative_to(root).parts
        split = split_of(rel)
        method = "/".join(p for p in rel if p.lower() not in SPLIT_ALIASES)
        for f in files(label_dir, media):
            vid = str(f.relative_to(root).with_suffix("")) if is_video_file(f.name) else None
            yield Item(str(f), label, name, method, split, vid)


@register_adapter("csv", "a CSV list with columns path (or file), label, and optionally split, method, "
                         "dataset, video_id")
def csv_list(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    if not root.is_file():
        raise DataError(f"{root}: the csv dataset's --root is the CSV file itself")
    with open(root, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        cols = next(csv.reader(fh), [])
    path_col = "path" if "path" in cols else "file"
    rows = read_csv(root, required=(path_col, "label"))
    for n, row in rows:
        p = row[path_col].strip()
        if not p:
            raise DataError(f"{root}, line {n}: empty {path_col}")
        path = Path(p) if os.path.isabs(p) else root.parent / p
        label = label_word(row["label"], f"{root}, line {n}")
        split = SPLIT_ALIASES.get((row.get("split") or "").strip().lower(), (row.get("split") or "").strip())
        vid = (row.get("video_id") or "").strip() or (str(Path(p).with_suffix("")) if is_video_file(p) else None)
        yield Item(str(path), label, (row.get("dataset") or "").strip() or root.stem,
                   (row.get("method") or "").strip(), split, vid)


def _deepfakebench_label(name: str, where: str) -> int:
    low = name.lower()
    if "real" in low:
        return 0
    if low:
        return 1  # FF-DF, FF-F2F, CelebDFv2_fake, DFDC_Fake, ...
    raise DataError(f"{where}: empty label")


@register_adapter("deepfakebench", "DeepfakeBench dataset JSON ({dataset: {label: {split: [comp:] {video: "
                                   "{label, frames}}}}}); --root is the JSON file")
def deepfakebench(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    if not root.is_file():
        raise DataError(f"{root}: the deepfakebench dataset's --root is the dataset JSON file")
    try:
        data = json.loads(root.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{root}: not valid JSON ({exc})") from None
    frames_root = Path(opt.frames_root) if opt.frames_root else root.parent
    comps = ("raw", "c23", "c40")

    def walk(node, keys: tuple[str, ...]) -> Iterator[Item]:
        if isinstance(node, dict) and isinstance(node.get("frames"), list):
            where = f"{root}: {'/'.join(keys)}"
            label_name = str(node.get("label", ""))
            label = _deepfakebench_label(label_name, where)
            split = next((k for k in keys if k in SPLITS), "")
            comp = next((k for k in keys if k in comps), "")
            if opt.compression and comp and comp != opt.compression:
                return
            rest = [k for k in keys[1:] if k not in SPLITS]
            vid = "/".join(rest)
            for fp in node["frames"]:
                p = str(fp).replace("\\", "/")
                path = Path(p) if os.path.isabs(p) else frames_root / p
                number = frame_number(p)
                yield Item(str(path), label, keys[0] if keys else "deepfakebench", label_name, split, vid,
                           0 if number is None else number)
            return
        if isinstance(node, dict):
            for k in sorted(node):
                yield from walk(node[k], (*keys, str(k)))
        elif node is not None and not isinstance(node, (str, int, float, list)):
            raise DataError(f"{root}: unexpected {type(node).__name__} at {'/'.join(keys)}")

    yield from walk(data, ())
