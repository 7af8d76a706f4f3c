"""One verdict from several detectors and the file's own evidence: user detector files, the fusion fitted with
leave-one-generator-out, watermark and C2PA signals, and failing members."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakescope.errors import CheckpointError, DataError
from fakescope.fuse import fuse
from fakescope.inference.fusion import FusionDetector, load_scorer, read_fusion
from fakescope.inference.user_detector import UserDetector

# A user's detector: the mean of the red channel's high-frequency energy, squashed to [0, 1] (any function of the
# file will do; this one separates the synthetic benchmark's upsampling artefacts a little)
DETECTOR = textwrap.dedent('''
    import numpy as np
    from PIL import Image
    NAME = "{name}"

    def predict(path):
        if "{fail}" and "{fail}" in str(path):
            raise RuntimeError("cannot read this one")
        x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)[..., {channel}]
        hf = np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()
        return float(1.0 / (1.0 + np.exp(-(hf - {centre}) / 4.0)))
''')


def _detector(tmp_path: Path, name: str, channel: int = 0, centre: float = 20.0, fail: str = "",
              batch: bool = False) -> str:
    text = DETECTOR.format(name=name, channel=channel, centre=centre, fail=fail)
    if batch:
        text += "\ndef predict_batch(paths):\n    return [predict(p) for p in paths]\n"
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return f"py:{path}"


def test_a_user_detector_file_scores_files_and_reports_its_own_errors(tmp_path, tiny_synth):
    files = sorted((tiny_synth / "test" / "tconv" / "1_fake").glob("*"))[:3]
    det = UserDetector(_detector(tmp_path, "mine", fail=files[1].name, batch=True), batch_size=2)
    recs = list(det.run_items([(str(p), str(p), None) for p in files] + [(str(tmp_path / "nope.png"), None, None)]))
    assert [r["path"] for r in recs[:3]] == [str(p) for p in files]
    assert recs[0]["error"] is None and 0.0 <= recs[0]["score"] <= 1.0 and recs[0]["model"] == "mine"
    assert recs[0]["label"] in ("real", "fake")
    assert "cannot read this one" in recs[1]["error"] and files[1].name in recs[1]["error"]
    assert recs[2]["error"] is None  # the batch failed on one file; the others were scored one by one
    assert "nope.png" in recs[3]["error"]


@pytest.mark.parametrize("body, words", [
    ("def predict(path):\n    return 'high'\n", "not a number"),
    ("def predict(path):\n    return 1.7\n", "not a probability"),
    ("def predict(path):\n    return float('nan')\n", "not a probability"),
])
def test_a_user_detector_returning_a_bad_score_is_that_files_error(tmp_path, tiny_synth, body, words):
    path = tmp_path / "bad.py"
    path.write_text(body)
    f = str(next((tiny_synth / "test" / "tconv" / "0_real").glob("*")))
    rec = UserDetector(f"py:{path}").predict(f)
    assert rec["score"] is None and words in rec["error"] and f in rec["error"]


def test_a_user_detector_file_that_cannot_be_used_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such Python file"):
        load_scorer(f"py:{tmp_path / 'missing.py'}")
    (tmp_path / "nopredict.py").write_text("x = 1\n")
    with pytest.raises(CheckpointError, match="has no function predict"):
        load_scorer(f"py:{tmp_path / 'nopredict.py'}")
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    with pytest.raises(CheckpointError, match="importing it failed.*no_such_module_here"):
        load_scorer(f"py:{tmp_path / 'broken.py'}")


@pytest.fixture()
def fusion(tmp_path, tiny_synth):
    members = [_detector(tmp_path, "red", 0, 20.0), _detector(tmp_path, "blue", 2, 15.0)]
    sets = [str(p) for p in sorted((tiny_synth / "test").iterdir())]
    report = fuse(members, sets, tmp_path / "fused", signals=("watermark", "c2pa", "metadata"),
                  echo=lambda m: None)
    return tmp_path / "fused", report, sets


def test_fuse_fits_with_leave_one_generator_out_and_saves_a_model(fusion):
    folder, report, sets = fusion
    table = report["leave_one_generator_out"]
    assert [r["held_out"] for r in table["rows"]] == [Path(s).name for s in sets]
    for r in table["rows"]:
        assert r["n"] == 32 and set(r["members_auc"]) == {"red", "blue"}
        assert 0.0 <= r["fusion_auc"] <= 1.0 and r["best_member"] in ("red", "blue")
        assert r["gain"] == pytest.approx(r["fusion_auc"] - r["best_member_auc"])
    spec, _ = read_fusion(folder)
    assert spec.stacker.features == ["red", "blue", "watermark", "c2pa", "metadata"]
    assert "| held-out generator |" in (folder / "fuse_report.md").read_text()
    assert (folder / "CITATIONS.bib").read_text().count("@software{fakescope,") == 1
    lines = (folder / "member_scores.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 5 * 32


def test_a_stopped_fuse_keeps_the_scores_it_had(fusion, tmp_path):
    folder, report, sets = fusion
    cache = folder / "member_scores.jsonl"
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:100]) + "\n" + lines[100][:20])  # stopped mid-line
    said = []
    again = fuse([s for s in [f"py:{tmp_path / 'red.py'}", f"py:{tmp_path / 'blue.py'}"]], sets, folder,
                 echo=said.append)
    assert any("100 score(s) kept" in m for m in said)
    assert again["leave_one_generator_out"]["rows"] == report["leave_one_generator_out"]["rows"]


def test_the_fused_record_gives_each_member_and_the_reasons(fusion, tiny_synth):
    folder, _, _ = fusion
    det = load_scorer(str(folder))
    assert isinstance(det, FusionDetector)
    f = str(next((tiny_synth / "test" / "nearest" / "1_fake").glob("*")))
    rec = det.predict(f)
    assert rec["error"] is None and 0.0 <= rec["score"] <= 1.0 and rec["label"] in ("real", "fake")
    assert set(rec["members"]) == {"red", "blue"} and all(0 <= m["score"] <= 1 for m in rec["members"].values())
    assert rec["signals"] == {"watermark": 0.0, "c2pa": 0.0, "metadata": 0.0}
    assert any(r.startswith("red ") and "log-odds" in r for r in rec["reasons"])


def test_a_member_that_fails_on_a_file_leaves_the_others_to_answer(fusion, tmp_path, tiny_synth):
    folder, _, _ = fusion
    f = next((tiny_synth / "test" / "nearest" / "0_real").glob("*"))
    (tmp_path / "blue.py").write_text((tmp_path / "blue.py").read_text().replace(
        'if "" and "" in str(path)', f'if "{f.name}" in str(path)'))
    rec = load_scorer(str(folder)).predict(str(f))
    assert rec["error"] is None and rec["score"] is not None
    assert "cannot read this one" in rec["members"]["blue"]["error"]
    assert any(w.startswith("missing: blue") for w in rec["warnings"])


def test_a_fusion_whose_members_are_gone_is_an_error_naming_them(fusion, tmp_path):
    folder, _, _ = fusion
    (tmp_path / "red.py").unlink()
    with pytest.raises(CheckpointError) as err:
        load_scorer(str(folder))
    assert "red" in str(err.value) and "1 member(s) cannot be loaded" in str(err.value)


def test_fuse_refuses_data_with_one_generator(tmp_path, tiny_synth):
    with pytest.raises(DataError, match="two or more generators"):
        fuse([_detector(tmp_path, "red")], [str(tiny_synth / "test" / "tconv")], tmp_path / "f",
             echo=lambda m: None)


def _photo(size: int = 512) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((size, size))


def test_a_watermarked_png_is_found_and_raises_the_fused_score(fusion, tmp_path):
    pytest.importorskip("imwatermark")
    from fakescope.media.watermark import watermark_image

    folder, _, _ = fusion
    spec = json.loads((folder / "fusion.json").read_text())
    spec["stacker"]["coef"][2] = 6.0  # the fitting data holds no watermark: give the signal a weight by hand
    (folder / "fusion.json").write_text(json.dumps(spec))
    plain, marked = tmp_path / "plain.png", tmp_path / "marked.png"
    _photo().save(plain)
    watermark_image(_photo(), "sdxl").save(marked)
    det = load_scorer(str(folder))
    a, b = det.predict(str(plain)), det.predict(str(marked))
    assert a["signals"]["watermark"] == 0.0 and b["signals"]["watermark"] == 1.0
    assert b["score"] > a["score"]
    assert any("watermark" in r and "48/48 bits" in r for r in b["reasons"])


def test_a_c2pa_manifest_saying_generated_is_a_signal(fusion, tmp_path):
    pytest.importorskip("c2pa")
    from c2pa_signing import sign_image

    folder, _, _ = fusion
    src = tmp_path / "src.jpg"
    _photo(256).save(src, quality=95)
    signed = sign_image(src, tmp_path / "signed.jpg", generator="ImageMaker")
    rec = load_scorer(str(folder)).predict(str(signed))
    assert rec["signals"]["c2pa"] == 1.0
    assert any("C2PA manifest says generated by ImageMaker" in r for r in rec["reasons"])
    assert np.isfinite(rec["score"])


def test_eval_scores_a_user_detector_under_the_same_protocol(tmp_path, tiny_synth):
    from fakescope.cli import main

    out = tmp_path / "rep"
    code = main(["eval", _detector(tmp_path, "red"), "--data", str(tiny_synth / "test" / "*"), "--out", str(out)])
    assert code == 0
    data = json.loads((out / "metrics.json").read_text())
    assert data["model"] == "red" and len(data["sets"]) == 5 and all(m["n"] == 32 for m in data["sets"].values())
    assert data["generalisation"]["known"] is False  # a user's file does not say what it was trained on
    assert (out / "report.html").is_file() and "@software{fakescope," in (out / "CITATIONS.bib").read_text()


def test_eval_reports_seen_and_unseen_generators_apart(tmp_path, tiny_synth):
    import torch

    from fakescope.eval.evaluate import evaluate
    from fakescope.models import create_model
    from fakescope.zoo.checkpoint import save

    torch.manual_seed(0)
    ck = save(create_model("simple_cnn_tiny"), tmp_path / "ck", training={"generators_seen": ["tconv"]})
    res = evaluate(ck, [str(tiny_synth / "test" / "*")], tmp_path / "rep", num_workers=0, echo=lambda m: None,
                   progress=False)
    split = res["generalisation"]
    assert split["seen"] == ["tconv"] and sorted(split["unseen"]) == ["bilinear", "diffusion", "nearest",
                                                                      "pixelshuffle"]
    unseen_auc = np.mean([res["sets"][n]["auc"] for n in split["unseen"]])
    assert split["mean_unseen"]["auc"] == pytest.approx(unseen_auc)
    md = (tmp_path / "rep" / "metrics.md").read_text()
    assert "**mean, unseen generators**" in md and "read the unseen mean" in md


def test_the_default_answers_offline_from_the_signals_and_says_what_is_missing(tmp_path, monkeypatch):
    pytest.importorskip("imwatermark")
    from fakescope.media.watermark import watermark_image

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FAKESCOPE_HOME", str(tmp_path / "home"))
    det = load_scorer("default")
    assert det.name == "default" and set(det.unavailable) == {"npr"}
    plain, marked = tmp_path / "plain.png", tmp_path / "marked.png"
    _photo().save(plain)
    watermark_image(_photo(), "sdxl").save(marked)
    a, b = det.predict(str(plain)), det.predict(str(marked))
    assert a["score"] is None and "no member could score it and no signal was found" in a["error"]
    assert b["error"] is None and b["label"] == "fake" and b["score"] > 0.99
    for rec in (a, b):
        text = " ".join(rec["warnings"])
        assert "npr.progan_4class_3090" in text and "--weights-file" in text  # which, and how to supply it
        assert rec["members"]["npr"]["score"] is None


def test_detect_runs_a_fusion_a_user_detector_and_the_default_and_keeps_their_reasons(fusion, tmp_path, monkeypatch,
                                                                                      capsys):
    pytest.importorskip("imwatermark")
    pytest.importorskip("pyarrow")
    import csv

    import pyarrow.parquet as pq

    from fakescope.cli import main
    from fakescope.media.watermark import watermark_image

    folder, _, _ = fusion
    plain, marked = tmp_path / "plain.png", tmp_path / "marked.png"
    _photo().save(plain)
    watermark_image(_photo(), "sdxl").save(marked)
    files = [str(plain), str(marked), str(tmp_path / "gone.png")]
    # a fusion folder: members' scores, signals and reasons reach every output format
    for out in (tmp_path / "f.jsonl", tmp_path / "f.csv", tmp_path / "f.parquet"):
        assert main(["detect", *files, "-m", str(folder), "-o", str(out), "--progress", "off"]) == 0
    recs = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [r["path"] for r in recs[:2]] == files[:2] and recs[0]["model"] == "fused"
    assert set(recs[0]["members"]) == {"red", "blue"} and recs[1]["signals"]["watermark"] == 1.0
    assert any("48/48 bits" in r for r in recs[1]["reasons"]) and recs[0]["signals"]["watermark"] == 0.0
    assert recs[2]["score"] is None and "gone.png" in recs[2]["error"]
    rows = list(csv.DictReader((tmp_path / "f.csv").open()))
    assert json.loads(rows[1]["members"]) == recs[1]["members"] and json.loads(rows[1]["reasons"]) == recs[1]["reasons"]
    table = pq.read_table(tmp_path / "f.parquet").to_pylist()
    assert json.loads(table[1]["signals"]) == recs[1]["signals"] and table[1]["reasons"] == recs[1]["reasons"]
    # the threshold given applies to the fused score
    assert main(["detect", str(plain), "-m", str(folder), "--threshold", "0", "--progress", "off"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["label"] == "fake"
    # a user's own detector file
    assert main(["detect", str(plain), "-m", _detector(tmp_path, "red"), "--progress", "off"]) == 0
    rec = json.loads(capsys.readouterr().out.splitlines()[0])
    assert rec["model"] == "red" and 0.0 <= rec["score"] <= 1.0 and rec["backend"] == "python"
    # no -m: the default fusion; offline its detector cannot be fetched, the watermark still answers
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FAKESCOPE_HOME", str(tmp_path / "home"))
    assert main(["detect", str(marked), "--progress", "off"]) == 0
    out, err = capsys.readouterr()
    rec = json.loads(out.splitlines()[0])
    assert rec["model"] == "default" and rec["label"] == "fake" and rec["members"]["npr"]["score"] is None
    assert "detector npr could not be loaded" in err and "npr.progan_4class_3090" in err
