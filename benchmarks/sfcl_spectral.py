"""SFCL-HCMF spectral front end: batched torch ops against a per-image, per-block scipy/numpy loop.

    python benchmarks/sfcl_spectral.py [--batch 64] [--size 384] [--repeats 3] [--threads N] [--device cpu|cuda]

The front end is what SFCL-HCMF computes before any learned layer: RGB -> YCbCr (BT.601),
level shift, 8x8 block DCT-II (orthonormal), JPEG zigzag, and the SIDA statistics (eqs. 1-8).

* fakescope: ``frequency_tensor`` + ``sida`` (``fakescope.models.sfcl_hcmf.spectral``), float32,
  the whole batch at once on ``--device`` (the model's device; input already there); best
  of ``--repeats`` runs after a warm-up. Wall time, and on a CPU also the process CPU time.
* baseline: the same result computed image by image, block by block, with
  ``scipy.fft.dctn(norm='ortho')`` per 8x8 block and numpy statistics per image (float64).

Equality: the fakescope path run in float64 must match the baseline to 1e-5 (max absolute
difference, X~ and D); the float32 path's difference is printed relative to each output's
largest magnitude. The goal is a speed-up of at least 50x; the last line is the ratio of
wall times. On a shared machine the CPU-time ratio is printed too: the batched path uses
every thread it is given and loses more to other people's jobs than the single-threaded loop.
When either goal (the float64 equality or the speed-up) is missed, the script says which on
stderr, after everything else, and exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

GOAL = 50.0  # speed-up: baseline wall time / fakescope wall time
GOAL_DIFF = 1e-5  # float64 path vs baseline, max absolute difference (X~ and D)


def baseline_one(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One RGB image ``[3, H, W]`` (0..255, H and W multiples of 8) -> (X~ [3, 64, h, w], D [2304]), by loops."""
    from scipy.fft import dctn

    from fakescope.models.layers.dct import YCBCR_MATRIX, YCBCR_OFFSET, zigzag_order

    zz = list(zigzag_order(8))
    m = np.asarray(YCBCR_MATRIX)
    ycc = np.einsum("ij,jhw->ihw", m, img) + np.asarray(YCBCR_OFFSET)[:, None, None] - 128.0
    c, h, w = ycc.shape
    xt = np.empty((c, 64, h // 8, w // 8))
    for ch in range(c):
        for bm in range(h // 8):
            for bn in range(w // 8):
                block = ycc[ch, 8 * bm:8 * bm + 8, 8 * bn:8 * bn + 8]
                xt[ch, :, bm, bn] = dctn(block, norm="ortho").reshape(-1)[zz]
    row = np.abs(np.diff(xt, axis=2))
    col = np.abs(np.diff(xt, axis=3))
    intra = np.abs(np.diff(xt, axis=1))
    intra = np.concatenate([intra, np.zeros_like(intra[:, :1])], axis=1)
    stats = {k: [] for k in ("mean", "std", "skew", "kurt")}
    for a in (row, col, intra):
        a = a.reshape(c, 64, -1)
        mu = a.mean(-1)
        d = a - mu[..., None]
        sigma = np.sqrt((d ** 2).mean(-1) + 1e-6)
        stats["mean"].append(mu.reshape(-1))
        stats["std"].append(sigma.reshape(-1))
        stats["skew"].append(((d ** 3).mean(-1) / sigma ** 3).reshape(-1))
        stats["kurt"].append(((d ** 4).mean(-1) / sigma ** 4).reshape(-1))
    return xt, np.concatenate([np.concatenate(v) for v in stats.values()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=384, help="image side (a multiple of 8)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu", help="where the batched front end runs: cpu, cuda, cuda:1, ...")
    args = ap.parse_args()
    if args.size % 8:
        ap.error("--size must be a multiple of 8 (the baseline does not pad)")

    import torch

    from fakescope.models.sfcl_hcmf.spectral import frequency_tensor, sida

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if gpu else (lambda: None)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, 3, args.size, args.size)).astype(np.float64)
    x32 = torch.from_numpy(images).float().to(device)

    def ours(x):
        xt = frequency_tensor(x)
        return xt, sida(xt)

    ours(x32[:2])  # warm-up
    sync()
    times, cpu_times = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        xt32, d32 = ours(x32)
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    t_ours, c_ours = min(times), min(cpu_times)

    t0, c0 = time.perf_counter(), time.process_time()
    ref = [baseline_one(img) for img in images]
    t_base, c_base = time.perf_counter() - t0, time.process_time() - c0
    xt_ref = np.stack([r[0] for r in ref])
    d_ref = np.stack([r[1] for r in ref])

    xt64, d64 = ours(torch.from_numpy(images).to(device))
    err_xt = np.abs(xt64.cpu().numpy() - xt_ref).max()
    err_d = np.abs(d64.cpu().numpy() - d_ref).max()
    rel_xt32 = np.abs(xt32.cpu().double().numpy() - xt_ref).max() / np.abs(xt_ref).max()
    rel_d32 = (np.abs(d32.cpu().double().numpy() - d_ref) / (np.abs(d_ref) + 1.0)).max()
    equal = err_xt <= GOAL_DIFF and err_d <= GOAL_DIFF

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    where = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"machine: {os.cpu_count()} CPU cores, 1-minute load {load:.2f}, torch {torch.__version__}; "
          f"batched path on {where}")
    print(f"input: {args.batch} x 3 x {args.size} x {args.size}, X~ {tuple(xt32.shape)}, D {tuple(d32.shape)}")
    print(f"fakescope (float32, batched): {t_ours:.3f} s (best of {args.repeats}: "
          + ", ".join(f"{t:.3f}" for t in times) + f"), {args.batch / t_ours:.0f} images/s"
          + ("" if gpu else f"; CPU time {c_ours:.3f} s"))
    print(f"baseline (scipy per block, numpy per image, float64): {t_base:.2f} s, {args.batch / t_base:.1f} images/s; "
          f"CPU time {c_base:.2f} s")
    print(f"float64 path vs baseline, max |diff|: X~ {err_xt:.2e}, D {err_d:.2e} (goal <= 1e-5: "
          f"{'met' if equal else 'NOT met'})")
    print(f"float32 path vs baseline: X~ max |diff| / max |X~| = {rel_xt32:.1e}; D max |diff| / (|D| + 1) = {rel_d32:.1e}")
    if not gpu:
        print(f"ratio baseline CPU time / fakescope CPU time: {c_base / c_ours:.1f}")
    speedup = t_base / t_ours
    print(f"ratio baseline time / fakescope time (goal >= {GOAL:.0f}): {speedup:.1f}")
    missed = []
    if not equal:
        missed.append(f"float64 path vs baseline: max |diff| X~ {err_xt:.2e}, D {err_d:.2e} (goal <= {GOAL_DIFF:g})")
    if not speedup >= GOAL:
        missed.append(f"speed-up {speedup:.2f} (goal >= {GOAL:.0f})")
    sys.stdout.flush()  # everything above comes first, the verdict on stderr after it
    for m in missed:
        print(f"goal missed: {m}", file=sys.stderr)
    if missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
