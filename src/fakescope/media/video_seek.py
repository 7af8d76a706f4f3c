"""Decoding the sampled frames of a video: the packet index, seeks to keyframes, and what is done when a seek
lands in the wrong place (seek further back, or read the file forward from its start).

:class:`fakescope.media.video.FrameStream` drives it; the module docstring there says what comes out.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from fakescope.errors import DataError
from fakescope.media.limits import fit_size, max_pixels


class VideoReadError(DataError):
    """A video could not be read. ``reason`` is a short code used in failure summaries."""

    def __init__(self, path: str | Path, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = str(path)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VideoIndex:
    pts: list[int]  # presentation timestamps of all frames, sorted
    keyframes: list[int]  # presentation timestamps of keyframes, sorted
    time_base: Fraction
    # each frame's packet: its decoding timestamp (None where the container has none) and keyframe flag
    packets: dict[int, tuple[int | None, bool]] = field(default_factory=dict)


def open_video(path: Path):
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


def index_packets(container, path: Path) -> VideoIndex:
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
    return VideoIndex(pts, keys, Fraction(stream.time_base) if stream.time_base else Fraction(1, 1), packets)


def upright(frame, reformatter=None) -> np.ndarray:
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


def setup_decoder(stream, threads: int) -> None:
    cc = stream.codec_context
    stream.thread_type = "AUTO"
    if threads > 0:
        cc.thread_count = threads
    elif (cc.width or 0) * (cc.height or 0) > max_pixels() // 2:
        cc.thread_count = 2  # each decoder thread holds frames of its own: few of them for huge frames


def is_key(frame) -> bool:
    """The decoder says this frame stands by itself (a keyframe or an intra-coded picture)."""
    return bool(getattr(frame, "key_frame", False)) or int(getattr(frame, "pict_type", 0) or 0) == 1


# after a seek that failed, the next one starts this many keyframes further back; then from the start of the file
SEEK_RETRIES = (1, 2, 4, 8)


def decode_wanted(container, stream, index: VideoIndex, wanted: set[int], reopen, threads: int = 0,
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
    setup_decoder(stream, threads)
    got: set[int] = set()
    order = sorted(wanted)
    first = 0  # order[first] is the earliest wanted frame not decoded yet; all wanted frames before it are out
    last_out = None  # the last timestamp yielded: frames only ever come out in increasing order
    back = 0  # index into (0, *SEEK_RETRIES): how far back the next seek starts after failed ones
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
        setup_decoder(stream, threads)
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
                start = max(k - (0, *SEEK_RETRIES)[back], 0)
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
                    if start > 0 and back < len(SEEK_RETRIES):
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
                    keyed = keyed or is_key(frame)
                    if not keyed:  # decoded from a reference the decoder never had: not the file's pixels
                        failed = failed or frame.pts >= order[first]
                        continue
                    if frame.pts in wanted and frame.pts not in got and (last_out is None or frame.pts > last_out):
                        if frame.pts > order[first] and not from_start:
                            failed = True  # order[first] was passed: it cannot come any more from here
                            break
                        got.add(frame.pts)
                        last_out = frame.pts
                        yield frame.pts, upright(frame, reformatter), int(getattr(frame, "rotation", 0) or 0) % 360
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
                if back < len(SEEK_RETRIES) and k - (0, *SEEK_RETRIES)[back] > 0:
                    back += 1
                else:
                    restart()
    finally:
        stream.codec_context.skip_frame = "DEFAULT"
