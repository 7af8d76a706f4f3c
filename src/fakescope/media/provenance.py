"""What a file says about its own origin, reported as found (raw keys and values), never mixed into a score.

* **C2PA** manifests, read with the official ``c2pa-python`` bindings (``pip install 'fakescope[provenance]'``):
  claim generator, signer, validation state (``Valid``, ``Trusted`` or ``Invalid``) with the failure codes,
  and the actions with their ``digitalSourceType`` (e.g. ``trainedAlgorithmicMedia``, IPTC's term for media
  made by a generative model).
* **IPTC/XMP** ``DigitalSourceType`` in the file's XMP packet.
* **Generator metadata**: text that names a generative tool (:data:`GENERATOR_KEYS`, :data:`GENERATOR_PATTERNS`),
  in ``generator_metadata`` (raw key: value) and ``generators`` (which tool, from which key). It is read from
  the PNG text chunks tools write (``parameters``, ``prompt``, ``workflow``, ``Software``, ``Comment``, ``Source``,
  ``Description``, InvokeAI's and Fooocus' keys), a JPEG/GIF comment (``comment``) and EXIF ``Software``,
  ``ImageDescription`` and ``UserComment`` (where web UIs put parameters in JPEGs).
* **Other metadata**: whatever of those names no generator ("File written by Adobe Photoshop 5.0",
  "GIMP 2.10", a camera's description), in ``other_metadata`` (raw key: value).
* **Camera** EXIF ``Make`` and ``Model``.

A file whose metadata was stripped gives ``found: false`` and the summary "none found": absence proves nothing.

Each record also says which readers ran (``readers``, in order, from :data:`READERS`: ``c2pa`` only where
``c2pa-python`` is installed and the file was read whole; ``png-text`` for a PNG; ``jpeg-comment``/``gif-comment``/
``image-text`` for the text Pillow reads of other images; ``exif`` for any image) and what they could not read
(``warnings``: one short sentence each, naming the reader, e.g. ``exif: unreadable (SyntaxError: not a TIFF
file ...)``). A reader that fails leaves the others' results in the record, and the summary names it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from fakescope.media.generator_names import (GENERATOR_KEYS, GENERATOR_PATTERNS, KEY_GENERATORS,  # noqa: F401
                                             SCAN_CHARS, generator_of)
from fakescope.utils import pngchunks

# The text keys read (PNG text chunks, Pillow's ``comment`` of a JPEG COM segment or a GIF comment extension)
TEXT_KEYS = ("parameters", "prompt", "workflow", "Software", "Comment", "comment", "Source", "Description",
             "generation_data", *KEY_GENERATORS)
EXIF_TAGS = {0x0131: "Software", 0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model"}
EXIF_USER_COMMENT = 0x9286
MAX_VALUE = 2000  # characters kept of a long value (a ComfyUI workflow is tens of kB)
XMP_BYTES = 4 << 20  # XMP packets are looked for in the first megabytes (where metadata lives)
MAX_XMP_VALUE = 512  # bytes of one DigitalSourceType value
# The readers a record's ``readers`` names: what each reads
READERS = {
    "c2pa": "the C2PA manifest (c2pa-python)",
    "xmp": "IPTC/XMP DigitalSourceType in the XMP packets",
    "png-text": "PNG text chunks (tEXt, zTXt, iTXt) and the eXIf chunk's bytes",
    "jpeg-comment": "the JPEG comment (COM segment)",
    "gif-comment": "the GIF comment extension",
    "image-text": "the text Pillow reads from an image of another format",
    "exif": "EXIF Software, ImageDescription, Make, Model and UserComment",
}
_TEXT_READER = {"JPEG": "jpeg-comment", "MPO": "jpeg-comment", "GIF": "gif-comment"}
NO_C2PA = "c2pa: not read: c2pa-python is not installed (pip install 'fakescope[provenance]')"


def xmp_packets(data: bytes, limit: int = XMP_BYTES) -> list[tuple[int, int]]:
    """``(start, end)`` of every ``<x:xmpmeta ...</x:xmpmeta>`` packet in ``data[:limit]``, each from an opener to
    the first closer after it. Linear by construction: ``bytes.find`` calls whose spans never overlap (an opener
    with no closer after it ends the search; no regular expression runs over the file's bytes)."""
    limit = min(limit, len(data))
    out, pos = [], 0
    while True:
        start = data.find(b"<x:xmpmeta", pos, limit)
        if start < 0:
            break
        end = data.find(b"</x:xmpmeta>", start + 10, limit)
        if end < 0:
            break  # no closer: no later opener has one either
        out.append((start, end + 12))
        pos = end + 12
    return out


def xmp_source_types(data: bytes, start: int, end: int) -> list[str]:
    """The ``DigitalSourceType`` values (element text or attribute) in ``data[start:end]``, by ``find``."""
    out, pos = [], start
    while True:
        at = data.find(b"DigitalSourceType", pos, end)
        if at < 0:
            return out
        pos = at + 17
        if data[pos:pos + 1] == b">":
            pos += 1
        elif data[pos:pos + 2] == b'="':
            pos += 2
        else:
            continue
        stop = min(end, pos + MAX_XMP_VALUE)
        stops = [i for i in (data.find(b"<", pos, stop), data.find(b'"', pos, stop)) if i >= 0]
        value = data[pos:min(stops) if stops else stop].decode("utf-8", "replace").strip()
        if value:
            out.append(value)


def _text(v: Any) -> str:
    text = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return text.replace("\x00", "")


def _short(v: Any) -> str:
    text = _text(v)
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + f"... ({len(text)} characters)"


def _user_comment(raw: Any) -> str:
    """EXIF UserComment: an 8-byte character code (ASCII, UNICODE, JIS or undefined), then the text."""
    if not isinstance(raw, bytes):
        return _text(raw)
    code, body = raw[:8], raw[8:]
    if code.startswith(b"UNICODE"):  # UTF-16; Exif says big-endian, some writers use little-endian
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return _text(body.decode("utf-16", "replace"))
        big = body[0:64:2].count(0) >= body[1:64:2].count(0)  # ASCII characters have their zero byte first
        return _text(body.decode("utf-16-be" if big else "utf-16-le", "replace"))
    if code.startswith(b"JIS"):
        return _text(body.decode("cp932", "replace"))
    return _text(body if code.startswith(b"ASCII") or not code.strip(b"\0 ") else raw)


_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff", "GIF": "image/gif",
         "AVIF": "image/avif", "HEIF": "image/heif"}


def _mime(data: bytes, name: str) -> str | None:
    """The media type of ``data``, from its content (an image) or else its name (a video)."""
    import io
    import mimetypes

    try:
        with Image.open(io.BytesIO(data)) as img:
            return _MIME.get(img.format or "")
    except Exception:
        return mimetypes.guess_type(name)[0] if name else None


C2PA_UNAVAILABLE = {"available": False, "note": "C2PA manifests are not read: pip install 'fakescope[provenance]' "
                                                 "(c2pa-python)"}
NO_C2PA_TYPE = ("c2pa: not read: not a media type C2PA is read from here (images: "
                + ", ".join(_MIME) + "; videos by the file name)")


def read_c2pa(data: bytes, name: str = "") -> dict[str, Any] | None:
    """The active C2PA manifest in ``data`` (a whole file) as found; ``None`` when there is none;
    ``{"available": False}`` without the bindings."""
    try:
        import c2pa
    except ImportError:
        return dict(C2PA_UNAVAILABLE)
    mime = _mime(data, name)
    if mime is None:
        return None
    return _read_manifest(c2pa, mime, data)


def _read_manifest(c2pa: Any, mime: str, data: bytes) -> dict[str, Any] | None:
    import io

    try:
        reader = c2pa.Reader(mime, io.BytesIO(data))
    except Exception as exc:  # the bindings raise C2paError subclasses for "no manifest" and for broken ones
        text = str(exc)
        if "ManifestNotFound" in text or "JumbfNotFound" in text or "no JUMBF" in text or "NotSupported" in text:
            return None
        return {"available": True, "error": f"{type(exc).__name__}: {text[:300]}"}
    with reader:
        store = json.loads(reader.json())
        state = reader.get_validation_state()
    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    actions = []
    for a in active.get("assertions", []):
        if str(a.get("label", "")).startswith("c2pa.actions"):
            for act in a.get("data", {}).get("actions", []):
                actions.append({k: act[k] for k in ("action", "digitalSourceType", "softwareAgent", "when")
                                if k in act})
    sig = active.get("signature_info", {})
    failures = [s.get("code") for s in store.get("validation_status", []) if s.get("code")]
    return {
        "available": True,
        "claim_generator": [g.get("name") for g in active.get("claim_generator_info", [])]
        or active.get("claim_generator"),
        "title": active.get("title"),
        "signer": {k: sig.get(k) for k in ("issuer", "common_name", "alg", "time") if sig.get(k) is not None},
        "validation_state": state,
        "validation_codes": failures,
        "actions": actions,
        "manifests": len(store.get("manifests", {})),
    }


def _problem(reader: str, exc: BaseException, what: str = "unreadable") -> str:
    """One line for ``warnings``: the reader, what went wrong, the exception in short."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= 200 else text[:200] + "..."
    return f"{reader}: {what} ({type(exc).__name__}{': ' + text if text else ''})"


def read_provenance(source: str | Path | bytes, max_bytes: int = 256 << 20) -> dict[str, Any]:
    """Everything :mod:`this module <fakescope.media.provenance>` reads from one file (a path, or its bytes).
    A file larger than ``max_bytes`` has its C2PA manifest left unread (said in ``c2pa``). A PNG text chunk over
    the budget of :mod:`~fakescope.utils.pngchunks` is not read, and named in ``skipped_metadata``.

    ``readers`` lists the readers that ran, ``warnings`` what they could not read (each reader is tried on its
    own: one that fails costs only its own part of the record)."""
    import io

    name = "" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        data, whole = source, True
    else:
        whole = Path(source).stat().st_size <= max_bytes
        with open(source, "rb") as fh:
            data = fh.read() if whole else fh.read(4 << 20)
    readers: list[str] = []
    warnings: list[str] = []
    failed: list[str] = []  # readers that raised: the summary names them

    def problem(reader: str, exc: BaseException) -> None:
        warnings.append(_problem(reader, exc))
        failed.append(reader)

    c2: dict[str, Any] | None = None
    if whole:
        try:
            import c2pa
        except ImportError:
            c2 = dict(C2PA_UNAVAILABLE)
            warnings.append(NO_C2PA)
        else:
            mime = _mime(data, name)
            if mime is None:
                warnings.append(NO_C2PA_TYPE)
            else:
                readers.append("c2pa")
                try:
                    c2 = _read_manifest(c2pa, mime, data)
                except Exception as exc:  # the bindings' reader opened the manifest, reading it failed
                    c2 = {"available": True, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                if c2 is not None and c2.get("error"):
                    warnings.append(f"c2pa: unreadable manifest ({c2['error']})")
                    failed.append("c2pa")
    else:
        c2 = {"available": True, "note": f"not read: the file is larger than {max_bytes >> 20} MB"}
        warnings.append(f"c2pa: not read: the file is larger than {max_bytes >> 20} MB")
    out: dict[str, Any] = {"c2pa": c2, "digital_source_type": [], "generator_metadata": {}, "generators": [],
                           "other_metadata": {}, "camera": {}}
    readers.append("xmp")
    try:
        for start, end in xmp_packets(data):
            out["digital_source_type"] += xmp_source_types(data, start, end)
    except Exception as exc:
        problem("xmp", exc)
    fmt = ""
    text_reader = None  # the reader of the image's text; None when the file is no image Pillow opens
    info: dict[str, Any] = {}
    img = None
    png_exif: bytes | None = None

    def keep(key: str, value: str, camera: bool = False) -> None:
        tool = generator_of(key, value)
        if tool:
            out["generator_metadata"][key] = _short(value)
            out["generators"].append({"name": tool, "key": key, "where": _where(fmt, key)})
        else:
            (out["camera"] if camera else out["other_metadata"])[key] = _short(value)

    if pngchunks.is_png(data):  # walked here: Pillow's img.text composites every frame of an APNG
        fmt, text_reader = "PNG", "png-text"
        readers.append(text_reader)
        try:
            png = pngchunks.read_text(data)
            info, png_exif = dict(png.text), png.exif
            if png.skipped:
                out["skipped_metadata"] = png.skipped
        except Exception as exc:
            problem(text_reader, exc)
    else:
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            img = None  # not an image Pillow opens (a video): the readers above still report
        except Exception as exc:  # an image Pillow knows, whose header it could not read
            warnings.append(_problem("image", exc, "not opened by Pillow, its text and EXIF not read"))
        if img is not None:
            fmt = img.format or ""
            text_reader = _TEXT_READER.get(fmt, "image-text")
            readers.append(text_reader)
            info = {k: v for k, v in img.info.items() if isinstance(v, (str, bytes))}
    if text_reader is not None:  # an image: its text (read above), then its EXIF
        try:
            for k in TEXT_KEYS:
                if k in info and _text(info[k]).strip():
                    keep(k, _text(info[k]))
        except Exception as exc:
            problem(text_reader, exc)
        readers.append("exif")
        try:
            if img is not None:
                exif = img.getexif()
            else:
                exif = Image.Exif()
                if png_exif:
                    exif.load(png_exif)
            for tag, key in EXIF_TAGS.items():
                if tag in exif and _text(exif[tag]).strip():
                    keep(f"EXIF {key}", _text(exif[tag]).strip(), camera=key in ("Make", "Model"))
            comment = exif.get_ifd(0x8769).get(EXIF_USER_COMMENT)
            if comment and _user_comment(comment).strip():
                keep("EXIF UserComment", _user_comment(comment).strip())
        except Exception as exc:
            problem("exif", exc)
        finally:
            if img is not None:
                img.close()
    c2 = out["c2pa"] or {}
    found = bool(c2.get("validation_state") or out["digital_source_type"] or out["generator_metadata"]
                 or out["other_metadata"] or out["camera"])
    out["found"] = found
    out["summary"] = _summary(out, fmt) if found else "none found"
    if out.get("skipped_metadata"):
        out["summary"] += f" ({len(out['skipped_metadata'])} text chunk(s) over the size budget not read)"
    if failed:
        out["summary"] += f" ({', '.join(dict.fromkeys(failed))} unreadable: see warnings)"
    out["readers"] = readers
    out["warnings"] = warnings
    return out


def _where(fmt: str, key: str) -> str:
    """A raw key with the container it came from: ``PNG parameters``, ``JPEG comment``, ``EXIF Software``."""
    return key if key.startswith("EXIF ") or not fmt else f"{fmt} {key}"


def _summary(p: dict[str, Any], fmt: str = "") -> str:
    parts = []
    c2 = p["c2pa"] or {}
    if c2.get("validation_state"):
        types = sorted({a["digitalSourceType"].rsplit("/", 1)[-1] for a in c2["actions"] if "digitalSourceType" in a})
        by = c2.get("claim_generator")
        by = ", ".join(map(str, by)) if isinstance(by, list) else by
        parts.append(f"C2PA manifest ({c2['validation_state']}" + (f"; {', '.join(types)}" if types else "")
                     + f"; claim generator {by})")
    if p["digital_source_type"]:
        parts.append("XMP DigitalSourceType " + ", ".join(t.rsplit("/", 1)[-1] for t in p["digital_source_type"]))
    if p["generators"]:
        by_tool: dict[str, list[str]] = {}
        for g in p["generators"]:
            by_tool.setdefault(g["name"], []).append(g["where"])
        parts.append("generator metadata: " + ", ".join(f"{t} ({', '.join(w)})" for t, w in by_tool.items()))
    if p["other_metadata"]:
        parts.append("other metadata: " + ", ".join(_where(fmt, k) for k in p["other_metadata"]))
    if p["camera"]:
        parts.append("camera: " + " ".join(p["camera"].values()))
    return "; ".join(parts)
