"""``fakescope prepare``: a dataset as its authors lay it out -> face crops and manifests.

Videos: sampled frames (:mod:`fakescope.data.video`), faces detected in one
batch per video (:mod:`fakescope.data.faces`), crops (:mod:`fakescope.data.align`)
saved as PNG, rows for the manifest. Image datasets are referenced where they
are (each image is decoded once to check it). DeepfakeBench's extracted frames
are referenced where they are too. What is written, and how, is described in
:mod:`fakescope.data.manifest`.

The unit of work is a video (or a chunk of images of one folder). A unit's
record is written last, so a re-run skips finished units and redoes the rest;
``num_shards``/``shard_index`` split the units between the jobs of a cluster
array by a stable hash of their key.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

from PIL import Image

from fakescope.data.adapters import AdapterOptions, Item, iter_items
from fakescope.data.manifest import RecordStore, atomic_write_text, format_box, write_outputs
from fakescope.errors import DataError

IMAGE_CHUNK = 2000  # images per unit of work (and per record file)
PNG_COMPRESS_LEVEL = 1  # lossless either way; level 1 encodes several times faster than the default 6


@dataclass(frozen=True)
class PrepareOptions:
    num_frames: int = 32  # frames per video (even mode), or at most this many (stride mode; 0 = all)
    sampling: str = "even"  # even | stride
    stride: int = 1
    start: int = 0
    faces: str = "largest"  # largest | all
    crop: str = "box"  # box | align
    size: int = 256  # crop side in pixels (box mode: 0 keeps the native size)
    margin: float = 1.3  # box: side = margin x the face box; align: DeepfakeBench's scale
    detector: str = "mtcnn"
    detector_weights: str | None = None
    device: str = "cpu"
    threads: int = 1  # torch threads for detection on CPU (the small MTCNN layers run best on one)
    detect_size: int = 640  # longest frame side the detector sees (MTCNN)
    min_face: int = 20  # smallest face searched for, in detector pixels (MTCNN)
    # track: with faces=largest, after a video's first frame only faces of at least a third of the main
    # face's size are searched for (faces.track_face); a frame where the main face is not found, or shrank,
    # is searched in full again (faces.search_again). full: every face size in every frame. Detectors
    # without min_size (takes_min_size) always search in full.
    face_search: str = "track"
    verify_images: bool = True  # decode every image of image datasets once
    num_shards: int = 1
    shard_index: int = 0
    retry_failed: bool = False
    split: str | None = None  # keep this split only
    limit: int | None = None  # process at most this many units (a quick look at a large dataset)
    prefetch: bool = True  # decode frames in a thread (a few ahead) while faces are detected
    # FFmpeg decoder threads per video (0 = its choice). One: the reader thread already runs beside the
    # detector, and FFmpeg's own threads then cost CPU time and memory for nothing (measured on 2 cores:
    # 11.9 instead of 13.2 CPU s for the 7 FF++ fixture videos, and a lower peak memory)
    decode_threads: int = 1
    # worker processes for videos (0: videos are prepared in this process). Each worker runs the detector on
    # its own videos (with ``threads`` torch threads and its own reader thread); this process only writes
    # the records, so a worker that dies (a decoder crash, the kernel's out-of-memory killer) costs its
    # video, reported as a failure, and the run goes on.
    workers: int = 0
    # a worker process is replaced after this many videos (0: never), which bounds what a long run can
    # accumulate (allocator fragmentation, a leak in a decoder). A new worker's first video runs slower
    # (start-up, the detector's first passes): benchmarks/prepare_throughput.py took 7.4 s for the 7 FF++
    # fixture videos on 2 cores with 1, 6.7 s with 8 (before the tracked face search). 1 gives each video a
    # process of its own.
    videos_per_worker: int = 8

    # settings that change what is written; a re-run into the same folder must use the same ones
    OUTPUT_KEYS = ("num_frames", "sampling", "stride", "start", "faces", "crop", "size", "margin", "detector",
                   "detect_size", "min_face", "face_search")

    def output_settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.OUTPUT_KEYS}

    def check(self) -> None:
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise DataError(f"--shard-index must be in 0..{self.num_shards - 1} (--num-shards {self.num_shards}), "
                            f"got {self.shard_index}")
        if self.sampling == "even" and self.num_frames < 1:
            raise DataError(f"--num-frames must be at least 1 for even sampling, got {self.num_frames}")
        if self.stride < 1:
            raise DataError(f"--stride must be at least 1, got {self.stride}")
        if self.faces not in ("largest", "all"):
            raise DataError(f"--faces '{self.faces}': choose largest or all")
        if self.face_search not in ("track", "full"):
            raise DataError(f"--face-search '{self.face_search}': choose track or full")
        if self.crop not in ("box", "align"):
            raise DataError(f"--crop '{self.crop}': choose box or align")
        if self.size < 0 or (self.crop == "align" and self.size == 0):
            raise DataError(f"--size {self.size}: must be positive (0 = native size, box crops only)")
        if self.margin <= 0:
            raise DataError(f"--margin must be positive, got {self.margin}")
        if self.threads < 1:
            raise DataError(f"--threads must be at least 1, got {self.threads}")
        if self.workers < 0:
            raise DataError(f"--workers must be 0 (this process) or more, got {self.workers}")
        if self.videos_per_worker < 0:
            raise DataError(f"--videos-per-worker must be 0 (no limit) or more, got {self.videos_per_worker}")
        if self.decode_threads < 0:
            raise DataError(f"--decode-threads must be 0 (automatic) or more, got {self.decode_threads}")


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


# ------------------------------------------------------------------ units
@dataclass(frozen=True)
class Unit:
    key: str
    kind: str  # video | images | frames
    items: tuple[Item, ...]


def make_units(items: list[Item]) -> list[Unit]:
    """Videos one by one; images in chunks per folder; extracted frames grouped by video."""
    units: list[Unit] = []
    images: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
    frames: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
    for it in items:
        if it.kind == "video":
            units.append(Unit(f"video:{it.split}:{it.video_id or it.path}", "video", (it,)))
        elif it.kind == "frame":
            frames[(it.split, it.method, it.video_id or "")].append(it)
        else:
            images[(it.split, it.method, str(Path(it.path).parent))].append(it)
    for (split, method, vid), its in sorted(frames.items()):
        units.append(Unit(f"frames:{split}:{method}:{vid}", "frames", tuple(its)))
    for (split, method, folder), its in sorted(images.items()):
        for i in range(0, len(its), IMAGE_CHUNK):
            units.append(Unit(f"images:{split}:{method}:{folder}:{i // IMAGE_CHUNK}", "images",
                              tuple(its[i:i + IMAGE_CHUNK])))
    return units


def shard_of(key: str, num_shards: int) -> int:
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % num_shards


def _failure(item: Item, reason: str, detail: str) -> dict[str, str]:
    return {"path": item.path, "reason": reason, "detail": detail, "dataset": item.dataset, "method": item.method,
            "split": item.split, "video_id": item.video_id or ""}


def _video_entry(item: Item) -> dict[str, Any]:
    """A video's line of ``videos.csv`` before anything is known of it (failed until it succeeds)."""
    return {"video_id": item.video_id, "path": item.path, "label": item.label, "dataset": item.dataset,
            "method": item.method, "split": item.split, "status": "failed", "reason": ""}


def _failed_video(item: Item, reason: str, detail: str, video: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of a video that failed (``video``: what is known of it so far)."""
    video = video if video is not None else _video_entry(item)
    video["reason"] = reason
    return {"video": video, "failures": [_failure(item, reason, detail)], "rows": []}


def _row(item: Item, path: str, **extra) -> dict[str, Any]:
    row = {"path": path, "label": item.label, "dataset": item.dataset, "method": item.method, "split": item.split,
           "video_id": item.video_id or "", "frame_index": "" if item.frame_index is None else item.frame_index,
           "box": "", "score": "", "track": ""}
    row.update(extra)
    return row


# ----------------------------------------------------------------- videos
def _crop_folder(out: Path, item: Item) -> Path:
    parts = [p for p in Path(item.video_id or Path(item.path).stem).parts if p not in ("", ".", "..", "/")]
    return out.joinpath("crops", *([item.split] if item.split else []), *parts)


def video_messages(item: Item, opt: PrepareOptions) -> Iterator[tuple[str, Any]]:
    """One video read for :func:`process_video`: ``("open", stream)``, then ``("frame", (index, time, rgb))``
    for each sampled frame, then ``("done", info)``; or ``("failed", (reason, detail))`` at any point.

    Never raises for bad input: an unreadable file, or one that breaks off
    after some frames, ends in a ``failed`` message.
    """
    from fakescope.data.video import FrameStream, VideoReadError

    try:
        stream = FrameStream(item.path, num_frames=opt.num_frames, mode=opt.sampling, stride=opt.stride,
                             start=opt.start, threads=opt.decode_threads)
    except VideoReadError as exc:
        yield "failed", (exc.reason, exc.detail)
        return
    except Exception as exc:  # anything else the decoder throws at odd files: report it, go on
        yield "failed", ("read-error", f"{type(exc).__name__}: {exc}")
        return
    yield "open", stream
    try:
        for frame in stream:
            yield "frame", frame
    except VideoReadError as exc:
        yield "failed", (exc.reason, exc.detail)
        return
    except Exception as exc:
        yield "failed", ("read-error", f"{type(exc).__name__}: {exc}")
        return
    finally:
        stream.close()
    yield "done", stream.info


class VideoReader:
    """Reads the videos of a run ahead, in a thread, while the caller detects faces.

    Messages (those of :func:`video_messages`) pass through a queue of
    ``depth`` entries, so at most ``depth`` decoded frames wait at any time,
    however many videos and frames there are. Decoding (FFmpeg) and the
    detector's torch operations release the GIL, so the two overlap.
    """

    _END = object()

    def __init__(self, items: list[Item], opt: PrepareOptions, depth: int = 8) -> None:
        self.items = items
        self.opt = opt
        self.queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fakescope-decode", daemon=True)
        self.thread.start()

    def _put(self, message) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for k, item in enumerate(self.items):
                for kind, payload in video_messages(item, self.opt):
                    if not self._put((k, kind, payload)):
                        return
        except BaseException as exc:  # a bug, or memory: hand it to the caller
            self._put((None, "crash", exc))

    def messages(self, k: int) -> Iterator[tuple[str, Any]]:
        """The messages of the ``k``-th video (videos must be taken in order, each to its end)."""
        while True:
            got, kind, payload = self.queue.get()
            if kind == "crash":
                raise payload
            if got != k:
                raise RuntimeError(f"video reader out of step: expected video {k}, got {got}")
            yield kind, payload
            if kind in ("done", "failed"):
                return

    def close(self) -> None:
        self.stop.set()
        while self.thread.is_alive():
            try:
                while True:
                    self.queue.get_nowait()
            except queue.Empty:
                pass
            self.thread.join(timeout=0.1)


def process_video(item: Item, detector, opt: PrepareOptions, out: Path,
                  messages: Iterator[tuple[str, Any]] | None = None) -> dict[str, Any]:
    """Sample, detect, crop and save one video; returns its record (never raises for bad input).

    Frames arrive one by one (``messages``: those of :func:`video_messages`,
    possibly read ahead by a :class:`VideoReader`) and go to the detector in
    batches; after detection only the crops of the faces found are kept, not
    the frames. Once every frame is in, :func:`~fakescope.data.faces.select_faces`
    picks the faces, their crops are written as PNG into a temporary folder,
    and the folder is renamed into place.
    """
    import numpy as np

    from fakescope.data import align
    from fakescope.data.faces import search_again, select_faces, track_face

    video = _video_entry(item)

    def failed(reason: str, detail: str) -> dict[str, Any]:
        return _failed_video(item, reason, detail, video)

    messages = iter(messages if messages is not None else video_messages(item, opt))
    kind, stream = next(messages)
    if kind == "failed":
        return failed(*stream)
    batch_size = max(int(getattr(detector, "batch_size", 8) or 8), 1)
    indices: list[int] = []
    detected: list[list] = []  # faces of each sampled frame
    crops: list[dict] = []  # per frame: face box -> crop of that face
    batch: list[tuple[int, float, Any]] = []
    tracking = opt.face_search == "track" and opt.faces == "largest" and getattr(detector, "takes_min_size", False)
    searches = {"tracked": 0, "again": 0}

    def detect_tracked(frames: list) -> list[list]:
        """Faces of at least :func:`track_face`'s size; a full search where :func:`search_again` says so."""
        track = track_face(detected)
        if track is None:
            return detector.detect(frames)
        found = detector.detect(frames, min_size=track.min_size)
        searches["tracked"] += len(frames)
        again = [i for i, faces in enumerate(found) if search_again(faces, track)]
        if again:
            searches["again"] += len(again)
            for i, faces in zip(again, detector.detect([frames[i] for i in again])):
                found[i] = faces
        return found

    def flush() -> None:
        if not batch:
            return
        frames = [f for _, _, f in batch]
        found = detect_tracked(frames) if tracking else detector.detect(frames)
        for (idx, _, frame), faces in zip(batch, found):
            indices.append(idx)
            detected.append(faces)
            crops.append({face.box: align.face_crop(frame, face.box, face.landmarks, mode=opt.crop, size=opt.size,
                                                    margin=opt.margin) for face in faces})
        batch.clear()

    info = None
    for kind, payload in messages:
        if kind == "frame":
            batch.append(payload)
            if len(batch) >= (1 if tracking and not detected else batch_size):  # tracking: the first frame alone
                flush()
        elif kind == "failed":
            for _ in messages:  # pragma: no cover - "failed" is always the last message
                pass
            return failed(*payload)
        elif kind == "done":
            info = payload
    flush()
    video.update(frames_total=info.num_frames, frames_sampled=len(indices), short=int(stream.short),
                 width=info.width, height=info.height, fps=round(info.fps, 3), rotation=info.rotation)
    chosen = select_faces(detected, opt.faces)
    n_with_face = sum(1 for faces in chosen if faces)
    video.update(frames_with_face=n_with_face, faces=sum(len(f) for f in chosen),
                 frames_tracked=searches["tracked"], frames_searched_again=searches["again"])
    if n_with_face == 0:
        return failed("no-face", f"no face found in any of the {len(indices)} sampled frames")

    final = _crop_folder(out, item)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows = []
    try:
        for idx, faces, frame_crops in zip(indices, chosen, crops):
            for face in faces:
                name = f"{idx:06d}.png" if face.track == 0 else f"{idx:06d}_face{face.track}.png"
                Image.fromarray(np.ascontiguousarray(frame_crops[face.box])).save(
                    tmp / name, compress_level=PNG_COMPRESS_LEVEL)
                rows.append(_row(item, (final / name).relative_to(out).as_posix(), frame_index=idx,
                                 box=format_box(face.box), score=f"{face.score:.4f}", track=face.track))
    except BaseException:  # interrupted, or the disk is full: leave no half-written folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # left by a run interrupted after the rename, before its record was written
        shutil.rmtree(final)
    os.replace(tmp, final)
    video["status"] = "ok"
    return {"video": video, "rows": rows, "failures": []}


def _trim_heap() -> None:
    """Give the memory freed by a finished video back to the system (glibc's ``malloc_trim``; else nothing)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def auto_workers(cap: int = 8) -> int:
    """Worker processes for ``--workers auto``: one per CPU core this process may use, at most ``cap``
    (each worker holds a detector and a video's frames, about 0.5 GiB at 1080p)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, cap))


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (``VmHWM``; ``ru_maxrss`` where there is no ``/proc``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# ---------------------------------------------------------- worker processes
_WORKER: dict[str, Any] = {}


def _worker_init(opt: PrepareOptions, sys_path: list[str]) -> None:
    """Set up a worker process: the parent's import path (for detector plug-ins), torch threads, the detector."""
    import sys

    for p in sys_path:
        if p not in sys.path:
            sys.path.append(p)
    import torch

    torch.set_num_threads(opt.threads)
    _WORKER["detector"] = _make_detector(opt)


def _worker_video(item: Item, opt: PrepareOptions, out: str) -> dict[str, Any]:
    """One video in a worker process (frames read ahead in a thread when ``prefetch``); its record."""
    reader = VideoReader([item], opt, depth=_batch_size(_WORKER["detector"])) if opt.prefetch else None
    try:
        rec = process_video(item, _WORKER["detector"], opt, Path(out), reader.messages(0) if reader else None)
    finally:
        if reader is not None:
            reader.close()
    _trim_heap()
    rec["peak_mib"] = peak_rss_mib()
    return rec


def _file_size(unit: Unit) -> int:
    try:
        return os.path.getsize(unit.items[0].path)
    except OSError:
        return 0


def _ping() -> int:
    return os.getpid()


def _crashed(unit: Unit) -> dict[str, Any]:
    return _failed_video(unit.items[0], "worker-crashed",
                         "the worker process preparing this video died (a crash in the decoder or detector, or "
                         "killed, for example by the out-of-memory killer); the other videos went on")


class WorkerPool:
    """Videos prepared by worker processes; records come back to the caller, who writes them.

    Workers start from a fork server that has imported torch and fakescope
    (``spawn`` where there is none), make their detector once, and are
    replaced after ``videos_per_worker`` videos. Videos go out largest file
    first (a long video started last leaves the other workers idle at the
    end). At most twice as many
    videos as workers are in flight. When a worker dies, the pool is
    rebuilt and each video that was in flight is tried again alone; the one
    that kills its worker again is recorded as failed (``worker-crashed``).
    """

    def __init__(self, opt: PrepareOptions, out: Path) -> None:
        import multiprocessing as mp
        import sys

        self.opt, self.out = opt, str(out)
        methods = mp.get_all_start_methods()
        self.ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        if self.ctx.get_start_method() == "forkserver":
            self.ctx.set_forkserver_preload(["torch", "av", "fakescope.data.faces", "fakescope.data.prepare"])
        self.sys_path = list(sys.path)
        self._started = False  # a worker has finished a video: the workers do start

    def _pool(self, workers: int):
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=workers, mp_context=self.ctx, initializer=_worker_init,
                                   initargs=(self.opt, self.sys_path),
                                   max_tasks_per_child=self.opt.videos_per_worker or None)

    def _check_workers_start(self) -> None:
        """Raise a clear error when a worker dies before any video (a setup problem, not a bad video)."""
        from concurrent.futures.process import BrokenProcessPool

        if self._started:
            return
        pool = self._pool(1)
        try:
            pool.submit(_ping).result()
        except BrokenProcessPool:
            raise DataError(
                "prepare: the worker processes could not start (their error is printed above). A script that "
                "calls prepare() with workers must start from an `if __name__ == \"__main__\":` block, as "
                "Python's multiprocessing requires; or use workers=0 (--workers 0)") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self._started = True

    def run(self, units: list[Unit]) -> Iterator[tuple[Unit, dict[str, Any]]]:
        """``(unit, record)`` for every video unit, in the order they finish."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        # largest files first (popped from the end): a long video started last would leave the other
        # workers idle at the end of the run
        pending = sorted(units, key=_file_size)
        suspects: list[Unit] = []  # in flight when a worker died: each is tried again alone
        while pending or suspects:
            if suspects:
                unit = suspects.pop()
                pool = self._pool(1)
                try:
                    rec = pool.submit(_worker_video, unit.items[0], self.opt, self.out).result()
                except BrokenProcessPool:
                    self._check_workers_start()
                    rec = _crashed(unit)
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)
                yield unit, rec
                continue
            pool = self._pool(self.opt.workers)
            running: dict[Any, Unit] = {}
            try:
                while pending or running:
                    while pending and len(running) < 2 * self.opt.workers:
                        unit = pending.pop()
                        running[pool.submit(_worker_video, unit.items[0], self.opt, self.out)] = unit
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    broken = False
                    for fut in done:
                        unit = running.pop(fut)
                        try:
                            rec = fut.result()
                        except BrokenProcessPool:
                            suspects.append(unit)
                            broken = True
                            continue
                        self._started = True
                        yield unit, rec
                    if broken:  # every video still in flight is lost with the pool: try each again alone
                        suspects.extend(running.values())
                        running.clear()
                        break
            finally:
                for fut in running:
                    fut.cancel()
                pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------- images
def process_images(unit: Unit, opt: PrepareOptions) -> dict[str, Any]:
    """Check that each image decodes (unless disabled) and reference it where it is."""
    from fakescope.data.transforms import ImageReadError, load_image

    rows, failures = [], []
    for it in unit.items:
        path = os.path.abspath(it.path)
        if not os.path.isfile(path):
            failures.append(_failure(it, "missing-file", "file not found"))
            continue
        if opt.verify_images:
            try:
                load_image(path)
            except ImageReadError as exc:
                failures.append(_failure(it, "image-decode", str(exc).split(": ", 1)[-1]))
                continue
        rows.append(_row(it, path))
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

    pooled = opt.workers > 0
    detector = _make_detector(opt) if any(u.kind == "video" for u in todo) else None
    if pooled:
        detector = None  # made here only to fail at once on a bad detector setting; each worker makes its own

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
        summary.processed += 1

    def run(unit: Unit, messages=None) -> None:
        if unit.kind == "video":
            rec = process_video(unit.items[0], detector, opt, out, messages)
            _trim_heap()
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
        reader = VideoReader(videos, opt, depth=_batch_size(detector)) if opt.prefetch and videos else None
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

    import torch

    threads_before = torch.get_num_threads()
    torch.set_num_threads(opt.threads)
    try:
        if progress and todo:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), transient=True) as bar:
                task = bar.add_task(f"prepare {dataset}", total=len(todo))
                run_all(lambda: bar.advance(task))
        else:
            run_all(lambda: None)
    finally:
        torch.set_num_threads(threads_before)

    counts = write_outputs(out, store.all())
    summary.rows = counts["rows"]
    summary.total_failures = counts["failures"]
    summary.seconds = time.perf_counter() - start
    for line in summary.lines():
        echo(line)
    return summary


def _make_detector(opt: PrepareOptions):
    from fakescope.data.faces import create_detector

    det_opts = {"detect_size": opt.detect_size, "min_face": opt.min_face} if opt.detector == "mtcnn" else {}
    return create_detector(opt.detector, weights=opt.detector_weights, device=opt.device, **det_opts)


def _batch_size(detector) -> int:
    return max(int(getattr(detector, "batch_size", 8) or 8), 1)


def options_from(**kwargs) -> PrepareOptions:
    """``PrepareOptions`` from keyword arguments, ignoring ``None`` (use the default)."""
    names = {f.name for f in fields(PrepareOptions)}
    return PrepareOptions(**{k: v for k, v in kwargs.items() if k in names and v is not None})


__all__ = ["PrepareOptions", "Summary", "prepare", "process_video", "process_images", "make_units", "shard_of",
           "options_from", "video_messages", "VideoReader", "WorkerPool", "peak_rss_mib", "auto_workers"]
