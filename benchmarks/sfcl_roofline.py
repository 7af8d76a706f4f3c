"""SFCL-HCMF inference speed against a matmul roofline measured in the same run.

    python benchmarks/sfcl_roofline.py [--model sfcl_hcmf] [--batch 8] [--size 380] [--repeats 3] [--threads N]
                                       [--device auto|cpu|cuda] [--dtype auto|fp32|bf16]

``--dtype auto`` is fp32 on a CPU and bf16 on a CUDA GPU; ``--dtype bf16`` also works on a CPU
(autocast; the block DCT and SIDA always run in fp32).

1. The model's floating-point operations per image are counted by
   ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matmuls, attention).
2. The roofline: the FLOP/s of a large dense matmul in the chosen dtype, best of
   ``--repeats``, on this machine, in this run.
3. Inference: images per second of the model in eval mode under ``torch.inference_mode``
   (fp32, or bf16 autocast), best of ``--repeats`` after a warm-up, on random uint8
   images normalised on the model's device, twice: the model as built (eager), and the model
   as ``fakescope detect`` scores it with its default ``--batch-size auto`` (batch norms folded
   into the convolutions before them, ``fakescope.inference.images.fold_batchnorm``, and the
   channels-last layout where it is faster; docs/speed.md).

Roofline images/s = matmul FLOP/s / model FLOP per image. The last line is the ratio of
the measured images/s of the detect path to that bound (1.0 would be a model that runs at
matmul speed; depthwise convolutions, normalisation and the DCT front end keep real CNNs well
below it); the script exits 1 when it is below ``--goal`` (0.5). ``--profile N`` prints the N
operators that took the most CPU time in each path (torch.profiler, one batch).
"""

from __future__ import annotations

import argparse
import os
import time


def best_time(fn, repeats: int, sync) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sfcl_hcmf", help="registered model name")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=None, help="input side (default: the model's input size)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--matmul", type=int, default=2048, help="side of the square roofline matmul")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    ap.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                    help="auto: bf16 autocast on a GPU, fp32 on a CPU")
    ap.add_argument("--goal", type=float, default=0.5, help="exit 1 when the detect path's ratio is below this")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="print the N operators with the most CPU time, per path")
    args = ap.parse_args()

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fakescope.models import create_model
    from fakescope.utils.memory import reuse_freed_buffers

    reuse_freed_buffers()  # as fakescope detect sets glibc's allocator (docs/speed.md); both paths run under it
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    gpu = device.type == "cuda"
    bf16 = args.dtype == "bf16" or (args.dtype == "auto" and gpu)
    dtype = torch.bfloat16 if bf16 else torch.float32
    sync = (lambda: torch.cuda.synchronize(device)) if gpu else (lambda: None)

    torch.manual_seed(0)
    model = create_model(args.model).to(device).eval()
    size = args.size or model.preprocess.input_size
    x8 = torch.randint(0, 256, (args.batch, 3, size, size), dtype=torch.uint8, device=device)

    from fakescope.inference.images import fold_batchnorm, set_memory_format

    fast = fold_batchnorm(model, (3, size, size), str(device))
    folded = fast is not None
    fast = fast if folded else model

    def run(net, channels_last: bool):
        def infer():
            x = net.normalize(x8)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=bf16):
                return net(x)
        return infer

    with FlopCounterMode(display=False) as counter:
        run(model, False)()
    flop_per_image = counter.get_total_flops() / args.batch

    n = args.matmul
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t_mm = best_time(lambda: a @ b, args.repeats, sync)
    matmul_flops = 2 * n ** 3 / t_mm
    roofline = matmul_flops / flop_per_image

    paths = {"eager (as built)": (model, False)}
    times = {}
    t_eager = best_time(run(model, False), args.repeats, sync)
    times["eager (as built)"] = t_eager
    # detect's path: folded batch norms, and the faster of the two layouts (as its batch tuner chooses)
    set_memory_format(fast, True)
    t_cl = best_time(run(fast, True), args.repeats, sync)
    set_memory_format(fast, False)
    t_contig = best_time(run(fast, False), args.repeats, sync) if folded else t_eager
    layout = "channels-last" if t_cl < t_contig else "contiguous"
    detect_name = f"detect path ({'batch norms folded' if folded else 'no batch norm folded'}, {layout})"
    if layout == "channels-last":
        set_memory_format(fast, True)
    paths[detect_name] = (fast, layout == "channels-last")
    times[detect_name] = min(t_cl, t_contig)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    from common import cpu_model

    name = torch.cuda.get_device_name(device) if gpu else f"{cpu_model()}, {os.cpu_count()} CPU cores"
    print(f"machine: {name}, 1-minute load {load:.2f}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'bf16 autocast' if bf16 else 'fp32'}")
    print(f"model: {args.model}, {model.num_parameters() / 1e6:.1f} M parameters, input {args.batch} x 3 x {size} x {size}")
    print(f"model FLOP per image (FlopCounterMode): {flop_per_image / 1e9:.2f} GFLOP")
    print(f"matmul {n}x{n} ({dtype}): {matmul_flops / 1e9:.1f} GFLOP/s -> roofline {roofline:.2f} images/s")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for label, (net, cl) in paths.items():
            fn = run(net, cl)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
            print(f"\nprofile, {label}, one batch of {args.batch}:")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile))
    ratio = 0.0
    for label, t in times.items():
        images_per_s = args.batch / t
        ratio = images_per_s / roofline
        print(f"{label}: {images_per_s:.2f} images/s ({t:.3f} s per batch of {args.batch}, "
              f"{images_per_s * flop_per_image / 1e9:.1f} GFLOP/s), {ratio:.3f} of the roofline")
    print(f"detect path over eager: {t_eager / times[detect_name]:.3f}x")
    print(f"ratio measured / roofline images per second (detect path): {ratio:.3f}")
    if ratio < args.goal:
        print(f"goal missed: {ratio:.3f} < {args.goal} of the roofline")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
