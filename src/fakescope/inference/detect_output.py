"""The output of a ``fakescope detect`` run (:class:`DetectOutput`): it knows what is already done, writes each
record once, and at the end writes the records of the skipped files and merges the parts of a multi-process run.

* **Resume.** The paths already in the output (and in the parts of a multi-process run that was stopped) are
  done: their inputs are not scored again, so every input ends up in the output once. ``overwrite`` starts again.
* **Several processes** (:class:`~fakescope.utils.distributed.Ranks`): process ``r`` of ``W`` scores blocks
  ``r, r + W, ...`` of ``batch_size`` consecutive inputs into ``OUT.parts/w{W}-r{r}.jsonl`` (each record with its
  input number); process 0 then merges the parts into ``OUT`` in input order and removes them. A run with one
  process gives the same records in the same order.
* **Skipped files** (left out of a folder walk by their name) get a record each, after the scored ones, written
  once (by process 0 of several).

Each file is written through :class:`~fakescope.inference.outputs.Output` (JSON lines, CSV or Parquet).
"""

from __future__ import annotations

import heapq
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from fakescope.errors import ConfigError
from fakescope.inference.outputs import Output, PathSet, read_jsonl, read_records
from fakescope.inference.records import RECORD_FIELDS
from fakescope.utils.distributed import Ranks

INDEX = "input_index"  # the field a part file adds to each record: the input's number in the input stream


@dataclass
class DetectSummary:
    """What a ``detect`` run wrote (on process 0, the merged records of all processes)."""

    fake: int = 0
    real: int = 0
    failed: int = 0
    skipped: int = 0  # files of the folders given left out by their name (each has a record: kind "skipped")
    previous: int = 0  # records already in the output when the run started (an earlier run's)
    errors: list[str] = field(default_factory=list)  # the first failures' messages
    bf16: dict[str, Any] | None = None  # with bf16: how far its scores are from float32 on the first inputs

    @property
    def total(self) -> int:
        return self.fake + self.real + self.failed

    def add(self, rec: dict[str, Any]) -> None:
        if rec.get("kind") == "skipped":
            self.skipped += 1
        elif rec.get("error"):
            self.failed += 1
            if len(self.errors) < 10:
                self.errors.append(str(rec["error"]))
        elif rec.get("label") in ("fake", "real"):
            setattr(self, rec["label"], getattr(self, rec["label"]) + 1)


def parts_folder(out: str | Path) -> Path:
    out = Path(out)
    return out.parent / (out.name + ".parts")


class DetectOutput:
    """The records of one ``detect`` run, from this process, into ``out`` (``None``: standard output).

    Use it as a context manager: :meth:`todo` says which inputs this process scores, :meth:`write` takes their
    records as they come, :meth:`finish` completes the output; leaving the block closes what is still open.
    :attr:`summary` counts what was written (on process 0 of several: the merged records)."""

    def __init__(self, out: str | Path | None, fmt: str, *, expect: dict[str, Any], ranks: Ranks | None = None,
                 overwrite: bool = False) -> None:
        self.out = None if out is None else Path(out)
        self.fmt, self.expect = fmt, expect
        self.ranks = ranks = ranks or Ranks()
        if out is None:
            if ranks.world > 1:
                raise ConfigError("several processes (--devices) write their records to --out; give one")
            self._file = Output(None, fmt)  # standard output
            self.done = self._file.done
        elif ranks.world == 1:
            if overwrite:
                shutil.rmtree(parts_folder(out), ignore_errors=True)
            self._file = Output(out, fmt, overwrite=overwrite, expect=expect)
            self.done = self._file.done.union(self._parts_done())
        else:
            if overwrite and ranks.main:
                shutil.rmtree(parts_folder(out), ignore_errors=True)
                Output(out, fmt, overwrite=True, expect=expect).close()
            ranks.barrier()
            self.done = PathSet(r["path"] for r in read_records(out, fmt)).union(self._parts_done())
            ranks.barrier()  # every process has read what is done before any writes
            parts_folder(out).mkdir(parents=True, exist_ok=True)
            self._file = Output(parts_folder(out) / f"w{ranks.world}-r{ranks.rank}.jsonl", "jsonl", expect=expect,
                                fields=RECORD_FIELDS + (INDEX,))
        self.summary = DetectSummary(previous=self._file.previous)

    def __enter__(self) -> "DetectOutput":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------- while scoring
    def todo(self, index: int, path: str, block: int) -> bool:
        """Whether this process scores input number ``index`` (blocks of ``block`` inputs): not done, and its."""
        return path not in self.done and self.ranks.owns(index, block)

    def extra(self, index: int) -> dict[str, Any] | None:
        """What the record of input number ``index`` carries for the merge (its number, in a part file)."""
        return {INDEX: index} if self.ranks.world > 1 else None

    def write(self, rec: dict[str, Any]) -> None:
        self._file.write(rec)
        if self.ranks.world == 1:
            self.summary.add(rec)

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    # ------------------------------------------------------------------------------------------ at the end
    def finish(self, skipped: Iterable[str] | None, skipped_record: Callable[[str], dict[str, Any]]) -> None:
        """Write the records of the ``skipped`` files (``skipped_record(path)``), close this process's file, and
        on process 0 merge the parts into the output."""
        ranks = self.ranks
        if ranks.world == 1:
            self._write_skipped(self._file, skipped, self.done, skipped_record)
        self.close()
        if self.out is not None and ranks.world > 1:
            ranks.barrier()  # every part is complete
        if self.out is not None and ranks.main and self._part_files():
            self._merge_parts()
        if ranks.world > 1 and ranks.main:  # every process walked the same folders: the first one writes
            output = Output(self.out, self.fmt, expect=self.expect)
            try:
                self._write_skipped(output, skipped, output.done, skipped_record)
            finally:
                output.close()

    def _write_skipped(self, output: Output, skipped: Iterable[str] | None, done: PathSet,
                       skipped_record: Callable[[str], dict[str, Any]]) -> None:
        """A record for each file the walk left out by its name, after the scored ones (none twice on a resume)."""
        for p in dict.fromkeys(skipped or ()):
            if p not in done:
                rec = skipped_record(p)
                output.write(rec)
                self.summary.add(rec)

    def _part_files(self) -> list[Path]:
        folder = parts_folder(self.out)
        return sorted(folder.glob("w*-r*.jsonl")) if folder.is_dir() else []

    def _parts_done(self) -> PathSet:
        done = PathSet()
        for part in self._part_files():
            done = done.union(PathSet(rec["path"] for rec, _ in read_jsonl(part)))
        return done

    def _merge_parts(self) -> None:
        """Append the parts' records to the output in input order (those already there are not written twice),
        then remove the parts."""
        output = Output(self.out, self.fmt, expect=self.expect)
        streams = [(rec for rec, _ in read_jsonl(p)) for p in self._part_files()]
        try:
            for rec in heapq.merge(*streams, key=lambda r: int(r.get(INDEX, 0))):
                if rec["path"] in output.done:
                    continue
                rec.pop(INDEX, None)
                output.write(rec)
                self.summary.add(rec)
        finally:
            output.close()
        shutil.rmtree(parts_folder(self.out), ignore_errors=True)
