"""Provenance as found: a C2PA manifest signed here and read back (a tampered copy reports a failed
validation), IPTC/XMP DigitalSourceType, generator metadata of image tools, camera EXIF, stripped files; in
``detect`` records, apart from the score."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from fakescope.cli import main
from fakescope.media.provenance import read_provenance
from test_detect import make_checkpoint

c2pa = pytest.importorskip("c2pa", reason="pip install c2pa-python (the provenance extra)")
from c2pa_signing import TRAINED, sign_image  # noqa: E402


def photo(path, size=64, seed=0, **save):
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, **save)
    return path


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


def test_generator_metadata_camera_and_xmp_are_reported_with_their_raw_keys(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")  # SD web UIs
    info.add_text("prompt", json.dumps({"3": {"class_type": "KSampler"}}))  # ComfyUI
    sd = photo(tmp_path / "sd.png", pnginfo=info)
    g = read_provenance(sd)["generator_metadata"]
    assert g["parameters"].startswith("a cat") and "KSampler" in g["prompt"]
    img = Image.open(photo(tmp_path / "x.jpg"))
    exif = img.getexif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Canon", "EOS 5D", "GIMP 2.10"
    img.save(tmp_path / "cam.jpg", exif=exif)
    p = read_provenance(tmp_path / "cam.jpg")
    assert p["camera"] == {"EXIF Make": "Canon", "EXIF Model": "EOS 5D"}
    assert p["generator_metadata"] == {"EXIF Software": "GIMP 2.10"}
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
           b'Iptc4xmpExt:DigitalSourceType="' + TRAINED.encode() + b'"/></rdf:RDF></x:xmpmeta>')
    photo(tmp_path / "x.png", pnginfo=_xmp_chunk(xmp))
    assert read_provenance(tmp_path / "x.png")["digital_source_type"] == [TRAINED]


def _xmp_chunk(xmp: bytes) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    return info


def test_a_stripped_file_says_none_found(tmp_path):
    p = read_provenance(photo(tmp_path / "plain.png"))
    assert (p["found"], p["summary"], p["c2pa"]) == (False, "none found", None)


def test_without_the_bindings_c2pa_is_said_to_be_unread(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_c2pa(name, *a, **k):
        if name == "c2pa":
            raise ImportError("no c2pa")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_c2pa)
    c = read_provenance(photo(tmp_path / "a.png"))["c2pa"]
    assert c["available"] is False and "pip install" in c["note"]


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
