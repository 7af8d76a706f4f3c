from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_images
from fakescope.zoo.checkpoint import save
from fakescope.config import RobustnessConfig
from fakescope.eval.evaluate import evaluate
from fakescope.eval.robustness import Perturbation
from fakescope.models import create_model


@pytest.fixture()
def checkpoint(tmp_path):
    torch.manual_seed(0)
    return save(create_model("simple_cnn_tiny"), tmp_path / "ck")


def test_eval_writes_all_report_files(tmp_path, checkpoint, tiny_synth):
    out = tmp_path / "rep"
    res = evaluate(checkpoint, [str(tiny_synth / "test" / "*")], out, batch_size=8, num_workers=0,
                   echo=lambda m: None, progress=False)
    for name in ("metrics.json", "metrics.md", "metrics.csv", "report.html", "plots/roc.png"):
        assert (out / name).is_file(), name
    assert len(list((out / "plots").glob("hist_*.png"))) == 5
    data = json.loads((out / "metrics.json").read_text())
    assert set(data["sets"]) == {"tconv", "nearest", "bilinear", "pixelshuffle", "diffusion"}
    for m in data["sets"].values():
        assert {"n", "auc", "ap", "acc", "eer", "real_acc", "fake_acc"} <= set(m) and m["n"] == 32
    aucs = [m["auc"] for m in data["sets"].values()]
    assert data["mean"]["auc"] == pytest.approx(float(np.mean(aucs)))
    md = (out / "metrics.md").read_text()
    assert "| tconv |" in md and "**mean**" in md
    rows = list(csv.reader(open(out / "metrics.csv")))
    assert rows[0][:3] == ["test set", "n", "AUC"] and rows[-1][0] == "mean" and len(rows) == 7
    html = (out / "report.html").read_text()
    assert "plots/roc.png" in html and "hist_tconv.png" in html
    scores = list(csv.DictReader(open(out / "scores" / "tconv.csv")))
    assert len(scores) == 32 and all(0.0 <= float(r["score"]) <= 1.0 for r in scores)
    assert res["mean"]["auc"] == data["mean"]["auc"]


def test_video_auc_on_frame_folders(tmp_path, checkpoint, tiny_synth):
    res = evaluate(checkpoint, [str(tiny_synth / "videos" / "test")], tmp_path / "v", num_workers=0,
                   echo=lambda m: None, progress=False)
    m = res["sets"]["test"]
    assert m["n"] == 4 * 6 and m["n_videos"] == 4 and m["video_auc"] is not None


def test_manifest_split_as_test_set(tmp_path, checkpoint, tiny_synth):
    src = {"path": str(tiny_synth / "videos" / "manifest.csv"), "split": "val", "name": "synth-val"}
    res = evaluate(checkpoint, [src], tmp_path / "m", num_workers=0, echo=lambda m: None, progress=False)
    assert res["sets"]["synth-val"]["n_videos"] == 4


def test_robustness_sweep_tables_and_plots(tmp_path, checkpoint, tiny_synth):
    levels = RobustnessConfig(jpeg_quality=[50], blur_sigma=[1.0], downscale=[0.5], noise_sigma=[0.05])
    out = tmp_path / "rob"
    res = evaluate(checkpoint, [str(tiny_synth / "test" / "tconv")], out, num_workers=0, robustness=levels,
                   echo=lambda m: None, progress=False)
    assert set(res["robustness"]) == {"jpeg_quality", "blur_sigma", "downscale", "noise_sigma"}
    for kind in res["robustness"]:
        rows = res["robustness"][kind]
        assert rows[0]["level"] is None and len(rows) == 2
        assert (out / "robustness" / f"{kind}.csv").is_file() and (out / "plots" / f"robustness_{kind}.png").is_file()
    assert "Robustness" in (out / "metrics.md").read_text()
    # a real perturbation changes the scores
    assert res["robustness"]["noise_sigma"][1]["sets"]["tconv"] != res["robustness"]["noise_sigma"][0]["sets"]["tconv"]


def test_unreadable_test_image_is_counted_in_the_report(tmp_path, checkpoint):
    root = tmp_path / "set"
    write_images(root / "0_real", 4)
    bad = write_images(root / "1_fake", 4, seed=1)[2]
    bad.write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="0002.png"):
        res = evaluate(checkpoint, [str(root)], tmp_path / "o", num_workers=0, echo=lambda m: None, progress=False)
    assert res["sets"]["set"]["n"] == 7 and res["sets"]["set"]["skipped"] == 1
    assert any("0002.png" in e for e in res["skipped"]["set"])
    assert "0002.png" in (tmp_path / "o" / "report.html").read_text()


def test_perturbations_do_what_they_say():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    arr = np.asarray(img, np.float32)
    for kind, level in (("jpeg_quality", 30), ("blur_sigma", 2.0), ("downscale", 0.5), ("noise_sigma", 0.1)):
        out = Perturbation(kind, level)(img)
        assert out.size == img.size and out.mode == "RGB"
        diff = np.abs(np.asarray(out, np.float32) - arr).mean()
        assert diff > 5, f"{kind} barely changed the image"
    # blur and downscaling remove high frequencies: less variation between neighbours
    for kind, level in (("blur_sigma", 2.0), ("downscale", 0.5)):
        out = np.asarray(Perturbation(kind, level)(img), np.float32)
        assert np.abs(np.diff(out, axis=1)).mean() < 0.5 * np.abs(np.diff(arr, axis=1)).mean()
    # noise is repeatable for the same image
    assert np.array_equal(np.asarray(Perturbation("noise_sigma", 0.1)(img)),
                          np.asarray(Perturbation("noise_sigma", 0.1)(img)))
    with pytest.raises(ValueError, match="unknown perturbation"):
        Perturbation("rotate", 1)


def test_paper_table_layout_and_reference_rows(tmp_path):
    from fakescope.eval.tables import PaperTable, build_rows, write_table

    table = PaperTable(
        name="demo", title="Demo table", columns=("ProGAN", "StyleGAN"), metrics=("acc", "ap"),
        aliases={"StyleGAN": ("stylegan1",)},
        reference={"Baseline X": {"ProGAN": (99.0, 100.0), "StyleGAN": (70.5, None), "Mean": (84.8, None)},
                   "Baseline Y": {"Mean": (80.0, 90.0)}},
        row_sources={"Baseline X": "paper", "Baseline Y": "derived"},
        footnotes={("Baseline X", "StyleGAN"): "reconstructed"}, source="Demo paper, Table 1",
    )
    sets = {"progan": {"acc": 0.9, "ap": 0.95}, "StyleGAN1": {"acc": 0.5, "ap": 0.6}, "extra": {"acc": 1, "ap": 1}}
    header, rows, notes = build_rows(table, sets, "ours-model")
    assert header == ["method", "ProGAN ACC", "ProGAN AP", "StyleGAN ACC", "StyleGAN AP", "Mean ACC", "Mean AP"]
    assert rows[0] == ["Baseline X (paper)", "99.0", "100.0", "70.5[1]", "n/a[1]", "84.8", "n/a"]
    assert rows[1][0] == "Baseline Y (derived)"  # each row with its own tag, none by default
    assert rows[2] == ["ours-model (ours)", "90.0", "95.0", "50.0", "60.0", "70.0", "77.5"]
    assert any("extra" in n for n in notes) and any("reconstructed" in n for n in notes)
    assert any("(paper) printed in the paper itself" in n and "(derived) computed by us" in n for n in notes)
    path = write_table(table, {"progan": {"acc": 1.0, "ap": 1.0}}, tmp_path, "m")
    text = path.read_text()
    assert "StyleGAN" in text and "no test set matched" in text and (tmp_path / "table_demo.csv").is_file()


def test_every_reference_row_needs_its_own_source_tag():
    from dataclasses import replace

    from fakescope.eval.tables import SOURCE_TAGS, TABLES, PaperTable, build_rows, register_table

    assert set(SOURCE_TAGS) == {"paper", "secondary", "derived"}
    base = PaperTable(name="demo_tags", title="t", columns=("A",), metrics=("auc",),
                      reference={"X": {"A": (90.0,)}}, row_sources={"X": "paper"})
    for bad, match in (({}, "needs a source tag"), ({"X": "reported"}, "needs a source tag"),
                       ({"X": "paper", "Z": "derived"}, "rows that do not exist")):
        with pytest.raises(ValueError, match=match):
            register_table(replace(base, row_sources=bad))
        with pytest.raises(ValueError, match=match):
            build_rows(replace(base, row_sources=bad), {}, "m")
    # the packaged tables: every row tagged, and the tags the sources support
    tags = {name: TABLES.get(name).row_sources for name in TABLES.names()}
    assert tags["sdr_ffpp"] == {"SDR": "secondary", "FTCN (in SDR's table)": "derived"}
    assert tags["sdr_cross"] == {"FTCN (its own paper)": "secondary"}
    assert set(tags["sfcl_cross"].values()) == {"secondary"} and "EfficientNet-B4 (DeepfakeBench)" in tags["sfcl_cross"]
    assert set(tags["fssnet_gan"].values()) == set(tags["fssnet_dm"].values()) == {"paper"}
    for name in TABLES.names():
        table = TABLES.get(name)
        _, rows, _ = build_rows(table, {}, "m")
        assert [r[0] for r in rows[:-1]] == [f"{m} ({table.row_sources[m]})" for m in table.reference], name


def test_images_smaller_than_the_input_are_enlarged_and_recorded(tmp_path, checkpoint):
    size = create_model("simple_cnn_tiny").preprocess.input_size
    small = write_images(tmp_path / "data" / "0_real", 2, size=size // 2, seed=0)
    write_images(tmp_path / "data" / "1_fake", 3, size=size + 8, seed=1)
    res = evaluate(checkpoint, [str(tmp_path / "data")], tmp_path / "out", num_workers=0, echo=lambda m: None,
                   progress=False)
    assert res["sets"]["data"]["n"] == 5 and res["sets"]["data"]["upscaled"] == 2
    rows = {r["path"]: r for r in csv.DictReader(open(tmp_path / "out" / "scores" / "data.csv"))}
    for p in small:
        assert rows[str(p)]["upscaled"] == "1" and rows[str(p)]["width"] == str(size // 2)
    assert sum(r["upscaled"] == "0" and r["height"] == str(size + 8) for r in rows.values()) == 3
