"""The bad-input corpus through ``detect``, ``serve``, ``prepare`` and ``eval``.

Each file must end as a score or as an error that names it and says why; the batch goes on past every bad
file; what was computed is written (nothing lost, nothing half-written); memory stays bounded.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fakescope.utils.cells import utf8_text
from reliability.corpus import BUDGET_MP

MEMORY_PER_RUN_MIB = 350  # what the whole corpus may add to detect's memory over the loaded model


def short(error: str, path: str) -> str:
    text = error.replace(path, "").replace(os.path.basename(path), "").lstrip(": ")
    return text if len(text) <= 140 else text[:137] + "..."


def run_detect(ck: Path, root: Path, out: Path, fmt: str) -> tuple[subprocess.CompletedProcess, float]:
    """``fakescope detect ROOT`` in a child process; its result and the memory the files added (MiB)."""
    peak_file = out.with_suffix(".peak")
    code = (
        "import sys, json\n"
        "def vm(k):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(k + ':'): return int(line.split()[1]) / 1024\n"
        "from fakescope.inference import Detector\n"
        f"Detector.from_pretrained({str(ck)!r}, device='cpu')\n"  # what detect loads first
        "base = vm('VmRSS')\n"
        "from fakescope.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        f"open({str(peak_file)!r}, 'w').write(json.dumps([base, vm('VmHWM')]))\n"
        "sys.exit(rc)\n")
    argv = ["detect", str(root), "-m", str(ck), "-o", str(out), "--format", fmt, "--device", "cpu",
            "--threads", "1", "--num-frames", "4", "--max-megapixels", str(BUDGET_MP)]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, timeout=240,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    base, peak = json.loads(peak_file.read_text()) if peak_file.exists() else (0.0, 0.0)
    return proc, peak - base


def test_detect_scores_or_names_every_bad_file_and_loses_nothing(media_corpus, reliability_checkpoint, tmp_path,
                                                                  pixel_budget, outcomes):
    root, kinds = media_corpus
    proc, added = run_detect(reliability_checkpoint, root, tmp_path / "records.csv", "csv")
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, stderr[-3000:]
    # valid UTF-8 throughout (strict reader), a file name that is not UTF-8 included
    with open(tmp_path / "records.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_path = {os.path.relpath(r["path"], root): r for r in rows}
    assert len(by_path) == len(rows), "a file was scored twice (a link loop followed?)"
    expected = [k for k in kinds if k.expect in ("scored", "error")]
    # every output is valid UTF-8: a name's undecodable bytes are written \xNN (utils.cells.utf8_text)
    left_out = [k for k in kinds if k.expect == "skipped"]
    want = {utf8_text(k.rel) for k in expected + left_out}
    assert set(by_path) == want, ("every file, and only the files, get a record", set(by_path) ^ want)
    for k in expected:
        rec = by_path[utf8_text(k.rel)]
        if k.expect == "scored":
            assert rec["error"] == "" and 0.0 <= float(rec["score"]) <= 1.0, (k.name, rec["error"])
            outcomes.append((k.name, "detect", "scored"))
        else:
            assert rec["score"] == "" and rec["error"], k.name
            assert str(root / k.rel) in rec["error"] or k.rel in rec["error"], (k.name, rec["error"])
            assert re.search(k.reason, rec["error"], re.I), (k.name, rec["error"])
            outcomes.append((k.name, "detect", "error: " + short(rec["error"], str(root / k.rel))))
    for k in left_out:  # not scored, but a record says so and why
        rec = by_path[utf8_text(k.rel)]
        assert rec["kind"] == "skipped" and rec["score"] == "" and rec["label"] == "", (k.name, rec)
        assert k.rel in rec["error"] and re.search(k.reason, rec["error"]), (k.name, rec["error"])
        lead = "not followed: every file scored once; " if "link" in k.name else "not scored; "
        outcomes.append((k.name, "detect", lead + "a record with kind \"skipped\": "
                         + short(rec["error"], str(root / k.rel)).removeprefix("skipped: ")))
    assert ".txt x1" in stderr and f'{len(left_out)} record(s) with kind "skipped"' in stderr, stderr
    assert added < MEMORY_PER_RUN_MIB, f"the corpus took {added:.0f} MiB beyond the loaded model"
    outcomes.append(("whole corpus (memory)", "detect", f"{added:.0f} MiB over the loaded model "
                                                        f"(bound {MEMORY_PER_RUN_MIB} MiB)"))
    # the same run as JSON lines (here, in this process): valid JSON, the same \xNN escapes for names not in UTF-8
    from fakescope.cli import main

    assert main(["detect", str(root), "-m", str(reliability_checkpoint), "-o", str(tmp_path / "records.jsonl"),
                 "--device", "cpu", "--num-frames", "4", "--progress", "off"]) == 0
    lines = (tmp_path / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(rows)
    paths = {os.path.relpath(json.loads(line)["path"], root) for line in lines}
    assert paths == set(by_path)


def test_service_answers_every_file_with_a_record_or_a_json_4xx(media_corpus, reliability_detector, pixel_budget,
                                                                 outcomes):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from fakescope.serve import ServeSettings, create_app

    root, kinds = media_corpus
    with TestClient(create_app(reliability_detector, ServeSettings(max_upload_mb=2))) as client:
        for k in kinds:
            p = root / k.rel
            if k.expect not in ("scored", "error") or not p.is_file():
                continue
            # the multipart header carries the file name's own bytes (not valid UTF-8 for one case)
            body = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="' + os.fsencode(p.name)
                    + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + p.read_bytes() + b"\r\n--b0undary--\r\n")
            r = client.post("/v1/detect", content=body,
                            headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
            body = r.json()
            assert r.status_code < 500, (k.name, r.status_code, body)
            if k.expect == "scored":
                assert r.status_code == 200 and body["score"] is not None, (k.name, body)
                outcomes.append((k.name, "serve", "200, scored"))
            else:
                assert 400 <= r.status_code < 500 and body["error"], (k.name, body)
                assert re.search(k.reason + "|empty upload|neither an image nor a video|without a video stream",
                                 body["error"], re.I), (k.name, body)
                outcomes.append((k.name, "serve", f"{r.status_code}: {short(body['error'], p.name)}"))
        assert client.get("/healthz").json()["active"] == 0


def test_prepare_goes_past_every_bad_file(media_corpus, tmp_path, pixel_budget, outcomes):
    from conftest import MTCNN_MISSING
    from test_faces import HAVE_MTCNN

    if not HAVE_MTCNN:
        pytest.skip(MTCNN_MISSING)
    from fakescope.prepare import options_from, prepare

    root, kinds = media_corpus
    out = tmp_path / "prepared"
    summary = prepare("folder", root, out, options_from(num_frames=4, size=32, workers=0), echo=lambda m: None)
    assert summary.exit_code == 1  # some inputs failed, and it says so
    with open(out / "failures.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        failures = {os.path.relpath(f["path"], root): f for f in csv.DictReader(fh)}
    with open(out / "manifest.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        rows = list(csv.DictReader(fh))
    referenced = {os.path.relpath(r["path"], root) for r in rows}
    for k in kinds:
        if k.expect not in ("scored", "error"):
            continue
        if k.rel in referenced:
            assert k.expect == "scored" and not k.video, k.name
            outcomes.append((k.name, "prepare", "image checked and referenced in the manifest"))
        else:
            assert k.rel in failures, f"{k.name}: neither prepared nor listed in failures.csv"
            f = failures[k.rel]
            assert f["reason"] and f["detail"], k.name
            if k.expect == "scored":  # readable: only the missing face (noise videos) stops it
                assert f["reason"] == "no-face", (k.name, f)
            outcomes.append((k.name, "prepare", f"{f['reason']}: {short(f['detail'], str(root / k.rel))}"))
    assert not list(out.rglob("*.tmp-*")), "a temporary file was left behind"


def test_eval_scores_what_it_can_and_lists_the_rest(media_corpus, reliability_checkpoint, tmp_path, pixel_budget,
                                                    outcomes):
    from fakescope.eval.evaluate import evaluate

    root, kinds = media_corpus
    missing = tmp_path / "no_such_set"
    results = evaluate(reliability_checkpoint, [str(root), str(missing)], tmp_path / "eval", num_workers=0,
                       device="cpu", echo=lambda m: None, progress=False)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["sets"]) == {root.name} and list(metrics["failed_sets"]) == [missing.name]
    assert "not found" in metrics["failed_sets"][missing.name] or "no such" in metrics["failed_sets"][missing.name]
    outcomes.append(("test set path that does not exist", "eval",
                     "listed in failed_sets; the other sets' metrics written"))
    skipped = results["skipped"].get(root.name, [])
    with open(tmp_path / "eval" / "scores" / f"{root.name}.csv", newline="", encoding="utf-8") as fh:  # strict
        scored = {os.path.relpath(r["path"], root) for r in csv.DictReader(fh)}
    from fakescope.media.image import is_image_file

    for k in kinds:
        if k.expect not in ("scored", "error") or not is_image_file(k.rel):
            continue
        if k.expect == "scored":
            assert utf8_text(k.rel) in scored, k.name
            outcomes.append((k.name, "eval", "scored"))
        else:
            match = [e for e in skipped if k.rel in e or os.path.basename(k.rel) in e]
            assert match and utf8_text(k.rel) not in scored, (k.name, skipped)
            outcomes.append((k.name, "eval", "skipped and listed: " + short(match[0], str(root / k.rel))))
