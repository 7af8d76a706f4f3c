"""Video reading: frame sampling by seeking, exact pixels, VFR, rotation, audio, odd sizes, bad files."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from fakescope.media.video import (FrameStream, VideoReadError, even_indices, read_frames, stride_indices,
                                  write_video)
from fakescope.errors import DataError


def noise_frames(n: int, h: int = 48, w: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # each frame differs (a moving bar) so that frames can be told apart
    out = []
    for i in range(n):
        f = base.copy()
        f[:, (i * 3) % w] = 255
        out.append(f)
    return out


def sequential_decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_even_indices_spread_and_edge_cases():
    times = np.arange(100) / 25
    idx = even_indices(times, 5)
    assert idx == [0, 25, 49, 74, 99]  # nearest frame; a tie goes to the earlier one
    assert even_indices(times[:3], 32) == [0, 1, 2]  # fewer frames than asked: all of them
    # variable frame rate: 10 frames in the first second, then one every second
    vfr = np.concatenate([np.arange(10) * 0.1, 1.0 + np.arange(1, 10)])
    picked = even_indices(vfr, 4)
    assert len(picked) == 4 and picked[0] == 0 and picked[-1] == len(vfr) - 1
    assert all(vfr[i] >= 1.0 for i in picked[1:])  # even in time, not in frame number
    # many instants on the same frame: filled up to exactly n distinct frames
    clumped = np.concatenate([np.zeros(1), 100 + np.arange(20) * 1e-3])
    assert len(set(even_indices(clumped, 8))) == 8


def test_stride_indices():
    assert stride_indices(10, 3) == [0, 3, 6, 9]
    assert stride_indices(10, 3, start=1, n=2) == [1, 4]
    with pytest.raises(DataError, match="stride"):
        stride_indices(10, 0)


@pytest.mark.parametrize("gop", [250, 4])
def test_sampled_frames_equal_a_full_decode(tmp_path, gop):
    """Seeking plus skipping unneeded frames gives exactly the pixels of a sequential decode."""
    frames = noise_frames(60)
    path = write_video(tmp_path / f"v{gop}.mp4", frames, fps=25, options={"g": str(gop), "bf": "2"})
    ref = sequential_decode(path)
    s = read_frames(path, num_frames=9)
    assert s.indices == [0, 7, 15, 22, 29, 37, 44, 52, 59]
    assert not s.short and s.info.num_frames == 60
    for i, f in zip(s.indices, s.frames):
        assert np.array_equal(f, ref[i])
    one_thread = read_frames(path, num_frames=9, threads=1)
    assert all(np.array_equal(a, b) for a, b in zip(one_thread.frames, s.frames))
    st = read_frames(path, num_frames=5, mode="stride", stride=7, start=3)
    assert st.indices == [3, 10, 17, 24, 31]
    assert all(np.array_equal(f, ref[i]) for i, f in zip(st.indices, st.frames))
    assert st.times[1] == pytest.approx(10 / 25)


def test_seeking_decodes_only_the_groups_of_pictures_it_needs(tmp_path):
    """4 frames of a 300-frame video with a keyframe every 10: about 4 x 10 packets decoded, not 300."""
    path = write_video(tmp_path / "long.mp4", noise_frames(300, h=32, w=32), options={"g": "10", "bf": "0"})
    with FrameStream(path, num_frames=4) as fs:
        assert fs.indices == [0, 100, 199, 299] and fs.total == 300  # known before any decoding
        frames = list(fs)
    assert fs.stats["seeks"] == 4 and fs.stats["packets"] <= 4 * 10
    ref = sequential_decode(path)
    assert all(np.array_equal(f, ref[i]) for i, _, f in frames)
    # one keyframe only (a typical FF++ video has one every 250 frames): it has to decode on from it
    whole = write_video(tmp_path / "one_gop.mp4", noise_frames(60, h=32, w=32), options={"g": "250"})
    with FrameStream(whole, num_frames=3) as fs:
        list(fs)
    assert fs.stats["seeks"] == 1 and fs.stats["packets"] == 60


def test_frame_stream_yields_in_order_and_fails_after_the_frames_it_could_decode(tmp_path):
    frames = noise_frames(40)
    good = write_video(tmp_path / "good.mp4", frames, container_options={"movflags": "faststart"}, options={"g": "8"})
    stream = FrameStream(good, mode="stride", stride=1, num_frames=0)  # every frame, one at a time
    assert stream.info is None and len(stream.indices) == 40 and not stream.short
    got = [(i, t) for i, t, _ in stream]
    assert [i for i, _ in got] == list(range(40)) and got[1][1] == pytest.approx(1 / 25)
    assert stream.info.num_frames == 40 and (stream.info.width, stream.info.height) == (64, 48)
    with pytest.raises(DataError, match="already read"):
        list(stream)
    data = good.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    seen = []
    with pytest.raises(VideoReadError) as err:
        for i, _, _ in FrameStream(cut, num_frames=8):
            seen.append(i)
    assert err.value.reason == "decode-error" and "first missing" in str(err.value) and str(cut) in str(err.value)
    assert seen and seen == sorted(seen) and len(seen) < 8


def test_short_video_takes_all_frames_and_says_so(tmp_path):
    path = write_video(tmp_path / "short.mp4", noise_frames(7))
    s = read_frames(path, num_frames=32)
    assert s.indices == list(range(7)) and s.short and s.requested == 32
    assert len(s.frames) == 7


def test_variable_frame_rate_sampling_is_even_in_time(tmp_path):
    tb = Fraction(1, 1000)
    pts = [i * 40 for i in range(20)] + [800 + i * 400 for i in range(1, 11)]  # 25 fps, then 2.5 fps
    path = write_video(tmp_path / "vfr.mp4", noise_frames(30), pts=pts, time_base=tb)
    s = read_frames(path, num_frames=6)
    assert s.info.variable_frame_rate
    assert s.times[-1] == pytest.approx(4.8, abs=1e-3)
    gaps = np.diff(s.times)
    assert gaps.max() - gaps.min() < 0.5  # even in time (by frame number, 5 of 6 would fall in the first second)
    ref = sequential_decode(path)
    assert all(np.array_equal(f, ref[i]) for i, f in zip(s.indices, s.frames))


def test_rotation_metadata_gives_upright_frames(tmp_path):
    """A portrait phone video: landscape pixels plus a display rotation come back portrait."""
    rng = np.random.default_rng(1)
    portrait = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    stored = np.ascontiguousarray(np.rot90(portrait, k=-1))  # what the camera stores: 48 x 64
    path = write_video(tmp_path / "phone.mkv", [stored] * 3, codec="ffv1", rotation=90)
    s = read_frames(path, num_frames=2)
    assert s.info.rotation == 90 and (s.info.height, s.info.width) == (64, 48)
    assert np.array_equal(s.frames[0], portrait)


def test_audio_stream_and_odd_frame_size(tmp_path):
    frames = [f[:47, :63] for f in noise_frames(12)]
    path = write_video(tmp_path / "odd.mkv", frames, codec="ffv1", audio=True)
    s = read_frames(path, num_frames=4)
    assert (s.info.width, s.info.height) == (63, 47)
    assert s.info.other_streams == ("audio",)
    assert all(np.array_equal(f, frames[i]) for i, f in zip(s.indices, s.frames))


def test_bad_files_raise_with_path_and_reason(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    good = write_video(tmp_path / "good.mp4", noise_frames(40), container_options={"movflags": "faststart"})
    data = good.read_bytes()
    head_cut = tmp_path / "cut_head.mp4"
    head_cut.write_bytes(data[len(data) // 2:])  # no header: FFmpeg probes it as raw data with no frame
    tail_cut = tmp_path / "cut_tail.mp4"
    tail_cut.write_bytes(data[: len(data) * 2 // 3])  # header kept, frames missing
    audio = write_video(tmp_path / "speech.m4a", [], audio=True)
    cases = {empty: "empty-file", text: "cannot-open", head_cut: "no-frames", tail_cut: "decode-error",
             audio: "no-video-stream", tmp_path / "missing.mp4": "not-found"}
    for path, reason in cases.items():
        with pytest.raises(VideoReadError) as err:
            read_frames(path, num_frames=32)
        assert err.value.reason == reason, (path, err.value)
        assert str(path) in str(err.value)
    with pytest.raises(DataError, match="mode"):
        read_frames(good, mode="random")
