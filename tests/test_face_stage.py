"""One face pipeline from prepare to detect: the face stage is written beside the manifests, copied into the
checkpoint by training, and obeyed by detect, so a detector is served exactly the crops it was trained on."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakescope.cli import main
from fakescope.config import load_config
from fakescope.data.manifest import read_face_stage, write_meta
from fakescope.errors import ConfigError, DataError
from fakescope.eval.evaluate import evaluate
from fakescope.inference import Detector
from fakescope.media.video import write_video
from fakescope.models import create_model
from fakescope.zoo.checkpoint import save
from fakescope.preprocess import LEGACY_FACE_CROP, FaceCropConfig
from fakescope.train.engine import train
from conftest import MTCNN_MISSING
from test_faces import HAVE_MTCNN, face_frames
from conftest import write_images

needs_mtcnn = pytest.mark.skipif(not HAVE_MTCNN, reason=MTCNN_MISSING)
ALIGN = FaceCropConfig(crop="align", margin=1.25, size=224)


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def experiment(tmp_path: Path, train_src, val_src, **model):
    return load_config(data={
        "name": "faces", "output_dir": str(tmp_path / "runs"), "seed": 0,
        "model": {"name": "efficientnet_tiny", **model},
        "data": {"train": train_src, "val": val_src, "batch_size": 8, "num_workers": 0},
        "trainer": {"max_epochs": 1, "progress_bar": False, "early_stopping": {"enabled": False}},
    })


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path]:
    """Four short face videos (train and val, real and fake), prepared with aligned 224 px crops, margin 1.25."""
    root = tmp_path_factory.mktemp("faces") / "videos"
    for rel, seed in (("train/0_real/a.mp4", 0), ("train/1_fake/b.mp4", 1), ("val/0_real/c.mp4", 2),
                      ("val/1_fake/d.mp4", 3)):
        frames, _ = face_frames(14, seed=seed)
        write_video(root / rel, frames, fps=12)
    out = root.parent / "prepared"
    code = main(["prepare", "folder", "--root", str(root), "--out", str(out), "--crop", "align", "--margin", "1.25",
                 "--size", "224", "--num-frames", "8", "--workers", "0", "--progress", "off"])
    assert code == 0
    return root, out


@needs_mtcnn
def test_detect_scores_exactly_the_crops_prepare_wrote(prepared, tmp_path):
    root, out = prepared
    # prepare writes the face stage beside every manifest it produces
    for manifest in [out / "manifest.csv", *sorted((out / "sets").glob("*/*.csv"))]:
        stage = read_face_stage(manifest)
        assert stage.declared and stage.face == ALIGN, manifest
    # training copies it into the checkpoint's preprocessing
    cfg = experiment(tmp_path, str(out / "sets" / "train" / "all.csv"), str(out / "sets" / "val" / "all.csv"))
    torch.manual_seed(0)
    result = train(cfg, echo=lambda m: None)
    config = json.loads((result.checkpoint / "config.json").read_text())
    assert FaceCropConfig.model_validate(config["model"]["config"]["preprocess"]["face"]) == ALIGN
    assert "align crop, margin 1.25, 224 px" in (result.checkpoint / "README.md").read_text()

    # detect on a training video: the crops it scores are the PNG files prepare wrote, pixel for pixel
    det = Detector.from_pretrained(result.checkpoint, device="cpu", num_frames=8)
    assert det.face == ALIGN
    video = root / "train" / "0_real" / "a.mp4"
    rec = det.predict(str(video), details=True)
    assert rec["error"] is None
    written = {int(r["frame_index"]): out / r["path"] for r in rows_of(out / "manifest.csv")
               if r["video_id"] == "train/0_real/a"}
    scored = [i for i, s in zip(rec["frame_indices"], rec["frame_scores"]) if s is not None]
    assert scored == sorted(written) and len(scored) == 8
    for i, crop in zip(scored, rec["details"]["faces"]):
        assert crop.shape == (224, 224, 3)
        assert np.array_equal(crop, np.asarray(Image.open(written[i]))), f"frame {i}"

    # ... and so are the scores: those of the same crops read back from disk by `fakescope eval`
    evaluate(result.checkpoint, [str(out / "sets" / "train" / "all.csv")], tmp_path / "eval", num_workers=0,
             echo=lambda m: None)
    (scores,) = (tmp_path / "eval" / "scores").glob("*.csv")
    from_disk = {Path(r["path"]).resolve(): float(r["score"]) for r in rows_of(scores)}
    for i, s in zip(rec["frame_indices"], rec["frame_scores"]):
        if s is not None:
            assert s == pytest.approx(from_disk[written[i].resolve()], abs=2e-6), f"frame {i}"

    # the command line gives the same records with the same batch size as Python's default ...
    records = tmp_path / "records.jsonl"
    assert main(["detect", str(video), "-m", str(result.checkpoint), "--num-frames", "8", "--device", "cpu",
                 "-o", str(records), "--progress", "off", "--batch-size", "32"]) == 0
    line = json.loads(records.read_text().splitlines()[0])
    assert line["frame_scores"] == rec["frame_scores"] and line["score"] == rec["score"]
    # ... and with its own default (batch size measured, batch norms folded into the convolutions, maybe
    # channels-last: the same function, summed in another order) the scores of the crops read from disk within
    # 1e-5, the bound docs/speed.md holds detect's fast path to
    auto = tmp_path / "auto.jsonl"
    assert main(["detect", str(video), "-m", str(result.checkpoint), "--num-frames", "8", "--device", "cpu",
                 "-o", str(auto), "--progress", "off"]) == 0
    line = json.loads(auto.read_text().splitlines()[0])
    assert line["frame_indices"] == rec["frame_indices"]
    for i, s in zip(line["frame_indices"], line["frame_scores"]):
        if s is not None:
            assert s == pytest.approx(from_disk[written[i].resolve()], abs=1e-5), f"frame {i}"


@needs_mtcnn
def test_a_checkpoint_without_the_face_field_loads_with_the_old_crop_and_a_warning(tmp_path):
    ck = save(create_model("efficientnet_tiny").eval(), tmp_path / "ck")
    config = json.loads((ck / "config.json").read_text())
    del config["model"]["config"]["preprocess"]["face"]
    config["fakescope_version"] = "0.1.0"
    (ck / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="no model.config.preprocess.face field"):
        det = Detector.from_pretrained(ck, device="cpu")
    assert det.face == LEGACY_FACE_CROP and det.faces


def _manifest(folder: Path, face: FaceCropConfig | None, seed: int) -> Path:
    """A manifest of real and fake images whose sidecar declares ``face``."""
    write_images(folder / "0_real", 8, kind="smooth", seed=seed)
    write_images(folder / "1_fake", 8, kind="noise", seed=seed + 1)
    path = folder / "all.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        for label, sub in ((0, "0_real"), (1, "1_fake")):
            for p in sorted((folder / sub).glob("*.png")):
                w.writerow([f"{sub}/{p.name}", label])
    write_meta(path, face)
    return path


def test_training_sources_that_disagree_on_the_face_stage_are_an_error_naming_both(tmp_path):
    a = _manifest(tmp_path / "a", FaceCropConfig(), 0)
    b = _manifest(tmp_path / "b", ALIGN, 2)
    with pytest.raises(DataError, match="disagree on the face stage") as err:
        train(experiment(tmp_path, str(a), str(b)), echo=lambda m: None)
    assert str(a) in str(err.value) and str(b) in str(err.value)
    # a face stage written in the config must be the data's
    c = _manifest(tmp_path / "c", FaceCropConfig(), 4)
    with pytest.raises(ConfigError, match="differs from the training data"):
        train(experiment(tmp_path, str(a), str(c), preprocess={"input_size": 32, "face": ALIGN.model_dump()}),
              echo=lambda m: None)


def test_whole_image_data_give_a_checkpoint_without_a_face_stage(tmp_path):
    a = _manifest(tmp_path / "a", None, 0)
    b = _manifest(tmp_path / "b", None, 2)
    shutil.copy(a.with_name("all.meta.json"), tmp_path / "copy.json")  # the sidecar is plain JSON
    assert json.loads((tmp_path / "copy.json").read_text()) == {"face": None}
    result = train(experiment(tmp_path, str(a), str(b)), echo=lambda m: None)
    face = json.loads((result.checkpoint / "config.json").read_text())["model"]["config"]["preprocess"]["face"]
    assert face is None  # the data declare whole images: the face model's default face stage is replaced
    assert not Detector.from_pretrained(result.checkpoint, device="cpu").faces


def test_data_without_a_declared_face_stage_keep_the_models_and_say_so(tmp_path):
    for split in ("train", "val"):
        write_images(tmp_path / split / "0_real", 8, kind="smooth", seed=1)
        write_images(tmp_path / split / "1_fake", 8, kind="noise", seed=2)
    said: list[str] = []
    result = train(experiment(tmp_path, str(tmp_path / "train"), str(tmp_path / "val")), echo=said.append)
    assert any("declare no face stage" in m for m in said)
    face = json.loads((result.checkpoint / "config.json").read_text())["model"]["config"]["preprocess"]["face"]
    assert FaceCropConfig.model_validate(face) == FaceCropConfig()
