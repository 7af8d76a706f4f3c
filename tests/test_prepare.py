"""``fakescope prepare`` end to end on small face videos made here: crops, manifests, resume, shards, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakescope.cli import build_parser, main
from fakescope.data.datasets import ImageDataset, build_dataset, collate, read_manifest
from fakescope.data.manifest import parse_box
from fakescope.prepare import auto_workers, make_units, options_from, prepare, shard_of
from fakescope.prepare.adapters import iter_items
from fakescope.data.transforms import Preprocessor
from fakescope.media.video import write_video
from fakescope.errors import DataError
from fakescope.models import PreprocessConfig
from conftest import MTCNN_MISSING
from test_faces import HAVE_MTCNN, face_frames

pytestmark = pytest.mark.skipif(not HAVE_MTCNN, reason=MTCNN_MISSING)
OPT = options_from(num_frames=6, size=64)


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def face_videos(tmp_path_factory) -> Path:
    """train/0_real/a, train/1_fake/b (one face each), test/1_fake/c (two faces); 12 frames each."""
    root = tmp_path_factory.mktemp("faces")
    for rel, seed, n_faces in (("train/0_real/a.mp4", 0, 1), ("train/1_fake/b.mp4", 1, 1),
                               ("test/1_fake/c.mp4", 2, 2)):
        frames, _ = face_frames(12, seed=seed, faces=n_faces)
        write_video(root / rel, frames, fps=12)
    return root


def test_prepare_videos_end_to_end(face_videos, tmp_path):
    out = tmp_path / "out"
    s = prepare("folder", face_videos, out, OPT, echo=lambda m: None)
    assert (s.videos, s.frames, s.frames_with_face, s.faces, s.exit_code) == (3, 18, 18, 18, 0)
    rows = rows_of(out / "manifest.csv")
    assert len(rows) == 18 and set(rows[0]) >= {"path", "label", "dataset", "method", "split", "video_id",
                                                "frame_index", "box", "score", "track"}
    assert {(r["split"], r["label"]) for r in rows} == {("train", "0"), ("train", "1"), ("test", "1")}
    # crops: lossless PNG files of the asked size, one folder per video, named by frame number
    first = out / rows[0]["path"]
    assert first.suffix == ".png" and Image.open(first).size == (64, 64)
    assert sorted(p.name for p in first.parent.iterdir()) == [f"{i:06d}.png" for i in (0, 2, 4, 7, 9, 11)]
    # the box is where the face was pasted (frame i of the video with seed 0)
    _, truth = face_frames(12, seed=0)
    for r in rows:
        if r["video_id"] == "train/0_real/a":
            x1, y1, x2, y2 = parse_box(r["box"])
            tx1, ty1, tx2, ty2 = truth[int(r["frame_index"])][0]
            assert tx1 <= (x1 + x2) / 2 <= tx2 and ty1 <= (y1 + y2) / 2 <= ty2 and float(r["score"]) > 0.9
    # what the engine reads
    train = read_manifest(out / "manifest.csv", split="train")
    assert len(train) == 12 and {s.video_id for s in train} == {"train/0_real/a", "train/1_fake/b"}
    ds = ImageDataset(train, Preprocessor(PreprocessConfig(input_size=64, policy="resize")))
    batch = collate([ds[i] for i in range(len(ds))])
    assert batch["image"].shape == (12, 3, 64, 64) and not batch["skipped"]
    # clip models read the same manifest: frames grouped by video, in frame order
    clips = build_dataset(train, PreprocessConfig(input_size=32, policy="resize", clip_len=4), "clip", train=False)
    assert len(clips) == 4 and clips[0]["image"].shape == (4, 3, 32, 32)  # 6 frames: a window and the tail
    assert [f.frame_index for f in clips.items[0].frames] == [0, 2, 4, 7]
    # one set per split (and per fake method, with the split's reals)
    assert len(read_manifest(out / "sets" / "train" / "all.csv")) == 12
    videos = rows_of(out / "videos.csv")
    assert [(v["status"], v["frames_total"], v["frames_sampled"]) for v in videos] == [("ok", "12", "6")] * 3
    assert rows_of(out / "failures.csv") == []


def test_reading_ahead_in_a_thread_changes_nothing(face_videos, tmp_path):
    """The next video is decoded while this one's faces are detected; the output is that of one-by-one work."""
    outs = {}
    for ahead in (True, False):
        out = tmp_path / f"ahead_{ahead}"
        prepare("folder", face_videos, out, options_from(num_frames=3, size=32, prefetch=ahead),
                echo=lambda m: None)
        outs[ahead] = out
    assert (outs[True] / "manifest.csv").read_text() == (outs[False] / "manifest.csv").read_text()
    crops = sorted(p.relative_to(outs[True]) for p in (outs[True] / "crops").rglob("*.png"))
    assert len(crops) == 9
    for rel in crops:
        assert np.array_equal(np.asarray(Image.open(outs[True] / rel)), np.asarray(Image.open(outs[False] / rel)))


def test_stride_sampling_and_short_videos_through_the_command_line(tmp_path, capsys):
    root = tmp_path / "src"
    frames, _ = face_frames(12)
    write_video(root / "1_fake" / "long.mp4", frames)
    write_video(root / "1_fake" / "short.mp4", frames[:3])
    out = tmp_path / "out"
    assert main(["prepare", "folder", "--root", str(root), "--out", str(out), "--sampling", "stride", "--stride",
                 "2", "--num-frames", "5", "--size", "32", "--progress", "off"]) == 0
    printed = capsys.readouterr().out
    videos = {v["video_id"]: v for v in rows_of(out / "videos.csv")}
    assert (videos["1_fake/long"]["frames_sampled"], videos["1_fake/long"]["short"]) == ("5", "0")
    assert (videos["1_fake/short"]["frames_sampled"], videos["1_fake/short"]["short"]) == ("2", "1")
    assert "short videos (fewer frames than asked, all taken): 1" in printed
    got = sorted(int(r["frame_index"]) for r in rows_of(out / "manifest.csv") if r["video_id"] == "1_fake/long")
    assert got == [0, 2, 4, 6, 8]


def test_all_faces_get_track_ids(face_videos, tmp_path):
    src = tmp_path / "one"
    (src / "1_fake").mkdir(parents=True)
    (src / "1_fake" / "c.mp4").symlink_to(face_videos / "test" / "1_fake" / "c.mp4")
    out = tmp_path / "out"
    s = prepare("folder", src, out, options_from(num_frames=4, size=48, faces="all"), echo=lambda m: None)
    rows = rows_of(out / "manifest.csv")
    assert s.faces == 8 and sorted(r["track"] for r in rows) == ["0"] * 4 + ["1"] * 4
    big = [parse_box(r["box"]) for r in rows if r["track"] == "0"]
    small = [parse_box(r["box"]) for r in rows if r["track"] == "1"]
    assert min(b[2] - b[0] for b in big) > max(b[2] - b[0] for b in small)  # track 0 is the main face
    # each face is a video of its own for clip models and video-level metrics
    assert {x.video_id for x in read_manifest(out / "manifest.csv")} == {"1_fake/c", "1_fake/c/face1"}
    assert sum(1 for p in (out / "crops").rglob("*_face1.png")) == 4


def test_tracked_face_search_gives_the_crops_of_a_full_search(face_videos, tmp_path):
    """--face-search track (the default) skips faces under a third of the main face's size; same output."""
    (still,), _ = face_frames(1, seed=3)
    patch = still[30:126, 20:116]  # the pasted face, 96 px
    # a larger face (1.4x) shows up on the other side from frame 3 on: over the video it is the main face
    arrives = [still.copy() for _ in range(12)]
    big = np.asarray(Image.fromarray(patch).resize((134, 134), Image.Resampling.BICUBIC))
    for f in arrives[3:]:
        f[60:194, 180:314] = big
    # the face shrinks to half its size halfway: the search for a third of its old size is not enough
    shrinks = [still if i < 6 else np.full_like(still, 110) for i in range(12)]
    small = np.asarray(Image.fromarray(patch).resize((44, 44), Image.Resampling.BICUBIC))
    for f in shrinks[6:]:
        f[60:104, 100:144] = small
    for name, frames in (("arrives", arrives), ("shrinks", shrinks)):
        write_video(tmp_path / name / "1_fake" / f"{name}.mp4", frames, fps=12)
    for name, root in (("pasted", face_videos), ("arrives", tmp_path / "arrives"), ("shrinks", tmp_path / "shrinks")):
        outs, videos = {}, {}
        for search in ("track", "full"):
            out = tmp_path / f"{name}_{search}"
            s = prepare("folder", root, out, options_from(num_frames=12, size=48, face_search=search),
                        echo=lambda m: None)
            assert s.exit_code == 0 and s.frames_with_face == s.frames
            outs[search], videos[search] = out, rows_of(out / "videos.csv")
        assert (outs["track"] / "manifest.csv").read_text() == (outs["full"] / "manifest.csv").read_text()
        for p in sorted((outs["full"] / "crops").rglob("*.png")):
            assert np.array_equal(np.asarray(Image.open(p)),
                                  np.asarray(Image.open(outs["track"] / p.relative_to(outs["full"]))))
        # all frames but the first of each video searched for larger faces only; none with --face-search full
        assert [int(v["frames_tracked"]) for v in videos["track"]] == [11] * len(videos["track"])
        assert [int(v["frames_tracked"]) for v in videos["full"]] == [0] * len(videos["full"])
        again = [int(v["frames_searched_again"]) for v in videos["track"]]
        if name == "arrives":  # the larger face is found where it appears, without a second search
            assert again == [0]
            boxes = [parse_box(r["box"]) for r in rows_of(outs["track"] / "manifest.csv")]
            assert [b[2] - b[0] > 50 for b in boxes] == [False] * 3 + [True] * 9  # faces of 41 px, then 56
        if name == "shrinks":  # frames 6, 7, 8 (batch 1-8) in full again; batch 9-11 sized by the smaller face
            assert again == [3]
    # a folder prepared before the option existed searched every size: it resumes with --face-search full
    old = tmp_path / "pasted_full"
    meta = json.loads((old / "prepare.json").read_text())
    del meta["settings"]["face_search"]
    (old / "prepare.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="face_search 'full' -> 'track'"):
        prepare("folder", face_videos, old, options_from(num_frames=12, size=48), echo=lambda m: None)
    s = prepare("folder", face_videos, old, options_from(num_frames=12, size=48, face_search="full"),
                echo=lambda m: None)
    assert (s.skipped, s.processed) == (3, 0)
    # every face (--faces all) is searched for in full
    prepare("folder", face_videos, tmp_path / "all", options_from(num_frames=4, size=48, faces="all"),
            echo=lambda m: None)
    assert {v["frames_tracked"] for v in rows_of(tmp_path / "all" / "videos.csv")} == {"0"}
    with pytest.raises(DataError, match="face-search"):
        prepare("folder", face_videos, tmp_path / "bad", options_from(face_search="nearby"), echo=lambda m: None)


def test_aligned_crops(face_videos, tmp_path):
    s = prepare("folder", face_videos / "train", tmp_path / "out",
                options_from(num_frames=2, crop="align", size=96), echo=lambda m: None)
    crops = sorted((tmp_path / "out" / "crops").rglob("*.png"))
    assert s.faces == 4 and len(crops) == 4 and Image.open(crops[0]).size == (96, 96)


def test_rerun_skips_finished_videos_and_an_interrupted_run_leaves_no_half_entry(face_videos, tmp_path,
                                                                                 monkeypatch):
    out = tmp_path / "out"
    calls = {"n": 0}
    real_save = Image.Image.save

    def save_then_stop(self, fp, *a, **k):
        calls["n"] += 1
        if calls["n"] == 9:  # the third crop of the second video: two are already in its folder
            assert len(list(Path(fp).parent.iterdir())) == 2
            raise KeyboardInterrupt
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        prepare("folder", face_videos, out, OPT, echo=lambda m: None)
    monkeypatch.undo()
    assert not list(out.rglob("*.tmp-*")), "a half-written crop folder was left behind"
    assert len(list((out / ".records").glob("*.json"))) == 1
    s = prepare("folder", face_videos, out, OPT, echo=lambda m: None)
    assert (s.skipped, s.processed) == (1, 2) and s.rows == 18
    again = prepare("folder", face_videos, out, OPT, echo=lambda m: None)
    assert (again.skipped, again.processed, again.rows) == (3, 0, 18)
    with pytest.raises(DataError, match="size 64 -> 128"):
        prepare("folder", face_videos, out, options_from(num_frames=6, size=128), echo=lambda m: None)


def test_shards_split_the_work_without_overlap(face_videos, tmp_path):
    units = make_units(iter_items("folder", face_videos))
    assert sorted(shard_of(u.key, 2) for u in units) == sorted(shard_of(u.key, 2) for u in units[::-1])
    out = tmp_path / "out"
    s0 = prepare("folder", face_videos, out, options_from(num_frames=6, size=64, num_shards=2, shard_index=0),
                 echo=lambda m: None)
    s1 = prepare("folder", face_videos, out, options_from(num_frames=6, size=64, num_shards=2, shard_index=1),
                 echo=lambda m: None)
    assert s0.units + s1.units == 3 and s0.processed + s1.processed == 3
    assert s1.rows == 18  # the last shard to finish writes the complete manifest
    with pytest.raises(DataError, match="shard-index"):
        prepare("folder", face_videos, out, options_from(num_shards=2, shard_index=2), echo=lambda m: None)


def test_bad_inputs_are_reported_and_the_run_goes_on(face_videos, tmp_path, capsys):
    root = tmp_path / "bad"
    fake = root / "1_fake"
    fake.mkdir(parents=True)
    (fake / "good.mp4").write_bytes((face_videos / "train" / "1_fake" / "b.mp4").read_bytes())
    (fake / "zero.mp4").write_bytes(b"")
    (fake / "text.mp4").write_text("not a video\n" * 50)
    frames, _ = face_frames(16)
    data = write_video(tmp_path / "whole.mp4", frames, container_options={"movflags": "faststart"}).read_bytes()
    (fake / "truncated.mp4").write_bytes(data[: len(data) // 2])
    write_video(fake / "noface.mp4", [np.full((120, 160, 3), 90, np.uint8)] * 8)
    write_video(fake / "voice.mp4", [], audio=True)
    real = root / "0_real"
    real.mkdir()
    Image.fromarray(frames[0]).save(real / "ok.png")
    (real / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    argv = ["prepare", "folder", "--root", str(root), "--out", str(out), "--num-frames", "4", "--size", "32",
            "--progress", "off"]
    assert main(argv) == 1
    printed = capsys.readouterr().out
    failures = {Path(r["path"]).name: r["reason"] for r in rows_of(out / "failures.csv")}
    assert failures == {"zero.mp4": "empty-file", "text.mp4": "cannot-open", "truncated.mp4": "decode-error",
                        "noface.mp4": "no-face", "voice.mp4": "no-video-stream", "broken.png": "image-decode"}
    for name, reason in failures.items():
        assert any(name in line and reason in line for line in printed.splitlines()), (name, printed)
    assert "failures this run: 6" in printed
    rows = rows_of(out / "manifest.csv")
    assert {Path(r["path"]).parent.name for r in rows} == {"good", "0_real"} and len(rows) == 5
    # a re-run skips what failed (and still says so in its exit status); --retry-failed tries again
    assert main(argv) == 1
    assert "0 processed now, 7 already done" in capsys.readouterr().out
    assert main(argv + ["--retry-failed"]) == 1
    assert "failures this run: 6" in capsys.readouterr().out


def test_image_dataset_is_referenced_in_place(tmp_path):
    root = tmp_path / "imgs"
    for lab, n in (("0_real", 3), ("1_fake", 2)):
        (root / "test" / "gan" / lab).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / "test" / "gan" / lab / f"{i}.png")
    out = tmp_path / "out"
    s = prepare("forensynths", root, out, echo=lambda m: None)
    assert (s.images, s.rows, s.exit_code) == (5, 5, 0)
    samples = read_manifest(out / "sets" / "test" / "gan.csv")
    assert len(samples) == 5 and all(Path(x.path).is_file() for x in samples)
    assert not (out / "crops").exists()
    assert torch.tensor([x.label for x in samples]).sum() == 2


def test_rewriting_the_sets_leaves_a_concurrent_shards_temporary_files_alone(tmp_path, monkeypatch):
    """Two shards running at once both rewrite sets/: one must not delete the other's half-written file (its
    rename then failed: FileNotFoundError), nor fail on a stale set the other removed first."""
    import fakescope.data.manifest as manifest

    out = tmp_path / "out"
    rows = [{"path": f"crops/{i}.png", "label": str(i % 2), "method": "gan" if i % 2 else "", "split": "test"}
            for i in range(4)]
    manifest.write_outputs(out, [{"key": "k", "rows": rows}])
    folder = out / "sets" / "test"
    theirs = folder / ".gan.csv.tmp-99999"  # the other shard, between writing and renaming
    theirs.write_text("half written")
    stale = folder / "old.csv"  # a set of an earlier run, which the other shard may remove first
    stale.write_text("path,label\n")
    real_glob = Path.glob

    def glob_then_other_shard_removes(self, pattern):
        found = list(real_glob(self, pattern))
        stale.unlink(missing_ok=True)
        return iter(found)

    monkeypatch.setattr(Path, "glob", glob_then_other_shard_removes)
    manifest.write_outputs(out, [{"key": "k", "rows": rows}])
    monkeypatch.undo()
    assert theirs.read_text() == "half written"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "all.csv", "all.meta.json", "gan.csv", "gan.meta.json"]


def test_worker_processes_give_the_output_of_one_process(face_videos, tmp_path):
    """--workers: videos go to worker processes (here replaced after each video); same crops, same manifest."""
    outs = {}
    for workers in (0, 2):
        out = tmp_path / f"workers_{workers}"
        s = prepare("folder", face_videos, out, options_from(num_frames=3, size=32, workers=workers,
                                                               videos_per_worker=1), echo=lambda m: None)
        assert (s.videos, s.frames_with_face, s.exit_code) == (3, 9, 0)
        assert (s.worker_peak_mib > 0) == (workers > 0)  # the workers report their peak memory
        outs[workers] = out
    manifest = {w: sorted(rows_of(o / "manifest.csv"), key=lambda r: r["path"]) for w, o in outs.items()}
    assert manifest[0] == manifest[2] and len(manifest[0]) == 9
    for r in manifest[0]:
        assert np.array_equal(np.asarray(Image.open(outs[0] / r["path"])), np.asarray(Image.open(outs[2] / r["path"])))
    assert sorted(r["video_id"] for r in rows_of(outs[2] / "videos.csv")) == ["test/1_fake/c", "train/0_real/a",
                                                                               "train/1_fake/b"]


def test_a_worker_that_dies_costs_its_video_only(tmp_path, capsys):
    """A video that kills its worker process (here: the detector plug-in on a black frame) is reported; the
    others, in flight with it or after it, are prepared."""
    root = tmp_path / "src"
    frames, _ = face_frames(6)
    for name in ("a", "b", "d", "e"):
        write_video(root / "0_real" / f"{name}.mp4", frames)
    write_video(root / "1_fake" / "black.mp4", [np.zeros_like(f) for f in frames])
    out = tmp_path / "out"
    code = main(["prepare", "folder", "--root", str(root), "--out", str(out), "--num-frames", "2", "--size", "32",
                 "--detector", "prepare_plugins:CentreFace", "--workers", "2", "--videos-per-worker", "0",
                 "--progress", "off"])
    assert code == 1
    videos = {v["video_id"]: v["status"] for v in rows_of(out / "videos.csv")}
    assert videos == {"0_real/a": "ok", "0_real/b": "ok", "0_real/d": "ok", "0_real/e": "ok",
                      "1_fake/black": "failed"}
    (failure,) = rows_of(out / "failures.csv")
    assert failure["reason"] == "worker-crashed" and failure["path"].endswith("black.mp4")
    assert "worker-crashed: 1" in capsys.readouterr().out
    assert len(rows_of(out / "manifest.csv")) == 8


def test_workers_that_cannot_start_are_an_error_not_failed_videos(tmp_path, monkeypatch):
    import os

    root = tmp_path / "src"
    frames, _ = face_frames(4)
    write_video(root / "0_real" / "a.mp4", frames)
    monkeypatch.setenv("FAKESCOPE_TEST_PARENT", str(os.getpid()))
    with pytest.raises(DataError, match="worker processes could not start"):
        prepare("folder", root, tmp_path / "out", options_from(num_frames=2, size=32, workers=1,
                                                                 detector="prepare_plugins:OnlyInParent"),
                echo=lambda m: None)
    with pytest.raises(DataError, match="--workers must be 0"):
        prepare("folder", root, tmp_path / "out2", options_from(workers=-1), echo=lambda m: None)


def test_command_line_workers_default_to_auto_and_refuse_nonsense(capsys, monkeypatch):
    """`prepare` runs videos in worker processes unless told otherwise (a decoder crash then costs one video)."""
    parse = build_parser().parse_args
    assert parse(["prepare", "csv", "--root", "r", "--out", "o"]).workers == "auto"
    assert parse(["prepare", "csv", "--root", "r", "--out", "o", "--workers", "0"]).workers == 0
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(3)))
    assert auto_workers() == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))
    assert auto_workers() == 8  # capped: each worker holds a detector and a video's frames
    for bad in ("-1", "many"):
        with pytest.raises(SystemExit) as exc:
            parse(["prepare", "csv", "--root", "r", "--out", "o", "--workers", bad])
        assert exc.value.code == 2
        assert f"'{bad}': give a number of processes (0 or more) or auto" in capsys.readouterr().err
