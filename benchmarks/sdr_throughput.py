"""SDR training and inference throughput and peak memory, with and without gradient checkpointing.

    python benchmarks/sdr_throughput.py                      # CPU: a scaled-down clip (see below)
    python benchmarks/sdr_throughput.py --device cuda        # GPU: batch 16, K = 4, 32 x 224 x 224, bf16

Builds the paper-sized SDR (FTCN's I3D ResNet-50 encoder with 1x1 spatial kernels,
truncated after res4; K = 4 TPA branches sharing it; TRFI; FTCN's temporal
transformer; L_MI and L_con; random init, which costs the same as trained weights)
and measures, in one run:

* inference: clean clips per second (``model.eval()``, no perturbation, best of
  ``--iters`` batches after a warm-up);
* training: clips per second of a full step (TPA on K views, forward, the three
  losses, backward, AdamW step), and its peak memory;
* the same training step with ``encoder.grad_checkpoint: true``, whose peak memory
  is compared with the plain step's: the last line is that ratio.

Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU. On the CPU it is the
growth of the process's peak resident set (``ru_maxrss``) over the step, so run the
CPU variant once per process (the script does: each measurement runs in a child
process). On a 2-core CPU the recipe's size (FTCN's 16 clips of 32 x 224 x 224, our 4 branches)
takes minutes per step, so the CPU default is batch 2 at 16 x 112 x 112; every
figure names the size it was measured at.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time


def build(args, grad_checkpoint: bool):
    import torch

    from fakescope.models import create_model

    torch.manual_seed(0)
    model = create_model("sdr", preprocess={"input_size": args.size, "clip_len": args.frames},
                         encoder={"grad_checkpoint": grad_checkpoint},
                         branches=["blur", "jpeg", "color", "rescale", "noise"][: args.branches])
    return model


def measure(args, mode: str, grad_checkpoint: bool, queue) -> None:
    import torch

    try:
        _measure(args, mode, grad_checkpoint, queue)
    except torch.OutOfMemoryError as exc:
        queue.put({"mode": mode, "grad_checkpoint": grad_checkpoint, "error": f"out of memory: {str(exc)[:200]}"})


def _measure(args, mode: str, grad_checkpoint: bool, queue) -> None:
    import torch

    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    model = build(args, grad_checkpoint).to(device)
    x = model.normalize(torch.randint(0, 256, (args.batch, args.frames, 3, args.size, args.size), dtype=torch.uint8,
                                      device=device))
    y = torch.arange(args.batch, device=device) % 2
    use_bf16 = args.dtype == "bf16"
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else \
        (lambda: torch.autocast(device.type, enabled=False))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def infer() -> None:
        with torch.inference_mode(), autocast():
            model(x)

    def train_step() -> None:
        with autocast():
            out = model.compute_loss(x, y)
        out.total.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if mode == "infer":
        model.eval()
        fn = infer
    else:
        model.train()
        fn = train_step
    fn()  # warm-up (allocator, kernels)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    else:  # peak RSS of the whole process, and how much the timed steps added to it
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"mode": mode, "grad_checkpoint": grad_checkpoint, "best_s": min(times),
               "clips_per_s": args.batch / min(times), "peak_mib": peak,
               "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024,
               "params": sum(p.numel() for p in model.parameters())})


def run_child(args, mode: str, grad_checkpoint: bool) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=measure, args=(args, mode, grad_checkpoint, q))
    p.start()
    p.join()
    if q.empty():
        sys.exit(f"measurement '{mode}' failed (exit {p.exitcode})")
    return q.get()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, help="clips per batch (default 16 on a GPU, 2 on the CPU)")
    ap.add_argument("--frames", type=int, help="frames per clip (default 32 on a GPU, 16 on the CPU)")
    ap.add_argument("--size", type=int, help="frame side (default 224 on a GPU, 112 on the CPU)")
    ap.add_argument("--branches", type=int, default=4, help="K, the spatial perturbation branches (1-5)")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], help="default bf16 on a GPU, fp32 on the CPU")
    ap.add_argument("--iters", type=int, default=3, help="timed steps (the best counts)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = ap.parse_args()
    gpu = args.device.startswith("cuda")
    args.batch = args.batch or (16 if gpu else 2)
    args.frames = args.frames or (32 if gpu else 16)
    args.size = args.size or (224 if gpu else 112)
    args.dtype = args.dtype or ("bf16" if gpu else "fp32")
    if not args.threads:
        import torch

        args.threads = torch.get_num_threads()

    size = f"batch {args.batch} x K={args.branches} x {args.frames} x {args.size} x {args.size}, {args.dtype}"
    print(f"SDR (FTCN I3D-R50 to res4, K={args.branches} shared-encoder branches) on {args.device}: {size}")
    rows = [run_child(args, "infer", False), run_child(args, "train", False), run_child(args, "train", True)]
    print(f"parameters: {rows[0]['params'] / 1e6:.2f} M" if "params" in rows[0] else "")
    print(json.dumps(rows, indent=1))
    infer, plain, ckpt = rows
    mem = "allocated (CUDA)" if gpu else "peak RSS of the process"

    def line(title: str, r: dict, what: str) -> str:
        if "error" in r:
            return f"{title}: {r['error']}"
        return (f"{title}: {r['clips_per_s']:.2f} clips/s ({r['best_s']:.2f} s per {what}), "
                f"peak {r['peak_mib']:.0f} MiB {mem}")

    print(line("inference", infer, "batch"))
    print(line("training", plain, "step"))
    print(line("training with gradient checkpointing", ckpt, "step"))
    if "error" in plain or "error" in ckpt:
        print("gradient checkpointing: no ratio (a training run failed; see above)")
    else:
        print(f"gradient checkpointing: peak memory ratio {ckpt['peak_mib'] / plain['peak_mib']:.2f}, "
              f"step time ratio {ckpt['best_s'] / plain['best_s']:.2f}")

if __name__ == "__main__":
    main()
