"""Face detection (MTCNN on the wheel's weights), tracks, backends, and the two crop modes."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data as skdata

from fakescope.faces.crop import align_face, crop_box, face_crop, five_point_template, margin_box
from fakescope.faces import (Face, FaceDetector, Track, box_iou, create_detector, crop_resize, link_tracks,
                                  nms, register_detector, search_again, select_faces, shrink, track_face)
from fakescope.errors import DataError, MissingExtraError, WeightsUnavailableError

from conftest import HAVE_MTCNN, MTCNN_MISSING, needs_mtcnn  # noqa: E402,F401  (CI: a skip here fails)

# where skimage's astronaut photo has its face (measured once; MTCNN agrees within a few pixels)
ASTRONAUT_FACE = (178, 58, 268, 174)


def face_patch(size: int = 96) -> np.ndarray:
    """The astronaut's head with some margin, ``size`` pixels square."""
    head = skdata.astronaut()[20:230, 118:328]
    return np.asarray(Image.fromarray(head).resize((size, size), Image.Resampling.BICUBIC))


def face_frames(n: int, w: int = 320, h: int = 240, size: int = 96, faces: int = 1, seed: int = 0):
    """Frames with ``faces`` copies of a real face drifting across a plain background, and their boxes."""
    rng = np.random.default_rng(seed)
    patch = face_patch(size)
    small = face_patch(size * 2 // 3)
    frames, boxes = [], []
    for i in range(n):
        f = np.full((h, w, 3), 110, dtype=np.uint8)
        f += rng.integers(0, 12, f.shape, dtype=np.uint8)
        x = 20 + (i * 7) % (w - size - 40)
        y = 30 + (i * 3) % (h - size - 40)
        f[y:y + size, x:x + size] = patch
        frame_boxes = [(x, y, x + size, y + size)]
        if faces > 1:
            sx, sy = w - small.shape[1] - 5, 5
            f[sy:sy + small.shape[0], sx:sx + small.shape[1]] = small
            frame_boxes.append((sx, sy, sx + small.shape[1], sy + small.shape[0]))
        frames.append(f)
        boxes.append(frame_boxes)
    return frames, boxes


@pytest.fixture(scope="module")
def mtcnn():
    if not HAVE_MTCNN:
        pytest.skip(MTCNN_MISSING)
    torch.set_num_threads(1)
    return create_detector("mtcnn")


def center_inside(face: Face, box) -> bool:
    cx, cy = face.center
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


@needs_mtcnn
def test_mtcnn_finds_a_real_face_with_ordered_landmarks(mtcnn):
    (faces,) = mtcnn.detect([skdata.astronaut()])
    assert len(faces) == 1
    f = faces[0]
    assert box_iou(torch.tensor([f.box]), torch.tensor([ASTRONAUT_FACE], dtype=torch.float)).item() > 0.8
    assert f.score > 0.99
    (le, re, nose, lm, rm) = f.landmarks
    assert le[0] < re[0] and lm[0] < rm[0]  # left before right, in image order
    assert max(le[1], re[1]) < nose[1] < min(lm[1], rm[1])  # eyes above the nose above the mouth
    assert all(center_inside(Face((x - 1, y - 1, x + 1, y + 1), 1.0), f.box) for x, y in f.landmarks)


@needs_mtcnn
def test_mtcnn_no_faces_in_photos_without_faces(mtcnn):
    found = mtcnn.detect([skdata.coffee(), skdata.chelsea(), skdata.rocket()])
    assert found == [[], [], []]


@needs_mtcnn
def test_mtcnn_batch_equals_one_by_one_and_maps_back_from_the_detection_size(mtcnn):
    frames, boxes = face_frames(4)
    batch = mtcnn.detect(frames)
    for frame, faces, truth in zip(frames, batch, boxes):
        single = mtcnn.detect([frame])[0]
        assert len(faces) == len(single) == 1
        assert np.allclose(faces[0].box, single[0].box, atol=1e-3)
        assert center_inside(faces[0], truth[0])
    # a frame twice as large (beyond detect_size) gives boxes twice as large, in its own pixels
    big = np.asarray(Image.fromarray(frames[0]).resize((1280, 960), Image.Resampling.BICUBIC))
    (faces_big,) = mtcnn.detect([big])
    assert len(faces_big) == 1
    assert np.allclose(np.array(faces_big[0].box) / 4, batch[0][0].box, atol=6)


@needs_mtcnn
def test_a_smallest_size_skips_finer_levels_and_keeps_the_boxes_of_larger_faces(mtcnn, monkeypatch):
    import fakescope.faces.mtcnn as faces_module

    levels = []  # the scales each pyramid is built for

    class Spy(faces_module._Pyramid):
        def __init__(self, frames, scales, device):
            levels.append(list(scales))
            super().__init__(frames, scales, device)

    monkeypatch.setattr(faces_module, "_Pyramid", Spy)
    for w, h, up in ((320, 240, 1), (240, 426, 1), (320, 240, 4)):  # 4x: beyond the detection size
        frames, _ = face_frames(3, w=w, h=h, size=150)  # MTCNN's box: about 80 px
        if up > 1:  # min_size stays in frame pixels; the detector sees 1/2 of 1280x960
            frames = [np.asarray(Image.fromarray(f).resize((w * up, h * up), Image.Resampling.BICUBIC))
                      for f in frames]
        full = mtcnn.detect(frames)
        assert all(len(faces) == 1 for faces in full)
        main = [max(faces, key=lambda f: f.area) for faces in full]
        side = min(max(f.width, f.height) for f in main)
        levels.clear()
        tracked = mtcnn.detect(frames, min_size=side / 3)  # as the tracked search: a third of the main face
        every = mtcnn._scales(*(frames[0].shape[:2] if up == 1 else (480, 640)))
        kept = [s for s in every if 12 / s * (2 if up > 1 else 1) >= side / 3]  # windows in frame pixels
        assert levels == [kept] and 0 < len(kept) < len(every)  # the finest levels skipped, no other
        for faces, m in zip(tracked, main):
            same = [f for f in faces if np.allclose(f.box, m.box, atol=1e-4)]
            assert len(same) == 1 and np.allclose(same[0].landmarks, m.landmarks, atol=1e-4)
    # no pyramid level of these frames has windows of 2000 px: nothing searched, nothing found
    assert mtcnn.detect(frames, min_size=2000) == [[]] * 3


def test_track_face_sizes_the_search_by_the_main_face_and_search_again_guards_it():
    def f(x, y, s=20.0):
        return Face((x, y, x + s, y + s), 0.99)

    seen = [[f(100, 100, 30)], [f(104, 100, 24), f(10, 10, 8)], [f(108, 102, 27)]]
    # the main face's last box; a third of its smallest box in the last 2 frames (24)
    assert track_face(seen, recent=2, scale=3.0) == Track((108, 102, 135, 129), 8.0)
    assert track_face(seen, recent=3, scale=4.0).min_size == 6.0
    assert track_face([[], [f(5, 5)], []], recent=1) is None  # no face in the last frame: search in full
    assert track_face([]) is None
    track = Track((100.0, 100.0, 124.0, 124.0), 8.0)
    assert not search_again([f(104, 102, 24), f(10, 10, 9)], track)  # the main face, and a small one elsewhere
    assert search_again([], track)  # nothing found
    assert search_again([f(300, 300, 40)], track)  # only a face far from the main face's box: it may be missing
    assert search_again([f(100, 100, 19)], track, guard=2.5)  # the main face shrank under 2.5 x 8 px
    assert search_again([f(100, 100, 19), f(300, 300, 40)], track, guard=2.5)  # even beside a larger face
    assert not search_again([f(100, 100, 21)], track, guard=2.5)


def test_crops_for_the_refinement_nets_are_area_resized_with_zeros_outside():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 40, 50, generator=g)
    boxes = torch.tensor([[5.2, 4.8, 30.0, 29.0], [-6.0, 30.0, 10.0, 46.0], [60.0, 0.0, 70.0, 9.0]])
    crops = crop_resize(image, boxes, torch.tensor([0, 1, 1]), 24)
    ref = F.interpolate(image[0:1, :, 5:29, 5:30], size=(24, 24), mode="area")[0]
    assert torch.allclose(crops[0], ref, atol=1e-6)
    padded = F.pad(image[1:2, :, 30:40, 0:10], (6, 0, 0, 6))  # 6 px left and 6 px below are outside
    assert torch.allclose(crops[1], F.interpolate(padded, size=(24, 24), mode="area")[0], atol=1e-6)
    assert not crops[2].any()  # entirely outside the frame


def test_shrink_averages_blocks():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    exact = frame.astype(float).reshape(30, 3, 40, 3, 3).mean(axis=(1, 3))
    assert np.abs(shrink(frame, (40, 30)).astype(float) - exact).max() <= 1  # integer factor
    odd = shrink(frame, (50, 37))
    assert odd.shape == (37, 50, 3) and abs(odd.astype(float).mean() - frame.mean()) < 1


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 4, 4.]])
    scores = torch.tensor([0.5, 0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2, 3]
    assert nms(boxes, scores, 0.5, mode="min").tolist() == [1, 2]  # the small box lies inside box 1
    assert nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).numel() == 0
    # scores equal to 6 decimals (rounding noise of a saturated softmax) rank in the boxes' order
    tied = torch.tensor([1.0 - 6e-8, 1.0])
    assert tied[0] < tied[1] and nms(boxes[:2], tied, 0.5).tolist() == [0]


def test_tracks_follow_faces_and_rank_the_main_face_first():
    def f(x, y, s):
        return Face((x, y, x + s, y + s), 0.99)

    frames = [[f(100 + 8 * t, 50, 80), f(10, 10 + 5 * t, 30)] for t in range(5)]
    frames[2] = [frames[2][1]]  # the main face is missed in one frame
    frames[3] = frames[3][::-1]  # order within a frame does not matter
    tracked = link_tracks(frames)
    assert [sorted(x.track for x in fr) for fr in tracked] == [[0, 1], [0, 1], [1], [0, 1], [0, 1]]
    assert all(x.width == 80 for fr in tracked for x in fr if x.track == 0)
    largest = select_faces(frames, "largest")  # per frame, without tracking
    assert [fr[0].width for fr in largest] == [80, 80, 30, 80, 80] and all(fr[0].track == 0 for fr in largest)
    assert sum(len(fr) for fr in select_faces(frames, "all")) == 9
    with pytest.raises(DataError, match="largest"):
        select_faces(frames, "biggest")


def test_largest_keeps_the_main_face_when_a_bigger_one_shows_up_briefly():
    """A news inset (a bigger face in 2 of 10 frames, elsewhere in the picture) does not replace the speaker."""
    def f(x, y, s, score=0.99):
        return Face((x, y, x + s, y + s), score)

    frames = [[f(400 + 3 * t, 60, 80, 1.0)] for t in range(10)]
    frames[4] = [f(40, 30, 120, 0.8), frames[4][0]]
    frames[5] = [frames[5][0], f(42, 31, 118, 0.9)]
    frames[7] = [f(40, 30, 120, 0.8)]  # the speaker missed in this frame: the only face is taken
    chosen = select_faces(frames, "largest")
    assert all(len(fr) == 1 and fr[0].track == 0 for fr in chosen)
    assert [fr[0].width for fr in chosen] == [80] * 7 + [120] + [80] * 2
    assert chosen[4][0].score == 1.0 and chosen[4][0].box == frames[4][1].box
    assert select_faces([[], []], "largest") == [[], []]


class _Fixed(FaceDetector):
    """A user backend: one fixed box per frame."""

    def __init__(self, weights=None, box=(1, 2, 3, 4)):
        self.weights = weights
        self.box = box

    def detect(self, frames):
        return [[Face(self.box, 0.5)] for _ in frames]


def test_backends_by_name_by_import_path_and_errors(tmp_path, monkeypatch):
    det = create_detector(f"{__name__}:_Fixed", weights="w.bin")
    assert isinstance(det, _Fixed) and det.weights == "w.bin"
    assert det.detect([np.zeros((4, 4, 3), np.uint8)])[0][0].box == (1, 2, 3, 4)
    register_detector("fixed-test")(_Fixed)
    assert isinstance(create_detector("fixed-test"), _Fixed)
    with pytest.raises(DataError, match="unknown face detector 'retina'"):
        create_detector("retina")
    with pytest.raises(DataError, match="cannot import"):
        create_detector("no_such_module:Thing")
    # MTCNN weights: a missing package names the install command; a wrong file says what is wrong
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingExtraError, match="pip install --no-deps facenet-pytorch"):
        create_detector("mtcnn")
    monkeypatch.undo()
    (tmp_path / "pnet.pt").write_bytes(b"not a state dict")
    with pytest.raises(WeightsUnavailableError, match="pnet.pt"):
        create_detector("mtcnn", weights=str(tmp_path))
    if importlib.util.find_spec("dlib") is None:
        with pytest.raises(MissingExtraError, match="dlib-bin"):
            create_detector("dlib")


def test_mtcnn_loads_weights_from_a_folder_and_rejects_foreign_ones(tmp_path):
    from safetensors.torch import save_file

    from fakescope.faces import MTCNN, ONet, PNet, RNet

    torch.manual_seed(0)
    for name, net in (("pnet", PNet()), ("rnet", RNet()), ("onet", ONet())):
        save_file(net.state_dict(), str(tmp_path / f"{name}.safetensors"))
    det = MTCNN(weights=str(tmp_path))
    torch.manual_seed(0)
    assert torch.allclose(det.pnet.conv1.weight, PNet().conv1.weight)  # the saved (first) draw, not a new one
    assert not torch.allclose(det.pnet.conv1.weight, PNet().conv1.weight)
    save_file({"conv1.weight": torch.zeros(3)}, str(tmp_path / "rnet.safetensors"))
    with pytest.raises(WeightsUnavailableError, match="rnet"):
        MTCNN(weights=str(tmp_path))


# ----------------------------------------------------------------- crops
def test_margin_box_is_square_centred_and_kept_inside_the_frame():
    assert margin_box((100, 100, 200, 180), (640, 480), 1.3) == (85, 75, 215, 205)
    left, top, right, bottom = margin_box((0, 0, 100, 100), (640, 480), 1.3)
    assert (left, top) == (0, 0) and right - left == 130  # shifted in, not padded
    # larger than the frame: centred, the outside is black
    crop = crop_box(np.full((50, 60, 3), 200, np.uint8), (10, 10, 50, 40), size=0, margin=2.0)
    assert crop.shape == (80, 80, 3) and crop[0, 0].tolist() == [0, 0, 0] and crop[40, 40].tolist() == [200] * 3
    with pytest.raises(DataError, match="margin"):
        margin_box((0, 0, 1, 1), (10, 10), 0)


def test_box_crop_resizes_and_keeps_the_face_in_the_middle():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[80:120, 130:170] = 255  # the "face"
    crop = crop_box(frame, (130, 80, 170, 120), size=64, margin=2.0)
    assert crop.shape == (64, 64, 3)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert abs(xs.mean() - 31.5) < 1.5 and abs(ys.mean() - 31.5) < 1.5
    assert 28 <= xs.max() - xs.min() + 1 <= 36  # half the crop


def test_alignment_puts_the_landmarks_on_deepfakebench_template():
    size, scale = 256, 1.3
    dst = five_point_template(size, scale)
    # DeepfakeBench's numbers for its defaults (256 px, scale 1.3): left eye at (95.6, 112.4)
    assert dst[0] == pytest.approx([(30.2946 + 8) * 256 / 112 * 256 / 332.8 + 0.15 * 256 * 256 / 332.8,
                                    51.6963 * 256 / 112 * 256 / 332.8 + 0.15 * 256 * 256 / 332.8], abs=1e-6)
    # a frame with five dots at rotated, scaled, shifted template positions
    angle, s, t = math.radians(20), 0.7, np.array([140.0, 90.0])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    src = (dst * s) @ rot.T + t
    frame = np.zeros((480, 640, 3), np.uint8)
    for k, (x, y) in enumerate(src):
        frame[int(round(y)) - 2:int(round(y)) + 3, int(round(x)) - 2:int(round(x)) + 3] = 50 * (k + 1)
    out = align_face(frame, src, size=size, scale=scale)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    for k, (x, y) in enumerate(dst):
        patch = out[int(round(y)) - 1:int(round(y)) + 2, int(round(x)) - 1:int(round(x)) + 2, 0]
        assert abs(int(patch.max()) - 50 * (k + 1)) <= 12, k
    with pytest.raises(DataError, match="five"):
        align_face(frame, src[:3])
    with pytest.raises(DataError, match="landmarks"):
        face_crop(frame, (0, 0, 10, 10), None, mode="align")
    with pytest.raises(DataError, match="crop mode"):
        face_crop(frame, (0, 0, 10, 10), None, mode="oval")


@needs_mtcnn
def test_aligned_astronaut_has_eyes_where_the_template_puts_them(mtcnn):
    img = skdata.astronaut()
    (face,) = mtcnn.detect([img])[0]
    out = align_face(img, face.landmarks, size=256, scale=1.3)
    (again,) = mtcnn.detect([out])[0]
    err = np.linalg.norm(np.asarray(again.landmarks) - five_point_template(256, 1.3), axis=1)
    assert err.mean() < 12 and err.max() < 16  # 5% of the crop: a least-squares fit, and a turned head
