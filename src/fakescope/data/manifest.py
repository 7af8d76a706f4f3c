"""The files data preparation writes, and how they are written so that no reader sees half of one.

Output folder (``fakescope prepare ... --out OUT``)::

    OUT/prepare.json               dataset, root and the settings the crops were made with
    OUT/manifest.csv               one row per sample (all splits)
    OUT/manifest.meta.json         the face stage the crops were made with (beside every manifest)
    OUT/sets/<split>/<method>.csv  one test set per split and method (reals of the split added to
                                   each fake method), and sets/<split>/all.csv
    OUT/videos.csv                 one row per video: frames in it, sampled, with a face, status
    OUT/failures.csv               path, reason, detail for every input that failed
    OUT/crops/<video_id>/<frame>.png   face crops (lossless PNG), one folder per video
    OUT/.records/                  one finished-unit record per video (what re-runs skip)

Manifest columns (CSV, UTF-8, header row; paths relative to the CSV's folder
or absolute; a file name that is not valid UTF-8 is written as its own bytes, and read back so)::

    path, label (0 real, 1 fake), dataset, method, split, video_id, frame_index,
    box ("x1 y1 x2 y2" in frame pixels), score (detector confidence), track (face track, 0 = main face)

Beside every manifest ``X.csv`` lies ``X.meta.json``: ``{"face": {...}}``, the face stage
(:class:`~fakescope.preprocess.FaceCropConfig`) its crops were made with, or ``{"face": null}`` where its
samples are whole images. Training copies it into the model's preprocessing; a manifest without it (written
by hand, or by an older fakescope) declares nothing.

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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from fakescope.errors import DataError
from fakescope.preprocess import FaceCropConfig
from fakescope.utils.paths import name_bytes, safe_name

VIDEO_COLUMNS = ("video_id", "path", "label", "dataset", "method", "split", "status", "reason", "frames_total",
                 "frames_sampled", "frames_with_face", "faces", "short", "width", "height", "fps", "rotation",
                 "frames_tracked", "frames_searched_again")
FAILURE_COLUMNS = ("path", "reason", "detail", "dataset", "method", "split", "video_id")

MANIFEST_REQUIRED = ("path", "label")
MANIFEST_COLUMNS = ("path", "label", "dataset", "method", "split", "video_id", "frame_index",
                    "box", "score", "track")


@dataclass(frozen=True, slots=True)  # slots: ~180 bytes less per sample, which counts at millions of them
class Sample:
    path: str
    label: int
    video_id: str | None = None
    frame_index: int | None = None
    method: str = ""
    extra: dict[str, Any] | None = field(default=None, compare=False, hash=False)  # a manifest's other columns


def csv_rows(path: str | Path, required: Sequence[str], what: str = "CSV") -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a CSV file with a header; missing required columns are an error."""
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
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


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
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


META_SUFFIX = ".meta.json"


def meta_path(manifest: str | Path) -> Path:
    """The file beside a manifest ``X.csv`` that says how its samples were made: ``X.meta.json``."""
    manifest = Path(manifest)
    return manifest.with_name(manifest.stem + META_SUFFIX)


@dataclass(frozen=True)
class FaceStage:
    """What a data source says of its face stage: ``declared`` (a manifest written by ``fakescope prepare``)
    and, if so, ``face`` (``None``: the samples are whole images)."""

    declared: bool
    face: FaceCropConfig | None = None
    source: str = ""

    def describe(self) -> str:
        if not self.declared:
            return "no face stage declared"
        return "no face stage (whole images)" if self.face is None else f"face stage {self.face.describe()}"


def read_face_stage(source: str | Path) -> FaceStage:
    """The face stage a data source declares (folders and manifests without a ``.meta.json`` declare none)."""
    source = Path(source)
    meta = meta_path(source)
    if source.suffix.lower() != ".csv" or not meta.is_file():
        return FaceStage(False, None, str(source))
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        face = data["face"]
        return FaceStage(True, None if face is None else FaceCropConfig.model_validate(face), str(source))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{meta}: not a manifest's face stage ({type(exc).__name__}: {exc})") from None


def write_meta(manifest: str | Path, face: FaceCropConfig | None) -> None:
    atomic_write_text(meta_path(manifest), json.dumps(
        {"face": None if face is None else face.model_dump(mode="json")}, indent=2) + "\n")


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
        return self.folder / (hashlib.sha1(name_bytes(key)).hexdigest()[:24] + ".json")

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


def _relative_to(path: str, folder: Path, out: Path) -> str:
    """A manifest path as written in ``folder``: crops (relative to OUT) re-based, absolute ones kept."""
    if os.path.isabs(path):
        return path
    return os.path.relpath(out / path, folder)


def write_outputs(out: str | Path, records: list[dict[str, Any]], face: FaceCropConfig | None = None
                  ) -> dict[str, int]:
    """Rebuild manifest.csv, videos.csv, failures.csv and sets/ from the unit records; ``face``: the face stage
    of the crops, written beside every manifest."""
    out = Path(out)
    rows = [r for rec in records for r in rec.get("rows", [])]
    videos = [rec["video"] for rec in records if rec.get("video")]
    failures = [f for rec in records for f in rec.get("failures", [])]
    atomic_write_text(out / "manifest.csv", csv_text(MANIFEST_COLUMNS, rows))
    write_meta(out / "manifest.csv", face)
    atomic_write_text(out / "videos.csv", csv_text(VIDEO_COLUMNS, videos))
    atomic_write_text(out / "failures.csv", csv_text(FAILURE_COLUMNS, failures))
    n_sets = _write_sets(out, rows, face)
    return {"rows": len(rows), "videos": len(videos), "failures": len(failures), "sets": n_sets}


def _write_sets(out: Path, rows: list[dict[str, Any]], face: FaceCropConfig | None) -> int:
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
            write_meta(f, face)
            written.add(f)
            written.add(meta_path(f))
    # remove sets left from an earlier run that no longer exist: only finished set files (a shard running at the
    # same time may hold a hidden temporary file here, or have removed a file already)
    for old in (out / "sets").glob("*/*.*") if (out / "sets").is_dir() else []:
        if old not in written and not old.name.startswith(".") and old.name.endswith((".csv", META_SUFFIX)):
            old.unlink(missing_ok=True)
    return sum(1 for f in written if f.suffix == ".csv")


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for r in rows:
        key = (r["path"], r.get("track", ""))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out
