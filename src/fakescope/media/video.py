"""Reading sampled frames from a video with PyAV: seek to the frames you need, decode little else.

:func:`read_frames` takes N frames spread evenly over the video's duration
(default 32), or every k-th frame (stride mode). It first lists the video
stream's packets (timestamps and keyframe flags, no decoding), so it knows
the exact frame count, each frame's presentation time and where the keyframes
are, also for variable-frame-rate files. Then it seeks to the keyframe before
each wanted frame (or keeps decoding when that keyframe is already behind
it), asks the decoder to skip non-reference frames that are not wanted, and
converts only the wanted frames to RGB. Decoded pixels are exactly those of
a full sequential decode.

Handled: rotation metadata (portrait phone videos come out upright), audio
and other streams (ignored), odd frame sizes, videos with fewer frames than
asked (all are taken and ``short`` is set). Frames over the pixel budget
(:mod:`fakescope.media.limits`) are scaled down to it while they are
converted to RGB, and the decoder runs on fewer threads for them; frames
many times over it are refused (reason ``too-large``) before any is decoded.
Problems raise :class:`VideoReadError` with a short ``reason`` code and the path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fakescope.errors import DataError
# which names are videos and sound files: one list for folder walks and files named directly
from fakescope.media.formats import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, is_audio_file, is_video_file  # noqa: F401
from fakescope.media.limits import VIDEO_DECODE_FACTOR, max_megapixels, max_pixels
from fakescope.media.video_seek import VideoReadError, decode_wanted, index_packets
# FrameStream and read_still open files through this name
from fakescope.media.video_seek import open_video as _open
from fakescope.media.video_write import write_video  # noqa: F401  (writing lives beside reading for callers)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int  # as displayed (after rotation)
    height: int
    num_frames: int
    duration: float  # seconds from the first to the last frame
    fps: float  # frames per second, averaged over the video
    rotation: int  # degrees counter-clockwise applied to the stored frames for display
    codec: str
    variable_frame_rate: bool
    other_streams: tuple[str, ...] = ()  # e.g. ("audio",)
    decoded_width: int = 0  # the frames as returned: smaller than width x height when over the pixel budget
    decoded_height: int = 0


@dataclass
class SampledFrames:
    info: VideoInfo
    indices: list[int]  # frame numbers in presentation order
    times: list[float]  # seconds from the first frame
    frames: list[np.ndarray] = field(repr=False)  # RGB uint8 [H, W, 3], upright
    requested: int = 0

    @property
    def short(self) -> bool:
        """Fewer frames than requested (the video is shorter than the request)."""
        return len(self.indices) < self.requested


def even_indices(times: list[float] | np.ndarray, n: int) -> list[int]:
    """``n`` frames spread evenly over the time span (nearest frame to each of ``n`` even instants).

    With a variable frame rate, instants are even in time, not in frame
    number. If two instants fall on the same frame, the free frames nearest to
    an even spread by frame number fill the gap, so exactly ``min(n, len)``
    distinct frames come back.
    """
    times = np.asarray(times, dtype=float)
    total = len(times)
    if n <= 0 or total <= n:
        return list(range(total))
    targets = np.linspace(times[0], times[-1], n)
    pos = np.clip(np.searchsorted(times, targets), 1, total - 1)
    nearer_left = (targets - times[pos - 1]) <= (times[pos] - targets)
    chosen = set(np.where(nearer_left, pos - 1, pos).tolist())
    for i in np.linspace(0, total - 1, n).round().astype(int).tolist():
        if len(chosen) >= n:
            break
        if i not in chosen:
            chosen.add(i)
    free = (i for i in range(total) if i not in chosen)
    while len(chosen) < n:
        chosen.add(next(free))
    return sorted(chosen)


def stride_indices(total: int, stride: int, start: int = 0, n: int = 0) -> list[int]:
    """Frames ``start, start+stride, ...``; at most ``n`` of them when ``n > 0``."""
    if stride < 1:
        raise DataError(f"frame stride must be at least 1, got {stride}")
    idx = list(range(max(start, 0), total, stride))
    return idx[:n] if n > 0 else idx


def probe(path: str | Path) -> VideoInfo:
    """Frame count, size, duration and rotation of a video (reads packets, decodes one frame)."""
    return read_frames(path, num_frames=1).info


class FrameStream:
    """The sampled frames of a video, decoded while they are iterated.

    Opening lists the packets (so ``indices``, ``times``, ``requested`` and
    ``total`` are known at once) and raises :class:`VideoReadError` for a
    file that is not a readable video. Iterating yields ``(index, time,
    frame)`` in frame order, each frame an upright RGB ``uint8`` array; only
    the frame in hand is kept, so memory does not grow with the number of
    frames taken (``--sampling stride --num-frames 0`` takes all of them).
    When the iteration ends, ``info`` is set; if some sampled frames could not
    be decoded (a truncated file), it raises :class:`VideoReadError` with
    reason ``decode-error`` after yielding the others. Use it once, as a
    context manager or to the end of the iteration (either closes the file).
    """

    def __init__(self, path: str | Path, num_frames: int = 32, mode: str = "even", stride: int = 1,
                 start: int = 0, threads: int = 0) -> None:
        self.path = Path(path)
        if mode not in ("even", "stride"):
            raise DataError(f"frame sampling mode '{mode}': choose 'even' or 'stride'")
        self.threads = threads
        self.info: VideoInfo | None = None
        # packets given to the decoder, seeks, and reads started over from the start of the file
        self.stats: dict[str, int] = {"packets": 0, "seeks": 0, "restarts": 0}
        self._container = _open(self.path)
        try:
            check_frame_size(self._container.streams.video[0], self.path)
            self._index = index_packets(self._container, self.path)
            pts = self._index.pts
            all_times = [float((p - pts[0]) * self._index.time_base) for p in pts]
            self.total = len(pts)
            if mode == "even":
                self.indices = even_indices(all_times, num_frames)
                self.requested = num_frames
            else:
                self.indices = stride_indices(self.total, stride, start, num_frames)
                # at most num_frames were asked for; fewer come back when the video is too short (0 = all frames)
                self.requested = num_frames if num_frames > 0 else len(self.indices)
            if not self.indices:
                raise VideoReadError(self.path, "no-frames", f"no frame to take (video has {self.total} frames, "
                                                             f"start {start})")
            self.times = [all_times[i] for i in self.indices]
            self._duration = all_times[-1]
        except BaseException:
            self.close()
            raise

    @property
    def short(self) -> bool:
        """Fewer frames than requested (the video is shorter than the request)."""
        return len(self.indices) < self.requested

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _reopen(self):
        """Close the file and open it again, to read it forward from its start."""
        self.close()
        self._container = _open(self.path)
        return self._container

    def __enter__(self) -> "FrameStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        import av

        if self._container is None:
            raise DataError(f"{self.path}: this frame stream was already read (make a new one)")
        index, path = self._index, self.path
        by_pts = {index.pts[i]: (i, t) for i, t in zip(self.indices, self.times)}
        stream = self._container.streams.video[0]
        rotation, size, got = 0, None, set()
        try:
            for pts, arr, rot in decode_wanted(self._container, stream, index, set(by_pts), self._reopen,
                                                self.threads, self.stats):
                i, t = by_pts[pts]
                rotation, size = rot, size or arr.shape[:2]
                got.add(i)
                yield i, t, arr
            missing = [i for i in self.indices if i not in got]
            if missing:
                raise VideoReadError(
                    path, "decode-error",
                    f"{len(missing)} of {len(self.indices)} sampled frames could not be decoded (first missing: "
                    f"frame {missing[0]} of {self.total}); the file is truncated or corrupt")
            steps = np.diff(np.asarray(index.pts, dtype=float))
            stream = self._container.streams.video[0]  # the file may have been opened again to read it forward
            h, w = size
            cw, ch = stream.codec_context.width or w, stream.codec_context.height or h
            full = (ch, cw) if rotation in (90, 270) else (cw, ch)
            self.info = VideoInfo(
                path=str(path), width=max(full[0], w), height=max(full[1], h), num_frames=self.total,
                duration=self._duration, decoded_width=w, decoded_height=h,
                fps=(self.total - 1) / self._duration if self._duration > 0 else 0.0, rotation=rotation,
                codec=stream.codec_context.name,
                variable_frame_rate=bool(len(steps) > 1 and steps.std() > 0.01 * max(steps.mean(), 1e-9)),
                other_streams=tuple(sorted({s.type for s in self._container.streams if s.type != "video"})),
            )
        except av.error.FFmpegError as exc:  # pragma: no cover - errors are mapped inside the helpers
            raise VideoReadError(path, "decode-error", f"{type(exc).__name__}: {exc}") from None
        finally:
            self.close()


def check_frame_size(stream, path: Path) -> None:
    """Refuse, before decoding, frames too large to decode within the pixel budget even to scale them."""
    w, h = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if w * h > VIDEO_DECODE_FACTOR * max_pixels():
        raise VideoReadError(path, "too-large", f"the video's frames are {w}x{h} ({w * h / 1e6:.1f} megapixels), "
                                                f"more than {VIDEO_DECODE_FACTOR:g} times the pixel budget of "
                                                f"{max_megapixels():g} megapixels (--max-megapixels raises it)")


def read_frames(path: str | Path, num_frames: int = 32, mode: str = "even", stride: int = 1,
                start: int = 0, threads: int = 0) -> SampledFrames:
    """Decode the sampled frames of a video, all into memory (see :class:`FrameStream` to take them one by one).

    ``mode='even'``: ``num_frames`` frames spread evenly over the duration
    (all frames if the video has fewer). ``mode='stride'``: every
    ``stride``-th frame from ``start``, at most ``num_frames`` (0 = no limit).
    ``threads``: decoder threads (0 = automatic).
    """
    with FrameStream(path, num_frames, mode, stride, start, threads) as fs:
        frames = [frame for _, _, frame in fs]
        return SampledFrames(fs.info, list(fs.indices), list(fs.times), frames, fs.requested)


def read_still(path: str | Path) -> np.ndarray:
    """The picture of a still-image file that FFmpeg reads (HEIC, AVIF, JPEG XL): its first frame, upright RGB.

    A HEIF stored as a grid of tiles (most phone photos) comes out of FFmpeg as one stream per tile; it is
    refused (reason ``tiled``) rather than scored on one tile.
    """
    path = Path(path)
    container = _open(path)
    try:
        tiles = len(container.streams.video)
    finally:
        container.close()
    if tiles > 1:
        raise VideoReadError(path, "tiled", f"the picture is stored as {tiles} tiles, which FFmpeg reads one "
                                            "by one, not as one picture")
    with FrameStream(path, num_frames=1) as fs:
        for _, _, frame in fs:
            return frame
    raise VideoReadError(path, "no-frames", "no picture in the file")  # pragma: no cover - FrameStream raises
