from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_images
from fakescope.data.datasets import ClipDataset, ImageDataset, collate, load_samples, read_manifest, scan_folder
from fakescope.data.transforms import Preprocessor
from fakescope.media.image import load_image, to_rgb
from fakescope.errors import DataError
from fakescope.models import PreprocessConfig


def test_scan_folder_labels_methods_and_videos(tmp_path):
    write_images(tmp_path / "car" / "0_real", 3)
    write_images(tmp_path / "car" / "1_fake", 2)
    write_images(tmp_path / "vids" / "1_fake" / "clipA", 2)
    samples = scan_folder(tmp_path)
    assert len(samples) == 7
    assert sum(s.label for s in samples) == 4
    assert {s.method for s in samples} == {"car", "vids"}
    video = [s for s in samples if s.video_id]
    assert {s.video_id for s in video} == {"vids/1_fake/clipA"}
    assert sorted(s.frame_index for s in video) == [0, 1]
    assert all(s.video_id is None for s in samples if s.method == "car")


def test_missing_empty_and_unlabelled_folders_are_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    write_images(tmp_path / "plain", 2)
    with pytest.raises(DataError, match="0_real"):
        scan_folder(tmp_path / "plain")
    (tmp_path / "empty" / "0_real").mkdir(parents=True)
    write_images(tmp_path / "empty" / "1_fake", 1)
    with pytest.raises(DataError, match=r"empty/0_real: label folder has no images"):
        scan_folder(tmp_path / "empty")


def test_manifest_reading_and_errors(tmp_path):
    write_images(tmp_path / "frames", 3)
    m = tmp_path / "m.csv"
    m.write_text("path,label,split,video_id,frame_index,method\n"
                 "frames/0000.png,0,train,v1,0,original\nframes/0001.png,1,test,v2,0,Deepfakes\n"
                 "frames/0002.png,1,test,v2,1,Deepfakes\n")
    test = read_manifest(m, split="test")
    assert [s.label for s in test] == [1, 1] and test[0].video_id == "v2" and test[1].frame_index == 1
    assert test[0].path == str(tmp_path / "frames" / "0001.png")
    with pytest.raises(DataError, match="split 'val'"):
        load_samples(str(m), split="val")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nframes/0000.png,2\n")
    with pytest.raises(DataError, match=r"bad.csv, line 2: label must be 0"):
        read_manifest(bad)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("file,label\nx.png,0\n")
    with pytest.raises(DataError, match="lacks the column"):
        read_manifest(nocol)


def test_unreadable_image_is_skipped_with_a_warning_and_counted(tmp_path):
    paths = write_images(tmp_path / "d" / "0_real", 3)
    write_images(tmp_path / "d" / "1_fake", 1)
    paths[1].write_bytes(b"not an image")
    samples = scan_folder(tmp_path / "d")
    ds = ImageDataset(samples, Preprocessor(PreprocessConfig(input_size=16)))
    with pytest.warns(RuntimeWarning, match=r"skipping unreadable sample .*0001.png"):
        items = [ds[i] for i in range(len(ds))]
    batch = collate(items)
    assert batch["image"].shape == (3, 3, 16, 16)
    assert len(batch["skipped"]) == 1 and "0001.png" in batch["skipped"][0][1]
    # the bad sample is not replaced by another one
    assert sorted(batch["index"].tolist()) == [0, 2, 3]


def test_truncated_image_is_an_error(tmp_path):
    p = write_images(tmp_path, 1, size=64, kind="smooth")[0]
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot decode"):
        load_image(p)


def test_modes_are_converted_to_rgb(tmp_path):
    gray = Image.fromarray(np.full((8, 8), 100, np.uint8), "L")
    rgba = Image.fromarray(np.full((8, 8, 4), 200, np.uint8), "RGBA")
    pal = gray.convert("P")
    for img in (gray, rgba, pal):
        out = to_rgb(img)
        assert out.mode == "RGB" and out.size == (8, 8)
    assert np.asarray(to_rgb(rgba))[0, 0].tolist() == [157, 157, 157]  # 200 * 200/255 over black


def test_preprocessing_policies():
    img = Image.fromarray(np.arange(40 * 60 * 3, dtype=np.uint32).reshape(40, 60, 3).astype(np.uint8))
    crop = Preprocessor(PreprocessConfig(input_size=32, policy="crop"))
    out = crop(img)
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
    # centre crop keeps native pixels (no resampling)
    assert torch.equal(out, torch.from_numpy(np.asarray(img)[4:36, 14:46].transpose(2, 0, 1).copy()))
    small = Image.new("RGB", (20, 10))
    assert crop(small).shape == (3, 32, 32)  # smaller than the crop: resized first
    resize = Preprocessor(PreprocessConfig(input_size=24, policy="resize"))
    assert resize(img).shape == (3, 24, 24)
    rc = Preprocessor(PreprocessConfig(input_size=16, policy="resize_crop", resize_to=20))
    assert rc(img).shape == (3, 16, 16)


def test_training_crops_are_random_and_evaluation_is_deterministic():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    pp = PreprocessConfig(input_size=32)
    ev = Preprocessor(pp)
    assert torch.equal(ev(img), ev(img))
    from fakescope.config import AugmentConfig

    tr = Preprocessor(pp, train=True, augment=AugmentConfig())
    rng = random.Random(0)
    crops = {tuple(tr(img, rng).flatten()[:50].tolist()) for _ in range(8)}
    assert len(crops) > 1


def test_clip_dataset_windows_padding_and_shared_geometry(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 150, (40, 40, 3))
    (tmp_path / "v" / "0_real" / "long").mkdir(parents=True)
    for t in range(7):  # frame t = base + 10 t, so a crop shared by all frames keeps that difference
        Image.fromarray((base + 10 * t).astype(np.uint8)).save(tmp_path / "v" / "0_real" / "long" / f"{t:03d}.png")
    write_images(tmp_path / "v" / "1_fake" / "short", 2, size=40)
    samples = scan_folder(tmp_path / "v")
    pp = PreprocessConfig(input_size=32, clip_len=3)
    ev = ClipDataset(samples, Preprocessor(pp), clip_len=3, train=False)
    per_video = {}
    for it in ev.items:
        per_video.setdefault(it.video_id, []).append(it)
    # long: 7 frames -> windows [0:3] [3:6] and the last full window [4:7]; short: 2 frames padded to 3
    assert [[f.frame_index for f in it.frames] for it in per_video["0_real/long"]] == [[0, 1, 2], [3, 4, 5],
                                                                                        [4, 5, 6]]
    assert all(it.padded == 0 for it in per_video["0_real/long"])
    assert [it.padded for it in per_video["1_fake/short"]] == [1]
    item = ev[ev.items.index(per_video["1_fake/short"][0])]
    assert item["image"].shape == (3, 3, 32, 32) and item["padded"] == 1 and item["label"] == 1
    assert torch.equal(item["image"][1], item["image"][2])  # padding repeats the last frame

    from fakescope.config import AugmentConfig

    tr = ClipDataset(samples, Preprocessor(pp, train=True, augment=AugmentConfig(hflip=True)), clip_len=3,
                     train=True)
    assert len(tr) == 2  # one item per video in training
    random.seed(0)
    for _ in range(5):
        clip = tr[0]["image"].int()
        assert clip.shape == (3, 3, 32, 32)
        diffs = clip[1:] - clip[:1]
        step = diffs[0].flatten()[0].item()
        assert step % 10 == 0 and torch.all(diffs[0] == step) and torch.all(diffs[1] == 2 * step)


def test_clip_dataset_needs_video_ids(tmp_path):
    write_images(tmp_path / "0_real", 2)
    samples = scan_folder(tmp_path)
    with pytest.raises(DataError, match="video"):
        ClipDataset(samples, Preprocessor(PreprocessConfig(clip_len=2)), clip_len=2, train=False)


def test_max_per_source_is_a_deterministic_subset(tmp_path):
    write_images(tmp_path / "0_real", 10)
    write_images(tmp_path / "1_fake", 10)
    a = load_samples(str(tmp_path), max_n=5, seed=3)
    b = load_samples(str(tmp_path), max_n=5, seed=3)
    assert a == b and len(a) == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_samples(str(tmp_path))) == 20
