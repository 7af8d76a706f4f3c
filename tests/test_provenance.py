"""Provenance as found: a C2PA manifest signed here and read back (a tampered copy reports a failed
validation), IPTC/XMP DigitalSourceType, generator metadata of image tools (only what names a generator),
other metadata (an editor's Software tag, a JPEG comment), camera EXIF, stripped files; in ``detect`` records,
apart from the score."""

from __future__ import annotations

import builtins
import importlib.util
import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from fakescope.cli import main
from fakescope.media import provenance
from fakescope.media.provenance import NO_C2PA, NO_C2PA_TYPE, generator_of, read_provenance
from test_detect import make_checkpoint

from c2pa_signing import TRAINED, sign_image  # imports c2pa only when it signs

HAVE_C2PA = importlib.util.find_spec("c2pa") is not None
needs_c2pa = pytest.mark.skipif(not HAVE_C2PA, reason="pip install c2pa-python (the provenance extra)")
C2PA_RAN = ["c2pa"] if HAVE_C2PA else []  # c2pa is a reader only where the bindings are installed
C2PA_NOTE = [] if HAVE_C2PA else [NO_C2PA]


def photo(path, size=64, seed=0, **save):
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, **save)
    return path


@needs_c2pa
@pytest.mark.parametrize("generated", [False, True], ids=["bindings-test-certificate", "generated-test-ca"])
def test_a_signed_manifest_is_read_back_and_a_tampered_copy_fails_validation(tmp_path, generated):
    signed = sign_image(photo(tmp_path / "a.jpg", quality=90), tmp_path / "signed.jpg", generated=generated)
    p = read_provenance(signed)
    c = p["c2pa"]
    assert p["found"] and c["validation_state"] in ("Valid", "Trusted")
    signer = "fakescope test signer" if generated else "C2PA Signer"
    assert c["claim_generator"] == ["fakescope-test"] and c["signer"]["common_name"] == signer
    assert c["actions"] == [{"action": "c2pa.created", "digitalSourceType": TRAINED}]
    assert "trainedAlgorithmicMedia" in p["summary"]
    data = bytearray(signed.read_bytes())
    data[-200] ^= 0xFF  # one byte of the image data
    (tmp_path / "tampered.jpg").write_bytes(bytes(data))
    bad = read_provenance(tmp_path / "tampered.jpg")["c2pa"]
    assert bad["validation_state"] == "Invalid" and "assertion.dataHash.mismatch" in bad["validation_codes"]
    assert read_provenance(bytes(data))["c2pa"]["validation_state"] == "Invalid"  # from bytes (the service)


A1111 = "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64"


def test_generator_metadata_camera_and_xmp_are_reported_with_their_raw_keys(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)  # SD web UIs
    info.add_text("prompt", json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 1}}}))  # ComfyUI
    info.add_text("workflow", json.dumps({"last_node_id": 3, "nodes": [{"id": 3, "type": "KSampler"}], "links": []}))
    sd = read_provenance(photo(tmp_path / "sd.png", pnginfo=info))
    g = sd["generator_metadata"]
    assert g["parameters"].startswith("a cat") and "KSampler" in g["prompt"] and '"links"' in g["workflow"]
    assert sd["generators"] == [{"name": "Stable Diffusion web UI", "key": "parameters", "where": "PNG parameters"},
                                {"name": "ComfyUI", "key": "prompt", "where": "PNG prompt"},
                                {"name": "ComfyUI", "key": "workflow", "where": "PNG workflow"}]
    assert sd["other_metadata"] == {} and sd["summary"] == (
        "generator metadata: Stable Diffusion web UI (PNG parameters), ComfyUI (PNG prompt, PNG workflow)")
    p = read_provenance(_jpeg_with_exif(tmp_path / "cam.jpg", {0x010F: "Canon", 0x0110: "EOS 5D",
                                                               0x0131: "GIMP 2.10"}))
    assert p["camera"] == {"EXIF Make": "Canon", "EXIF Model": "EOS 5D"}
    assert p["generator_metadata"] == {} and p["generators"] == []
    assert p["other_metadata"] == {"EXIF Software": "GIMP 2.10"}
    assert p["summary"] == "other metadata: EXIF Software; camera: Canon EOS 5D"
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
           b'Iptc4xmpExt:DigitalSourceType="' + TRAINED.encode() + b'"/></rdf:RDF></x:xmpmeta>')
    photo(tmp_path / "x.png", pnginfo=_xmp_chunk(xmp))
    assert read_provenance(tmp_path / "x.png")["digital_source_type"] == [TRAINED]


def _xmp_chunk(xmp: bytes) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    return info


def _jpeg_with_exif(path, tags=None, user_comment=None, **save):
    img = Image.open(photo(path.with_suffix(".src.png")))
    exif = img.getexif()
    for tag, value in (tags or {}).items():
        exif[tag] = value
    if user_comment is not None:
        exif.get_ifd(0x8769)[0x9286] = user_comment
    img.save(path, exif=exif, **save)
    return path


def _only_other(p, key, value):
    assert p["generator_metadata"] == {} and p["generators"] == []
    assert p["other_metadata"][key] == value and p["found"]
    assert "other metadata" in p["summary"] and "generator metadata" not in p["summary"]


def test_a_jpeg_comment_written_by_photoshop_is_other_metadata_not_generator_metadata(tmp_path):
    # the file: Photoshop 5 wrote this COM segment; Pillow gives it as info["comment"] (bytes)
    p = read_provenance(photo(tmp_path / "ps.jpg", comment=b"File written by Adobe Photoshop 5.0"))
    _only_other(p, "comment", "File written by Adobe Photoshop 5.0")
    assert p["summary"] == "other metadata: JPEG comment"
    # the same words where the user may have seen them: EXIF ImageDescription / UserComment, a PNG Comment chunk
    ex = _jpeg_with_exif(tmp_path / "desc.jpg", {0x010E: "File written by Adobe Photoshop 5.0"},
                         user_comment=b"ASCII\0\0\0File written by Adobe Photoshop 5.0")
    p = read_provenance(ex)
    _only_other(p, "EXIF ImageDescription", "File written by Adobe Photoshop 5.0")
    assert p["other_metadata"]["EXIF UserComment"] == "File written by Adobe Photoshop 5.0"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "File written by Adobe Photoshop 5.0")
    _only_other(read_provenance(photo(tmp_path / "c.png", pnginfo=info)), "Comment",
                "File written by Adobe Photoshop 5.0")


@pytest.mark.parametrize("software", ["Adobe Photoshop 25.0 (Windows)", "GIMP 2.10", "paint.net 5.0"])
def test_an_editor_software_tag_is_other_metadata(tmp_path, software):
    p = read_provenance(_jpeg_with_exif(tmp_path / "e.jpg", {0x0131: software}))
    _only_other(p, "EXIF Software", software)
    assert p["summary"] == "other metadata: EXIF Software"


@pytest.mark.parametrize("software, tool", [("Adobe Firefly", "Adobe Firefly"), ("Midjourney v6", "Midjourney"),
                                            ("DALL-E 3", "OpenAI DALL-E / GPT image"),
                                            ("FLUX.1 [dev]", "FLUX"), ("NovelAI", "NovelAI")])
def test_a_software_tag_naming_a_generator_is_generator_metadata(tmp_path, software, tool):
    p = read_provenance(_jpeg_with_exif(tmp_path / "g.jpg", {0x0131: software, 0x010F: "Canon"}))
    assert p["generator_metadata"] == {"EXIF Software": software} and p["other_metadata"] == {}
    assert p["generators"] == [{"name": tool, "key": "EXIF Software", "where": "EXIF Software"}]
    assert p["summary"] == f"generator metadata: {tool} (EXIF Software); camera: Canon"


def test_a1111_parameters_in_exif_user_comment_are_generator_metadata(tmp_path):
    # what the SD web UIs write into a JPEG: UserComment, character code UNICODE, UTF-16 big-endian
    p = read_provenance(_jpeg_with_exif(tmp_path / "sd.jpg", {0x0131: "GIMP 2.10"},
                                        user_comment=b"UNICODE\0" + A1111.encode("utf-16-be")))
    assert p["generator_metadata"] == {"EXIF UserComment": A1111}
    assert p["generators"] == [{"name": "Stable Diffusion web UI", "key": "EXIF UserComment",
                                "where": "EXIF UserComment"}]
    assert p["other_metadata"] == {"EXIF Software": "GIMP 2.10"}
    assert p["summary"] == ("generator metadata: Stable Diffusion web UI (EXIF UserComment); "
                            "other metadata: EXIF Software")
    le = b"UNICODE\0" + A1111.encode("utf-16-le")  # some writers use little-endian
    little = read_provenance(_jpeg_with_exif(tmp_path / "le.jpg", user_comment=le))
    assert little["generator_metadata"] == {"EXIF UserComment": A1111}


@pytest.mark.parametrize("value, tool", [
    ("DALL\u00b7E 3", "OpenAI DALL-E / GPT image"), ("Stable Diffusion XL C1E1DE52", "Stable Diffusion"),
    ("Google Imagen", "Google Imagen"), ("DeepFaceLab", "DeepFaceLab"), ("ComfyUI", "ComfyUI"),
    ("Adobe Photoshop 5.0", None), ("Imagen del atardecer", None), ("Foto dalle montagne", None),
    ("Leonardo da Vinci", None), ("fireflies at dusk", None), ("OLYMPUS DIGITAL CAMERA", None)])
def test_known_generator_names_and_look_alikes(value, tool):
    assert generator_of("Software", value) == tool


def test_prompt_text_without_generation_fields_is_not_generator_metadata(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat on a mat, Steps: the stairs")  # no Sampler/CFG scale/Seed after Steps
    info.add_text("Description", "Leonardo da Vinci on the runway, in flux")  # common words, not tool names
    info.add_text("prompt", json.dumps({"text": "a cat"}))  # JSON, but no ComfyUI graph
    p = read_provenance(photo(tmp_path / "t.png", pnginfo=info))
    assert p["generator_metadata"] == {} and set(p["other_metadata"]) == {"parameters", "Description", "prompt"}
    assert p["summary"] == "other metadata: PNG parameters, PNG prompt, PNG Description"


def test_invokeai_novelai_and_comfyui_webp_conventions_name_their_tool(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("invokeai_metadata", json.dumps({"positive_prompt": "a cat", "seed": 1}))
    assert read_provenance(photo(tmp_path / "i.png", pnginfo=info))["generators"] == [
        {"name": "InvokeAI", "key": "invokeai_metadata", "where": "PNG invokeai_metadata"}]
    nai = PngImagePlugin.PngInfo()
    nai.add_text("Software", "NovelAI")
    nai.add_text("Source", "NovelAI Diffusion V4.5 4BDE2A90")
    nai.add_text("Comment", json.dumps({"prompt": "a cat", "steps": 28, "scale": 5, "sampler": "k_euler", "uc": ""}))
    nai.add_text("Description", "a cat")
    p = read_provenance(photo(tmp_path / "n.png", pnginfo=nai))
    assert [(g["name"], g["key"]) for g in p["generators"]] == [
        ("NovelAI", "Software"), ("generation parameters JSON", "Comment"), ("NovelAI", "Source")]
    assert p["other_metadata"] == {"Description": "a cat"}  # the prompt names no tool
    # ComfyUI's animated WebP: the graphs in EXIF Model/Make, which are then no camera
    webp = _jpeg_with_exif(tmp_path / "c.webp", {0x0110: "prompt:" + json.dumps({"3": {"class_type": "KSampler"}}),
                                                 0x010F: "workflow:" + json.dumps({"nodes": [], "links": []})})
    p = read_provenance(webp)
    assert p["camera"] == {} and set(p["generator_metadata"]) == {"EXIF Make", "EXIF Model"}
    assert p["summary"] == "generator metadata: ComfyUI (EXIF Make, EXIF Model)"


def test_summary_names_every_kind_found_together(tmp_path):
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
           b'Iptc4xmpExt:DigitalSourceType="' + TRAINED.encode() + b'"/></rdf:RDF></x:xmpmeta>')
    info = _xmp_chunk(xmp)
    info.add_text("parameters", A1111)
    info.add_text("Software", "GIMP 2.10")
    p = read_provenance(photo(tmp_path / "all.png", pnginfo=info))
    assert p["summary"] == ("XMP DigitalSourceType trainedAlgorithmicMedia; generator metadata: Stable Diffusion web "
                            "UI (PNG parameters); other metadata: PNG Software")
    long = PngImagePlugin.PngInfo()
    long.add_text("Comment", "x" * 5000)  # a long value is cut, its raw key kept
    p = read_provenance(photo(tmp_path / "long.png", pnginfo=long))
    assert p["other_metadata"]["Comment"].endswith("... (5000 characters)") and p["found"]


def test_a_stripped_file_says_none_found(tmp_path):
    p = read_provenance(photo(tmp_path / "plain.png"))
    assert (p["found"], p["summary"], p["c2pa"] if HAVE_C2PA else None) == (False, "none found", None)
    assert p["readers"] == [*C2PA_RAN, "xmp", "png-text", "exif"] and p["warnings"] == C2PA_NOTE


# ------------------------------------------------------------------ which readers ran, and what they could not read
BAD_TIFF = b"XX\0\x2a\0\0\0\x08"  # an EXIF block whose TIFF header is neither II nor MM
BAD_EXIF = "exif: unreadable (SyntaxError: not a TIFF file (header b'XX\\x00*\\x00\\x00\\x00\\x08' not valid))"


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _with_chunk_after_ihdr(png: bytes, chunk: bytes) -> bytes:
    at = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4  # signature, then IHDR (length, type, payload, CRC)
    return png[:at] + chunk + png[at:]


def test_readers_list_what_ran_for_each_kind_of_file(tmp_path):
    assert read_provenance(photo(tmp_path / "a.jpg"))["readers"] == [*C2PA_RAN, "xmp", "jpeg-comment", "exif"]
    assert read_provenance(photo(tmp_path / "a.gif"))["readers"] == [*C2PA_RAN, "xmp", "gif-comment", "exif"]
    assert read_provenance(photo(tmp_path / "a.webp"))["readers"] == [*C2PA_RAN, "xmp", "image-text", "exif"]
    assert read_provenance(photo(tmp_path / "a.png").read_bytes())["readers"] == [*C2PA_RAN, "xmp", "png-text", "exif"]
    # a BMP is no type C2PA is read from; bytes that are no image have neither text nor EXIF to read
    bmp = read_provenance(photo(tmp_path / "a.bmp"))
    assert bmp["readers"] == ["xmp", "image-text", "exif"]
    assert bmp["warnings"] == [NO_C2PA_TYPE if HAVE_C2PA else NO_C2PA] and bmp["summary"] == "none found"
    text = read_provenance(b"just some text")
    assert text["readers"] == ["xmp"] and text["found"] is False
    assert set(provenance.READERS) >= {"c2pa", "xmp", "png-text", "jpeg-comment", "exif"}


def test_a_broken_exif_chunk_costs_only_the_exif_reader_and_says_so(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    info.add_text("Software", "GIMP 2.10")
    png = photo(tmp_path / "sd.png", pnginfo=info).read_bytes()
    (tmp_path / "bad.png").write_bytes(_with_chunk_after_ihdr(png, _png_chunk(b"eXIf", BAD_TIFF)))
    p = read_provenance(tmp_path / "bad.png")
    # the text chunks were read all the same (before, a bad eXIf chunk silently dropped them with the EXIF)
    assert p["generators"] == [{"name": "Stable Diffusion web UI", "key": "parameters", "where": "PNG parameters"}]
    assert p["other_metadata"] == {"Software": "GIMP 2.10"} and p["found"]
    assert p["readers"] == [*C2PA_RAN, "xmp", "png-text", "exif"]
    assert p["warnings"] == [*C2PA_NOTE, BAD_EXIF]
    assert p["summary"] == ("generator metadata: Stable Diffusion web UI (PNG parameters); other metadata: "
                            "PNG Software (exif unreadable: see warnings)")


def test_a_jpeg_with_a_broken_exif_segment_keeps_its_comment(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, "JPEG", comment=b"File written by Adobe Photoshop 5.0",
                                                          dpi=(72, 72))
    jpg = buf.getvalue()
    assert jpg[2:4] == b"\xff\xe0"  # JFIF (APP0) first: the broken Exif (APP1) goes after it
    at = 4 + struct.unpack(">H", jpg[4:6])[0]
    app1 = b"Exif\0\0" + BAD_TIFF
    p = read_provenance(jpg[:at] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[at:])
    assert p["other_metadata"] == {"comment": "File written by Adobe Photoshop 5.0"} and p["camera"] == {}
    assert p["readers"] == [*C2PA_RAN, "xmp", "jpeg-comment", "exif"] and p["warnings"] == [*C2PA_NOTE, BAD_EXIF]
    assert p["summary"] == "other metadata: JPEG comment (exif unreadable: see warnings)"


def test_an_image_pillow_cannot_open_is_named_in_the_warnings(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, "JPEG")
    p = read_provenance(buf.getvalue()[:30])  # cut inside its header
    assert p["readers"] == ["xmp"] and p["found"] is False
    assert p["warnings"][-1] == "image: not opened by Pillow, its text and EXIF not read (OSError: Truncated File Read)"


@needs_c2pa
def test_a_c2pa_reader_that_fails_leaves_the_other_readers_results(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("the manifest store is corrupt")

    monkeypatch.setattr(provenance, "_read_manifest", broken)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    p = read_provenance(photo(tmp_path / "a.png", pnginfo=info))
    assert p["c2pa"] == {"available": True, "error": "RuntimeError: the manifest store is corrupt"}
    assert p["warnings"] == ["c2pa: unreadable manifest (RuntimeError: the manifest store is corrupt)"]
    assert p["readers"] == ["c2pa", "xmp", "png-text", "exif"]
    assert [g["name"] for g in p["generators"]] == ["Stable Diffusion web UI"]
    assert p["summary"] == ("generator metadata: Stable Diffusion web UI (PNG parameters) "
                            "(c2pa unreadable: see warnings)")


def test_without_the_bindings_c2pa_is_said_to_be_unread(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_c2pa(name, *a, **k):
        if name == "c2pa":
            raise ImportError("no c2pa")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_c2pa)
    p = read_provenance(photo(tmp_path / "a.png"))
    assert p["c2pa"]["available"] is False and "pip install" in p["c2pa"]["note"]
    assert p["readers"] == ["xmp", "png-text", "exif"] and p["warnings"] == [NO_C2PA]
    assert NO_C2PA == "c2pa: not read: c2pa-python is not installed (pip install 'fakescope[provenance]')"
    assert p["summary"] == "none found"  # a reader not installed is no failure of the file's


@needs_c2pa
def test_detect_records_carry_provenance_apart_from_the_score(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "model")
    signed = sign_image(photo(tmp_path / "a.jpg", quality=90), tmp_path / "signed.jpg")
    plain = photo(tmp_path / "b.png")
    assert main(["detect", str(signed), str(plain), "-m", str(ckpt)]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert recs[0]["provenance"]["c2pa"]["validation_state"] in ("Valid", "Trusted")
    assert recs[1]["provenance"]["summary"] == "none found"
    assert all(isinstance(r["score"], float) for r in recs)
    assert main(["detect", str(signed), "-m", str(ckpt), "--no-provenance"]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"] is None
