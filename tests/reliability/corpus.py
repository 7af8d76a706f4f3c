"""The bad-input corpus, made here from nothing: every kind of file a hostile or unlucky user hands fakescope.

:func:`build_media` writes a folder laid out as ``0_real/`` and ``1_fake/`` (so that ``detect``, ``prepare folder``
and ``eval`` all take it as it is) and returns one :class:`Kind` per case, with what must happen to it: scored, or
an error whose text names the file and matches ``reason``. The weights and config cases are made by the tests
that use them (:mod:`reliability.test_corpus`). Everything is small: the "large" files are a few hundred kB
that only claim large pictures.
"""

from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

BUDGET_MP = 2.0  # the pixel budget the corpus runs under: a 2048x2048 video is scaled, a 4096x4096 one refused


@dataclass(frozen=True)
class Kind:
    name: str
    rel: str  # the file, relative to the corpus folder
    expect: str  # "scored" or "error"
    reason: str = ""  # a regular expression the error must match (besides naming the file)
    video: bool = False


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (max(h // 4, 1), max(w // 4, 1), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR))


def encoded(arr: np.ndarray | Image.Image, fmt: str, **kw) -> bytes:
    img = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def stored_png(side: int, seed: int = 0) -> bytes:
    return encoded(noise(side, side, seed), "PNG")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def png_bomb(side: int) -> bytes:
    """A real grey PNG of side x side pixels whose rows compress to almost nothing (13000: about 160 kB)."""
    z = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    data = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def png_header_bomb(side: int) -> bytes:
    """A PNG whose header claims side x side pixels, with one compressed row of data."""
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    data = zlib.compress(b"\0" * (side + 1), 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def gif_header_bomb(side: int = 60000) -> bytes:
    """A GIF whose logical screen and only frame claim side x side pixels (a few dozen bytes)."""
    gif = bytearray(encoded(Image.new("P", (4, 4)), "GIF"))
    gif[6:10] = side.to_bytes(2, "little") * 2  # logical screen
    at = gif.index(b"\x2c")  # image descriptor: left, top, width, height
    gif[at + 5:at + 9] = side.to_bytes(2, "little") * 2
    return bytes(gif)


def png_text_bomb(side: int = 32, after: bool = False, inflated: int = 2 << 20) -> bytes:
    """A good PNG with a zTXt chunk ('parameters') that inflates to ``inflated`` bytes, past Pillow's
    ``MAX_TEXT_CHUNK`` (1 MB), before its image data or (``after``) after it."""
    png = stored_png(side, 40)
    bomb = _png_chunk(b"zTXt", b"parameters\0\0" + zlib.compress(b"Steps: 20, " * (inflated // 11 + 1), 9))
    at = png.rfind(b"IEND") - 4 if after else 33  # before IEND, or right after IHDR
    return png[:at] + bomb + png[at:]


def exif_rotated_jpeg(arr: np.ndarray, orientation: int = 6) -> bytes:
    """``arr`` stored turned so that EXIF ``orientation`` (6: rotate 90 clockwise to view) puts it upright."""
    turned = {6: np.rot90(arr, k=1), 8: np.rot90(arr, k=-1), 3: np.rot90(arr, k=2)}[orientation]
    img = Image.fromarray(np.ascontiguousarray(turned))
    exif = img.getexif()
    exif[0x0112] = orientation
    return encoded(img, "JPEG", quality=95, exif=exif.tobytes())


def _video(path: Path, frames: list[np.ndarray], **kw) -> None:
    from fakescope.media.video import write_video

    write_video(path, frames, **kw)


def build_media(root: Path) -> list[Kind]:
    """Write the media corpus under ``root`` and return its kinds."""
    from fakescope.media.video import write_video

    real, fake = root / "0_real", root / "1_fake"
    real.mkdir(parents=True, exist_ok=True)
    fake.mkdir(parents=True, exist_ok=True)
    kinds: list[Kind] = []

    def put(name: str, rel: str, data: bytes, expect: str, reason: str = "", video: bool = False) -> None:
        p = root / rel
        p.write_bytes(data)
        kinds.append(Kind(name, rel, expect, reason, video))

    png = stored_png(64)
    jpeg = encoded(noise(64, 64, 1), "JPEG", quality=90)
    webp = encoded(noise(64, 64, 2), "WEBP", quality=90)
    put("control PNG", "0_real/ok.png", png, "scored")
    put("zero-byte file", "1_fake/empty.png", b"", "error", "empty")
    put("truncated JPEG", "1_fake/cut.jpg", jpeg[: len(jpeg) // 2], "error", "truncated or corrupt")
    put("truncated PNG", "1_fake/cut.png", png[: len(png) // 2], "error", "truncated or corrupt")
    put("truncated WebP", "1_fake/cut.webp", webp[: len(webp) // 2], "error", "truncated|corrupt|cannot")
    put("wrong extension (PNG named .jpg)", "0_real/really_png.jpg", png, "scored")
    put("text file named .png", "1_fake/notes.png", b"these are notes, not pixels\n" * 8, "error", "not an image")
    put("random bytes named .jpg", "1_fake/noise.jpg", os.urandom(3000), "error", "not an image")
    put("CMYK JPEG", "0_real/cmyk.jpg", encoded(Image.fromarray(noise(48, 48, 3)).convert("CMYK"), "JPEG"), "scored")
    put("grayscale JPEG", "0_real/gray.jpg", encoded(Image.fromarray(noise(48, 48, 4)).convert("L"), "JPEG"), "scored")
    sixteen = Image.fromarray(noise(40, 40, 5)[..., 0].astype(np.uint16) * 257)
    put("16-bit PNG", "0_real/deep16.png", encoded(sixteen, "PNG"), "scored")
    pal = Image.fromarray(noise(40, 40, 6)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    put("palette PNG with transparency", "0_real/palette.png", encoded(pal, "PNG", transparency=0), "scored")
    put("RGBA PNG", "0_real/alpha.png", encoded(Image.fromarray(noise(40, 40, 7)).convert("RGBA"), "PNG"), "scored")
    put("1x1 image", "0_real/dot.png", encoded(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"), "scored")
    frames = [Image.fromarray(noise(32, 32, s)) for s in range(3)]
    put("animated GIF", "0_real/anim.gif", encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "scored")
    put("EXIF-rotated photo (Orientation=6)", "0_real/rotated.jpg", exif_rotated_jpeg(noise(48, 64, 8)), "scored")
    put("large JPEG (decoded at reduced size)", "0_real/large.jpg",
        encoded(Image.new("RGB", (3000, 2400), (90, 120, 150)), "JPEG", quality=60), "scored")
    put("PNG text chunk inflating past Pillow's 1 MB limit, before the image data", "0_real/textbomb_head.png",
        png_text_bomb(), "scored")
    put("PNG text chunk inflating past Pillow's 1 MB limit, after the image data", "0_real/textbomb_tail.png",
        png_text_bomb(after=True), "scored")
    put("PNG bomb 13000x13000 (real data)", "1_fake/bomb13k.png", png_bomb(13000), "error", "pixel budget")
    put("PNG header claiming 30000x30000", "1_fake/bomb30k.png", png_header_bomb(30000), "error", "pixel budget")
    put("GIF header claiming 60000x60000", "1_fake/bomb.gif", gif_header_bomb(), "error",
        "pixel budget|truncated|corrupt")

    # videos
    clip = [noise(48, 64, 10 + i) for i in range(8)]
    write_video(real / "ok.mp4", clip, fps=8)
    kinds.append(Kind("control video", "0_real/ok.mp4", "scored", video=True))
    good = (real / "ok.mp4").read_bytes()
    put("truncated MP4", "1_fake/cut.mp4", good[: len(good) // 2], "error", "truncated|corrupt|readable|decod",
        video=True)
    moov = good.find(b"moov")
    broken = bytearray(good)
    broken[moov:moov + 200] = os.urandom(200)
    put("corrupt moov atom", "1_fake/bad_moov.mp4", bytes(broken), "error", "readable|decod|corrupt|frames",
        video=True)
    empty_video = root / "1_fake" / "no_frames.mp4"
    _zero_frame_video(empty_video)
    kinds.append(Kind("zero-frame video", "1_fake/no_frames.mp4", "error", "no frame|no video|readable", True))
    write_video(real / "sound.m4a", [], audio=True)
    kinds.append(Kind("audio-only .m4a", "0_real/sound.m4a", "error", "no video stream", True))
    (fake / "sound_named.mp4").write_bytes((real / "sound.m4a").read_bytes())
    kinds.append(Kind("audio-only file named .mp4", "1_fake/sound_named.mp4", "error", "no video stream", True))
    write_video(real / "portrait.mp4", [noise(64, 48, 20 + i) for i in range(6)], fps=6, rotation=90)
    kinds.append(Kind("portrait video (rotation 90)", "0_real/portrait.mp4", "scored", video=True))
    from fractions import Fraction

    write_video(real / "vfr.mp4", clip, pts=[0, 1, 3, 4, 8, 9, 15, 16], time_base=Fraction(1, 10))
    kinds.append(Kind("variable frame rate", "0_real/vfr.mp4", "scored", video=True))
    big = [np.full((2048, 2048, 3), 40 * i, np.uint8) for i in range(3)]
    write_video(real / "large.mp4", big, fps=3, options={"crf": "51", "preset": "ultrafast"})
    kinds.append(Kind("2048x2048 video (frames scaled to the budget)", "0_real/large.mp4", "scored", video=True))
    huge = [np.full((4096, 4096, 3), 60 * i, np.uint8) for i in range(2)]
    write_video(fake / "huge.mp4", huge, fps=2, options={"crf": "51", "preset": "ultrafast"})
    kinds.append(Kind("4096x4096 H.264 of a few kB", "1_fake/huge.mp4", "error", "pixel budget", True))
    put("random bytes named .mp4", "1_fake/noise.mp4", os.urandom(4000), "error", "readable|decod|neither",
        video=True)

    # names and links
    put("Unicode file name", "0_real/café 🙂.png", stored_png(40, 30), "scored")
    name = os.fsdecode(b"0_real/latin1_caf\xe9.png")
    put("file name not valid UTF-8", name, stored_png(40, 31), "scored")
    name = os.fsdecode(b"0_real/clip_\xff\xfe.mp4")  # a video: its name is also a unit key, hashed to a shard
    put("video file name not valid UTF-8", name, good, "scored", video=True)
    os.symlink(".", real / "loop")  # a link to its own folder: a folder walk must not follow it round
    kinds.append(Kind("symbolic link loop", "0_real/loop", "skipped", "symbolic link to a folder: links inside folders are not followed"))
    os.symlink("missing.png", fake / "dangling.png")
    kinds.append(Kind("dangling symbolic link", "1_fake/dangling.png", "error", "not found"))
    os.mkfifo(fake / "pipe.png")
    kinds.append(Kind("named pipe called .png", "1_fake/pipe.png", "error", "not a regular file"))
    (real / "readme.txt").write_text("not media\n")
    kinds.append(Kind("non-media file in a folder", "0_real/readme.txt", "skipped",
                      r"not an image, video or sound file by its name \(\.txt\)"))
    return kinds


def _zero_frame_video(path: Path) -> None:
    """A video file with a video stream and no frame in it (Matroska keeps a track without packets; a second of
    silent audio makes the muxer write the file)."""
    import av

    from fakescope.media.video_write import _mux_silence

    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        sound = c.add_stream("aac", rate=16000)
        _mux_silence(c, sound, 1.0)
