"""Dataset adapters, each on a tiny tree built here in the dataset's official layout."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from fakescope.prepare.adapters import AdapterOptions, iter_items, list_adapters
from fakescope.errors import DataError


def touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def by(items, attr):
    return Counter(getattr(it, attr) for it in items)


def test_every_adapter_is_listed():
    assert set(list_adapters()) == {"ffpp", "celebdf", "dfdc", "forensynths", "ufd", "dire", "folder", "csv",
                                    "deepfakebench"}


def make_ffpp(root: Path, comps=("c23", "c40"), methods=("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures",
                                                         "FaceShifter")):
    pairs = {"train": [["000", "003"], ["001", "004"]], "val": [["002", "005"]], "test": [["006", "007"]]}
    for split, ps in pairs.items():
        touch(root / "splits" / f"{split}.json", json.dumps(ps).encode())
    for comp in comps:
        for a, b in sum(pairs.values(), []):
            for vid in (a, b):
                touch(root / "original_sequences" / "youtube" / comp / "videos" / f"{vid}.mp4")
            for m in methods:
                touch(root / "manipulated_sequences" / m / comp / "videos" / f"{a}_{b}.mp4")
                touch(root / "manipulated_sequences" / m / comp / "videos" / f"{b}_{a}.mp4")
    # things the adapter must not pick up
    touch(root / "manipulated_sequences" / "Deepfakes" / "masks" / "videos" / "000_003.mp4")
    touch(root / "original_sequences" / "youtube" / "c23" / "videos" / "readme.txt")


def test_ffpp_official_layout_and_splits(tmp_path):
    make_ffpp(tmp_path)
    items = iter_items("ffpp", tmp_path)
    assert by(items, "method") == {"original": 8, "Deepfakes": 8, "Face2Face": 8, "FaceSwap": 8,
                                   "NeuralTextures": 8, "FaceShifter": 8}
    assert all(it.label == (it.method != "original") for it in items)
    # the split of a fake follows its pair of ids; reals by their own id
    split = {it.video_id: it.split for it in items}
    assert split["original/000"] == split["Deepfakes/000_003"] == split["FaceSwap/003_000"] == "train"
    assert split["original/005"] == "val" and split["NeuralTextures/006_007"] == "test"
    assert by(items, "split") == {"train": 24, "val": 12, "test": 12}
    assert all("/c23/" in it.path for it in items)
    c40 = iter_items("ffpp", tmp_path, AdapterOptions(compression="c40", methods=("Deepfakes",)))
    assert by(c40, "method") == {"original": 8, "Deepfakes": 8} and all("/c40/" in it.path for it in c40)
    with pytest.raises(DataError, match="raw, c23 or c40"):
        iter_items("ffpp", tmp_path, AdapterOptions(compression="hq"))
    with pytest.raises(DataError, match="DeepFakeDetection' not found"):
        iter_items("ffpp", tmp_path, AdapterOptions(methods=("DeepFakeDetection",)))


def test_ffpp_split_lists_are_required_or_explicitly_skipped(tmp_path):
    make_ffpp(tmp_path, comps=("c23",), methods=("Deepfakes",))
    (tmp_path / "splits").rename(tmp_path / "lists")
    with pytest.raises(DataError, match="train.json, val.json and test.json"):
        iter_items("ffpp", tmp_path)
    assert len(iter_items("ffpp", tmp_path, AdapterOptions(splits_dir=str(tmp_path / "lists")))) == 16
    assert {it.split for it in iter_items("ffpp", tmp_path, AdapterOptions(splits_dir="none"))} == {""}
    # an id in none of the lists is an error, not a silent train sample
    touch(tmp_path / "original_sequences" / "youtube" / "c23" / "videos" / "999.mp4")
    with pytest.raises(DataError, match="999"):
        iter_items("ffpp", tmp_path, AdapterOptions(splits_dir=str(tmp_path / "lists")))


def test_celebdf_v2(tmp_path):
    for f in ("Celeb-real/id0_0000.mp4", "Celeb-real/id0_0001.mp4", "YouTube-real/00170.mp4",
              "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id0_id1_0001.mp4"):
        touch(tmp_path / f)
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id0_id1_0001.mp4\n1 Celeb-real/id0_0001.mp4\n")
    items = iter_items("celebdf", tmp_path)
    test = {it.video_id: it.label for it in items if it.split == "test"}
    assert test == {"YouTube-real/00170": 0, "Celeb-synthesis/id0_id1_0001": 1, "Celeb-real/id0_0001": 0}
    assert by(items, "split") == {"test": 3, "train": 2}
    (tmp_path / "List_of_testing_videos.txt").write_text("0 YouTube-real/00170.mp4\n")
    with pytest.raises(DataError, match="listed as fake"):
        iter_items("celebdf", tmp_path)


def test_dfdc_training_parts_and_public_test_set(tmp_path):
    part = tmp_path / "dfdc_train_part_0"
    meta = {"aaa.mp4": {"label": "FAKE", "split": "train", "original": "bbb.mp4"},
            "bbb.mp4": {"label": "REAL", "split": "train", "original": None}}
    touch(part / "metadata.json", json.dumps(meta).encode())
    for n in meta:
        touch(part / n)
    touch(tmp_path / "test" / "labels.csv", b"filename,label\nx1.mp4,1\nx2.mp4,0\n")
    touch(tmp_path / "test" / "videos" / "x1.mp4")
    touch(tmp_path / "test" / "videos" / "x2.mp4")
    items = iter_items("dfdc", tmp_path)
    got = {(it.video_id, it.label, it.split) for it in items}
    assert got == {("dfdc_train_part_0/aaa", 1, "train"), ("dfdc_train_part_0/bbb", 0, "train"),
                   ("test/x1", 1, "test"), ("test/x2", 0, "test")}
    assert all(Path(it.path).is_file() for it in items)  # test videos found in their sub-folder
    touch(tmp_path / "test" / "labels.csv", b"filename,label\nx1.mp4,maybe\n")
    with pytest.raises(DataError, match="labels.csv, line 2: label must be"):
        iter_items("dfdc", tmp_path)


def test_forensynths_train_by_class_test_by_generator(tmp_path):
    for split in ("train", "val"):
        for cls in ("car", "cat"):
            for lab in ("0_real", "1_fake"):
                touch(tmp_path / split / cls / lab / "a.png")
    for lab in ("0_real", "1_fake"):
        touch(tmp_path / "test" / "progan" / "horse" / lab / "a.png")  # with class sub-folders
        touch(tmp_path / "test" / "stylegan" / "car" / lab / "b.png")
        touch(tmp_path / "test" / "deepfake" / lab / "c.png")  # without
    items = iter_items("forensynths", tmp_path)
    assert by([it for it in items if it.split == "train"], "method") == {"progan": 4}
    assert by([it for it in items if it.split == "test"], "method") == {"progan": 2, "stylegan": 2, "deepfake": 2}
    assert by(items, "label") == {0: 7, 1: 7}


def test_ufd_pairs_each_generator_with_its_real_images(tmp_path):
    for gen in ("dalle", "glide_100_10", "guided", "ldm_200"):
        touch(tmp_path / gen / "1_fake" / "f.png")
    touch(tmp_path / "laion" / "0_real" / "r1.png")
    touch(tmp_path / "laion" / "0_real" / "r2.png")
    touch(tmp_path / "imagenet" / "0_real" / "i1.png")
    items = iter_items("ufd", tmp_path)
    reals = {it.method: sorted(Path(i.path).name for i in items if i.method == it.method and i.label == 0)
             for it in items}
    assert reals["guided"] == ["i1.png"] and reals["dalle"] == ["r1.png", "r2.png"]
    assert by(items, "label")[1] == 4 and all(it.split == "test" for it in items)


def test_dire_diffusionforensics_layout(tmp_path):
    for split in ("train", "test"):
        touch(tmp_path / "images" / split / "lsun_bedroom" / "adm" / "a.png")
        touch(tmp_path / "images" / split / "lsun_bedroom" / "real" / "r.png")
    touch(tmp_path / "images" / "test" / "lsun_bedroom" / "pndm" / "p.png")
    touch(tmp_path / "dire" / "test" / "imagenet" / "adm" / "d.png")
    touch(tmp_path / "dire" / "test" / "imagenet" / "real" / "r.png")
    items = iter_items("dire", tmp_path)
    assert {(it.split, it.method, it.label) for it in items} == {
        ("train", "lsun_bedroom/adm", 0), ("train", "lsun_bedroom/adm", 1), ("test", "lsun_bedroom/adm", 0),
        ("test", "lsun_bedroom/adm", 1), ("test", "lsun_bedroom/pndm", 0), ("test", "lsun_bedroom/pndm", 1)}
    dire_maps = iter_items("dire", tmp_path, AdapterOptions(variant="dire"))
    assert {it.method for it in dire_maps} == {"imagenet/adm"}


def test_generic_folder_with_videos_and_images(tmp_path):
    touch(tmp_path / "train" / "real" / "v1.mp4")
    touch(tmp_path / "train" / "fake" / "v2.MP4")
    touch(tmp_path / "test" / "gen1" / "0_real" / "a.png")
    touch(tmp_path / "test" / "gen1" / "1_fake" / "b.jpg")
    touch(tmp_path / "test" / "gen1" / "1_fake" / "notes.txt")
    items = iter_items("folder", tmp_path)
    got = {(Path(it.path).name, it.label, it.split, it.method, it.kind) for it in items}
    assert got == {("v1.mp4", 0, "train", "", "video"), ("v2.MP4", 1, "train", "", "video"),
                   ("a.png", 0, "test", "gen1", "image"), ("b.jpg", 1, "test", "gen1", "image")}
    assert {it.video_id for it in items if it.kind == "video"} == {"train/real/v1", "train/fake/v2"}
    with pytest.raises(DataError, match="no folder videos or images"):
        iter_items("folder", touch(tmp_path / "empty" / "x.txt").parent)


def test_csv_list(tmp_path):
    touch(tmp_path / "media" / "a.mp4")
    touch(tmp_path / "media" / "b.png")
    listing = tmp_path / "list.csv"
    listing.write_text("file,label,method,split\nmedia/a.mp4,fake,DF,Test\nmedia/b.png,0,,train\n")
    a, b = sorted(iter_items("csv", listing), key=lambda it: it.path)
    assert (a.label, a.method, a.split, a.kind, a.video_id, a.dataset) == (1, "DF", "test", "video", "media/a", "list")
    assert (b.label, b.split, b.kind) == (0, "train", "image") and Path(b.path).parent == tmp_path / "media"
    listing.write_text("path,label\nmedia/a.mp4,2\n")
    with pytest.raises(DataError, match="list.csv, line 2: label must be 0/1 or real/fake, got '2'"):
        iter_items("csv", listing)
    listing.write_text("name,label\na,0\n")
    with pytest.raises(DataError, match="lacks the column"):
        iter_items("csv", listing)


def test_deepfakebench_json_import(tmp_path):
    frames = tmp_path / "rgb" / "FaceForensics++" / "manipulated_sequences" / "Deepfakes" / "c23" / "frames"
    for i in (0, 10):
        touch(frames / "000_003" / f"{i:03d}.png")
    data = {"FaceForensics++": {
        "FF-real": {"test": {"c23": {"000": {"label": "FF-real", "frames": [
            "FaceForensics++\\original_sequences\\youtube\\c23\\frames\\000\\000.png"]}}}},
        "FF-DF": {"test": {"c23": {"000_003": {"label": "FF-DF", "frames": [
            "FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_003/000.png",
            "FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_003/010.png"]}},
            "c40": {"000_003": {"label": "FF-DF", "frames": ["elsewhere/000.png"]}}}}}}
    js = touch(tmp_path / "FaceForensics++.json", json.dumps(data).encode())
    items = iter_items("deepfakebench", js, AdapterOptions(frames_root=str(tmp_path / "rgb")))
    assert len(items) == 3  # c40 left out by the default compression (c23)
    fake = [it for it in items if it.label == 1]
    assert {it.frame_index for it in fake} == {0, 10} and {it.video_id for it in fake} == {"FF-DF/c23/000_003"}
    assert all(Path(it.path).is_file() for it in fake) and all(it.kind == "frame" for it in items)
    real = [it for it in items if it.label == 0]
    assert real[0].method == "FF-real" and "\\" not in real[0].path and real[0].split == "test"
