"""fakescope.Detector and `fakescope detect`: the pipeline each checkpoint calls for, records, failures, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

import fakescope
from fakescope.zoo.checkpoint import save
from fakescope.cli import main
from fakescope.data.transforms import Preprocessor
from fakescope.inference import RECORD_FIELDS, Detector, expand_inputs, log_spectrum
from fakescope.errors import CheckpointError, ConfigError
from fakescope.models import create_model

from conftest import HAVE_MTCNN, needs_mtcnn  # noqa: E402,F401  (CI: a skip for want of MTCNN fails)


# ------------------------------------------------------------------ helpers (also used by the other test files)
def make_checkpoint(folder: Path, name: str = "simple_cnn_tiny", seed: int = 0) -> Path:
    """A tiny random-init checkpoint folder of registered model ``name``."""
    torch.manual_seed(seed)
    return save(create_model(name).eval(), folder)


def make_media(folder: Path) -> dict[str, Path]:
    """Real photo (a face), a noise image, a short video with a face, and bad files."""
    from fakescope.media.video import write_video

    folder.mkdir(parents=True, exist_ok=True)
    ast = skdata.astronaut()
    out = {"face": folder / "astronaut.png", "noise": folder / "noise.jpg", "video": folder / "clip.mp4",
           "truncated": folder / "truncated.png", "text": folder / "notes.txt", "empty": folder / "empty.png"}
    Image.fromarray(ast).save(out["face"])
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(out["noise"], quality=95)
    frames = [np.ascontiguousarray(np.roll(ast, 3 * i, axis=1)[0:256, 100:356]) for i in range(10)]
    write_video(out["video"], frames, fps=10)
    out["truncated"].write_bytes(out["face"].read_bytes()[:3000])
    out["text"].write_text("not a picture\n")
    out["empty"].write_bytes(b"")
    return out


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    return make_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def image_ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "simple")


@pytest.fixture(scope="module")
def image_det(image_ckpt) -> Detector:
    return Detector.from_pretrained(image_ckpt, device="cpu")


def reference_score(det: Detector, img: Image.Image) -> float:
    """P(fake) straight from the model on the evaluation preprocessing of ``img``."""
    x = Preprocessor(det.preprocess, train=False)(img).unsqueeze(0)
    return float(det.model.predict_proba(x)[0])


# ----------------------------------------------------------------------------------------------- image models
def test_image_record_has_every_field_and_the_models_own_score(image_det, media):
    rec = image_det.predict(media["noise"])
    assert set(RECORD_FIELDS) <= set(rec)
    assert rec["kind"] == "image" and rec["error"] is None and rec["backend"] == "torch"
    assert rec["model"] == "simple_cnn_tiny" and rec["model_version"].startswith(fakescope.__version__ + "+")
    assert rec["faces_found"] is None and rec["frame_scores"] is None  # no face detection for AI-image models
    img = Image.open(media["noise"]).convert("RGB")
    assert rec["score"] == pytest.approx(reference_score(image_det, img), abs=1e-6)
    assert rec["label"] == ("fake" if rec["score"] >= 0.5 else "real")


def test_path_pil_and_arrays_give_the_same_record(image_det, media):
    img = Image.open(media["face"]).convert("RGB")
    arr = np.asarray(img)
    by_path = image_det.predict(media["face"])["score"]
    assert image_det.predict(img)["score"] == pytest.approx(by_path, abs=1e-6)
    assert image_det.predict(arr)["score"] == pytest.approx(by_path, abs=1e-6)
    assert image_det.predict(arr.astype(np.float32) / 255.0)["score"] == pytest.approx(by_path, abs=1e-6)
    assert image_det.predict(arr.transpose(2, 0, 1).copy())["score"] == pytest.approx(by_path, abs=1e-6)
    assert image_det.predict(arr, name="upload.png")["path"] == "upload.png"


def test_crop_policy_uses_the_native_resolution_centre(image_ckpt, tmp_path):
    """An AI-image model sees the centre crop at native resolution: a border change does not move its score."""
    det = Detector.from_pretrained(image_ckpt, device="cpu")
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)
    b = a.copy()
    b[:10] = 0  # outside the central 32 x 32 crop
    c = a.copy()
    c[55:65, 55:65] = 0  # inside it
    sa, sb, sc = (det.predict(x)["score"] for x in (a, b, c))
    assert sa == pytest.approx(sb, abs=1e-7)
    assert sc != pytest.approx(sa, abs=1e-7)


def test_threshold_sets_the_label(image_ckpt, media):
    score = Detector.from_pretrained(image_ckpt, device="cpu").predict(media["noise"])["score"]
    low = Detector.from_pretrained(image_ckpt, device="cpu", threshold=max(score - 0.01, 0.0))
    high = Detector.from_pretrained(image_ckpt, device="cpu", threshold=min(score + 0.01, 1.0))
    assert low.predict(media["noise"])["label"] == "fake"
    assert high.predict(media["noise"])["label"] == "real"
    with pytest.raises(ConfigError, match="threshold"):
        Detector.from_pretrained(image_ckpt, threshold=1.5)


def test_batch_size_does_not_change_scores(image_ckpt, media):
    inputs = [media["noise"], media["face"], media["video"], media["noise"]]
    one = [r["score"] for r in Detector.from_pretrained(image_ckpt, device="cpu", batch_size=1).predict_many(inputs)]
    many = [r["score"] for r in Detector.from_pretrained(image_ckpt, device="cpu", batch_size=64).predict_many(inputs)]
    assert one == pytest.approx(many, abs=1e-6)


# ------------------------------------------------------------------------------------------------------ videos
def test_video_with_an_image_model_scores_sampled_frames(image_ckpt, media):
    det = Detector.from_pretrained(image_ckpt, device="cpu", num_frames=4)
    rec = det.predict(media["video"])
    assert rec["kind"] == "video" and rec["error"] is None
    assert len(rec["frame_scores"]) == len(rec["frame_indices"]) == len(rec["frame_times"]) == 4
    assert rec["frame_indices"] == [0, 3, 6, 9]  # spread evenly over the 10 frames
    assert rec["score"] == pytest.approx(float(np.mean(rec["frame_scores"])), abs=1e-5)
    # the first frame's score is the model's score on that frame
    from fakescope.media.video import read_frames

    first = read_frames(media["video"], num_frames=1).frames[0]
    assert rec["frame_scores"][0] == pytest.approx(reference_score(det, Image.fromarray(first)), abs=1e-5)
    frames = read_frames(media["video"], num_frames=10).frames
    as_array = det.predict(np.stack(frames))
    assert as_array["kind"] == "video" and len(as_array["frame_scores"]) == 4


def test_clip_model_scores_clips_and_refuses_images(tmp_path, media):
    ck = make_checkpoint(tmp_path / "sdr", "sdr_tiny")
    det = Detector.from_pretrained(ck, device="cpu", faces="off")  # clip_len 8
    rec = det.predict(media["video"])
    assert rec["error"] is None and rec["kind"] == "video"
    assert len(rec["clip_scores"]) == 1 and rec["frame_indices"] == list(range(8))
    assert rec["frame_scores"] == [rec["clip_scores"][0]] * 8
    assert rec["score"] == pytest.approx(rec["clip_scores"][0], abs=1e-6)
    img = det.predict(media["face"])
    assert img["score"] is None and "scores videos" in img["error"] and str(media["face"]) in img["error"]


# ------------------------------------------------------------------------------------------------------- faces
def test_face_models_carry_a_face_stage_and_old_checkpoints_get_the_old_crop_with_a_warning(tmp_path):
    from fakescope.models import create_model
    from fakescope.zoo.checkpoint import checkpoint_preprocess
    from fakescope.preprocess import LEGACY_FACE_CROP, FaceCropConfig

    for name, faces in (("efficientnet_tiny", True), ("sfcl_hcmf_tiny", True), ("sdr_tiny", True),
                        ("fssnet_tiny", False), ("simple_cnn_tiny", False)):
        face = create_model(name).preprocess.face
        assert (face == FaceCropConfig()) if faces else face is None, name
    # a checkpoint config from before the face stage was stored: the crop detect made then, and a warning
    old = {"model": {"name": "sfcl_hcmf_tiny", "config": {"preprocess": {"input_size": 32}}},
           "fakescope_version": "0.0.9"}
    with pytest.warns(UserWarning, match="model.config.preprocess.face"):
        assert checkpoint_preprocess(old).face == LEGACY_FACE_CROP
    scene = {"model": {"name": "simple_cnn_tiny", "config": {"preprocess": {"input_size": 32}}},
             "inference": {"faces": True}}
    with pytest.warns(UserWarning, match="model.config.preprocess.face"):
        assert checkpoint_preprocess(scene).face == LEGACY_FACE_CROP
    with pytest.warns(UserWarning):
        assert checkpoint_preprocess({**scene, "inference": {}}).face is None


@needs_mtcnn
def test_face_model_scores_the_face_crop_of_a_real_photo(tmp_path, media):
    from fakescope.faces.crop import crop_box

    ck = make_checkpoint(tmp_path / "sfcl", "sfcl_hcmf_tiny")
    det = Detector.from_pretrained(ck, device="cpu")
    assert det.faces
    rec = det.predict(media["face"], details=True)
    assert rec["error"] is None and rec["faces_found"] == 1
    frame = np.asarray(Image.open(media["face"]).convert("RGB"))
    mtcnn = det.face_detector
    face = max(mtcnn.detect([frame])[0], key=lambda f: f.area)
    crop = crop_box(frame, face.box, size=256, margin=1.3)
    assert rec["score"] == pytest.approx(reference_score(det, Image.fromarray(crop)), abs=1e-5)
    assert rec["face_boxes"] == [[0.0] + [round(float(v), 1) for v in face.box]]  # the face scored, as found
    assert len(rec["details"]["faces"]) == 1 and rec["details"]["faces"][0].shape == (256, 256, 3)
    # the crop holds the face: MTCNN finds it again inside the crop
    assert mtcnn.detect([rec["details"]["faces"][0]])[0]


@needs_mtcnn
def test_explain_draws_the_scored_face_on_the_photo(tmp_path, media):
    ck = make_checkpoint(tmp_path / "sfcl", "sfcl_hcmf_tiny")
    det = Detector.from_pretrained(ck, device="cpu", explain=str(tmp_path / "ex"))
    rec = det.predict(str(media["face"]))
    cam, faces = rec["explanation"]
    assert cam.endswith(".cam.png") and faces.endswith(".faces.png")
    drawn = np.asarray(Image.open(faces).convert("RGB")).astype(int)
    x1, y1, x2, y2 = (round(v) for v in rec["face_boxes"][0][1:])
    assert drawn.shape[:2] == np.asarray(Image.open(media["face"])).shape[:2]  # small photo: not resized
    edge = drawn[y1, x1 + 2:x2 - 2]  # the box's top edge is drawn in red
    assert (edge[:, 0] > 200).mean() > 0.9 and (edge[:, 1] < 80).mean() > 0.9


@needs_mtcnn
def test_face_model_reports_images_and_videos_without_faces(tmp_path, media):
    det = Detector.from_pretrained(make_checkpoint(tmp_path / "eff", "efficientnet_tiny"), device="cpu")
    rec = det.predict(media["noise"])
    assert rec["score"] is None and rec["faces_found"] == 0 and "no face found" in rec["error"]
    video = det.predict(media["video"])
    assert video["error"] is None and video["faces_found"] >= 5
    assert sum(s is not None for s in video["frame_scores"]) >= 5
    off = Detector.from_pretrained(make_checkpoint(tmp_path / "eff2", "efficientnet_tiny"), device="cpu",
                                   faces="off").predict(media["noise"])
    assert off["error"] is None and off["faces_found"] is None


# ---------------------------------------------------------------------------------------------------- failures
def test_bad_inputs_get_error_records_and_the_rest_goes_on(image_det, media, tmp_path):
    recs = list(image_det.predict_many([media["truncated"], media["noise"], media["text"], media["empty"],
                                        tmp_path / "missing.png", str(tmp_path / "none*.jpg")]))
    assert [r["error"] is None for r in recs] == [False, True, False, False, False, False]
    err = [r["error"] for r in recs]
    assert "truncated or corrupt" in err[0] and str(media["truncated"]) in err[0]
    assert "neither an image nor a video" in err[2]
    assert "empty file" in err[3]
    assert "file not found" in err[4] and "pattern matches no file" in err[5]
    assert all(r["score"] is None and r["label"] is None for r in recs if r["error"])


def test_expand_inputs_walks_folders_and_globs(media, tmp_path):
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    (sub / "x.png").write_bytes(media["noise"].read_bytes())
    (tmp_path / "a" / "y.mp4").write_bytes(media["video"].read_bytes())
    (tmp_path / "a" / "readme.md").write_text("skip me")
    got = expand_inputs([tmp_path / "a", str(tmp_path / "a" / "**" / "*.png"), tmp_path / "nothing"])
    paths = [p for p, e in got if e is None]
    assert paths == [str(sub / "x.png"), str(tmp_path / "a" / "y.mp4")]  # no duplicates, no readme
    assert got[-1] == (str(tmp_path / "nothing"), "file not found")


def test_missing_checkpoint_and_device_are_errors(tmp_path, image_ckpt):
    with pytest.raises(CheckpointError, match="not found"):
        Detector.from_pretrained(tmp_path / "nope")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            Detector.from_pretrained(image_ckpt, device="cuda")


def test_log_spectrum_shows_a_periodic_pattern_as_peaks():
    x = np.arange(128)
    stripes = (127 + 120 * np.sin(2 * np.pi * x / 8))[None, :].repeat(128, 0).astype(np.uint8)
    spec = log_spectrum(np.stack([stripes] * 3, -1))
    assert spec.shape == (128, 128) and spec.dtype == np.uint8
    row = spec[64]
    assert row[64 + 16] == 255 or row[64 + 16] >= np.percentile(spec, 99.5)  # the 1/8 cycles-per-pixel peak
    assert np.median(spec) < 128


# --------------------------------------------------------------------------------------------------------- CLI
def test_cli_detect_writes_json_lines_and_a_summary(image_ckpt, media, tmp_path, capsys):
    rc = main(["detect", str(media["noise"]), str(media["video"]), str(media["truncated"]), "-m", str(image_ckpt),
               "--device", "cpu", "--num-frames", "3", "--progress", "off"])
    assert rc == 0  # failed inputs are reported, not an exit status
    out, err = capsys.readouterr()
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in recs] == [str(media["noise"]), str(media["video"]), str(media["truncated"])]
    assert len(recs[1]["frame_scores"]) == 3
    assert "3 input(s)" in err and "1 failed" in err and str(media["truncated"]) in err


def test_cli_detect_csv_and_usage_errors(image_ckpt, media, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert main(["detect", str(media["noise"]), str(media["video"]), "-m", str(image_ckpt), "-o", str(out),
                 "--threshold", "0.0", "--batch-size", "2", "--progress", "on"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["label"] for r in rows] == ["fake", "fake"]  # threshold 0: everything is fake
    assert len(json.loads(rows[1]["frame_scores"])) == 10 and rows[0]["frame_scores"] == ""
    assert main(["detect", str(media["noise"]), "-m", str(tmp_path / "no-model")]) == 2
    assert main(["detect", str(media["noise"]), "-m", str(image_ckpt), "--threshold", "2"]) == 2
    capsys.readouterr()
    # no --model: the default fusion, which has no Grad-CAM to draw
    assert main(["detect", str(media["noise"]), "--explain", str(tmp_path / "cams")]) == 2
    assert "--explain" in capsys.readouterr().err
