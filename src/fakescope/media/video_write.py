"""Writing a video file with PyAV: RGB frames, optional silent audio, rotation and explicit timestamps."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from fakescope.errors import DataError


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
