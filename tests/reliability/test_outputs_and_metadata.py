"""One test per class of problem from the second hostile-input run, each failing before its fix: metadata read in
bounded, linear time; one run at a time on an output; CSV cells that are never formulas; valid UTF-8 outputs; a
PNG text chunk over Pillow's limit that costs no score."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import zlib

import pytest

from reliability.corpus import _png_chunk, png_text_bomb, stored_png

CLI = [sys.executable, "-m", "fakescope.cli"]
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _png_with(*chunks: bytes, side: int = 16) -> bytes:
    png = stored_png(side, 3)
    return png[:33] + b"".join(chunks) + png[33:]


def _unclosed_xmp(size: int = 406 << 10) -> bytes:
    """A PNG whose XMP packet repeats ``<x:xmpmeta`` without ever closing it (the hostile run's 406 KiB file)."""
    body = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>" * (size // 36)
    return _png_with(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + body))


# ---------------------------------------------------------------- 1. metadata reading bounded in time
class CountingBytes(bytes):
    """Bytes that count how many bytes their ``find`` calls scanned (to the match's end, or to ``end``)."""

    scanned = 0

    def find(self, sub, start=0, end=None):  # type: ignore[override]
        end = len(self) if end is None else min(end, len(self))
        at = super().find(sub, start, end)
        CountingBytes.scanned += (at + len(sub) - start) if at >= 0 else max(0, end - start)
        return at


def test_xmp_packets_are_found_in_linear_time_without_regular_expressions(tmp_path, reliability_detector,
                                                                         outcomes):
    from fakescope.media import provenance as prov

    # no regular expression runs over a file's bytes (a backtracking one is quadratic in unclosed openers)
    assert [n for n, v in vars(prov).items() if isinstance(v, re.Pattern) and isinstance(v.pattern, bytes)] == []
    data = _unclosed_xmp()
    CountingBytes.scanned = 0
    assert prov.xmp_packets(CountingBytes(data)) == []
    assert CountingBytes.scanned <= 2 * len(data), "each byte is looked at a bounded number of times"
    # the same with a closed packet after the unclosed openers, and one in attribute form
    good = (b"<x:xmpmeta><rdf:Description Iptc4xmpExt:DigitalSourceType=\"http://cv.iptc.org/newscodes/"
            b"digitalsourcetype/trainedAlgorithmicMedia\"/></x:xmpmeta>")
    data = b"<x:xmpmeta " * 50_000 + good + b"<x:xmpmeta>" * 50_000
    CountingBytes.scanned = 0
    spans = prov.xmp_packets(CountingBytes(data))
    assert len(spans) == 1 and CountingBytes.scanned <= 2 * len(data)
    assert prov.xmp_source_types(data, *spans[0])[-1].endswith("trainedAlgorithmicMedia")
    (tmp_path / "xmp.png").write_bytes(_unclosed_xmp())
    p = prov.read_provenance(tmp_path / "xmp.png")
    assert p["digital_source_type"] == [] and not p["found"]
    rec = reliability_detector.predict(str(tmp_path / "xmp.png"))  # provenance on, as detect runs it
    assert rec["error"] is None and rec["provenance"]["digital_source_type"] == [], rec["error"]
    outcomes.append(("406 KiB PNG whose XMP repeats `<x:xmpmeta` unclosed", "detect",
                     "scored; XMP read by a linear scan (no regular expression over the file's bytes)"))


def _apng(side: int = 4000, frames: int = 2000, text: bytes = b"") -> bytes:
    """An animated PNG: a first frame of side x side grey pixels, then ``frames - 1`` frames of 1x1 pixel
    (which Pillow composites onto the whole canvas, one by one), then ``text`` chunks after the frames."""
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    idat = zlib.compress(b"\0" * ((side + 1) * side), 9)
    out = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", ihdr), _png_chunk(b"acTL", frames.to_bytes(4, "big") + b"\0" * 4)]
    seq = 0

    def fctl(w: int, h: int) -> bytes:
        nonlocal seq
        seq += 1
        return _png_chunk(b"fcTL", (seq - 1).to_bytes(4, "big") + w.to_bytes(4, "big") + h.to_bytes(4, "big")
                          + b"\0" * 8 + b"\0\1\0\x64" + b"\0\0")

    out += [fctl(side, side), _png_chunk(b"IDAT", idat)]
    one = zlib.compress(b"\0\x80")
    for _ in range(frames - 1):
        out.append(fctl(1, 1))
        seq += 1
        out.append(_png_chunk(b"fdAT", (seq - 1).to_bytes(4, "big") + one))
    return b"".join(out) + text + _png_chunk(b"IEND", b"")


def test_an_animated_png_has_its_text_read_without_decoding_a_frame(tmp_path, monkeypatch, outcomes):
    from PIL import PngImagePlugin

    from fakescope.media.provenance import read_provenance

    params = b"parameters\0a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1"
    data = _apng(text=_png_chunk(b"tEXt", params))
    assert len(data) < 200 << 10  # a small file that claims 2000 frames of 16 megapixels
    calls: list[str] = []
    for name in ("seek", "load"):
        real = getattr(PngImagePlugin.PngImageFile, name)
        monkeypatch.setattr(PngImagePlugin.PngImageFile, name,
                            lambda self, *a, _n=name, _r=real, **k: (calls.append(_n), _r(self, *a, **k))[1])
    (tmp_path / "anim.png").write_bytes(data)
    p = read_provenance(tmp_path / "anim.png")
    assert calls == [], "reading metadata decoded frames"
    assert [g["name"] for g in p["generators"]] == ["Stable Diffusion web UI"]  # a text chunk after the frames
    outcomes.append(("174 KiB APNG, 4000x4000, 2000 frames, text after the frames", "detect",
                     "metadata read by walking the chunks: no frame decoded; the text found"))


def _unbounded_repeats(tree, inside: bool = False):
    """``(nested, item)`` for every repeat without an upper bound in a parsed pattern."""
    from re import _constants as C

    for op, av in tree:
        if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
            lo, hi, sub = av
            if hi == C.MAXREPEAT:
                yield inside, sub
            yield from _unbounded_repeats(sub, inside or hi > 1)
        elif op in (C.SUBPATTERN, C.ATOMIC_GROUP):
            yield from _unbounded_repeats(av[-1], inside)
        elif op == C.BRANCH:
            for alt in av[1]:
                yield from _unbounded_repeats(alt, inside)
        elif op in (C.ASSERT, C.ASSERT_NOT):
            yield from _unbounded_repeats(av[1], inside)


def _broad(sub) -> bool:
    """A repeated item that matches almost anything (``.``, ``[\\s\\S]``, a negated set)."""
    from re import _constants as C

    for op, av in sub:
        if op == C.ANY:
            return True
        if op == C.IN and (av[0][0] == C.NEGATE or {a for _, a in av} >= {C.CATEGORY_SPACE, C.CATEGORY_NOT_SPACE}):
            return True
    return False


def test_generator_patterns_cannot_backtrack_badly():
    """By construction: no quantifier inside a repeated group (the exponential case), and a repeat that matches
    almost anything (``.*``, ``[\\s\\S]*``, ``[^{]*``) only in a pattern anchored at the start of the value, so
    it runs from one place, not from every place (the quadratic case). Other repeats are bounded (``{0,200}``)
    or of a narrow class after a literal that is not in it."""
    from re import _constants as C, _parser

    from fakescope.media.provenance import GENERATOR_PATTERNS

    for pattern, name, _ in GENERATOR_PATTERNS:
        tree = _parser.parse(pattern, re.I)
        assert not any(nested for nested, _ in _unbounded_repeats(tree)), (name, pattern)
        alternatives = tree[0][1][1] if len(tree) == 1 and tree[0][0] == C.BRANCH else [tree]
        for alt in alternatives:
            if any(_broad(sub) for _, sub in _unbounded_repeats(alt)):
                assert alt[0] == (C.AT, C.AT_BEGINNING) and not tree.state.flags & re.M, (name, pattern)


# ---------------------------------------------------------------- 2. one run at a time on an output
def test_a_second_run_on_the_same_output_is_refused_at_once(reliability_checkpoint, tmp_path, outcomes):
    from fakescope.inference.outputs import Output

    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / "in" / f"{i}.png").write_bytes(stored_png(24, i))
    argv = [*CLI, "detect", str(tmp_path / "in"), "-m", str(reliability_checkpoint), "--device", "cpu",
            "--progress", "off"]
    for name, fmt in (("same.jsonl", "jsonl"), ("same.csv", "csv"), ("same.parquet", "parquet")):
        out = tmp_path / name
        held = Output(out, fmt)  # a run writing it (this process)
        try:
            proc = subprocess.run([*argv, "-o", str(out)], capture_output=True, timeout=300)
        finally:
            held.close()
        err = proc.stderr.decode("utf-8", "replace")
        assert proc.returncode != 0 and "Traceback" not in err, err[-2000:]
        assert str(out) in err and f"pid {os.getpid()}" in err, err[-2000:]
        reopened = Output(out, fmt)
        assert reopened.previous == 0, "the refused run wrote nothing"
        reopened.close()
        assert not (tmp_path / f"{name}.lock").exists(), "the lock goes with the run"
    assert subprocess.run([*argv, "-o", str(tmp_path / "same.jsonl")], capture_output=True,
                          timeout=300).returncode == 0
    assert len((tmp_path / "same.jsonl").read_text().splitlines()) == 3
    outcomes.append(("two detect runs on the same -o at once", "detect",
                     "the second is refused at once, naming the output and the pid of the run writing it"))


def test_records_are_appended_one_whole_record_per_write(tmp_path):
    import fcntl

    from fakescope.inference.outputs import Output

    for fmt in ("jsonl", "csv"):
        out = Output(tmp_path / f"o.{fmt}", fmt)
        try:
            assert fcntl.fcntl(out._fd, fcntl.F_GETFL) & os.O_APPEND
            writes: list[int] = []
            real = os.write
            os.write = lambda fd, b: (writes.append(fd), real(fd, b))[1]  # type: ignore[assignment]
            try:
                out.write({"path": "x" * 100_000, "error": "y" * 50_000})  # longer than any buffer
            finally:
                os.write = real  # type: ignore[assignment]
            assert writes == [out._fd]
        finally:
            out.close()


# ---------------------------------------------------------------- 5. CSV formula injection
NAMES = ["=HYPERLINK(\"x\").png", "+1.png", "-2.png", "@SUM(A1).png", "\tt.png", "'q.png", "=bad.png"]


def _cells(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_csv_cells_never_start_a_formula_and_resume_knows_the_paths(reliability_checkpoint, tmp_path, monkeypatch,
                                                                    outcomes):
    from fakescope.cli import main
    from fakescope.inference.outputs import Output, read_records

    monkeypatch.chdir(tmp_path)
    names = NAMES
    for i, n in enumerate(names[:-1]):
        (tmp_path / n).write_bytes(stored_png(24, i))
    (tmp_path / names[-1]).write_text("not pixels")  # an error record: its message starts with the name
    argv = ["detect", "-m", str(reliability_checkpoint), "-o", "out.csv", "--device", "cpu", "--progress", "off",
            "--", *names]
    assert main(argv) == 0  # detect exits 0 when it ran, also with a failed input (counted, in its record)
    rows = _cells(tmp_path / "out.csv")[1:]
    assert len(rows) == len(names)
    bad = [c for r in rows for c in r if c.startswith(FORMULA)]
    assert bad == [], bad
    assert sorted(r["path"] for r in read_records(tmp_path / "out.csv")) == sorted(names)
    again = Output(tmp_path / "out.csv", "csv")
    assert again.previous == len(names) and all(n in again.done for n in names)
    again.close()
    assert main(argv) == 0  # resumed: nothing is scored twice
    assert len(_cells(tmp_path / "out.csv")) == len(names) + 1
    outcomes.append(("file names starting with = + - @ tab", "detect",
                     "CSV cells prefixed with ' (OWASP); read back as the same paths on resume"))


def _scored(paths: list[str]):
    from types import SimpleNamespace

    import numpy as np

    n = len(paths)
    return SimpleNamespace(paths=paths, labels=np.zeros(n, int), scores=np.full(n, 0.5), video_ids=list(paths),
                           padded=[], orig_sizes=np.zeros((0, 2)), input_size=32)


def test_eval_scores_csv_cells_never_start_a_formula(tmp_path, outcomes):
    from fakescope.eval.evaluate import _write_scores

    _write_scores(tmp_path / "s.csv", _scored(NAMES))
    rows = _cells(tmp_path / "s.csv")[1:]
    assert [c for r in rows for c in r if c.startswith(FORMULA)] == []
    assert [r[0] for r in rows] == ["'" + n for n in NAMES]
    outcomes.append(("file names starting with = + - @ tab", "eval", "scores CSV cells prefixed with ' (OWASP)"))


# ---------------------------------------------------------------- 6. valid UTF-8, one escape everywhere
def test_outputs_are_valid_utf8_with_one_escape_and_resume_knows_the_path(reliability_checkpoint, tmp_path,
                                                                         outcomes):
    pytest.importorskip("pyarrow")
    from fakescope.cli import main
    from fakescope.eval.evaluate import _write_scores
    from fakescope.inference.outputs import Output, read_records

    folder = tmp_path / "in"
    folder.mkdir()
    name = os.path.join(os.fsencode(folder), b"caf\xe9.png")
    with open(name, "wb") as fh:
        fh.write(stored_png(24, 5))
    shown = str(folder / "caf\\xe9.png")  # its undecodable byte as the four characters \xe9
    paths = {}
    for out, fmt in (("r.jsonl", "jsonl"), ("r.csv", "csv"), ("r.parquet", "parquet")):
        argv = ["detect", str(folder), "-m", str(reliability_checkpoint), "-o", str(tmp_path / out), "--device",
                "cpu", "--progress", "off"]
        assert main(argv) == 0
        if fmt != "parquet":
            (tmp_path / out).read_bytes().decode("utf-8")  # strict
        paths[fmt] = [r["path"] for r in read_records(tmp_path / out)]
        assert main(argv) == 0  # resumed: the record is not written twice
        again = Output(tmp_path / out, fmt)
        assert again.previous == 1 and os.fsdecode(name) in again.done
        again.close()
    assert paths == {"jsonl": [shown], "csv": [shown], "parquet": [shown]}
    _write_scores(tmp_path / "s.csv", _scored([os.fsdecode(name)]))
    assert _cells(tmp_path / "s.csv")[1][0] == shown
    outcomes.append(("file name not valid UTF-8, in JSON lines, CSV, Parquet and eval's scores", "detect",
                     "written \\xNN in JSON lines, CSV and Parquet alike (valid UTF-8); resume knows it"))


# ---------------------------------------------------------------- 8. a text chunk over Pillow's limit
@pytest.mark.parametrize("after", [False, True], ids=["before the image data", "after it"])
def test_a_png_text_chunk_over_pillows_limit_costs_no_score(reliability_detector, tmp_path, after, outcomes):
    from fakescope.media.image import open_image

    (tmp_path / "t.png").write_bytes(png_text_bomb(after=after))
    assert open_image(tmp_path / "t.png").size == (32, 32)
    rec = reliability_detector.predict(str(tmp_path / "t.png"))
    assert rec["error"] is None and 0.0 <= rec["score"] <= 1.0, rec["error"]
    skipped = rec["provenance"]["skipped_metadata"]
    assert len(skipped) == 1 and "zTXt 'parameters'" in skipped[0] and "not read" in skipped[0]
    assert "not read" in rec["provenance"]["summary"]
    # a text bomb is never inflated past the limit (the file is not refused as corrupt either)
    assert json.dumps(rec["provenance"]).count("Steps") == 0
    outcomes.append((f"PNG text chunk inflating past Pillow's 1 MB limit, {'after' if after else 'before'} the image "
                     "data (provenance)", "detect", "scored; the chunk is named in provenance's skipped_metadata, "
                     "not read (never inflated past the limit), and not called image corruption"))
