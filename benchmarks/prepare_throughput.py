"""Frames-to-crops throughput of ``fakescope prepare`` against the DeepfakeBench way, and its peak memory.

    python benchmarks/prepare_throughput.py [--videos LABELS.csv] [--frames 32] [--workers N]

Needs OpenCV for the baseline: ``pip install 'fakescope[bench]'``.

Both pipelines take 32 frames per video spread over it, find faces with the
same detector (fakescope's MTCNN, same weights, thresholds, minimum face size
and one torch thread), keep one face per frame, cut a 1.3x box crop of 256 px
and save it as PNG. They differ where DeepfakeBench's ``preprocess.py`` and
``fakescope prepare`` differ:

* baseline (DeepfakeBench): OpenCV decodes **every** frame of the video and
  keeps the sampled ones; the detector runs on each sampled frame at its
  **full resolution**, one frame at a time; the largest face is kept;
* fakescope: PyAV seeks and decodes only what the sampled frames need, in a
  thread, while the detector runs on **batches of 8 frames** downscaled to
  640 px (boxes are mapped back and crops cut from the full-resolution
  frame); the video's main face is kept. After the first frame of a video
  the detector searches only for faces of at least a third of that face's
  size (``--face-search track``, prepare's default; a frame where the main
  face is not found, or shrank, is searched for every size again), which gave
  the crops of a full search on the fixture. It runs three times
  per round: in one process (``--workers 0``), with ``--workers N`` worker
  processes (default: one per CPU core; ``--videos-per-worker`` as
  ``prepare``'s default, 8, unless given), and with the workers and every
  frame searched for every size (``--face-search full``), to show what the
  tracked search adds.

The videos default to the FF++ c23 fixture beside the repository
(``../shared/fixtures/ffpp-c23-videos/labels.csv``). Each pipeline runs
``--rounds`` times (3) in this process, in alternating order, after a read of
every file so that both find them in the page cache; the fastest run of each
is compared. Start-up is not timed: imports, and the workers' fork server
(it imports torch once and lives as long as this process; a warm-up run of
one frame starts it before the first round). The machine may be busy with other work: both pipelines share
it, and the ratio is what to compare (CPU seconds are printed as well). Peak memory (max RSS)
is measured in child processes that prepare 1 video (each video alone; the
largest of these peaks is shown), all videos, and all videos ``--repeat``
times over (3), in one process and with the workers (there: the largest
peak of a worker, and of the parent). The last line is the speed-up (baseline time / fakescope time
with the workers); the goal is at least 5. When it is missed, the script says so on stderr, after
everything else, and exits with status 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL = 5.0  # speed-up with the workers: baseline time / fakescope time
DEFAULT_VIDEOS = REPO.parent / "shared" / "fixtures" / "ffpp-c23-videos" / "labels.csv"


def video_paths(labels: Path) -> list[Path]:
    with open(labels, newline="") as fh:
        rows = list(csv.DictReader(fh))
    col = "path" if rows and "path" in rows[0] else "file"
    return [labels.parent / r[col] for r in rows]


def baseline(paths: list[Path], frames: int, out: Path, min_face: int = 20) -> dict[str, float]:
    """DeepfakeBench's procedure with fakescope's detector: decode all, detect per sampled frame at full size."""
    import cv2
    import numpy as np
    from PIL import Image

    from fakescope.faces.crop import crop_box
    from fakescope.faces import create_detector

    det = create_detector("mtcnn", detect_size=0, min_face=min_face)  # full resolution, as DeepfakeBench runs dlib
    t_start, c_start = time.perf_counter(), time.process_time()
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
    return {"total": time.perf_counter() - t_start, "cpu": time.process_time() - c_start, "decode": t_decode,
            "detect": t_detect, "save": t_save, "frames": n, "found": found}


def ours(labels: Path, frames: int, out: Path, workers: int = 0, per_worker: int | None = None,
         min_face: int = 20, face_search: str = "track") -> dict[str, float]:
    """``fakescope prepare`` on the videos of ``labels``; ``per_worker`` None keeps its default."""
    from fakescope.prepare import options_from, prepare

    extra = {"min_face": min_face, "face_search": face_search}
    extra |= {} if per_worker is None else {"videos_per_worker": per_worker}
    t0, c0 = time.perf_counter(), time.process_time()
    s = prepare("csv", labels, out, options_from(num_frames=frames, workers=workers, **extra), echo=lambda m: None)
    return {"total": time.perf_counter() - t0, "cpu": time.process_time() - c0, "frames": s.frames,
            "found": s.frames_with_face, "worker_peak_mib": s.worker_peak_mib}


def decode_only(paths: list[Path], frames: int) -> tuple[float, float]:
    """Wall and CPU seconds to decode the sampled frames of every video (fakescope's reader, nothing else)."""
    from fakescope.media.video import FrameStream

    t0, c0 = time.perf_counter(), time.process_time()
    for p in paths:
        for _ in FrameStream(p, num_frames=frames):
            pass
    return time.perf_counter() - t0, time.process_time() - c0


def write_list(paths: list[Path], dest: Path) -> Path:
    with open(dest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "video_id"])
        for i, p in enumerate(paths):
            w.writerow([str(p), 0, f"{i:04d}_{p.stem}"])  # a video listed twice is prepared twice
    return dest


def child_peak(paths: list[Path], frames: int, workers: int = 0, per_worker: int | None = None,
               min_face: int = 20) -> dict[str, float]:
    """Run ``prepare`` on ``paths`` in a fresh process; its peak RSS (and its workers') in MiB."""
    tmp = Path(tempfile.mkdtemp(prefix="fakescope-mem-"))
    sub = write_list(paths, tmp / "videos.csv")
    extra = ["--min-face", str(min_face)] + ([] if per_worker is None else ["--videos-per-worker", str(per_worker)])
    out = subprocess.run([sys.executable, __file__, "--child", str(sub), "--frames", str(frames),
                          "--workers", str(workers), "--out", str(tmp / "out"), *extra], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(paths: list[Path], frames: int, workers: int, repeat: int = 3, per_worker: int | None = None,
           min_face: int = 20) -> str:
    """Peak memory with 1 video (each alone; the largest is kept), all videos, and all of them ``repeat`` times."""
    key = "worker_peak_mib" if workers else "peak_mib"
    singles = {p.name: child_peak([p], frames, workers, per_worker, min_face) for p in paths}
    name, one = max(singles.items(), key=lambda kv: kv[1][key])
    every = child_peak(paths, frames, workers, per_worker, min_face)
    thrice = child_peak(paths * repeat, frames, workers, per_worker, min_face)
    a, b, c = one[key], every[key], thrice[key]
    what = f"{workers} workers, largest worker peak" if workers else "one process"
    line = (f"peak memory (max RSS) of fakescope prepare, {what}: 1 video (each alone; largest: {name}) "
            f"{a:.0f} MiB, all {len(paths)} videos {b:.0f} MiB (ratio {b / a:.2f}), the {len(paths)} videos {repeat} "
            f"times ({repeat * len(paths)} videos) {c:.0f} MiB (ratio to 1 video {c / a:.2f})")
    if workers:
        parents = ", ".join(f"{r['peak_mib']:.0f}" for r in (one, every, thrice))
        line += f"; parent process {parents} MiB"
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS, help="a CSV with path (or file) and label")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--limit", type=int, help="only the first N videos (a quick check of the script)")
    ap.add_argument("--out", type=Path, help="work folder (default: a temporary folder)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of each pipeline, in alternating order; the fastest of each is compared")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="worker processes of fakescope prepare (default: one per CPU core)")
    ap.add_argument("--videos-per-worker", type=int,
                    help="worker processes are replaced after this many videos (default: prepare's, 8)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="the memory probe's longest run prepares the videos this many times over")
    ap.add_argument("--min-face", type=int, default=20,
                    help="smallest face searched for, in both pipelines (pixels of each one's detection image; "
                         "20 is prepare's default)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    if args.child:  # memory probe: prepare these videos, report the peak RSS
        from fakescope.prepare import peak_rss_mib

        r = ours(args.child, args.frames, args.out, args.workers, args.videos_per_worker, args.min_face)
        r["peak_mib"] = peak_rss_mib()
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
    work.mkdir(parents=True, exist_ok=True)
    for p in paths:  # both pipelines then read the files from the page cache
        p.read_bytes()
    n_frames = sum(1 for _ in paths) * args.frames
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}, torch threads 1; "
          f"{len(paths)} videos, {args.frames} frames each; smallest face searched for {args.min_face} px")

    # start-up is not timed: one frame of one video through the workers starts their fork server, which
    # imports torch once and serves every later round
    ours(write_list(paths[:1], work / "warmup.csv"), 1, work / "warmup", args.workers)
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "fakescope": [], "workers": [], "full": []}
    for r in range(args.rounds):  # alternate the order so that all see the same (shared) machine
        order = ("baseline", "fakescope", "workers", "full") if r % 2 == 0 else ("full", "workers", "fakescope",
                                                                                 "baseline")
        for name in order:
            if name == "baseline":
                runs[name].append(baseline(paths, args.frames, work / f"baseline{r}", args.min_face))
            elif name == "fakescope":
                runs[name].append(ours(labels, args.frames, work / f"fakescope{r}", min_face=args.min_face))
            else:
                runs[name].append(ours(labels, args.frames, work / f"{name}{r}", args.workers,
                                       args.videos_per_worker, args.min_face,
                                       "full" if name == "full" else "track"))
        print(f"round {r + 1}: baseline {runs['baseline'][-1]['total']:.1f} s, "
              f"fakescope {runs['fakescope'][-1]['total']:.1f} s, with {args.workers} workers "
              f"{runs['workers'][-1]['total']:.1f} s, with the workers and full search "
              f"{runs['full'][-1]['total']:.1f} s (load average {os.getloadavg()[0]:.2f})")
    base = min(runs["baseline"], key=lambda x: x["total"])
    mine = min(runs["fakescope"], key=lambda x: x["total"])
    pool = min(runs["workers"], key=lambda x: x["total"])
    full = min(runs["full"], key=lambda x: x["total"])
    print(f"baseline (OpenCV decodes every frame, detector per sampled frame at full size): {base['total']:.1f} s "
          f"= {base['frames'] / base['total']:.2f} frames/s, {base['cpu']:.1f} CPU s (decode {base['decode']:.1f} s, "
          f"detect {base['detect']:.1f} s, crop+save {base['save']:.1f} s); faces in {base['found']}/{base['frames']}")
    dec, dec_cpu = decode_only(paths, args.frames)
    print(f"fakescope prepare (seek + skip in a thread, batched detection at 640 px, tracked face search): "
          f"{mine['total']:.1f} s "
          f"= {mine['frames'] / mine['total']:.2f} frames/s, {mine['cpu']:.1f} CPU s; faces in "
          f"{mine['found']}/{mine['frames']}")
    print(f"decoding only: OpenCV every frame {base['decode']:.1f} s vs fakescope {dec:.1f} s ({dec_cpu:.1f} CPU s) "
          f"(x{base['decode'] / dec:.2f})")
    per = "prepare's default" if args.videos_per_worker is None else args.videos_per_worker
    print(f"fakescope prepare --workers {args.workers} (worker processes, videos per worker: {per}): "
          f"{pool['total']:.1f} s = {pool['frames'] / pool['total']:.2f} frames/s; faces in "
          f"{pool['found']}/{pool['frames']}")
    print(f"fakescope prepare --workers {args.workers} --face-search full (every face size in every frame): "
          f"{full['total']:.1f} s = {full['frames'] / full['total']:.2f} frames/s; faces in "
          f"{full['found']}/{full['frames']}")
    if not args.no_memory:
        print(memory(paths, args.frames, 0, args.repeat, min_face=args.min_face))
        if args.workers:
            print(memory(paths, args.frames, args.workers, args.repeat, args.videos_per_worker, args.min_face))
    print(f"frames to crops: {n_frames} frames in each pipeline; CPU time ratio (baseline / fakescope in one "
          f"process): {base['cpu'] / mine['cpu']:.2f}")
    print(f"speed-up in one process (baseline time / fakescope time): {base['total'] / mine['total']:.2f}")
    print(f"speed-up with {args.workers} workers and every face size searched (--face-search full): "
          f"{base['total'] / full['total']:.2f}")
    speedup = base["total"] / pool["total"]
    print(f"speed-up with {args.workers} workers (baseline time / fakescope time): "
          f"{speedup:.2f}")
    sys.stdout.flush()  # everything above comes first, the verdict on stderr after it
    if not speedup >= GOAL:
        print(f"goal missed: speed-up with {args.workers} workers {speedup:.2f} (goal >= {GOAL:g}; "
              f"{len(paths)} video(s), {args.frames} frames each)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
