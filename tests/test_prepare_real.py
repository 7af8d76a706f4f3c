"""``prepare`` on real media (research-use fixtures beside the repository; skipped where absent).

The FF++ c23 videos, through the command line: a face must be found in at
least 95% of the 32 sampled frames of every video, the crops must be centred
on it (checked by detecting the face again inside the crops), and the face
must be the speaker's in every frame (no jump to another face, such as the
face in an inset picture that one of the news videos shows for a second).
The default tracked face search must give the crops of a full search.
"""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED_FIXTURES
from fakescope.cli import main
from fakescope.faces import create_detector
from fakescope.data.manifest import parse_box
from fakescope.prepare import prepare
from conftest import MTCNN_MISSING
from test_faces import HAVE_MTCNN

VIDEOS = SHARED_FIXTURES / "ffpp-c23-videos"
FACES = SHARED_FIXTURES / "real-fake-faces-160"
pytestmark = [pytest.mark.fixtures,
              pytest.mark.skipif(not HAVE_MTCNN, reason=MTCNN_MISSING)]


needs_videos = pytest.mark.skipif(not (VIDEOS / "labels.csv").is_file(),
                                  reason=f"real fixtures not present ({VIDEOS})")


def prepare_videos(out, *extra: str):
    code = main(["prepare", "csv", "--root", str(VIDEOS / "labels.csv"), "--out", str(out), "--num-frames", "32",
                 "--progress", "off", *extra])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def ffpp(tmp_path_factory):
    """The 7 videos prepared with the defaults (tracked face search, worker processes)."""
    return prepare_videos(tmp_path_factory.mktemp("ffpp") / "out")


@needs_videos
def test_ffpp_videos_faces_in_95_percent_of_32_frames_and_crops_centred(ffpp):
    out = ffpp
    with open(out / "videos.csv", newline="") as fh:
        videos = list(csv.DictReader(fh))
    assert len(videos) == 7
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    per_video = defaultdict(list)
    for r in rows:
        per_video[r["video_id"]].append(r)
    for v in videos:
        assert int(v["frames_sampled"]) == 32, v
        rate = int(v["frames_with_face"]) / 32
        assert rate >= 0.95, f"{v['path']}: face found in {rate:.0%} of 32 frames"
        assert len(per_video[v["video_id"]]) == int(v["frames_with_face"])  # one crop per frame with a face
    # the same face throughout: between neighbouring sampled frames the box moves by less than its size
    for vid, rs in per_video.items():
        boxes = [parse_box(r["box"]) for r in sorted(rs, key=lambda r: int(r["frame_index"]))]
        for a, b in zip(boxes, boxes[1:]):
            side = max(a[2] - a[0], b[2] - b[0])
            shift = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
            assert shift < side, f"{vid}: the face jumps from {a} to {b}"
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


@needs_videos
def test_ffpp_tracked_search_gives_the_crops_of_a_full_search(ffpp, tmp_path):
    full = prepare_videos(tmp_path / "full", "--face-search", "full", "--workers", "0")
    assert (ffpp / "manifest.csv").read_text() == (full / "manifest.csv").read_text()  # boxes, scores, paths
    with open(full / "manifest.csv", newline="") as fh:
        paths = [r["path"] for r in csv.DictReader(fh)]
    assert len(paths) == 224
    for p in paths:
        assert np.array_equal(np.asarray(Image.open(ffpp / p)), np.asarray(Image.open(full / p))), p
    with open(ffpp / "videos.csv", newline="") as fh:
        videos = list(csv.DictReader(fh))
    assert all(int(v["frames_tracked"]) == 31 for v in videos)  # all but the first frame of each video


@pytest.mark.skipif(not FACES.is_dir(), reason=f"real fixtures not present ({FACES})")
def test_real_face_images_referenced_and_checked(tmp_path):
    summary = prepare("folder", FACES, tmp_path / "faces", echo=lambda m: None)
    assert (summary.images, summary.rows, summary.exit_code) == (2041, 2041, 0)
