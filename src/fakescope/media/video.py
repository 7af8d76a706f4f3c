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

import bisect
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from fakescope.errors import DataError
# which names are videos and sound files: one list for folder walks and files named directly
from fakescope.media.formats import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, is_audio_file, is_video_file  # noqa: F401
from fakescope.media.limits import VIDEO_DECODE_FACTOR, fit_size, max_megapixels, max_pixels


class VideoReadError(DataError):
    """A video could not be read. ``reason`` is a short code used in failure summaries."""

    def __init__(self, path: str | Path, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = str(path)
        self.reason = reason
        self.detail = detail


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


@dataclass(frozen=True)
class _Index:
    pts: list[int]  # presentation timestamps of all frames, sorted
    keyframes: list[int]  # presentation timestamps of keyframes, sorted
    time_base: Fraction
    # each frame's packet: its decoding timestamp (None where the container has none) and keyframe flag
    packets: dict[int, tuple[int | None, bool]] = field(default_factory=dict)


def _open(path: Path):
    import av

    if not path.exists():
        raise VideoReadError(path, "not-found", "file not found")
    if path.is_dir():
        raise VideoReadError(path, "not-a-file", "is a folder, not a video file")
    if not path.is_file():
        raise VideoReadError(path, "not-a-file", "not a regular file (a named pipe, socket or device)")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "empty-file", "empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as exc:  # FFmpeg raises InvalidDataError, EOFError, ... for non-videos
        raise VideoReadError(path, "cannot-open",
                             f"not a readable video ({type(exc).__name__}: {exc})") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoReadError(path, "no-video-stream", f"no video stream (streams: {', '.join(kinds)})")
    return container


def _index(container, path: Path) -> _Index:
    """Timestamps and keyframes of every packet of the first video stream (demuxing only)."""
    stream = container.streams.video[0]
    pts, keys, packets = [], [], {}
    try:
        for pkt in container.demux(stream):
            if pkt.size == 0 or pkt.pts is None or pkt.is_discard:
                continue
            pts.append(int(pkt.pts))
            packets[int(pkt.pts)] = (None if pkt.dts is None else int(pkt.dts), bool(pkt.is_keyframe))
            if pkt.is_keyframe:
                keys.append(int(pkt.pts))
    except Exception as exc:
        if not pts:
            raise VideoReadError(path, "cannot-open", f"cannot read video packets ({type(exc).__name__}: {exc})")
    if not pts:
        raise VideoReadError(path, "no-frames", "the video stream has no frames")
    pts = sorted(set(pts))
    keys = sorted(set(keys)) or [pts[0]]
    return _Index(pts, keys, Fraction(stream.time_base) if stream.time_base else Fraction(1, 1), packets)


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


def _upright(frame, reformatter=None) -> np.ndarray:
    """The frame as an RGB array, turned upright by its rotation metadata, scaled to the pixel budget.

    ``reformatter``: a PyAV ``VideoReformatter`` kept for the frames of one
    video, which reuses its conversion context instead of making one per
    frame (the same pixels, about 25% less time at 1080p).
    """
    if reformatter is None:
        from av.video.reformatter import VideoReformatter

        reformatter = VideoReformatter()
    w, h = fit_size(frame.width, frame.height)
    if (w, h) == (frame.width, frame.height):
        arr = reformatter.reformat(frame, format="rgb24").to_ndarray()
    else:  # one pass from the decoder's YUV to RGB at the reduced size: no full-size RGB frame is made
        arr = reformatter.reformat(frame, format="rgb24", width=w, height=h, interpolation="AREA").to_ndarray()
    rot = int(getattr(frame, "rotation", 0) or 0) % 360
    if rot % 90 == 0 and rot:
        arr = np.ascontiguousarray(np.rot90(arr, k=rot // 90))
    return arr


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
            self._index = _index(self._container, self.path)
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
            for pts, arr, rot in _decode_wanted(self._container, stream, index, set(by_pts), self._reopen,
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


def _setup_decoder(stream, threads: int) -> None:
    cc = stream.codec_context
    stream.thread_type = "AUTO"
    if threads > 0:
        cc.thread_count = threads
    elif (cc.width or 0) * (cc.height or 0) > max_pixels() // 2:
        cc.thread_count = 2  # each decoder thread holds frames of its own: few of them for huge frames


def _is_key(frame) -> bool:
    """The decoder says this frame stands by itself (a keyframe or an intra-coded picture)."""
    return bool(getattr(frame, "key_frame", False)) or int(getattr(frame, "pict_type", 0) or 0) == 1


# after a seek that failed, the next one starts this many keyframes further back; then from the start of the file
_SEEK_RETRIES = (1, 2, 4, 8)


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


def _decode_wanted(container, stream, index: _Index, wanted: set[int], reopen, threads: int = 0,
                   stats: dict[str, int] | None = None):
    """Decode the frames whose timestamps are in ``wanted``; yields ``(pts, upright RGB array, rotation)``.

    Frames come in increasing timestamp order. For each wanted frame the
    reader seeks to the keyframe before it, unless decoding on is shorter. A
    seek can fail: it lands past that keyframe (MPEG-TS, MPEG-PS and other
    containers without an index seek by timestamp search and often land a
    packet late), or decoding from there gives the wanted frame from no
    keyframe (the container flags packets as keyframes that are not) or not
    at all. Frames the decoder gives before a keyframe since the seek are
    never used (they are built on a missing reference). A failed seek is
    tried again from keyframes further back; when that fails too, or the seek
    is already at the first keyframe, ``reopen()`` (the same file opened
    again, at its start) is called and the file is decoded forward from its
    first packet, as a straight decode does; seeking resumes after the wanted
    frame, except after a second such restart, when the rest of the file is
    read forward. Frames that cannot be decoded even then are not yielded.
    ``stats`` counts the ``packets`` given to the decoder, the ``seeks`` and
    the ``restarts`` from the start of the file.
    """
    import av
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()  # one RGB conversion context for the video's frames
    _setup_decoder(stream, threads)
    got: set[int] = set()
    order = sorted(wanted)
    first = 0  # order[first] is the earliest wanted frame not decoded yet; all wanted frames before it are out
    last_out = None  # the last timestamp yielded: frames only ever come out in increasing order
    back = 0  # index into (0, *_SEEK_RETRIES): how far back the next seek starts after failed ones
    back_first = 0  # where ``back`` starts for each wanted frame: 1 once a seek of this file has landed late
    from_start = False  # this pass reads the file from its start (just opened again), not from a seek
    forward_only = False  # no more seeks: read on to the end

    def count(key: str) -> None:
        if stats is not None:
            stats[key] = stats.get(key, 0) + 1

    def key_index(t: int) -> int:  # the index of the last keyframe at or before t
        return max(bisect.bisect_right(index.keyframes, t) - 1, 0)

    def landed_late(pkt, k: int) -> bool:
        """The first packet after a seek comes after keyframe ``k`` in decoding order."""
        if pkt is None:
            return False
        kf = index.keyframes[k]
        key_dts = index.packets.get(kf, (None, True))[0]
        if pkt.dts is not None and key_dts is not None:
            return int(pkt.dts) > key_dts
        return pkt.pts is not None and int(pkt.pts) > kf

    def mislabelled(pkt) -> bool:
        """After a seek, the packet's timestamps are not those a straight read gives it: the demuxer rebuilt
        them from the wrong point (MPEG-PS and -TS timestamps interpolated from where the seek landed), so
        its frames cannot be told apart from their neighbours."""
        known = index.packets.get(int(pkt.pts))
        if known is None:
            return True
        dts, key = known
        return bool(pkt.is_keyframe) != key or (pkt.dts is not None and dts is not None and int(pkt.dts) != dts)

    def next_packet(packets):
        try:
            return next(packets)
        except (StopIteration, av.error.FFmpegError):  # unreadable data: treat as the end of the file
            return None

    restarts = 0

    def restart() -> None:
        nonlocal container, stream, from_start, forward_only, back, restarts
        forward_only = forward_only or restarts > 0  # a second restart: no more seeking, read on to the end
        restarts += 1
        container = reopen()
        stream = container.streams.video[0]
        _setup_decoder(stream, threads)
        count("restarts")
        from_start, back = True, back_first

    last_seek = None
    try:
        while first < len(order):
            pending = None  # a packet read to check where a seek landed, still to be decoded
            may_skip = True
            k = key_index(order[first])  # the keyframe this pass is to reach
            if from_start:
                packets = container.demux(stream)
            else:
                start = max(k - (0, *_SEEK_RETRIES)[back], 0)
                # the same seek twice with nothing decoded in between: the index and the demuxer disagree on
                # keyframes, so decode on from here without seeking again (no endless loop)
                may_skip = last_seek != (start, len(got))
                last_seek = (start, len(got))
                count("seeks")
                try:
                    container.seek(index.keyframes[start], stream=stream, backward=True, any_frame=False)
                    sought = True
                except av.error.FFmpegError:  # the demuxer cannot seek there: as if it landed past the keyframe
                    sought = False
                stream.codec_context.flush_buffers()
                if sought:
                    packets = container.demux(stream)
                    pending = next_packet(packets)
                    while pending is not None and pending.pts is None and not pending.size:
                        pending = next_packet(packets)
                if not sought or landed_late(pending, k):
                    # landed past the keyframe: its group of pictures cannot be decoded from here. The next
                    # seeks of this file start a keyframe further back
                    back_first = 1
                    if start > 0 and back < len(_SEEK_RETRIES):
                        back += 1
                        continue
                    restart()
                    packets, pending = container.demux(stream), None
            cc = stream.codec_context
            sent_max = None
            keyed = from_start  # a keyframe decoded since the seek (from the start of the file: every frame counts)
            failed = False  # this pass cannot deliver order[first]
            while True:
                pkt, pending = (pending, None) if pending is not None else (next_packet(packets), None)
                if pkt is not None and pkt.size:
                    count("packets")
                    if pkt.pts is None:
                        cc.skip_frame = "DEFAULT"  # cannot tell which frame it is: decode it
                    else:
                        cc.skip_frame = "DEFAULT" if pkt.pts in wanted else "NONREF"
                        sent_max = pkt.pts if sent_max is None else max(sent_max, pkt.pts)
                        if not from_start and mislabelled(pkt):
                            failed = True  # frames cannot be matched to the file's from here
                try:
                    decoded = cc.decode(pkt) if pkt is not None else cc.decode(None)
                except av.error.FFmpegError:  # a corrupt packet: its frame stays missing
                    decoded = []
                for frame in decoded:
                    if frame.pts is None or first == len(order):
                        continue
                    keyed = keyed or _is_key(frame)
                    if not keyed:  # decoded from a reference the decoder never had: not the file's pixels
                        failed = failed or frame.pts >= order[first]
                        continue
                    if frame.pts in wanted and frame.pts not in got and (last_out is None or frame.pts > last_out):
                        if frame.pts > order[first] and not from_start:
                            failed = True  # order[first] was passed: it cannot come any more from here
                            break
                        got.add(frame.pts)
                        last_out = frame.pts
                        yield frame.pts, _upright(frame, reformatter), int(getattr(frame, "rotation", 0) or 0) % 360
                        while first < len(order) and order[first] in got:
                            first += 1
                            back = back_first
                if first == len(order):
                    break
                if pkt is None:
                    if from_start:
                        first = len(order)  # read to the end of the file: the rest cannot be decoded
                    else:
                        failed = True
                    break
                if failed:
                    break
                # a wanted frame already sent to the decoder may still come out (B-frame reordering);
                # otherwise, when the next wanted frame lies past a later keyframe not reached yet, seek to it
                waiting = sent_max is not None and order[first] <= sent_max
                kn = key_index(order[first])
                if (not forward_only and may_skip and not waiting and sent_max is not None and kn > k
                        and index.keyframes[kn] > sent_max):
                    from_start = False
                    break
            if failed:
                if back < len(_SEEK_RETRIES) and k - (0, *_SEEK_RETRIES)[back] > 0:
                    back += 1
                else:
                    restart()
    finally:
        stream.codec_context.skip_frame = "DEFAULT"


def _mux_silence(container, stream, seconds: float) -> None:
    """Fill the audio ``stream`` with ``seconds`` of silence."""
    import av

    rate = stream.codec_context.sample_rate
    frame = av.AudioFrame.from_ndarray(np.zeros((1, max(int(rate * seconds), 1024)), dtype=np.float32),
                                       format="fltp", layout="mono")
    frame.sample_rate = rate
    for packet in [*stream.encode(frame), *stream.encode()]:
        container.mux(packet)


def write_video(path: str | Path, frames, fps: float | Fraction = 25, codec: str = "libx264",
                rotation: int = 0, audio: bool = False, pts: list[int] | None = None,
                time_base: Fraction | None = None, options: dict[str, str] | None = None,
                container_options: dict[str, str] | None = None) -> Path:
    """Encode RGB ``uint8`` frames ``[H, W, 3]`` into a video file (tests, demos, synthetic benchmarks).

    ``rotation``: display rotation in degrees counter-clockwise, stored as
    metadata (the frames are stored as given). ``audio``: add a silent audio
    track (with no frames: an audio-only file). ``pts`` (with ``time_base``):
    explicit timestamps, for variable frame rate. ``codec``: ``libx264``
    (yuv420p, even sizes), ``ffv1`` (lossless RGB, any size; use a ``.mkv``
    path) or any FFmpeg encoder. ``options``: encoder options (``{"g": "12"}``);
    ``container_options``: muxer options (``{"movflags": "faststart"}``).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = list(frames)
    if not frames and not audio:
        raise DataError(f"{path}: no frames to write")
    with av.open(str(path), "w", options=dict(container_options or {})) as container:
        video = _video_stream(container, frames, fps, codec, rotation, time_base, options) if frames else None
        sound = container.add_stream("aac", rate=16000) if audio else None  # every stream before any packet
        if video is not None:
            _mux_frames(container, video, frames, pts, time_base)
        if sound is not None:
            _mux_silence(container, sound, len(frames) / float(fps) if frames else 1.0)
    return path


def _video_stream(container, frames, fps, codec, rotation, time_base, options):
    h, w = frames[0].shape[:2]
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height = w, h
    if codec == "ffv1":
        stream.pix_fmt = "bgr0"  # RGB: lossless round trip
    elif codec in ("libx264", "mpeg4", "libopenh264"):
        stream.pix_fmt = "yuv420p"
    if options:
        stream.options = dict(options)
    if time_base is not None:
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
    if rotation:
        stream.set_display_rotation(rotation)
    return stream


def _mux_frames(container, stream, frames, pts, time_base) -> None:
    import av

    for i, arr in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr, dtype=np.uint8), format="rgb24")
        if pts is not None:
            frame.pts = int(pts[i])
            frame.time_base = time_base
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
