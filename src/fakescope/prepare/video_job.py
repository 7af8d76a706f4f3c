"""One video of ``fakescope prepare``: its sampled frames read (ahead, in a thread), the face pipeline run on
them, the crops written as PNG into a temporary folder that is renamed into place, and the video's record."""

from __future__ import annotations

import os
import queue
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from fakescope.data.manifest import format_box
from fakescope.faces import FacePipeline
from fakescope.prepare.adapters import Item
from fakescope.prepare.lifecycle import remove_temporaries
from fakescope.prepare.options import PrepareOptions
from fakescope.prepare.units import failed_video, row, video_entry

PNG_COMPRESS_LEVEL = 1  # lossless either way; level 1 encodes several times faster than the default 6


def crop_folder(out: Path, item: Item) -> Path:
    parts = [p for p in Path(item.video_id or Path(item.path).stem).parts if p not in ("", ".", "..", "/")]
    return out.joinpath("crops", *([item.split] if item.split else []), *parts)


def video_messages(item: Item, opt: PrepareOptions) -> Iterator[tuple[str, Any]]:
    """One video read for :func:`process_video`: ``("open", stream)``, then ``("frame", (index, time, rgb))``
    for each sampled frame, then ``("done", info)``; or ``("failed", (reason, detail))`` at any point.

    Never raises for bad input: an unreadable file, or one that breaks off
    after some frames, ends in a ``failed`` message.
    """
    from fakescope.media.video import FrameStream, VideoReadError

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


def process_video(item: Item, pipeline: FacePipeline, opt: PrepareOptions, out: Path,
                  messages: Iterator[tuple[str, Any]] | None = None) -> dict[str, Any]:
    """Sample, detect, crop and save one video; returns its record (never raises for bad input).

    Frames arrive one by one (``messages``: those of :func:`video_messages`,
    possibly read ahead by a :class:`VideoReader`) and go through the face
    pipeline (:class:`~fakescope.faces.FacePipeline`), which keeps the crops
    of the faces found, not the frames. The selected faces' crops are written
    as PNG into a temporary folder, and the folder is renamed into place.
    """
    video = video_entry(item)

    def failed(reason: str, detail: str) -> dict[str, Any]:
        return failed_video(item, reason, detail, video)

    messages = iter(messages if messages is not None else video_messages(item, opt))
    kind, stream = next(messages)
    if kind == "failed":
        return failed(*stream)
    faces = pipeline.video()
    info = None
    for kind, payload in messages:
        if kind == "frame":
            index, _, frame = payload
            faces.add(index, frame)
        elif kind == "failed":
            for _ in messages:  # pragma: no cover - "failed" is always the last message
                pass
            return failed(*payload)
        elif kind == "done":
            info = payload
    result = faces.finish()
    video.update(frames_total=info.num_frames, frames_sampled=len(result.indices), short=int(stream.short),
                 width=info.width, height=info.height, fps=round(info.fps, 3), rotation=info.rotation)
    video.update(frames_with_face=result.frames_with_face, faces=len(result.crops()),
                 frames_tracked=result.tracked, frames_searched_again=result.searched_again)
    if result.frames_with_face == 0:
        return failed("no-face", f"no face found in any of the {len(result.indices)} sampled frames")

    final = crop_folder(out, item)
    remove_temporaries(final)  # left by a run that was killed while it wrote this video's crops
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    rows = []
    try:
        for c in result.crops():
            name = f"{c.index:06d}.png" if c.face.track == 0 else f"{c.index:06d}_face{c.face.track}.png"
            Image.fromarray(np.ascontiguousarray(c.crop)).save(tmp / name, compress_level=PNG_COMPRESS_LEVEL)
            rows.append(row(item, (final / name).relative_to(out).as_posix(), frame_index=c.index,
                            box=format_box(c.face.box), score=f"{c.face.score:.4f}", track=c.face.track))
    except BaseException:  # interrupted, or the disk is full: leave no half-written folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # left by a run interrupted after the rename, before its record was written
        shutil.rmtree(final)
    os.replace(tmp, final)
    video["status"] = "ok"
    return {"video": video, "rows": rows, "failures": []}
