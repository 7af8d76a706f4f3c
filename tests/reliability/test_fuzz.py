"""A short, bounded fuzz of what reads untrusted bytes: image and video sniffing and the config loader.

Inputs are random bytes and random corruptions of small valid files. The property: every input ends in a
result or in fakescope's own error type (which the command line and the service turn into a clear message),
never in another exception, and nothing decoded exceeds the pixel budget. Hypothesis runs with a fixed seed
(the same cases in every CI run) and a bounded number of examples (about 20 s in all on a 2-core machine);
FAKESCOPE_FUZZ_EXAMPLES=N raises the count for a longer hunt.
"""

from __future__ import annotations

import io
import os
import re

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the fuzz needs hypothesis (pip install 'fakescope[dev]')")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from reliability.corpus import encoded, noise  # noqa: E402

SCALE = float(os.environ.get("FAKESCOPE_FUZZ_EXAMPLES", "1") or 1)


def fuzz(n: int):
    return settings(max_examples=max(int(n * SCALE), 1), deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def _seeds() -> list[bytes]:
    arr = noise(24, 32, 3)
    return [encoded(arr, "PNG"), encoded(arr, "JPEG", quality=80), encoded(arr, "WEBP"), encoded(arr, "GIF"),
            encoded(arr, "BMP"), encoded(arr, "TIFF")]


SEEDS = _seeds()


@st.composite
def corrupted(draw) -> bytes:
    """A valid small image with bytes overwritten, cut short, or with a bit of garbage spliced in."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "splice", "size"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:  # a width/height field blown up: the header region of every format is in the first 32 bytes
            pos = min(at, 32)
            data[pos:pos + 2] = b"\xff\xff"
    return bytes(data)


@fuzz(400)
@given(data=st.one_of(st.binary(max_size=512), corrupted()))
def test_image_sniffing_ends_in_an_image_or_a_clear_error(pixel_budget, data):
    from fakescope.errors import FakescopeError
    from fakescope.media.image import open_image
    from fakescope.media.limits import max_pixels

    try:
        img = open_image(data, name="fuzz")
    except FakescopeError as exc:
        assert str(exc).startswith("fuzz: ")
        return
    if img is not None:
        assert img.mode == "RGB" and img.size[0] * img.size[1] <= max_pixels()


@fuzz(120)
@given(data=corrupted())
def test_the_service_sniffer_answers_4xx_or_decodes(pixel_budget, data):
    from fakescope.serve.uploads import MediaError, sniff

    try:
        kind, obj = sniff(data)
    except MediaError as exc:
        assert 400 <= exc.status < 500 and exc.message
        return
    if kind == "video":  # bytes that FFmpeg decodes as a video: the temporary file is the caller's to remove
        os.unlink(obj)
    else:
        assert kind == "image" and obj.mode == "RGB"


@pytest.fixture(scope="module")
def video_seed(tmp_path_factory) -> bytes:
    from fakescope.media.video import write_video

    path = tmp_path_factory.mktemp("fuzzvideo") / "seed.mp4"
    write_video(path, [noise(32, 48, i) for i in range(6)], fps=6, options={"g": "3"})
    return path.read_bytes()


@fuzz(60)
@given(data=st.data())
def test_video_reading_ends_in_frames_or_a_clear_error(video_seed, tmp_path_factory, pixel_budget, data):
    from fakescope.errors import DataError
    from fakescope.media.video import read_frames

    blob = bytearray(video_seed)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(blob) - 1))
        if data.draw(st.booleans()):
            blob[at] = data.draw(st.integers(0, 255))
        else:
            del blob[at:at + data.draw(st.integers(1, 64))]
    path = tmp_path_factory.mktemp("fz") / "v.mp4"
    path.write_bytes(bytes(blob))
    try:
        got = read_frames(path, num_frames=4)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    assert all(f.ndim == 3 and f.shape[2] == 3 for f in got.frames)


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                         st.text(max_size=12))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
CONFIG_KEYS = ["name", "seed", "model", "data", "optim", "trainer", "eval", "output_dir", "batch_size", "lr",
               "max_epochs", "root", "train", "val", "test", "augment", "kwargs", "preprocess"]


# what fakescope.config.loader says is wrong, after the file's name and ": "
CONFIG_PROBLEM = re.compile(
    r"not UTF-8 text \(byte 0x[0-9a-f]{2} on line \d+\)|malformed YAML|the top level must be a mapping of keys, got "
    r"|keys must be strings, got |unknown key '|required key '.*' is missing|unknown model '|'.*': .+ \(got ", re.S)


@fuzz(300)
@given(data=st.one_of(
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(CONFIG_KEYS), yaml_values, max_size=5).map(
        lambda d: __import__("yaml").safe_dump(d).encode()),
    st.text(alphabet=":-[]{}&*!|>#'\"\n\t ,.?%@`abc01", max_size=120).map(str.encode)))
def test_the_config_loader_ends_in_a_config_or_a_config_error(tmp_path_factory, data):
    from fakescope.config import load_config
    from fakescope.errors import FakescopeError

    path = tmp_path_factory.mktemp("cfg") / "fuzz.yaml"
    path.write_bytes(data)
    try:
        load_config(str(path))
    except FakescopeError as exc:
        msg = str(exc)  # the file named first, then the problem
        assert msg.startswith(f"{path}: ") and CONFIG_PROBLEM.match(msg, len(f"{path}: ")), msg


def test_the_seeds_themselves_decode(pixel_budget):
    from fakescope.media.image import open_image

    assert all(open_image(s) is not None for s in SEEDS)
    assert io.BytesIO(SEEDS[0]).read(8) == b"\x89PNG\r\n\x1a\n"
