"""``fakescope eval`` at scale on CPU: peak memory against the number of files, throughput, the input pipeline
against the model, and 2 processes (gloo) against 1.

    python benchmarks/scale.py [--out DIR] [--sizes 10000 40000 160000] [--keep]

It writes 160,000 face-crop-sized PNGs (64 px, two classes; smooth colour fields with noise, ~3 KB each) under
``--out`` (a temporary folder by default, removed at the end unless ``--keep``), a random-init
``simple_cnn_tiny`` checkpoint (it scores the central 32 px: a tiny model, so that the pipeline around it is what
is measured), and then:

1. ``fakescope eval`` on the first 10k, 40k and all 160k files (hard links), each in a fresh process; the peak
   RSS of the largest process (the main one; DataLoader workers are smaller) and the files per second of the
   whole command (start-up, scoring and the report). Goal: the 160k peak within 10% of the 10k peak, and under
   2 GiB.
2. The input pipeline alone (the DataLoader with ``--num-workers`` workers: decode, crop, to tensor) against the
   model alone (random batches of the same shape), in images per second: whichever is lower limits ``eval``.
3. ``eval --devices 2`` (two CPU processes, gloo; one torch thread each, as torchrun sets) against one process
   (torch's default threads), with the same ``--num-workers``, on the same 40k files. The last line is the ratio (1-process time / 2-process
   time).

When a goal of step 1 is missed, the script says which on stderr, after everything else, and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

MEASURE = "--measure-child"
GOAL_RATIO = 1.10  # peak RSS of the largest --sizes over the smallest
GOAL_MIB = 2048  # peak RSS of the largest --sizes, MiB (strictly below)


def _write(job: tuple[str, int, int]) -> None:
    from PIL import Image

    root, start, stop = job
    rng = np.random.default_rng(start)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    for i in range(start, stop):
        c = rng.random((2, 3)) * 200
        px = c[0] * yy[..., None] + c[1] * xx[..., None] + rng.normal(0, 4 if i % 2 else 2, (64, 64, 3))
        cls = "1_fake" if i % 2 else "0_real"
        Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(f"{root}/{cls}/{i:06d}.png", compress_level=1)


def make_files(root: Path, n: int) -> float:
    t = time.perf_counter()
    for cls in ("0_real", "1_fake"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    step = 5000
    with Pool(os.cpu_count() or 1) as pool:
        pool.map(_write, [(str(root), a, min(a + step, n)) for a in range(0, n, step)])
    return time.perf_counter() - t


def subset(full: Path, dest: Path, n: int) -> Path:
    """The first ``n`` files of ``full`` (by number), as hard links."""
    for cls in ("0_real", "1_fake"):
        (dest / cls).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cls = "1_fake" if i % 2 else "0_real"
        os.link(full / cls / f"{i:06d}.png", dest / cls / f"{i:06d}.png")
    return dest


def measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` in a fresh child of a fresh process: wall seconds and the largest process's peak RSS."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, __file__, MEASURE, *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr[-3000:]}")
    peak_mib = int(p.stdout.strip().splitlines()[-1]) / 1024
    return {"wall_s": wall, "peak_mib": peak_mib}


def pipeline_vs_model(ckpt: Path, data: Path, batch_size: int, workers: int, batches: int) -> tuple[float, float]:
    import torch

    from fakescope.data.datasets import build_dataset, load_samples
    from fakescope.data.loaders import make_loader
    from fakescope.zoo.checkpoint import load

    model = load(ckpt, device="cpu")
    ds = build_dataset(load_samples(str(data)), model.preprocess, model.modality, train=False)
    loader = make_loader(ds, batch_size, workers)
    n, t = 0, None
    for k, batch in enumerate(loader):
        if k == 1:  # the first batch pays for starting the workers
            t, n = time.perf_counter(), 0
        n += len(batch["image"])
        if k == batches:
            break
    pipe = n / (time.perf_counter() - t)
    x = batch["image"]
    with torch.inference_mode():
        model.predict_proba(x)
        t = time.perf_counter()
        for _ in range(batches):
            model.predict_proba(x)
        net = batches * len(x) / (time.perf_counter() - t)
    return pipe, net


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == MEASURE:
        subprocess.run(sys.argv[2:], check=True, stdout=subprocess.DEVNULL)
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB: the largest descendant
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="work folder (default: a temporary one)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000, 160_000])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--num-workers", type=int, default=1, help="DataLoader workers of eval")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    args = ap.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="fakescope-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = sorted(args.sizes)
    missed: list[str] = []
    try:
        import torch

        from fakescope.models import create_model
        from fakescope.zoo.checkpoint import save

        full = work / f"crops{sizes[-1]}"
        if not full.exists():
            print(f"writing {sizes[-1]:,} PNGs: {make_files(full, sizes[-1]):.0f} s", flush=True)
        torch.manual_seed(0)
        ckpt = save(create_model("simple_cnn_tiny").eval(), work / "model")
        sets = {n: full if n == sizes[-1] else (work / f"crops{n}" if (work / f"crops{n}").exists()
                                                  else subset(full, work / f"crops{n}", n)) for n in sizes}
        cli = [sys.executable, "-m", "fakescope.cli", "eval", str(ckpt), "--batch-size", str(args.batch_size),
               "--device", "cpu"]
        rows = {}
        for n in sizes:
            r = measured(cli + ["--data", str(sets[n]), "--out", str(work / f"eval{n}"), "--overwrite",
                                "--num-workers", str(args.num_workers)])
            got = json.loads((work / f"eval{n}" / "metrics.json").read_text())["sets"]
            assert next(iter(got.values()))["n"] == n, got
            rows[n] = r
            print(f"eval {n:>7,} files: peak RSS {r['peak_mib']:7.1f} MiB, {r['wall_s']:6.1f} s, "
                  f"{n / r['wall_s']:6.0f} files/s (whole command)", flush=True)
        lo, hi = rows[sizes[0]]["peak_mib"], rows[sizes[-1]]["peak_mib"]
        print(f"peak RSS {sizes[-1]:,} / {sizes[0]:,} files: {hi / lo:.3f} (goal <= {GOAL_RATIO:.2f}); "
              f"{sizes[-1]:,}: {hi:.0f} MiB (goal < {GOAL_MIB})")
        if not hi / lo <= GOAL_RATIO:
            missed.append(f"peak RSS {sizes[-1]:,} / {sizes[0]:,} files: {hi / lo:.3f} (goal <= {GOAL_RATIO:.2f})")
        if not hi < GOAL_MIB:
            missed.append(f"peak RSS with {sizes[-1]:,} files: {hi:.0f} MiB (goal < {GOAL_MIB})")
        pipe, net = pipeline_vs_model(ckpt, sets[sizes[0]], args.batch_size, args.num_workers, batches=20)
        print(f"input pipeline alone ({args.num_workers} worker(s)): {pipe:,.0f} images/s; model alone: "
              f"{net:,.0f} images/s -> {'the input pipeline' if pipe < net else 'the model'} limits")
        mid = sizes[1] if len(sizes) > 2 else sizes[0]
        one = rows[mid]["wall_s"]
        two = measured(cli + ["--data", str(sets[mid]), "--out", str(work / f"eval{mid}-2p"), "--overwrite",
                              "--num-workers", str(args.num_workers), "--devices", "2"], env=dict(os.environ, OMP_NUM_THREADS="1"))
        a = json.loads((work / f"eval{mid}" / "metrics.json").read_text())["sets"]
        b = json.loads((work / f"eval{mid}-2p" / "metrics.json").read_text())["sets"]
        print(f"eval {mid:,} files, 2 processes: {two['wall_s']:.1f} s, peak RSS {two['peak_mib']:.0f} MiB; "
              f"metrics identical to 1 process: {a == b}")
        print(f"ratio 1-process / 2-process time on {mid:,} files: {one / two['wall_s']:.2f}")
    finally:
        if not args.keep and not args.out:
            shutil.rmtree(work, ignore_errors=True)
    sys.stdout.flush()  # everything above comes first, the verdict on stderr after it
    for m in missed:
        print(f"goal missed: {m}", file=sys.stderr)
    if missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
