"""What a file says about its own origin, reported as found (raw keys and values), never mixed into a score.

* **C2PA** manifests, read with the official ``c2pa-python`` bindings (``pip install 'fakescope[provenance]'``):
  claim generator, signer, validation state (``Valid``, ``Trusted`` or ``Invalid``) with the failure codes,
  and the actions with their ``digitalSourceType`` (e.g. ``trainedAlgorithmicMedia``, IPTC's term for media
  made by a generative model).
* **IPTC/XMP** ``DigitalSourceType`` in the file's XMP packet.
* **Generator metadata** that image tools write: PNG text chunks of the Stable Diffusion web UIs (``parameters``),
  ComfyUI (``prompt``, ``workflow``), NovelAI (``Software``, ``Comment``, ``Source``, ``Description``), InvokeAI
  (``invokeai_metadata``, ``invokeai_graph``, ``sd-metadata``, ``Dream``); EXIF ``Software``,
  ``ImageDescription`` and ``UserComment`` (where web UIs put parameters in JPEGs).
* **Camera** EXIF ``Make`` and ``Model``.

A file whose metadata was stripped gives ``found: false`` and the summary "none found": absence proves nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from PIL import Image

GENERATOR_TEXT_KEYS = ("parameters", "prompt", "workflow", "Software", "Comment", "Source", "Description",
                       "invokeai_metadata", "invokeai_graph", "sd-metadata", "Dream", "generation_data")
EXIF_TAGS = {0x0131: "Software", 0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model"}
EXIF_USER_COMMENT = 0x9286
MAX_VALUE = 2000  # characters kept of a long value (a ComfyUI workflow is tens of kB)
_XMP_DST = re.compile(rb"DigitalSourceType(?:>|=\")\s*([^<\"]+)")
_XMP_PACKET = re.compile(rb"<x:xmpmeta.*?</x:xmpmeta>", re.S)


def _short(v: Any) -> str:
    text = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    text = text.replace("\x00", "")
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + f"... ({len(text)} characters)"


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


def read_c2pa(data: bytes, name: str = "") -> dict[str, Any] | None:
    """The active C2PA manifest in ``data`` (a whole file) as found; ``None`` when there is none;
    ``{"available": False}`` without the bindings."""
    import io

    try:
        import c2pa
    except ImportError:
        return {"available": False, "note": "C2PA manifests are not read: pip install 'fakescope[provenance]' "
                                            "(c2pa-python)"}
    mime = _mime(data, name)
    if mime is None:
        return None
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


def read_provenance(source: str | Path | bytes, max_bytes: int = 256 << 20) -> dict[str, Any]:
    """Everything :mod:`this module <fakescope.media.provenance>` reads from one file (a path, or its bytes).
    A file larger than ``max_bytes`` has its C2PA manifest left unread (said in ``c2pa``)."""
    import io

    name = "" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        data, whole = source, True
    else:
        whole = Path(source).stat().st_size <= max_bytes
        with open(source, "rb") as fh:
            data = fh.read() if whole else fh.read(4 << 20)
    c2 = read_c2pa(data, name) if whole else {
        "available": True, "note": f"not read: the file is larger than {max_bytes >> 20} MB"}
    out: dict[str, Any] = {"c2pa": c2, "digital_source_type": [], "generator_metadata": {}, "camera": {}}
    for packet in _XMP_PACKET.findall(data[: 4 << 20]):  # metadata lives in the first megabytes
        out["digital_source_type"] += [m.decode("utf-8", "replace").strip() for m in _XMP_DST.findall(packet)]
    try:
        with Image.open(io.BytesIO(data)) as img:
            text = getattr(img, "text", None) or {}
            info = {**{k: v for k, v in img.info.items() if isinstance(v, (str, bytes))}, **text}
            for k in GENERATOR_TEXT_KEYS:
                if k in info:
                    out["generator_metadata"][k] = _short(info[k])
            exif = img.getexif()
            for tag, key in EXIF_TAGS.items():
                if tag in exif and str(exif[tag]).strip():
                    (out["camera"] if key in ("Make", "Model") else out["generator_metadata"])[
                        f"EXIF {key}"] = _short(exif[tag]).strip()
            comment = exif.get_ifd(0x8769).get(EXIF_USER_COMMENT)
            if comment:
                value = comment[8:] if isinstance(comment, bytes) and comment[:8].strip(b"\0 ") else comment
                out["generator_metadata"]["EXIF UserComment"] = _short(value).strip()
    except Exception:  # not an image PIL opens (a video): the other readers still report
        pass
    c2 = out["c2pa"] or {}
    found = bool(c2.get("validation_state") or out["digital_source_type"] or out["generator_metadata"]
                 or out["camera"])
    out["found"] = found
    out["summary"] = _summary(out) if found else "none found"
    return out


def _summary(p: dict[str, Any]) -> str:
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
    if p["generator_metadata"]:
        parts.append("generator metadata: " + ", ".join(p["generator_metadata"]))
    if p["camera"]:
        parts.append("camera: " + " ".join(p["camera"].values()))
    return "; ".join(parts)
