"""``prepare`` on real media (research-use fixtures beside the repository; skipped where absent).

The FF++ c23 videos: a face must be found in at least 95% of the 32 sampled
frames of every video, and the crops must be centred on it (checked by
detecting the face again inside the crops).
"""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED_FIXTURES
from fakescope.data.faces import create_detector
from fakescope.data.prepare import PrepareOptions, prepare
from test_faces import HAVE_MTCNN

VIDEOS = SHARED_FIXTURES / "ffpp-c23-videos"
FACES = SHARED_FIXTURES / "real-fake-faces-160"
pytestmark = [pytest.mark.fixtures,
              pytest.mark.skipif(not HAVE_MTCNN, reason="pip install --no-deps facenet-pytorch==2.6.0")]


@pytest.mark.skipif(not (VIDEOS / "labels.csv").is_file(), reason=f"real fixtures not present ({VIDEOS})")
def test_ffpp_videos_faces_in_95_percent_of_32_frames_and_crops_centred(tmp_path):
    out = tmp_path / "ffpp"
    summary = prepare("csv", VIDEOS / "labels.csv", out, PrepareOptions(num_frames=32), echo=lambda m: None)
    assert summary.exit_code == 0 and summary.videos == 7
    with open(out / "videos.csv", newline="") as fh:
        videos = list(csv.DictReader(fh))
    assert len(videos) == 7
    for v in videos:
        assert int(v["frames_sampled"]) == 32, v
        rate = int(v["frames_with_face"]) / 32
        assert rate >= 0.95, f"{v['path']}: face found in {rate:.0%} of 32 frames"
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    per_video = defaultdict(list)
    for r in rows:
        per_video[r["video_id"]].append(r)
    assert {k: len(v) >= 31 for k, v in per_video.items()} == {k: True for k in per_video}
    # centred: the face found again in a crop sits in its middle
    torch.set_num_threads(1)
    det = create_detector("mtcnn")
    crops = [np.asarray(Image.open(out / r["path"])) for rs in per_video.values() for r in rs[::8]]
    for crop, faces in zip(crops, det.detect(crops)):
        assert faces, "no face found again inside a crop"
        f = max(faces, key=lambda x: x.area)
        cx, cy = f.center
        side = crop.shape[0]
        assert abs(cx - side / 2) < 0.12 * side and abs(cy - side / 2) < 0.12 * side, (cx, cy, side)
        assert 0.45 * side < max(f.width, f.height) < 0.95 * side  # margin 1.3 around the face


@pytest.mark.skipif(not FACES.is_dir(), reason=f"real fixtures not present ({FACES})")
def test_real_face_images_referenced_and_checked(tmp_path):
    summary = prepare("folder", FACES, tmp_path / "faces", echo=lambda m: None)
    assert (summary.images, summary.rows, summary.exit_code) == (2041, 2041, 0)
