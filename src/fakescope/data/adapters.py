"""Dataset adapters: the official download layouts of the papers' benchmarks, as lists of items.

Each adapter reads a dataset where its authors put it and yields
:class:`Item` rows (a video or image file with its label, method and
split); :mod:`fakescope.data.prepare` turns them into face crops and
manifests. Labels are always 0 = real, 1 = fake.

==================  ===========================================================
name                layout read (ROOT is ``--root``)
==================  ===========================================================
``ffpp``            FaceForensics++: ``original_sequences/youtube/<comp>/videos``
                    and ``manipulated_sequences/<method>/<comp>/videos``;
                    splits from the official ``train.json``/``val.json``/``test.json``
``celebdf``         Celeb-DF v2: ``Celeb-real``, ``YouTube-real``, ``Celeb-synthesis``;
                    ``List_of_testing_videos.txt`` marks the test videos
``dfdc``            DFDC: ``dfdc_train_part_*/metadata.json`` (training parts) and
                    the public test set's ``labels.csv``
``forensynths``     ForenSynths (CNNDetection): ``train|val/<class>/0_real|1_fake``,
                    ``test/<generator>/[<class>/]0_real|1_fake``
``ufd``             UniversalFakeDetect diffusion test set: ``<generator>/1_fake``
                    with the real images of ``laion/0_real`` (``imagenet/0_real`` for guided)
``dire``            DIRE / DiffusionForensics: ``[images|recons|dire]/<split>/<domain>/<generator|real>``
``folder``          any folder with ``0_real``/``1_fake`` (or ``real``/``fake``) sub-folders,
                    videos or images; ``train``/``val``/``test`` in the path set the split
``csv``             a CSV list: ``path`` (or ``file``), ``label`` (0/1 or real/fake),
                    optional ``split``, ``method``, ``dataset``, ``video_id``
``deepfakebench``   DeepfakeBench's dataset JSON; its extracted frames are used as they are
==================  ===========================================================
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from fakescope.data.datasets import csv_rows
from fakescope.data.transforms import is_image_file
from fakescope.data.video import is_video_file
from fakescope.errors import DataError

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "test": "test", "testing": "test"}


@dataclass(frozen=True)
class Item:
    """One input of data preparation: a video, an image, or one extracted frame of a video."""

    path: str
    label: int
    dataset: str
    method: str = ""
    split: str = ""
    video_id: str | None = None  # videos and frames; unique within the dataset
    frame_index: int | None = None  # extracted frames only

    @property
    def kind(self) -> str:
        if self.frame_index is not None:
            return "frame"
        return "video" if is_video_file(self.path) else "image"


@dataclass(frozen=True)
class AdapterOptions:
    compression: str = "c23"  # ffpp: raw, c23 or c40
    methods: tuple[str, ...] = ()  # keep the fakes of these methods only (empty: all); reals are always kept
    splits_dir: str | None = None  # ffpp: folder with train.json, val.json, test.json ("none": no splits)
    variant: str = "images"  # dire: images, recons or dire
    frames_root: str | None = None  # deepfakebench: folder the JSON's frame paths are relative to


_ADAPTERS: dict[str, Callable[[Path, AdapterOptions], Iterator[Item]]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_adapter(name: str, description: str):
    def wrap(fn):
        _ADAPTERS[name] = fn
        _DESCRIPTIONS[name] = description
        return fn

    return wrap


def list_adapters() -> dict[str, str]:
    return dict(sorted(_DESCRIPTIONS.items()))


def iter_items(name: str, root: str | Path, options: AdapterOptions | None = None) -> list[Item]:
    """The items of dataset ``name`` under ``root``, sorted; an empty result is an error."""
    if name not in _ADAPTERS:
        raise DataError(f"unknown dataset '{name}'; choose one of {', '.join(sorted(_ADAPTERS))}")
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: dataset root not found")
    items = sorted(_ADAPTERS[name](root, options or AdapterOptions()),
                   key=lambda it: (it.split, it.method, it.video_id or "", it.path))
    if options and options.methods:
        keep = set(options.methods)
        items = [it for it in items if it.label == 0 or it.method in keep]
    if not items:
        raise DataError(f"{root}: no {name} videos or images found (expected layout: {_DESCRIPTIONS[name]})")
    return items


def _files(folder: Path, want: Callable[[str], bool]) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        out.extend(Path(dirpath) / f for f in sorted(filenames) if want(f))
    return out


def _media(name: str) -> bool:
    return is_video_file(name) or is_image_file(name)


def _label_word(value: str, where: str) -> int:
    v = str(value).strip().lower()
    if v in ("0", "real", "0_real", "original", "pristine"):
        return 0
    if v in ("1", "fake", "1_fake", "manipulated", "synthetic"):
        return 1
    raise DataError(f"{where}: label must be 0/1 or real/fake, got {value!r}")


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
        for f in _files(folder, is_video_file):
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
        for f in _files(root / folder, is_video_file):
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
    return {p.name: p for p in _files(folder, lambda n: n in wanted)}


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
            label = _label_word(info["label"], f"{meta}, entry {name!r}")
            split = _SPLIT_ALIASES.get(str(info.get("split", "train")).lower(), "train")
            path = meta.parent / name
            yield Item(str(path), label, "dfdc", "DFDC" if label else "original", split,
                       f"{part}/{Path(name).stem}")
    for labels in tables:
        rows = _read_csv(labels, required=("filename", "label"))
        where = _find_by_name(labels.parent, [r["filename"] for _, r in rows])
        for n, row in rows:
            label = _label_word(row["label"], f"{labels}, line {n}")
            path = where.get(row["filename"], labels.parent / row["filename"])
            yield Item(str(path), label, "dfdc", "DFDC" if label else "original", "test",
                       f"test/{Path(row['filename']).stem}")
    if not metas and not tables:
        raise DataError(f"{root}: no DFDC metadata.json (training parts) or labels.csv (public test set) found")


def _read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    return list(csv_rows(path, required))


# ----------------------------------------------------- image benchmarks
_LABEL_DIRS = {"0_real": 0, "1_fake": 1, "real": 0, "fake": 1}


def _label_folders(root: Path, names: dict[str, int] = _LABEL_DIRS) -> Iterator[tuple[Path, int]]:
    """Every label folder under ``root`` (not looking inside label folders)."""
    for dirpath, dirnames, _ in os.walk(root, followlinks=True):
        dirnames.sort()
        for d in list(dirnames):
            key = d.lower()
            if key in names:
                yield Path(dirpath) / d, names[key]
                dirnames.remove(d)


@register_adapter("forensynths", "ForenSynths / CNNDetection (train|val/<class>/0_real|1_fake, "
                                 "test/<generator>/[<class>/]0_real|1_fake)")
def forensynths(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    found = False
    for split in SPLITS:
        base = root / split
        if not base.is_dir():
            continue
        found = True
        for folder, label in _label_folders(base, {"0_real": 0, "1_fake": 1}):
            rel = folder.parent.relative_to(base).parts
            # train/val hold ProGAN images by object class; test holds one folder per generator
            method = "progan" if split in ("train", "val") else (rel[0] if rel else "")
            for f in _files(folder, is_image_file):
                yield Item(str(f), label, "forensynths", method, split)
    if not found:
        raise DataError(f"{root}: no train/, val/ or test/ folder (ForenSynths layout)")


UFD_REAL_PAIRS = {"guided": "imagenet"}  # every other generator pairs with laion


@register_adapter("ufd", "UniversalFakeDetect diffusion test set (<generator>/1_fake; real images in "
                         "laion/0_real and imagenet/0_real)")
def ufd(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    gens = sorted(p.parent.name for p in root.glob("*/1_fake") if p.is_dir())
    if not gens:
        raise DataError(f"{root}: no <generator>/1_fake folders (UniversalFakeDetect diffusion_datasets layout)")
    for gen in gens:
        real_name = gen if (root / gen / "0_real").is_dir() else UFD_REAL_PAIRS.get(gen, "laion")
        real = root / real_name / "0_real"
        if not real.is_dir():
            raise DataError(f"{real}: the real images that {gen} is tested against are missing")
        for f in _files(real, is_image_file):
            yield Item(str(f), 0, "ufd", gen, "test")
        for f in _files(root / gen / "1_fake", is_image_file):
            yield Item(str(f), 1, "ufd", gen, "test")


@register_adapter("dire", "DIRE / DiffusionForensics ([images|recons|dire]/<split>/<domain>/<generator|real>)")
def dire(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    base = root / opt.variant if (root / opt.variant).is_dir() else root
    splits = [s for s in sorted(base.iterdir()) if s.is_dir() and s.name.lower() in _SPLIT_ALIASES] \
        if base.is_dir() else []
    if not splits:
        raise DataError(f"{base}: no train/val/test folders (DiffusionForensics layout "
                        "<images|recons|dire>/<split>/<domain>/<generator|real>)")
    for split_dir in splits:
        split = _SPLIT_ALIASES[split_dir.name.lower()]
        for domain in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            gens = sorted(p for p in domain.iterdir() if p.is_dir() and p.name != "real")
            real = domain / "real"
            reals = _files(real, is_image_file) if real.is_dir() else []
            for gen in gens:
                method = f"{domain.name}/{gen.name}"
                for f in reals:  # each generator is tested against its domain's real images
                    yield Item(str(f), 0, "dire", method, split)
                for f in _files(gen, is_image_file):
                    yield Item(str(f), 1, "dire", method, split)


# --------------------------------------------------------------- generic
def _split_of(parts: Iterable[str]) -> str:
    for p in parts:
        if p.lower() in _SPLIT_ALIASES:
            return _SPLIT_ALIASES[p.lower()]
    return ""


@register_adapter("folder", "a folder with 0_real/1_fake (or real/fake) sub-folders of videos or images")
def folder(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    name = root.name
    for label_dir, label in _label_folders(root):
        rel = label_dir.parent.relative_to(root).parts
        split = _split_of(rel)
        method = "/".join(p for p in rel if p.lower() not in _SPLIT_ALIASES)
        for f in _files(label_dir, _media):
            vid = str(f.relative_to(root).with_suffix("")) if is_video_file(f.name) else None
            yield Item(str(f), label, name, method, split, vid)


@register_adapter("csv", "a CSV list with columns path (or file), label, and optionally split, method, "
                         "dataset, video_id")
def csv_list(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    if not root.is_file():
        raise DataError(f"{root}: the csv dataset's --root is the CSV file itself")
    with open(root, newline="", encoding="utf-8-sig") as fh:
        cols = next(csv.reader(fh), [])
    path_col = "path" if "path" in cols else "file"
    rows = _read_csv(root, required=(path_col, "label"))
    for n, row in rows:
        p = row[path_col].strip()
        if not p:
            raise DataError(f"{root}, line {n}: empty {path_col}")
        path = Path(p) if os.path.isabs(p) else root.parent / p
        label = _label_word(row["label"], f"{root}, line {n}")
        split = _SPLIT_ALIASES.get((row.get("split") or "").strip().lower(), (row.get("split") or "").strip())
        vid = (row.get("video_id") or "").strip() or (str(Path(p).with_suffix("")) if is_video_file(p) else None)
        yield Item(str(path), label, (row.get("dataset") or "").strip() or root.stem,
                   (row.get("method") or "").strip(), split, vid)


_DIGITS = re.compile(r"(\d+)(?!.*\d)")


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
                m = _DIGITS.search(Path(p).stem)
                yield Item(str(path), label, keys[0] if keys else "deepfakebench", label_name, split, vid,
                           int(m.group(1)) if m else 0)
            return
        if isinstance(node, dict):
            for k in sorted(node):
                yield from walk(node[k], (*keys, str(k)))
        elif node is not None and not isinstance(node, (str, int, float, list)):
            raise DataError(f"{root}: unexpected {type(node).__name__} at {'/'.join(keys)}")

    yield from walk(data, ())
