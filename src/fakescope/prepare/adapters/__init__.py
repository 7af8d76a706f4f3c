"""Dataset adapters: the official download layouts of the papers' benchmarks, as lists of items.

Each adapter reads a dataset where its authors put it and yields
:class:`Item` rows (a video or image file with its label, method and
split); :mod:`fakescope.prepare.runner` turns them into face crops and
manifests. Labels are always 0 = real, 1 = fake. Adapters are registered in
:data:`ADAPTERS` (videos: :mod:`.videos`; image benchmarks: :mod:`.images`;
folders and lists: :mod:`.lists`).

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

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from fakescope.data.manifest import csv_rows
from fakescope.errors import DataError
from fakescope.media.image import is_image_file
from fakescope.media.video import is_audio_file, is_video_file
from fakescope.registry import Registry
from fakescope.utils.paths import walk

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
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
        # a sound file goes the way of a video, whose reader reports that it has no video stream
        return "video" if is_video_file(self.path) or is_audio_file(self.path) else "image"


@dataclass(frozen=True)
class AdapterOptions:
    compression: str = "c23"  # ffpp: raw, c23 or c40
    methods: tuple[str, ...] = ()  # keep the fakes of these methods only (empty: all); reals are always kept
    splits_dir: str | None = None  # ffpp: folder with train.json, val.json, test.json ("none": no splits)
    variant: str = "images"  # dire: images, recons or dire
    frames_root: str | None = None  # deepfakebench: folder the JSON's frame paths are relative to


_ADAPTERS: dict[str, Callable[[Path, AdapterOptions], Iterator[Item]]] = {}
_DESCRIPTIONS: dict[str, str] = {}

ADAPTERS: Registry[Callable[[Path, AdapterOptions], Iterator[Item]]] = Registry("dataset", error=DataError)


def register_adapter(name: str, description: str):
    """Decorator: make an adapter function ``(root, options) -> items`` available as ``prepare NAME``."""
    return ADAPTERS.register(name, description=description)


def list_adapters() -> dict[str, str]:
    return {name: ADAPTERS.info(name)["description"] for name in ADAPTERS.names()}


def iter_items(name: str, root: str | Path, options: AdapterOptions | None = None) -> list[Item]:
    """The items of dataset ``name`` under ``root``, sorted; an empty result is an error."""
    adapter = ADAPTERS.get(name)
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: dataset root not found")
    items = sorted(adapter(root, options or AdapterOptions()),
                   key=lambda it: (it.split, it.method, it.video_id or "", it.path))
    if options and options.methods:
        keep = set(options.methods)
        items = [it for it in items if it.label == 0 or it.method in keep]
    if not items:
        raise DataError(f"{root}: no {name} videos or images found (expected layout: "
                        f"{ADAPTERS.info(name)['description']})")
    return items


def files(folder: Path, want: Callable[[str], bool]) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in walk(folder):
        dirnames.sort()
        out.extend(Path(dirpath) / f for f in sorted(filenames) if want(f))
    return out


def media(name: str) -> bool:
    return is_video_file(name) or is_image_file(name) or is_audio_file(name)


def label_word(value: str, where: str) -> int:
    v = str(value).strip().lower()
    if v in ("0", "real", "0_real", "original", "pristine"):
        return 0
    if v in ("1", "fake", "1_fake", "manipulated", "synthetic"):
        return 1
    raise DataError(f"{where}: label must be 0/1 or real/fake, got {value!r}")



def split_of(parts: Iterable[str]) -> str:
    """The split a path names (``train``, ``validation``, ``Test`` ...), or ``""``."""
    for p in parts:
        if p.lower() in SPLIT_ALIASES:
            return SPLIT_ALIASES[p.lower()]
    return ""


def read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    return list(csv_rows(path, required))


# importing an adapter module registers its adapters
from fakescope.prepare.adapters import images, lists, videos  # noqa: E402,F401
