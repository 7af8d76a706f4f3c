"""Adapters of the face-forgery video benchmarks: FaceForensics++, Celeb-DF v2, DFDC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from fakescope.errors import DataError
from fakescope.media.video import is_video_file
from fakescope.prepare.adapters import (SPLIT_ALIASES, SPLITS, AdapterOptions, Item, files, label_word, read_csv,
                                        register_adapter)


# ----------------------------------------------------------------- FF++
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")


def _ffpp_splits(root: Path, splits_dir: str | None) -> dict[str, str] | None:
    """Video id -> split from the official pair lists (``[["071", "054"], ...]``)."""
    if splits_dir == "none":
        return None
    candidates = [Path(splits_dir)] if splits_dir else [root / "splits", root, root / "dataset" / "splits"]
    for folder in candidates:
        if all((folder / f"{s}.json").is_file() for s in SPLITS):
            break
    else:
        where = " or ".join(str(c) for c in candidates)
        raise DataError(
            f"{root}: FaceForensics++ needs the official split lists train.json, val.json and test.json "
            f"(from the FaceForensics repository's dataset/splits folder) in {where}; give their folder "
            "with --splits DIR, or --splits none to leave the split column empty")
    mapping: dict[str, str] = {}
    for split in SPLITS:
        path = folder / f"{split}.json"
        try:
            pairs = json.loads(path.read_text(encoding="utf-8"))
            for a, b in pairs:
                for key in (str(a), str(b), f"{a}_{b}", f"{b}_{a}"):
                    mapping[key] = split
        except (ValueError, TypeError) as exc:
            raise DataError(f"{path}: not a FaceForensics++ split list of id pairs ({exc})") from None
    return mapping


@register_adapter("ffpp", "FaceForensics++ (original_sequences/youtube/<comp>/videos, "
                          "manipulated_sequences/<method>/<comp>/videos, splits/{train,val,test}.json)")
def ffpp(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    comp = opt.compression
    if comp not in ("raw", "c23", "c40"):
        raise DataError(f"FaceForensics++ compression '{comp}': choose raw, c23 or c40")
    splits = _ffpp_splits(root, opt.splits_dir)
    sources = [("original", 0, root / "original_sequences" / "youtube" / comp / "videos")]
    manipulated = root / "manipulated_sequences"
    names = sorted(p.name for p in manipulated.iterdir() if p.is_dir()) if manipulated.is_dir() else []
    for m in opt.methods:
        if m not in names:
            raise DataError(f"{manipulated / m}: FaceForensics++ method '{m}' not found "
                            f"(present: {', '.join(names) or 'none'})")
    for m in opt.methods or tuple(m for m in FFPP_METHODS if m in names):
        sources.append((m, 1, manipulated / m / comp / "videos"))
    if not any(folder.is_dir() for _, _, folder in sources):
        raise DataError(f"{root}: no FaceForensics++ videos for compression {comp} "
                        f"(looked for {sources[0][2]} and manipulated_sequences/<method>/{comp}/videos)")
    for method, label, folder in sources:
        if not folder.is_dir():
            continue
        for f in files(folder, is_video_file):
            split = ""
            if splits is not None:
                split = splits.get(f.stem, "")
                if not split:
                    raise DataError(f"{f}: video id '{f.stem}' is in none of the split lists")
            yield Item(str(f), label, "ffpp", method, split, f"{method}/{f.stem}")


# ------------------------------------------------------------ Celeb-DF v2
_CELEBDF_FOLDERS = {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 1}


@register_adapter("celebdf", "Celeb-DF v2 (Celeb-real, YouTube-real, Celeb-synthesis, "
                             "List_of_testing_videos.txt)")
def celebdf(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    listing = root / "List_of_testing_videos.txt"
    if not listing.is_file():
        raise DataError(f"{listing}: Celeb-DF v2's list of test videos not found")
    test: dict[str, int] = {}
    for n, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise DataError(f"{listing}, line {n}: expected '<1 real|0 fake> <folder>/<video>.mp4', got {line!r}")
        folder, _, name = parts[1].replace("\\", "/").partition("/")
        test[f"{folder}/{Path(name).stem}"] = 0 if parts[0] == "1" else 1  # the list marks real videos with 1
    found = False
    for folder, label in _CELEBDF_FOLDERS.items():
        if not (root / folder).is_dir():
            continue
        found = True
        for f in files(root / folder, is_video_file):
            key = f"{folder}/{f.stem}"
            if key in test and test[key] != label:
                raise DataError(f"{listing}: {key} is listed as {'real' if test[key] == 0 else 'fake'}, but its "
                                f"folder {folder} holds {'real' if label == 0 else 'fake'} videos")
            yield Item(str(f), label, "celebdf", folder, "test" if key in test else "train", key)
    if not found:
        raise DataError(f"{root}: none of the Celeb-DF v2 folders {', '.join(_CELEBDF_FOLDERS)} found")


# ------------------------------------------------------------------- DFDC
def _find_by_name(folder: Path, names: Iterable[str]) -> dict[str, Path]:
    wanted = set(names)
    return {p.name: p for p in files(folder, lambda n: n in wanted)}


@register_adapter("dfdc", "DFDC (dfdc_train_part_*/metadata.json; public test set: labels.csv with "
                          "filename,label)")
def dfdc(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    tables = sorted(root.rglob("labels.csv"))
    test_dirs = {t.parent for t in tables}
    metas = sorted(p for p in root.rglob("metadata.json") if p.parent not in test_dirs)
    for meta in metas:
        try:
            entries = json.loads(meta.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DataError(f"{meta}: not valid JSON ({exc})") from None
        part = meta.parent.name
        for name, info in sorted(entries.items()):
            if not isinstance(info, dict) or "label" not in info:
                raise DataError(f"{meta}: entry {name!r} has no label")
            label = label_word(info["label"], f"{meta}, entry {name!r}")
            split = SPLIT_ALIASES.get(str(info.get("split", "train")).lower(), "train")
            path = meta.parent / name
            yield Item(str(path), label, "dfdc", "DFDC" if label else "original", split,
                       f"{part}/{Path(name).stem}")
    for labels in tables:
        rows = read_csv(labels, required=("filename", "label"))
        where = _find_by_name(labels.parent, [r["filename"] for _, r in rows])
        for n, row in rows:
            label = label_word(row["label"], f"{labels}, line {n}")
            path = where.get(row["filename"], labels.parent / row["filename"])
            yield Item(str(path), label, "dfdc", "DFDC" if label else "original", "test",
                       f"test/{Path(row['filename']).stem}")
    if not metas and not tables:
        raise DataError(f"{root}: no DFDC metadata.json (training parts) or labels.csv (public test set) found")

