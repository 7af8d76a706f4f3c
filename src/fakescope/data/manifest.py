"""The files data preparation writes, and how they are written so that no reader sees half of one.

Output folder (``fakescope prepare ... --out OUT``)::

    OUT/prepare.json               dataset, root and the settings the crops were made with
    OUT/manifest.csv               one row per sample (all splits)
    OUT/sets/<split>/<method>.csv  one test set per split and method (reals of the split added to
                                   each fake method), and sets/<split>/all.csv
    OUT/videos.csv                 one row per video: frames in it, sampled, with a face, status
    OUT/failures.csv               path, reason, detail for every input that failed
    OUT/crops/<video_id>/<frame>.png   face crops (lossless PNG), one folder per video
    OUT/.records/                  one finished-unit record per video (what re-runs skip)

Manifest columns (CSV, UTF-8, header row; paths relative to the CSV's folder
or absolute)::

    path, label (0 real, 1 fake), dataset, method, split, video_id, frame_index,
    box ("x1 y1 x2 y2" in frame pixels), score (detector confidence), track (face track, 0 = main face)

Every file is written to a temporary name and renamed into place (atomic on
POSIX file systems), and a unit's record is written only after all its crops
are in place: an interrupted run leaves no half-written entry, and the next
run redoes the unfinished videos only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from fakescope.data.datasets import MANIFEST_COLUMNS
from fakescope.errors import DataError

VIDEO_COLUMNS = ("video_id", "path", "label", "dataset", "method", "split", "status", "reason", "frames_total",
                 "frames_sampled", "frames_with_face", "faces", "short", "width", "height", "fps", "rotation",
                 "frames_tracked", "frames_searched_again")
FAILURE_COLUMNS = ("path", "reason", "detail", "dataset", "method", "split", "video_id")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


def format_box(box: Sequence[float] | None) -> str:
    return "" if box is None else " ".join(f"{v:.1f}" for v in box)


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The ``box`` column back as four floats (``None`` when empty)."""
    if not text or not text.strip():
        return None
    parts = text.split()
    if len(parts) != 4:
        raise DataError(f"box {text!r}: expected four numbers 'x1 y1 x2 y2'")
    return tuple(float(p) for p in parts)  # type: ignore[return-value]


class RecordStore:
    """One JSON record per finished unit (a video, or a chunk of images) under ``OUT/.records``."""

    def __init__(self, out: str | Path) -> None:
        self.folder = Path(out) / ".records"

    def _file(self, key: str) -> Path:
        return self.folder / (hashlib.sha1(key.encode("utf-8")).hexdigest()[:24] + ".json")

    def get(self, key: str) -> dict[str, Any] | None:
        f = self._file(key)
        if not f.is_file():
            return None
        try:
            rec = json.loads(f.read_text(encoding="utf-8"))
        except ValueError:
            return None  # a damaged record counts as not done
        return rec if rec.get("key") == key else None

    def put(self, record: dict[str, Any]) -> None:
        atomic_write_text(self._file(record["key"]), json.dumps(record, separators=(",", ":")))

    def all(self) -> list[dict[str, Any]]:
        if not self.folder.is_dir():
            return []
        out = []
        for f in sorted(self.folder.glob("*.json")):
            try:
                out.append(json.loads(f.read_text(encoding="utf-8")))
            except ValueError:
                continue
        return sorted(out, key=lambda r: r.get("key", ""))


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(text: str) -> str:
    """A file-name-safe version of a method or set name."""
    name = _UNSAFE.sub("_", text).strip("._") or "unnamed"
    return name


def _relative_to(path: str, folder: Path, out: Path) -> str:
    """A manifest path as written in ``folder``: crops (relative to OUT) re-based, absolute ones kept."""
    if os.path.isabs(path):
        return path
    return os.path.relpath(out / path, folder)


def write_outputs(out: str | Path, records: list[dict[str, Any]]) -> dict[str, int]:
    """Rebuild manifest.csv, videos.csv, failures.csv and sets/ from the unit records."""
    out = Path(out)
    rows = [r for rec in records for r in rec.get("rows", [])]
    videos = [rec["video"] for rec in records if rec.get("video")]
    failures = [f for rec in records for f in rec.get("failures", [])]
    atomic_write_text(out / "manifest.csv", csv_text(MANIFEST_COLUMNS, rows))
    atomic_write_text(out / "videos.csv", csv_text(VIDEO_COLUMNS, videos))
    atomic_write_text(out / "failures.csv", csv_text(FAILURE_COLUMNS, failures))
    n_sets = _write_sets(out, rows)
    return {"rows": len(rows), "videos": len(videos), "failures": len(failures), "sets": n_sets}


def _write_sets(out: Path, rows: list[dict[str, Any]]) -> int:
    """One manifest per (split, fake method), each with the split's real samples, plus one with all."""
    by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_split[r.get("split") or "all"].append(r)
    written = set()
    for split, split_rows in by_split.items():
        folder = out / "sets" / safe_name(split)
        fake_methods = sorted({r.get("method", "") for r in split_rows if int(r["label"]) == 1})
        sets: dict[str, list[dict[str, Any]]] = {"all": _unique(split_rows)}
        for m in fake_methods:
            members = [r for r in split_rows if r.get("method", "") == m]
            if not any(int(r["label"]) == 0 for r in members):
                members += [r for r in split_rows if int(r["label"]) == 0 and r.get("method", "") not in fake_methods]
            sets[safe_name(m) if m else "unnamed"] = members
        for name, members in sets.items():
            f = folder / f"{name}.csv"
            rebased = [{**r, "path": _relative_to(r["path"], folder, out)} for r in members]
            atomic_write_text(f, csv_text(MANIFEST_COLUMNS, rebased))
            written.add(f)
    # remove sets left from an earlier run that no longer exist
    for old in (out / "sets").glob("*/*.csv") if (out / "sets").is_dir() else []:
        if old not in written:
            old.unlink()
    return len(written)


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for r in rows:
        key = (r["path"], r.get("track", ""))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out
