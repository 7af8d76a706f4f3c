"""PNG chunks read from a file's bytes by walking the chunk list: text (tEXt, zTXt, iTXt) and EXIF (eXIf) without
decoding a pixel or a frame, in time linear in the number of chunks, with a budget on every chunk.

Pillow reads the same chunks, but asking an animated PNG for its text composites every frame, and a compressed
text chunk that inflates past ``PngImagePlugin.MAX_TEXT_CHUNK`` makes the whole file fail to open (or to load);
:func:`without_text` gives the file without its text chunks, which Pillow then decodes as the image it is.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Iterator

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
MAX_CHUNKS = 200_000  # an APNG has two chunks a frame; more than this is not a picture anyone made
MAX_TEXT = 1 << 20  # bytes of one text value (inflated), as Pillow's MAX_TEXT_CHUNK: a longer one is skipped
MAX_TEXT_TOTAL = 16 << 20  # bytes of text values of one file, all together


def is_png(data: bytes) -> bool:
    return data[:8] == SIGNATURE


def chunks(data: bytes, max_chunks: int = MAX_CHUNKS) -> Iterator[tuple[bytes, int, int]]:
    """``(type, start, end)`` of the payload of each chunk, in order, up to IEND, the end of the data (a
    truncated last chunk is cut to what there is) or ``max_chunks``; nothing is copied."""
    pos, n = 8, 0
    while pos + 8 <= len(data) and n < max_chunks:
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = bytes(data[pos + 4:pos + 8])
        start = pos + 8
        end = min(start + length, len(data))
        yield kind, start, end
        if kind == b"IEND":
            return
        pos = start + length + 4  # payload, then the CRC
        n += 1


@dataclass
class PngText:
    """What :func:`read_text` found: ``text`` (keyword: value, later chunks win as in Pillow), ``exif`` (the raw
    eXIf payload or ``None``) and ``skipped`` (one line per text chunk not read, and why)."""

    text: dict[str, str] = field(default_factory=dict)
    exif: bytes | None = None
    skipped: list[str] = field(default_factory=list)


def _inflate(payload: bytes, limit: int) -> bytes | None:
    """``payload`` inflated, or ``None`` when it inflates past ``limit`` bytes (nothing more is inflated)."""
    d = zlib.decompressobj()
    out = d.decompress(payload, limit)
    return None if d.unconsumed_tail or (len(out) >= limit and not d.eof) else out


def read_text(data: bytes, max_text: int = MAX_TEXT, max_total: int = MAX_TEXT_TOTAL) -> PngText:
    """The text chunks and the eXIf chunk of a PNG (``data``: the whole file or its first bytes)."""
    out = PngText()
    total = 0
    for kind, start, end in chunks(data):
        if kind == b"eXIf" and out.exif is None:
            out.exif = bytes(data[start:end])
        if kind not in TEXT_CHUNKS:
            continue
        head = bytes(data[start:min(end, start + 80)])  # keyword: 1 to 79 bytes, then a NUL
        nul = head.find(b"\0")
        if nul < 1:
            continue
        key = head[:nul].decode("latin-1")
        where = f"PNG {kind.decode()} '{key}'"
        if total >= max_total:
            out.skipped.append(f"{where}: not read (the file's text is over {max_total >> 20} MB)")
            continue
        body, compressed, encoding = start + nul + 1, kind == b"zTXt", "latin-1"
        if kind == b"zTXt":
            body += 1  # compression method
        elif kind == b"iTXt":
            flags = bytes(data[body:body + 2])
            compressed, encoding = flags[:1] == b"\1", "utf-8"
            body += 2
            for _ in range(2):  # language tag, translated keyword
                nxt = data.find(b"\0", body, end)
                if nxt < 0:
                    body = end
                    break
                body = nxt + 1
        limit = min(max_text, max_total - total)
        if compressed:
            try:
                raw = _inflate(bytes(data[body:end]), limit)
            except zlib.error as exc:
                out.skipped.append(f"{where}: not read (corrupt compressed text: {exc})")
                continue
            if raw is None:
                out.skipped.append(f"{where}: not read (it inflates to more than {limit >> 10} kB)")
                continue
        else:
            if end - body > limit:
                out.skipped.append(f"{where}: not read ({end - body} bytes, more than {limit >> 10} kB)")
                continue
            raw = bytes(data[body:end])
        total += len(raw)
        out.text[key] = raw.decode(encoding, "replace")
    return out


def without_text(data: bytes) -> bytes:
    """A PNG's bytes without its text chunks (the pixels and every other chunk as they were)."""
    keep = [data[:8]]
    last = 8
    for kind, start, end in chunks(data, max_chunks=len(data)):
        chunk_start, chunk_end = start - 8, min(end + 4, len(data))
        if kind in TEXT_CHUNKS:
            keep.append(data[last:chunk_start])
            last = chunk_end
    keep.append(data[last:])
    return b"".join(keep)
