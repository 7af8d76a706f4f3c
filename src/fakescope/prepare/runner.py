"""``fakescope prepare``: a dataset as its authors lay it out -> face crops and manifests.

Videos: sampled frames (:mod:`fakescope.media.video`) go through the face pipeline
(:mod:`fakescope.faces.pipeline`), whose crops are saved as PNG with rows for the manifest
(:mod:`fakescope.prepare.video_job`). Image datasets are referenced where they are (each image is decoded
once to check it). DeepfakeBench's extracted frames are referenced where they are too. What is written, and
how, is described in :mod:`fakescope.data.manifest`; the face stage is written beside every manifest.

The unit of work is a video (or a chunk of images of one folder). A unit's
record is written last, so a re-run skips finished units and redoes the rest;
``num_shards``/``shard_index`` split the units between the jobs of a cluster
array by a stable hash of their key.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fakescope.data.manifest import RecordStore, atomic_write_text, write_outputs
from fakescope.errors import DataError
from fakescope.media.image import load_image
from fakescope.prepare.adapters import AdapterOptions, iter_items
from fakescope.prepare.lifecycle import Stopped, stop_on_signals, sweep
from fakescope.prepare.options import PrepareOptions
from fakescope.prepare.pool import WorkerPool, make_pipeline, trim_heap
from fakescope.prepare.units import Unit, failure, make_units, row, shard_of
from fakescope.prepare.video_job import VideoReader, crop_folder, process_video


@dataclass
class Summary:
    dataset: str
    out: str
    units: int = 0  # units of this shard
    skipped: int = 0  # finished in an earlier run
    processed: int = 0
    videos: int = 0
    frames: int = 0  # sampled frames decoded
    frames_with_face: int = 0
    faces: int = 0  # crops written
    short_videos: int = 0
    images: int = 0
    failures: Counter = field(default_factory=Counter)  # this run's, by reason
    failure_list: list[dict[str, str]] = field(default_factory=list)
    total_failures: int = 0  # in the output folder, including earlier runs
    rows: int = 0  # manifest rows in the output folder
    seconds: float = 0.0
    worker_peak_mib: float = 0.0  # the largest peak memory (max RSS) of a worker process (workers > 0)

    @property
    def exit_code(self) -> int:
        """0 when nothing in the output folder failed, 1 otherwise."""
        return 1 if self.total_failures else 0

    def lines(self, max_listed: int = 20) -> list[str]:
        out = [f"prepared {self.dataset} into {self.out} in {self.seconds:.1f} s",
               f"  units of work: {self.units} in this shard; {self.processed} processed now, "
               f"{self.skipped} already done"]
        if self.videos:
            rate = 100.0 * self.frames_with_face / self.frames if self.frames else 0.0
            out.append(f"  videos: {self.videos}; frames sampled: {self.frames}; frames with a face: "
                       f"{self.frames_with_face} ({rate:.1f}%); face crops: {self.faces}")
            if self.short_videos:
                out.append(f"  short videos (fewer frames than asked, all taken): {self.short_videos}")
        if self.images:
            out.append(f"  images: {self.images}")
        out.append(f"  manifest rows: {self.rows} (manifest.csv)")
        if self.failures:
            by_reason = ", ".join(f"{r}: {n}" for r, n in sorted(self.failures.items()))
            out.append(f"  failures this run: {sum(self.failures.values())} ({by_reason})")
            for f in self.failure_list[:max_listed]:
                out.append(f"    {f['path']}: {f['reason']}: {f['detail']}")
            if len(self.failure_list) > max_listed:
                out.append(f"    ... {len(self.failure_list) - max_listed} more in failures.csv")
        if self.total_failures:
            out.append(f"  failures in the output folder: {self.total_failures} "
                       f"(see {Path(self.out) / 'failures.csv'})")
        else:
            out.append("  no failures")
        return out



# ----------------------------------------------------------------- images
def process_images(unit: Unit, opt: PrepareOptions) -> dict[str, Any]:
    """Check that each image decodes (unless disabled) and reference it where it is."""
    rows, failures = [], []
    for it in unit.items:
        path = os.path.abspath(it.path)
        if not os.path.isfile(path):
            failures.append(failure(it, "not-a-file", "not a regular file (a named pipe, socket or device)")
                            if os.path.exists(path) else failure(it, "missing-file", "file not found"))
            continue
        if opt.verify_images:
            try:
                load_image(path)
            except DataError as exc:  # unreadable, or over the pixel budget
                failures.append(failure(it, "image-decode", str(exc).split(": ", 1)[-1]))
                continue
        rows.append(row(it, path))
    return {"rows": rows, "failures": failures}



# ------------------------------------------------------------------ main
def _check_settings(out: Path, dataset: str, root: str, opt: PrepareOptions) -> None:
    meta_file = out / "prepare.json"
    current = {"dataset": dataset, "settings": opt.output_settings()}
    if meta_file.is_file():
        try:
            old = json.loads(meta_file.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        if old.get("dataset") not in (None, dataset):
            raise DataError(f"{out} holds a prepared '{old.get('dataset')}' dataset; use another --out for '{dataset}'")
        # settings added since: the value that earlier versions worked with
        before = {"face_search": "full"} | old.get("settings", {})
        diff = {k: (before.get(k), v) for k, v in current["settings"].items() if before.get(k) != v}
        if diff:
            what = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise DataError(f"{out} was prepared with other settings ({what}); use another --out, or the same "
                            "settings to resume")
    atomic_write_text(meta_file, json.dumps({**current, "root": str(root)}, indent=2))


def prepare(dataset: str, root: str | Path, out: str | Path, options: PrepareOptions | None = None,
            adapter_options: AdapterOptions | None = None, progress: bool = False,
            echo: Callable[[str], None] = print) -> Summary:
    """Prepare ``dataset`` found at ``root`` into ``out``; returns the run's :class:`Summary`."""
    opt = options or PrepareOptions()
    opt.check()
    start = time.perf_counter()
    out = Path(out)
    items = iter_items(dataset, root, adapter_options)
    if opt.split:
        items = [it for it in items if it.split == opt.split]
        if not items:
            raise DataError(f"{root}: no {dataset} items in split '{opt.split}'")
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, dataset, str(root), opt)
    units = [u for u in make_units(items) if shard_of(u.key, opt.num_shards) == opt.shard_index]
    store = RecordStore(out)
    summary = Summary(dataset=dataset, out=str(out), units=len(units))
    todo = []
    for u in units:
        rec = store.get(u.key)
        if rec is not None and not (opt.retry_failed and rec.get("failures")):
            summary.skipped += 1
        else:
            todo.append(u)
    if opt.limit is not None:
        todo = todo[:opt.limit]
    removed = sweep(out, [crop_folder(out, u.items[0]) for u in units if u.kind == "video"])
    if removed:
        echo(f"removed {removed} temporary file(s) or folder(s) left by an earlier run that was interrupted")

    pooled = opt.workers > 0
    pipeline = make_pipeline(opt) if any(u.kind == "video" for u in todo) else None
    if pooled:
        pipeline = None  # made here only to fail at once on a bad detector setting; each worker makes its own

    recorded: set[str] = set()

    def record(unit: Unit, rec: dict[str, Any]) -> None:
        if unit.kind == "video":
            v = rec["video"]
            summary.videos += 1
            summary.frames += int(v.get("frames_sampled") or 0)
            summary.frames_with_face += int(v.get("frames_with_face") or 0)
            summary.faces += len(rec["rows"])
            summary.short_videos += int(v.get("short") or 0)
            summary.worker_peak_mib = max(summary.worker_peak_mib, float(rec.pop("peak_mib", 0.0)))
        else:
            summary.images += len(unit.items)
        for f in rec["failures"]:
            summary.failures[f["reason"]] += 1
            summary.failure_list.append(f)
        store.put({"key": unit.key, "kind": unit.kind, **rec})
        recorded.add(unit.key)
        summary.processed += 1

    def run(unit: Unit, messages=None) -> None:
        if unit.kind == "video":
            rec = process_video(unit.items[0], pipeline, opt, out, messages)
            trim_heap()
        else:
            rec = process_images(unit, opt)
        record(unit, rec)

    def run_all(advance: Callable[[], None]) -> None:
        """Units in order; with ``prefetch``, a :class:`VideoReader` decodes frames while faces are detected;
        with ``workers``, videos go to worker processes and the other units are done here meanwhile."""
        if pooled:
            for u in todo:
                if u.kind != "video":
                    run(u)
                    advance()
            for u, rec in WorkerPool(opt, out).run([u for u in todo if u.kind == "video"]):
                record(u, rec)
                advance()
            return
        videos = [u.items[0] for u in todo if u.kind == "video"]
        reader = VideoReader(videos, opt, depth=pipeline.batch_size) if opt.prefetch and videos else None
        try:
            k = 0
            for u in todo:
                messages = None
                if u.kind == "video" and reader is not None:
                    messages = reader.messages(k)
                    k += 1
                run(u, messages)
                advance()
        finally:
            if reader is not None:
                reader.close()

    has_videos = any(it.kind == "video" for it in items)
    try:
        with stop_on_signals():
            if progress and todo:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeRemainingColumn(), transient=True) as bar:
                    task = bar.add_task(f"prepare {dataset}", total=len(todo))
                    run_all(lambda: bar.advance(task))
            else:
                run_all(lambda: None)
    except KeyboardInterrupt as exc:  # SIGTERM or Ctrl-C: keep what is finished, say so, stop
        what = exc.args[0] if isinstance(exc, Stopped) else "SIGINT"
        counts = write_outputs(out, store.all(), face=opt.face if has_videos else None)
        # the workers are gone; what they could not clean up goes now: the temporary folders of a worker killed
        # after its grace time, and the crops a worker renamed into place before their record arrived here
        unfinished = [crop_folder(out, u.items[0]) for u in todo if u.kind == "video" and u.key not in recorded]
        sweep(out, unfinished)
        for folder in unfinished:
            shutil.rmtree(folder, ignore_errors=True)
        echo(f"prepare: stopped by {what} after {summary.processed} of {len(todo)} unit(s) of this run; the "
             f"{counts['rows']} manifest rows of the finished ones are written; the unit(s) in progress are not in "
             "them and are redone by the next run (the same command), which also removes any temporary folder "
             "they left")
        raise

    # the face stage the crops were made with, written beside every manifest (image datasets: none)
    if has_videos and any(it.kind != "video" for it in items):
        echo("warning: this dataset mixes videos (face crops) and images (used whole); its manifests declare the "
             "face stage of the videos")
    counts = write_outputs(out, store.all(), face=opt.face if has_videos else None)
    summary.rows = counts["rows"]
    summary.total_failures = counts["failures"]
    summary.seconds = time.perf_counter() - start
    for line in summary.lines():
        echo(line)
    return summary

