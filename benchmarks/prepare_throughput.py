"""Frames-to-crops throughput of ``fakescope prepare`` against the DeepfakeBench way, and its peak memory.

    python benchmarks/prepare_throughput.py [--videos LABELS.csv] [--frames 32]

Needs OpenCV for the baseline: ``pip install 'fakescope[bench]'``.

Both pipelines take 32 frames per video spread over it, find faces with the
same detector (fakescope's MTCNN, same weights, thresholds, minimum face size
and one torch thread), keep the largest face, cut a 1.3x box crop of 256 px
and save it as PNG. They differ where DeepfakeBench's ``preprocess.py`` and
``fakescope prepare`` differ:

* baseline (DeepfakeBench): OpenCV decodes **every** frame of the video and
  keeps the sampled ones; the detector runs on each sampled frame at its
  **full resolution**, one frame at a time;
* fakescope: PyAV seeks and decodes only what the sampled frames need; the
  detector runs on the video's frames **in one batch**, downscaled to 640 px
  (boxes are mapped back and crops cut from the full-resolution frame).

The videos default to the FF++ c23 fixture beside the repository
(``../shared/fixtures/ffpp-c23-videos/labels.csv``). Timing runs once per
pipeline in this process (after a read of every file so that both find them
in the page cache); peak memory (max RSS) is measured in child processes that
prepare 1 video (the one with the largest frames) and all videos. The last line is the speed-up
(baseline time / fakescope time); the goal is at least 5.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = REPO.parent / "shared" / "fixtures" / "ffpp-c23-videos" / "labels.csv"


def video_paths(labels: Path) -> list[Path]:
    with open(labels, newline="") as fh:
        rows = list(csv.DictReader(fh))
    col = "path" if rows and "path" in rows[0] else "file"
    return [labels.parent / r[col] for r in rows]


def baseline(paths: list[Path], frames: int, out: Path) -> dict[str, float]:
    """DeepfakeBench's procedure with fakescope's detector: decode all, detect per sampled frame at full size."""
    import cv2
    import numpy as np
    from PIL import Image

    from fakescope.data.align import crop_box
    from fakescope.data.faces import create_detector

    det = create_detector("mtcnn", detect_size=0)  # full resolution, as DeepfakeBench runs dlib
    t_decode = t_detect = t_save = 0.0
    found = n = 0
    for p in paths:
        t0 = time.perf_counter()
        cap = cv2.VideoCapture(str(p))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = set(np.linspace(0, count - 1, frames, endpoint=True, dtype=int).tolist())
        kept = []
        for i in range(count):
            ok, bgr = cap.read()
            if not ok:
                break
            if i in wanted:
                kept.append((i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        cap.release()
        t1 = time.perf_counter()
        t_decode += t1 - t0
        for i, rgb in kept:
            t2 = time.perf_counter()
            faces = det.detect([rgb])[0]
            t3 = time.perf_counter()
            t_detect += t3 - t2
            n += 1
            if faces:
                found += 1
                face = max(faces, key=lambda f: f.area)
                folder = out / p.parent.name / p.stem
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop_box(rgb, face.box, 256, 1.3)).save(folder / f"{i:06d}.png", compress_level=1)
            t_save += time.perf_counter() - t3
    total = t_decode + t_detect + t_save
    return {"total": total, "decode": t_decode, "detect": t_detect, "save": t_save, "frames": n, "found": found}


def ours(labels: Path, frames: int, out: Path) -> dict[str, float]:
    from fakescope.data.prepare import PrepareOptions, prepare

    t0 = time.perf_counter()
    s = prepare("csv", labels, out, PrepareOptions(num_frames=frames), echo=lambda m: None)
    return {"total": time.perf_counter() - t0, "frames": s.frames, "found": s.frames_with_face}


def decode_only(paths: list[Path], frames: int) -> float:
    from fakescope.data.video import read_frames

    t0 = time.perf_counter()
    for p in paths:
        read_frames(p, num_frames=frames)
    return time.perf_counter() - t0


def write_list(paths: list[Path], dest: Path) -> Path:
    with open(dest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        for p in paths:
            w.writerow([str(p), 0])
    return dest


def frame_area(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.width * s.codec_context.height


def child_peak(paths: list[Path], frames: int) -> dict[str, float]:
    """Run ``prepare`` on ``paths`` in a fresh process; its peak RSS in MiB."""
    tmp = Path(tempfile.mkdtemp(prefix="fakescope-mem-"))
    sub = write_list(paths, tmp / "videos.csv")
    out = subprocess.run([sys.executable, __file__, "--child", str(sub), "--frames", str(frames),
                          "--out", str(tmp / "out")], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS, help="a CSV with path (or file) and label")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--limit", type=int, help="only the first N videos (a quick check of the script)")
    ap.add_argument("--out", type=Path, help="work folder (default: a temporary folder)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    if args.child:  # memory probe: prepare these videos, report the peak RSS
        r = ours(args.child, args.frames, args.out)
        r["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(r))
        return

    try:
        import cv2  # noqa: F401
    except ImportError:
        sys.exit("the baseline needs OpenCV: pip install 'fakescope[bench]'")
    if not args.videos.is_file():
        sys.exit(f"{args.videos}: no video list (give --videos LABELS.csv)")
    labels = args.videos
    paths = video_paths(labels)
    if args.limit:
        paths = paths[:args.limit]
        labels = write_list(paths, Path(tempfile.mkdtemp(prefix="fakescope-list-")) / "videos.csv")
    work = args.out or Path(tempfile.mkdtemp(prefix="fakescope-bench-"))
    for p in paths:  # both pipelines then read the files from the page cache
        p.read_bytes()
    n_frames = sum(1 for _ in paths) * args.frames
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}, torch threads 1; "
          f"{len(paths)} videos, {args.frames} frames each")

    base = baseline(paths, args.frames, work / "baseline")
    print(f"baseline (OpenCV decodes every frame, detector per sampled frame at full size): {base['total']:.1f} s "
          f"= {base['frames'] / base['total']:.2f} frames/s (decode {base['decode']:.1f} s, detect "
          f"{base['detect']:.1f} s, crop+save {base['save']:.1f} s); faces in {base['found']}/{base['frames']}")
    mine = ours(labels, args.frames, work / "fakescope")
    dec = decode_only(paths, args.frames)
    print(f"fakescope prepare (seek + skip, batched detection at 640 px): {mine['total']:.1f} s "
          f"= {mine['frames'] / mine['total']:.2f} frames/s (of which decoding alone: {dec:.1f} s); "
          f"faces in {mine['found']}/{mine['frames']}")
    print(f"decoding only: OpenCV every frame {base['decode']:.1f} s vs fakescope {dec:.1f} s "
          f"(x{base['decode'] / dec:.2f})")
    largest = max(paths, key=frame_area)  # memory grows with the frame size; compare like with like
    one = child_peak([largest], args.frames)
    every = child_peak(paths, args.frames)
    print(f"peak memory of fakescope prepare: 1 video ({largest.name}, the largest frames) {one['peak_mib']:.0f} MiB, "
          f"all {len(paths)} videos {every['peak_mib']:.0f} MiB (ratio {every['peak_mib'] / one['peak_mib']:.2f})")
    print(f"frames to crops: {n_frames} frames in each pipeline")
    print(f"speed-up (baseline time / fakescope time): {base['total'] / mine['total']:.2f}")


if __name__ == "__main__":
    main()
