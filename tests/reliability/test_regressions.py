"""One test per problem found by trying fakescope as a hostile user (issue 16), each failing before its fix."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from reliability.corpus import exif_rotated_jpeg, stored_png

CLI = [sys.executable, "-m", "fakescope.cli"]


def test_a_phone_photo_stored_sideways_is_turned_upright(tmp_path, outcomes):
    from skimage import data as skdata

    from fakescope.inference import Detector
    from fakescope.models import create_model
    from fakescope.zoo.checkpoint import save
    from conftest import MTCNN_MISSING
    from test_faces import HAVE_MTCNN

    face = skdata.astronaut()
    upright = Image.open(io.BytesIO(exif_rotated_jpeg(face, 6)))
    from fakescope.media.image import open_image

    assert open_image(exif_rotated_jpeg(face, 6)).size == (face.shape[1], face.shape[0])
    assert upright.size == (face.shape[0], face.shape[1])  # stored turned: Pillow alone gives it sideways
    if not HAVE_MTCNN:
        pytest.skip(MTCNN_MISSING)
    (tmp_path / "phone.jpg").write_bytes(exif_rotated_jpeg(face, 6))
    det = Detector.from_pretrained(save(create_model("efficientnet_tiny").eval(), tmp_path / "ck"), device="cpu")
    rec = det.predict(str(tmp_path / "phone.jpg"))
    assert rec["error"] is None and rec["faces_found"] >= 1, rec["error"]
    outcomes.append(("phone photo stored rotated (EXIF Orientation=6), face model", "detect",
                     "turned upright: the face is found and scored"))


def test_detect_output_into_a_missing_folder_and_into_a_closed_pipe(reliability_checkpoint, tmp_path, outcomes):
    img = tmp_path / "a.png"
    img.write_bytes(stored_png(32))
    for i in range(3):
        (tmp_path / f"b{i}.png").write_bytes(stored_png(32, i))
    out = tmp_path / "new" / "folder" / "records.csv"
    from fakescope.cli import main

    assert main(["detect", str(img), "-m", str(reliability_checkpoint), "-o", str(out), "--progress", "off"]) == 0
    assert out.is_file()
    outcomes.append(("detect -o into a folder that does not exist", "detect", "the folder is made"))
    # `detect ... | head -1`: the reader goes away after one line; no traceback, the exit status of SIGPIPE
    p = subprocess.Popen([*CLI, "detect", str(tmp_path), "-m", str(reliability_checkpoint)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode(errors="replace")
    p.wait(120)
    assert json.loads(first)["path"] and "Traceback" not in err and "BrokenPipe" not in err, err[-2000:]
    assert p.returncode in (0, 141), err
    outcomes.append(("detect ... | head -1", "detect", "stops quietly when the reader goes away (exit 141)"))


@pytest.mark.parametrize("argv, words", [
    (["--workers", "0"], "--workers must be"), (["--port", "70000"], "--port must"),
    (["--max-upload-mb", "-1"], "--max-upload-mb must"), (["--timeout", "0"], "--timeout must"),
    (["--max-connections", "2"], "--max-connections"), (["--header-timeout", "-3"], "--header-timeout"),
    (["--max-megapixels", "0"], "--max-megapixels"),
])
def test_bad_serve_options_are_usage_errors_naming_the_option(reliability_checkpoint, argv, words, capsys,
                                                              outcomes):
    from fakescope.cli import main

    assert main(["serve", str(reliability_checkpoint), *argv]) == 2
    assert words in capsys.readouterr().err
    outcomes.append((f"serve {' '.join(argv)}", "serve", f"usage error: {words} ..."))


def test_a_recursive_glob_through_a_link_to_its_own_folder_scores_each_file_once(tmp_path, outcomes):
    from fakescope.inference import expand_inputs

    (tmp_path / "a.png").write_bytes(stored_png(16))
    os.symlink(".", tmp_path / "self")
    found = [p for p, err in expand_inputs([str(tmp_path / "**")]) if err is None]
    assert [os.path.realpath(p) for p in found] == [str((tmp_path / "a.png").resolve())]
    outcomes.append(("`**` glob through a link to `.`", "detect", "each file once"))


def test_gif_and_sound_files_in_a_folder_are_not_dropped_silently(tmp_path):
    from fakescope.inference import expand_inputs
    from fakescope.media.video import write_video

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.gif")
    write_video(tmp_path / "voice.m4a", [], audio=True)
    (tmp_path / "notes.txt").write_text("x")
    skipped: list[str] = []
    found = sorted(os.path.basename(p) for p, _ in expand_inputs([str(tmp_path)], skipped))
    assert found == ["voice.m4a", "x.gif"] and [os.path.basename(s) for s in skipped] == ["notes.txt"]


def test_a_text_file_named_png_is_called_not_an_image(tmp_path, reliability_detector):
    (tmp_path / "n.png").write_text("hello\n")
    rec = reliability_detector.predict(str(tmp_path / "n.png"))
    assert "not an image" in rec["error"] and "video" not in rec["error"]


def test_non_utf8_names_hash_and_shard(tmp_path):
    from fakescope.data.manifest import RecordStore
    from fakescope.prepare import shard_of

    key = "video:train:" + os.fsdecode(b"caf\xe9")
    assert 0 <= shard_of(key, 4) < 4
    store = RecordStore(tmp_path)
    store.put({"key": key, "rows": []})
    assert store.get(key)["key"] == key
