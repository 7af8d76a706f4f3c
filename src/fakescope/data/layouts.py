"""Folder layouts that say a sample's label by where it lies: the one rule for label folders.

ForenSynths / UniversalFakeDetect (and ``fakescope synth``)::

    root/[any/sub/folders/]0_real/*.png      label 0
    root/[any/sub/folders/]1_fake/*.png      label 1
    root/.../0_real/<video>/<frame>.png      frames of one video (video id = its folder)

``fakescope prepare folder`` also takes ``real``/``fake`` folders (:data:`LABEL_ALIASES`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from fakescope.data.manifest import Sample
from fakescope.errors import DataError
from fakescope.media.formats import image_extensions, is_image_file
from fakescope.utils.paths import walk

LABEL_FOLDERS = {"0_real": 0, "1_fake": 1}
LABEL_ALIASES = {**LABEL_FOLDERS, "real": 0, "fake": 1}

_DIGITS = re.compile(r"(\d+)(?!.*\d)")

# the key of meta.json at the root of fakescope's built-in synthetic benchmark (``fakescope synth``)
SYNTHETIC_MARK = "fakescope_synthetic_benchmark"


def frame_number(name: str) -> int | None:
    """The last number in a file name's stem (``frame_012.png`` -> 12), or ``None``."""
    m = _DIGITS.search(Path(name).stem)
    return int(m.group(1)) if m else None


def label_folders(root: str | Path, names: dict[str, int] = LABEL_FOLDERS,
                  include_root: bool = False) -> Iterator[tuple[Path, int]]:
    """Every label folder under ``root`` (names compared in lower case), not looking inside label folders;
    ``include_root``: ``root`` itself counts when it is one."""
    root = Path(root)
    if include_root and root.name.lower() in names:
        yield root, names[root.name.lower()]
    for dirpath, dirnames, _ in walk(root):
        dirnames.sort()
        for d in list(dirnames):
            if d.lower() in names:
                yield Path(dirpath) / d, names[d.lower()]
                dirnames.remove(d)  # do not look for label folders inside label folders


def synthetic_benchmark(path: str | Path) -> Path | None:
    """The root of the built-in synthetic benchmark that ``path`` lies in, or ``None``.

    The benchmark's ``meta.json`` says so (``fakescope_synthetic_benchmark``; folders made before that key
    existed are known by their ``photo_splits`` and ``families`` entries).
    """
    import json

    p = Path(path).expanduser().resolve()
    for folder in (p, *p.parents):
        meta = folder / "meta.json"
        if meta.is_file():
            try:
                data = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            if isinstance(data, dict) and (data.get(SYNTHETIC_MARK) or {"photo_splits", "families"} <= set(data)):
                return folder
            return None
    return None


def scan_folder(root: str | Path) -> list[Sample]:
    """Every image under the ``0_real``/``1_fake`` folders of ``root``, in sorted order."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: data path not found")
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder in ForenSynths layout (or a manifest .csv)")
    label_dirs = list(label_folders(root, include_root=True))
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
        for dirpath, dirnames, filenames in walk(label_dir):
            dirnames.sort()
            here = Path(dirpath)
            in_video = here != label_dir
            video_id = str(here.relative_to(root)) if in_video else None
            for name in sorted(filenames):
                if not is_image_file(name):
                    continue
                found += 1
                samples.append(Sample(str(here / name), label, video_id,
                                      frame_number(name) if in_video else None, method))
        if found == 0:
            exts = image_extensions()
            common = [e for e in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".gif", ".avif", ".heic")
                      if e in exts]
            raise DataError(f"{label_dir}: label folder has no images (looked for {', '.join(common)} and the "
                            f"{len(exts) - len(common)} other image extensions of fakescope.media.formats)")
    return samples


def generators_seen(path: str | Path) -> list[str]:
    """The generators whose fakes a training source holds, where the data say so: the synthetic benchmark's
    training generator (its ``meta.json``), or a manifest's ``method`` column; otherwise none (not known)."""
    import json

    root = synthetic_benchmark(path)
    if root is not None:
        try:
            cfg = json.loads((root / "meta.json").read_text(encoding="utf-8")).get("config") or {}
        except (OSError, ValueError):
            return []
        return [str(cfg["train_generator"])] if cfg.get("train_generator") else []
    p = Path(path)
    if p.suffix.lower() == ".csv" and p.is_file():
        from fakescope.data.manifest import read_manifest

        try:
            return sorted({s.method for s in read_manifest(p) if s.method and s.label == 1})
        except Exception:  # noqa: BLE001 - a manifest that does not read says nothing of its generators
            return []
    return []
