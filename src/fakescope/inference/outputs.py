"""Where ``fakescope detect`` writes its records: JSON lines, CSV or Parquet shards, written as they come and
read back to resume.

A record is on disk once its line (JSON lines, CSV) is whole, or once its Parquet shard is renamed into place. A
run killed at any moment leaves at worst one torn last line, which :func:`open_output` cuts off before it
appends; the inputs whose records are on disk are skipped by the next run of the same command (:class:`PathSet`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from fakescope.errors import ConfigError, DataError
from fakescope.inference.records import RECORD_FIELDS, csv_row
from fakescope.utils.cells import csv_value, utf8_obj, utf8_text
from fakescope.utils.outlock import OutputLock

FORMATS = ("jsonl", "csv", "parquet")
PARQUET_ROWS = 10_000  # records per Parquet shard


def output_format(path: str | None, fmt: str | None) -> str:
    """``--format``, or the one ``--out``'s name implies (``.csv``, ``.parquet``; JSON lines otherwise)."""
    if fmt:
        return fmt
    low = (path or "").lower().rstrip("/")
    return "csv" if low.endswith(".csv") else "parquet" if low.endswith(".parquet") else "jsonl"


clean_text = utf8_text  # a file name's undecodable bytes as \xNN: the same in JSON lines, CSV and Parquet


def path_key(path: str) -> int:
    """A path's 64-bit key; a name and its Parquet-stored form (:func:`clean_text`) have the same one."""
    return int.from_bytes(hashlib.blake2b(clean_text(path).encode("utf-8"), digest_size=8).digest(), "little")


class PathSet:
    """The paths already written, as sorted 64-bit hashes: 8 bytes a record, however long the paths."""

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self._keys = np.unique(np.fromiter((path_key(p) for p in paths), dtype=np.uint64))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, path: str) -> bool:
        if not len(self._keys):
            return False
        k = np.uint64(path_key(path))
        i = int(np.searchsorted(self._keys, k))
        return i < len(self._keys) and self._keys[i] == k

    def union(self, other: "PathSet") -> "PathSet":
        out = PathSet()
        out._keys = np.union1d(self._keys, other._keys)
        return out


# ------------------------------------------------------------------------------------------ reading back
def _whole_lines(path: Path) -> Iterator[tuple[bytes, int]]:
    """Each newline-terminated line and the byte offset just after it; a last line without a newline is torn."""
    offset = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            yield line, offset


def read_jsonl(path: Path) -> Iterator[tuple[dict[str, Any], int]]:
    """``(record, end offset)`` of every whole record; stops at the first torn or unreadable line."""
    for n, (line, end) in enumerate(_whole_lines(path), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8", "surrogateescape"))
        except ValueError:
            return
        if not isinstance(rec, dict) or "path" not in rec:
            raise DataError(f"{path}: line {n} is not a fakescope detect record; give another --out, or "
                            "--overwrite to replace the file")
        yield rec, end


def read_csv(path: Path) -> Iterator[tuple[dict[str, Any], int]]:
    """As :func:`read_jsonl`, for CSV (a quoted field may span lines: a row ends where the parser says)."""
    offset = 0

    def lines() -> Iterator[str]:
        nonlocal offset
        for line, end in _whole_lines(path):
            offset = end
            yield line.decode("utf-8", "surrogateescape")

    reader = csv.reader(lines())
    header = next(reader, None)
    if header is None:
        return
    if tuple(header) != RECORD_FIELDS:
        raise DataError(f"{path}: not a fakescope detect CSV (its header differs); give another --out, or "
                        "--overwrite to replace the file")
    for row in reader:
        if len(row) != len(RECORD_FIELDS):
            return  # torn: an unterminated quote ran to the end of the file
        yield {k: csv_value(v) for k, v in zip(RECORD_FIELDS, row)}, offset


def parquet_shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def read_records(path: str | os.PathLike, fmt: str | None = None) -> Iterator[dict[str, Any]]:
    """The whole records of a ``detect`` output (any format), in file order."""
    path = Path(path)
    fmt = output_format(str(path), fmt)
    if fmt == "parquet":
        pq = _pyarrow()
        for shard in parquet_shards(path):
            for rec in pq.read_table(shard).to_pylist():
                for key in ("provenance", "region"):  # stored as JSON text
                    if isinstance(rec.get(key), str):
                        rec[key] = json.loads(rec[key])
                yield rec
        return
    if not path.exists():
        return
    for rec, _ in (read_csv(path) if fmt == "csv" else read_jsonl(path)):
        yield rec


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("Parquet output needs pyarrow: pip install pyarrow (or write JSON lines or CSV)") from None
    return pq


# ---------------------------------------------------------------------------------------------- writing
class Output:
    """An open ``detect`` output that appends records; :meth:`done` are the paths already in it.

    It holds an exclusive lock (:class:`~fakescope.utils.outlock.OutputLock`) from opening to :meth:`close`: a
    second run on the same output (or the same part of a multi-process run) is refused at once. JSON lines and
    CSV are appended (``O_APPEND``) one whole record per ``write`` call."""

    def __init__(self, path: str | os.PathLike | None, fmt: str, *, overwrite: bool = False,
                 expect: dict[str, Any] | None = None, fields: tuple[str, ...] = RECORD_FIELDS) -> None:
        self.path = None if path is None else Path(path)  # None: standard output (nothing to resume)
        self.fields = fields  # JSON lines: the keys written
        self.fmt = fmt
        self.previous = 0  # records found from an earlier run
        self._lock: OutputLock | None = None
        self._fd: int | None = None
        paths: list[str] = []
        if self.path is None:
            if fmt == "parquet":
                raise ConfigError("--format parquet needs --out (a folder of shards)")
            self._start_text(None, header=True)
        else:
            self._lock = OutputLock(self.path)
            try:
                if fmt == "parquet":
                    self._open_parquet(overwrite, paths, expect)
                else:
                    self._open_text(overwrite, paths, expect)
            except BaseException:
                self._lock.release()
                raise
        self.done = PathSet(paths)

    # a record from another model or threshold would be mixed into this one's: refuse
    def _check(self, rec: dict[str, Any], expect: dict[str, Any] | None) -> None:
        for k, v in (expect or {}).items():
            got = rec.get(k)
            if got in (None, "") or str(got) == str(v) or (_is_number(got) and _is_number(v)
                                                          and float(got) == float(v)):
                continue
            raise DataError(f"{self.path}: holds records of another run ({k} {got}, this run has {v}); give "
                            "another --out, or --overwrite to replace them")

    def _open_text(self, overwrite: bool, paths: list[str], expect) -> None:
        end = 0
        if self.path.exists() and not overwrite:
            if self.path.is_dir():
                raise DataError(f"{self.path}: is a folder; give a file for --format {self.fmt}")
            for rec, end in (read_csv(self.path) if self.fmt == "csv" else read_jsonl(self.path)):
                self._check(rec, expect)
                paths.append(rec["path"])
            self.previous = len(paths)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.ftruncate(fd, end)  # a torn last record (a run killed while writing it) is cut off and written again
        self._start_text(fd, header=end == 0)

    def _start_text(self, fd: int | None, header: bool) -> None:
        self._fd = fd  # None: standard output
        self._csv = self.fmt == "csv"
        if self._csv and header:
            self._emit(self._csv_line(RECORD_FIELDS))

    @staticmethod
    def _csv_line(cells) -> str:
        buf = io.StringIO()
        csv.writer(buf).writerow(cells)
        return buf.getvalue()

    def _emit(self, text: str) -> None:
        """One record (or the header), whole, in one append: records of two writers never interleave."""
        if self._fd is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(self._fd, data):]

    def _open_parquet(self, overwrite: bool, paths: list[str], expect) -> None:
        pq = _pyarrow()
        if self.path.exists() and not self.path.is_dir():
            raise DataError(f"{self.path}: Parquet output is a folder of shards, and this is a file")
        self.path.mkdir(parents=True, exist_ok=True)
        for tmp in self.path.glob(".part-*"):  # a shard being written when a run was killed
            tmp.unlink()
        shards = parquet_shards(self.path)
        if overwrite:
            for s in shards:
                s.unlink()
            shards = []
        for s in shards:
            table = pq.read_table(s, columns=["path", "model", "model_version", "threshold"])
            if table.num_rows:
                self._check(table.slice(0, 1).to_pylist()[0], expect)
            paths += table.column("path").to_pylist()
        self.previous = len(paths)
        self._next_shard = int(shards[-1].stem.split("-")[1]) + 1 if shards else 0
        self._rows: list[dict[str, Any]] = []

    def write(self, rec: dict[str, Any]) -> None:
        if self.fmt == "parquet":
            self._rows.append({k: json.dumps(utf8_obj(v)) if isinstance(v, dict) else utf8_obj(v)
                               for k, v in ((k, rec.get(k)) for k in RECORD_FIELDS)})
            if len(self._rows) >= PARQUET_ROWS:
                self._flush_parquet()
            return
        if self._csv:
            row = csv_row(rec)
            self._emit(self._csv_line([row[k] for k in RECORD_FIELDS]))
        else:
            self._emit(json.dumps(utf8_obj({k: rec.get(k) for k in self.fields})) + "\n")

    def _flush_parquet(self) -> None:
        if not self._rows:
            return
        import pyarrow as pa

        pq = _pyarrow()
        table = pa.Table.from_pylist(self._rows, schema=parquet_schema())
        final = self.path / f"part-{self._next_shard:05d}.parquet"
        tmp = self.path / f".{final.name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, final)  # a shard is there whole, or not at all
        self._next_shard += 1
        self._rows = []

    def close(self) -> None:
        try:
            if self.fmt == "parquet":
                self._flush_parquet()
            elif self._fd is not None:
                os.close(self._fd)
                self._fd = None
        finally:
            if self._lock is not None:
                self._lock.release()


def parquet_schema():
    import pyarrow as pa

    f64, i64, s = pa.float64(), pa.int64(), pa.string()
    types = {"path": s, "kind": s, "score": f64, "label": s, "threshold": f64, "calibrated": pa.bool_(), "model_score": f64,
             "operating_point": s, "threshold_source": s, "faces_found": i64, "face_boxes": pa.list_(pa.list_(f64)),
             "frame_scores": pa.list_(f64), "frame_indices": pa.list_(i64), "frame_times": pa.list_(f64),
             "clip_scores": pa.list_(f64), "region": s, "warnings": pa.list_(s), "model": s, "model_version": s, "backend": s,
             "demonstration": pa.bool_(), "error": s, "seconds": f64, "explanation": pa.list_(s),
             "provenance": s, "members": s, "signals": s, "reasons": pa.list_(s)}  # region, provenance, members,
    # signals: JSON text
    return pa.schema([(k, types[k]) for k in RECORD_FIELDS])


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
