"""Hostile input, three classes: videos in every container PyAV reads (seeks that land wrong), image and video
formats in a folder (the same list as for files named directly, a record for each), and hostile checkpoint
configs (bounds and shapes checked before anything is built, every read problem a clear error).

Everything is made here in ``tmp_path``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FPS = 25
FRAMES = 90
BASE, STEP, BAND = 6, 40, 32  # a frame's index in base 6, one digit per band of 32 rows, brightness 16 + 40 * digit


# ------------------------------------------------------------------------------------------------ containers
def index_frame(i: int, w: int = 64) -> np.ndarray:
    """A frame of three horizontal bands whose brightness levels spell ``i`` in base 6 (most significant on top);
    the bands are whole macroblocks, so that lossy codecs keep each level."""
    frame = np.empty((3 * BAND, w, 3), np.uint8)
    for band, digit in enumerate((i // BASE ** 2, i // BASE % BASE, i % BASE)):
        frame[band * BAND:(band + 1) * BAND] = 16 + STEP * digit
    return frame


def frame_index(frame: np.ndarray) -> tuple[int, float]:
    """The index a decoded frame spells, and how far its brightness is from the nearest level (worst band)."""
    index, off = 0, 0.0
    for band in range(3):
        level = float(frame[band * BAND + 4:(band + 1) * BAND - 4].mean())
        digit = min(max(round((level - 16) / STEP), 0), BASE - 1)
        index, off = index * BASE + digit, max(off, abs(level - 16 - STEP * digit))
    return index, off


def straight_decode(path: Path) -> list[np.ndarray]:
    """Every frame of the video, decoded in order with no seek (what the sampled frames must equal)."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


# (file, encoder, encoder options): keyframes every 12 frames, B-frames where the encoder makes them
CONTAINERS = [
    ("v.mp4", "libx264", {"g": "12", "bf": "2"}),
    ("v.mkv", "libx264", {"g": "12", "bf": "2"}),
    ("v.webm", "libvpx-vp9", {"g": "12", "b": "2M"}),
    ("v.avi", "mpeg4", {"g": "12", "qscale": "2"}),
    ("v.ts", "mpeg2video", {"g": "12", "bf": "2", "qscale": "2"}),
    ("h264.ts", "libx264", {"g": "12", "bf": "2"}),
    ("v.mts", "libx264", {"g": "12"}),
    ("v.mpg", "mpeg2video", {"g": "12", "bf": "2", "qscale": "2"}),
    ("v.flv", "flv", {"g": "12", "qscale": "2"}),
]


def encoder_available(codec: str) -> bool:
    import av

    return codec in av.codecs_available


def write_indexed(path: Path, codec: str, options: dict[str, str]) -> Path:
    from fakescope.media.video import write_video

    return write_video(path, [index_frame(i) for i in range(FRAMES)], fps=FPS, codec=codec, options=options)


@pytest.mark.parametrize("name,codec,options", CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_sampled_frames_are_the_right_frames_in_every_container(tmp_path, name, codec, options, outcomes):
    from fakescope.media.video import even_indices, read_frames

    if not encoder_available(codec):
        pytest.skip(f"FFmpeg here has no {codec} encoder")
    path = write_indexed(tmp_path / name, codec, options)
    reference = straight_decode(path)
    assert len(reference) == FRAMES
    even = read_frames(path, num_frames=9)
    assert even.info.num_frames == FRAMES and not even.short
    assert even.indices == even_indices(np.arange(FRAMES) / FPS, 9)
    stride = read_frames(path, num_frames=6, mode="stride", stride=13, start=5)
    assert stride.indices == [5, 18, 31, 44, 57, 70]
    for s in (even, stride):
        assert len(s.frames) == len(s.indices)
        for i, t, frame in zip(s.indices, s.times, s.frames):
            got, off = frame_index(frame)
            assert got == i and off < STEP / 3, (name, i, got, off)  # the frame decoded is the frame asked for
            assert np.array_equal(frame, reference[i]), (name, i)  # with exactly a straight decode's pixels
            assert t == pytest.approx(i / FPS, abs=1e-3)
    outcomes.append((f"video in {Path(name).suffix} ({codec}, a keyframe every 12 frames)", "detect",
                     "the sampled frames decoded, each the frame asked for (its index read back from its pixels)"))


class _Seeker:
    """A PyAV container whose seeks land wrong: ``late`` (a few frames past the keyframe asked for) or
    ``nowhere`` (at the end of the file: nothing comes after it)."""

    def __init__(self, container, how: str) -> None:
        self._c, self._how = container, how

    def __getattr__(self, name):
        return getattr(self._c, name)

    def seek(self, offset, *, stream=None, backward=True, any_frame=False):
        if self._how == "late":
            step = int(round(1 / (FPS * stream.time_base))) if stream is not None else 0
            return self._c.seek(offset + 5 * step, stream=stream, backward=False, any_frame=True)
        return self._c.seek(10 ** 12, stream=stream, backward=False, any_frame=True)


@pytest.mark.parametrize("how", ["late", "nowhere"])
def test_a_seek_that_lands_wrong_falls_back_to_decoding_forward(tmp_path, monkeypatch, how, outcomes):
    from fakescope.media import video
    from fakescope.media.video import FrameStream

    path = write_indexed(tmp_path / "v.mp4", "libx264", {"g": "12", "bf": "2"})
    opened = video._open
    monkeypatch.setattr(video, "_open", lambda p: _Seeker(opened(p), how))
    with FrameStream(path, num_frames=7) as fs:
        got = [(i, frame_index(f)) for i, _, f in fs]
    assert [i for i, _ in got] == fs.indices and len(got) == 7
    assert all(i == idx and off < STEP / 3 for i, (idx, off) in got), got
    assert fs.stats["restarts"] >= 1 or how == "late"
    outcomes.append((f"video whose seeks land {'past the keyframe' if how == 'late' else 'at the end'}", "detect",
                     "decoded forward from an earlier keyframe or the start: every sampled frame is the right one"))


def test_mpeg_ts_videos_in_a_folder_are_scored(tmp_path, reliability_detector, outcomes):
    for name, codec, options in CONTAINERS:
        if name.endswith((".ts", ".mts", ".mpg")) and encoder_available(codec):
            write_indexed(tmp_path / name, codec, options)
    records = list(reliability_detector.predict_many([str(tmp_path)]))
    assert records and all(r["error"] is None and r["score"] is not None for r in records), records
    assert all(r["kind"] == "video" and len(r["frame_indices"]) == 4 for r in records)
    outcomes.append(("MPEG-TS (.ts, .mts) and MPEG-PS (.mpg) videos in a folder", "detect", "scored"))


# ----------------------------------------------------------------------------------------- image formats
def pillow_writable() -> dict[str, str]:
    """Extension -> Pillow format for formats Pillow both writes and reads back here."""
    from PIL import features

    want = {".png": "PNG", ".jpg": "JPEG", ".jfif": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
            ".gif": "GIF", ".qoi": "QOI", ".tga": "TGA", ".ppm": "PPM", ".pcx": "PCX", ".sgi": "SGI",
            ".jp2": "JPEG2000", ".avif": "AVIF", ".ico": "ICO", ".dds": "DDS"}
    if not features.check("jpg_2000"):
        want.pop(".jp2")
    if not features.check("avif"):
        want.pop(".avif")
    return want


def test_every_image_format_pillow_reads_is_media_by_its_name():
    from PIL import Image, ImageFile

    from fakescope.media.formats import is_media_file, is_video_file

    Image.init()
    for ext, fmt in Image.registered_extensions().items():
        factory = Image.OPEN.get("JPEG" if fmt == "MPO" else fmt, (None,))[0]
        if factory is None or (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile)):
            continue
        if fmt == "EPS" or is_video_file("x" + ext):
            continue  # EPS needs Ghostscript; .mpg is a video container
        assert is_media_file("photo" + ext.upper()), ext
    for ext in (".heic", ".heif", ".avif", ".jxl"):  # stills whose decoder may need a plugin: always taken
        assert is_media_file("photo" + ext), ext


def test_image_formats_in_a_folder_get_a_record_each(tmp_path, reliability_detector, outcomes):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    made, folder = [], tmp_path / "images"
    folder.mkdir()
    for ext, fmt in pillow_writable().items():
        p = folder / f"img{ext}"
        try:
            Image.fromarray(pixels).save(p, format=fmt)
        except (OSError, KeyError, ValueError):  # a writer this Pillow lacks
            continue
        made.append(p.name)
    (folder / "notes.txt").write_text("not media\n")
    (folder / ".hidden.png").write_bytes(b"hidden")
    skipped: list[str] = []
    from fakescope.inference.stream import detect_files

    out = tmp_path / "out" / "records.jsonl"
    detect_files(reliability_detector, [str(folder)], str(out), skipped=skipped)
    records = {Path(json.loads(line)["path"]).name: json.loads(line) for line in out.read_text().splitlines()}
    note = records.pop("notes.txt")  # not media by its name: a record says it was skipped and why
    assert note["kind"] == "skipped" and note["score"] is None and "skipped: not an image" in note["error"], note
    assert sorted(records) == sorted(made)  # the hidden file: ignored
    for name, rec in records.items():
        assert rec["error"] is None and rec["kind"] == "image", (name, rec["error"])
    assert [Path(s).name for s in skipped] == ["notes.txt"]  # not media by its name: listed, counted
    outcomes.append((f"images in every format Pillow writes here ({', '.join(sorted(made))}) in a folder", "detect",
                     "each scored"))


def heif_bytes() -> bytes:
    """The start of a HEIF file (an ftyp box naming heic) and no picture."""
    ftyp = b"ftyp" + b"heic" + (0).to_bytes(4, "big") + b"mif1heic"
    return (8 + len(ftyp) - 4).to_bytes(4, "big") + ftyp + b"\0" * 64


def test_heic_without_a_decoder_gets_a_record_naming_the_missing_decoder(tmp_path, reliability_detector, outcomes):
    from PIL import Image

    (tmp_path / "photo.heic").write_bytes(heif_bytes())
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "ok.png")
    by_folder = {Path(r["path"]).name: r for r in reliability_detector.predict_many([str(tmp_path)])}
    direct = reliability_detector.predict(str(tmp_path / "photo.heic"))
    assert set(by_folder) == {"photo.heic", "ok.png"}
    for rec in (by_folder["photo.heic"], direct):
        assert rec["score"] is None and "photo.heic" in rec["error"]
        if ".heic" not in Image.registered_extensions():  # no HEIF plugin here: the error says what to install
            assert "pillow-heif" in rec["error"] and "HEIC" in rec["error"], rec["error"]
    assert by_folder["photo.heic"]["error"] == direct["error"]
    outcomes.append(("HEIC file (no HEIF decoder in Pillow) in a folder or named", "detect",
                     "error: " + direct["error"].split(": ", 1)[-1][:140]))


def test_avif_without_pillow_support_is_decoded_by_ffmpeg_in_a_folder(tmp_path, monkeypatch, reliability_detector,
                                                                      outcomes):
    import av
    from PIL import Image, features

    if not features.check("avif") or "libdav1d" not in av.codecs_available and "av1" not in av.codecs_available:
        pytest.skip("needs Pillow with AVIF (to write the file) and an AV1 decoder in FFmpeg")
    rng = np.random.default_rng(1)
    pixels = np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((64, 64)))
    Image.fromarray(pixels).save(tmp_path / "still.avif", quality=95)
    from fakescope.media import formats

    Image.init()
    monkeypatch.setattr(Image, "ID", [i for i in Image.ID if i != "AVIF"])  # a Pillow built without AVIF
    monkeypatch.delitem(Image.OPEN, "AVIF")
    for cached in (formats.pillow_extensions, formats.image_extensions):
        cached.cache_clear()
    try:
        assert formats.missing_decoder("still.avif") and formats.is_media_file("still.avif")
        records = list(reliability_detector.predict_many([str(tmp_path)]))
        details = reliability_detector.predict(str(tmp_path / "still.avif"), details=True)
    finally:
        monkeypatch.undo()
        for cached in (formats.pillow_extensions, formats.image_extensions):
            cached.cache_clear()
    assert len(records) == 1 and records[0]["error"] is None and records[0]["kind"] == "image", records
    decoded = np.asarray(details["details"]["input"], dtype=float)
    assert decoded.shape == pixels.shape and np.abs(decoded - pixels).mean() < 12  # the picture, not a tile
    outcomes.append(("AVIF file where Pillow has no AVIF decoder", "detect", "scored (decoded by FFmpeg)"))


# ------------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture
def checkpoint(tmp_path) -> Path:
    import torch

    from fakescope.models import create_model
    from fakescope.zoo.checkpoint import save

    torch.manual_seed(0)
    return save(create_model("simple_cnn_tiny").eval(), tmp_path / "good")


def hostile(good: Path, name: str, mutate=None, raw: bytes | None = None) -> Path:
    folder = good.parent / name
    shutil.copytree(good, folder)
    if raw is None:
        config = json.loads((good / "config.json").read_text())
        mutate(config)
        raw = json.dumps(config).encode()
    (folder / "config.json").write_bytes(raw)
    return folder


def set_in(*keys_and_value):
    *keys, value = keys_and_value

    def mutate(config):
        node = config
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return mutate


HOSTILE = {
    # name: (how the config is made, a pattern the error must match)
    "widths [9000, 9000]": (dict(mutate=set_in("model", "config", "widths", [9000, 9000])),
                            "far larger than its weights"),
    "1,000,000 blocks per stage": (dict(mutate=set_in("model", "config", "blocks_per_stage", 10 ** 6)),
                                   "far larger than its weights"),
    "widths [8, 17] (a little off)": (dict(mutate=set_in("model", "config", "widths", [8, 17])),
                                      "do not match.*shape mismatches"),
    "input_size 100000": (dict(mutate=set_in("model", "config", "preprocess", "input_size", 100000)),
                          r"input_size.*2048"),
    "clip_len 10^9": (dict(mutate=set_in("model", "config", "preprocess", "clip_len", 10 ** 9)), r"clip_len"),
    "face crop of 10^6 px": (dict(mutate=set_in("model", "config", "preprocess", "face",
                                                {"size": 10 ** 6})), r"face.size"),
    "config nested 200,000 deep": (dict(raw=b'{"model": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"),
                                   "nested too deeply"),
    "config nested 500 deep": (dict(raw=b'{"model": {"name": "simple_cnn_tiny", "config": {"x": '
                                        + b"[" * 500 + b"]" * 500 + b"}}}"), "nested more than"),
    "config not UTF-8": (dict(raw='{"model": {"name": "caf\u00e9"}}'.encode("latin-1")), "not UTF-8"),
    "config not JSON": (dict(raw=b"model: simple_cnn\n"), "not valid JSON"),
    "config a JSON list": (dict(raw=b"[1, 2]"), "JSON list"),
    "model.config a string": (dict(mutate=set_in("model", "config", "abc")), r"model\.config"),
    "model a list": (dict(mutate=set_in("model", [])), r"model"),
    "calibration temperature a string": (dict(mutate=set_in("calibration", {"temperature": "hot"})),
                                         r"calibration\.temperature"),
    "calibration without thresholds": (dict(mutate=set_in("calibration", {"temperature": 1.0, "data": "v"})),
                                       r"calibration\.thresholds"),
    "integer of 5000 digits": (dict(raw=b'{"n": ' + b"9" * 5000 + b"}"), "not valid JSON"),
}


class _Allocations:
    """The largest tensor (elements) registered on a module outside the meta device while active."""

    def __init__(self) -> None:
        self.largest = 0

    def __enter__(self):
        from torch.nn.modules import module as torch_module

        def hook(module, name, tensor):
            if tensor is not None and tensor.device.type != "meta":
                self.largest = max(self.largest, tensor.numel())

        self.handles = [torch_module.register_module_parameter_registration_hook(hook),
                        torch_module.register_module_buffer_registration_hook(hook)]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_checkpoint_config_is_a_clear_error_before_anything_is_built(checkpoint, case, outcomes):
    from fakescope.errors import FakescopeError
    from fakescope.inference import Detector

    how, pattern = HOSTILE[case]
    folder = hostile(checkpoint, "bad", **how)
    with _Allocations() as alloc, pytest.raises(FakescopeError) as err:
        Detector.from_pretrained(str(folder), device="cpu")
    message = str(err.value)
    assert str(folder) in message and re.search(pattern, message, re.S), message
    assert alloc.largest < 100_000, f"a tensor of {alloc.largest} elements was allocated before the refusal"
    outcomes.append((f"checkpoint config: {case}", "load", "error: " + message.replace(str(folder), "CK")[:150]))


@pytest.mark.parametrize("case", ["widths [9000, 9000]", "config nested 200,000 deep", "config not UTF-8",
                                  "model.config a string"])
def test_hostile_checkpoint_config_through_detect_eval_and_serve(checkpoint, case, capsys, outcomes):
    from fakescope.cli import main

    folder = hostile(checkpoint, "bad", **HOSTILE[case][0])
    data = checkpoint.parent / "data"
    for label in ("0_real", "1_fake"):
        (data / label).mkdir(parents=True)
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(data / label / "a.png")
    runs = {
        "detect": ["detect", str(data / "0_real" / "a.png"), "-m", str(folder), "--device", "cpu",
                   "--progress", "off"],
        "eval": ["eval", str(folder), "--data", str(data), "--out", str(checkpoint.parent / "eval"),
                 "--device", "cpu", "--num-workers", "0"],
        "serve": ["serve", str(folder), "--port", "0"],
    }
    for entry, argv in runs.items():
        if entry == "serve":
            pytest.importorskip("uvicorn")
        rc = main(argv)
        stderr = capsys.readouterr().err
        assert rc == 2, (entry, stderr)
        assert "Traceback" not in stderr and "config.json" in stderr and re.search(HOSTILE[case][1], stderr, re.S), \
            (entry, stderr)
        outcomes.append((f"checkpoint config: {case}", entry, "error naming config.json, no traceback"))


def test_real_models_fit_the_bounds_and_build_on_the_meta_device():
    """Every registered model and its weights pass the checks that refuse hostile configs."""
    import torch

    from fakescope.models import create_model, list_models
    from fakescope.zoo.checkpoint import _BuildGuard
    from fakescope.models.registry import default_preprocess

    for name in list_models():
        if name == "hf_classifier":  # needs a Hub name: its tiny variant stands for it
            continue
        default_preprocess(name)  # within the preprocessing bounds
        with torch.device("meta"):
            model = create_model(name)
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        with _BuildGuard(shapes, Path("config.json"), name), torch.device("meta"):
            create_model(name)


def test_calibration_points_are_the_operating_points():
    from fakescope.metrics.calibration import OPERATING_POINTS
    from fakescope.zoo.checkpoint import CALIBRATION_POINTS

    assert tuple(CALIBRATION_POINTS) == tuple(OPERATING_POINTS)


def test_a_real_checkpoint_still_loads_and_scores(checkpoint):
    from fakescope.inference import Detector

    rec = Detector.from_pretrained(str(checkpoint), device="cpu").predict(np.zeros((32, 32, 3), np.uint8))
    assert rec["error"] is None and 0.0 <= rec["score"] <= 1.0
