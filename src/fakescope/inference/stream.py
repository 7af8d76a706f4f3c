"""``fakescope detect`` over millions of files: inputs streamed, records written as they come, a killed run
continued by running the same command again, and the inputs shared out over several processes.

* **Flat memory.** Folders are walked as they are scored (:func:`~fakescope.inference.inputs.iter_inputs`); each
  record is written (and flushed) when its input is scored; what is kept per input is an 8-byte key of its path.
* **Resume.** The paths already in the output (and in the parts of a multi-process run that was stopped) are
  skipped, so every input ends up in the output once. ``overwrite`` starts again.
* **Several processes** (:func:`fakescope.utils.distributed.launch`): process ``r`` of ``W`` scores blocks
  ``r, r + W, ...`` of ``batch_size`` consecutive inputs into ``OUT.parts/w{W}-r{r}.jsonl`` (each record with its
  input number); process 0 then merges the parts into ``OUT`` in input order and removes them. A run with one
  process gives the same records in the same order.
"""

from __future__ import annotations

import heapq
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from fakescope.errors import ConfigError
from fakescope.inference.inputs import Missing, iter_inputs
from fakescope.inference.outputs import Output, PathSet, output_format, read_jsonl, read_records
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


def _part_files(out: str | Path) -> list[Path]:
    folder = parts_folder(out)
    return sorted(folder.glob("w*-r*.jsonl")) if folder.is_dir() else []


def detect_files(detector, paths: Sequence[str], out: str | None, fmt: str | None = None, *,
                 ranks: Ranks | None = None, overwrite: bool = False, num_workers: int = 0,
                 skipped: list[str] | None = None, on_record: Callable[[dict], None] | None = None
                 ) -> DetectSummary:
    """Score ``paths`` (files, folders, patterns) into ``out``; see the module's text for resume and processes.

    Returns what was written (on process 0; the other processes return their own share's counts)."""
    ranks = ranks or Ranks()
    fmt = output_format(out, fmt)
    expect = {"model": detector.name, "model_version": detector.version, "threshold": detector.threshold}
    if out is None:
        if ranks.world > 1:
            raise ConfigError("several processes (--devices) write their records to --out; give one")
        output = Output(None, fmt)  # standard output
        done = output.done
    elif ranks.world == 1:
        if overwrite:
            shutil.rmtree(parts_folder(out), ignore_errors=True)
        output = Output(out, fmt, overwrite=overwrite, expect=expect)
        done = output.done.union(_parts_done(out))
    else:
        if overwrite and ranks.main:
            shutil.rmtree(parts_folder(out), ignore_errors=True)
            Output(out, fmt, overwrite=True, expect=expect).close()
        ranks.barrier()
        done = PathSet(r["path"] for r in read_records(out, fmt)).union(_parts_done(out))
        ranks.barrier()  # every process has read what is done before any writes
        parts_folder(out).mkdir(parents=True, exist_ok=True)
        output = Output(parts_folder(out) / f"w{ranks.world}-r{ranks.rank}.jsonl", "jsonl", expect=expect,
                        fields=RECORD_FIELDS + (INDEX,))
    summary = DetectSummary(previous=output.previous)

    def mine() -> Iterator[tuple[Any, str, dict | None]]:
        for i, (p, err) in enumerate(iter_inputs(paths, skipped)):
            if p in done or not ranks.owns(i, detector.batch_size):
                continue
            yield (p if err is None else Missing(err)), p, ({INDEX: i} if ranks.world > 1 else None)

    try:
        for rec in detector.run_items(mine(), num_workers=num_workers, collected=skipped):
            output.write(rec)
            if ranks.world == 1:
                summary.add(rec)
            if on_record is not None:
                on_record(rec)
        if ranks.world == 1:
            _write_skipped(detector, skipped, done, output, summary)
    finally:
        output.close()
    if out is not None and ranks.world > 1:
        ranks.barrier()  # every part is complete
    if out is not None and ranks.main and _part_files(out):
        _merge_parts(out, fmt, expect, summary)
    if ranks.world > 1 and ranks.main:  # every process walked the same folders: the first one writes
        output = Output(out, fmt, expect=expect)
        try:
            _write_skipped(detector, skipped, output.done, output, summary)
        finally:
            output.close()
    return summary


def _write_skipped(detector, skipped: list[str] | None, done: PathSet, output: Output,
                   summary: DetectSummary) -> None:
    """A record for each file the walk left out by its name, after the scored ones (none twice on a resume)."""
    for p in dict.fromkeys(skipped or ()):
        if p not in done:
            rec = detector.skipped_record(p)
            output.write(rec)
            summary.add(rec)


def _parts_done(out: str | Path) -> PathSet:
    done = PathSet()
    for part in _part_files(out):
        done = done.union(PathSet(rec["path"] for rec, _ in read_jsonl(part)))
    return done


def _merge_parts(out: str | Path, fmt: str, expect: dict[str, Any], summary: DetectSummary) -> None:
    """Append the parts' records to ``out`` in input order (those already there are not written twice), then
    remove the parts."""
    parts = _part_files(out)
    output = Output(out, fmt, expect=expect)
    streams = [(rec for rec, _ in read_jsonl(p)) for p in parts]
    try:
        for rec in heapq.merge(*streams, key=lambda r: int(r.get(INDEX, 0))):
            if rec["path"] in output.done:
                continue
            rec.pop(INDEX, None)
            output.write(rec)
            summary.add(rec)
    finally:
        output.close()
    shutil.rmtree(parts_folder(out), ignore_errors=True)
