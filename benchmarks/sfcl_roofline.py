"""SFCL-HCMF inference speed against a matmul roofline measured in the same run.

    python benchmarks/sfcl_roofline.py [--model sfcl_hcmf] [--batch 8] [--size 380] [--repeats 3] [--threads N]
                                       [--device auto|cpu|cuda] [--dtype auto|fp32|bf16]

``--dtype auto`` is fp32 on a CPU and bf16 on a CUDA GPU; ``--dtype bf16`` also works on a CPU
(autocast; the block DCT and SIDA always run in fp32).

1. The model's floating-point operations per image are counted by
   ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matmuls, attention), on the model's
   definition: FAAE's attention as PyTorch's unfused path computes it (the fused CPU kernel that
   inference runs is not counted by FlopCounterMode, and it computes zero columns as well).
2. The roofline: the FLOP/s of a large dense square matmul in the chosen dtype, the best over
   the sides in ``--matmul`` (1024 to 4096) and ``--matmul-repeats`` tries of each, measured before
   and after the model's timings (the better of the two), on this machine, in this run (a single
   size's best of three varied by 30% between runs on a shared 2-core machine).
3. Inference: images per second of the model in eval mode under ``torch.inference_mode``
   (fp32, or bf16 autocast) on random uint8 images normalised on the model's device, each path
   timed once per round in turn, its best of ``--repeats`` rounds after a warm-up: the model as
   built (eager); the model as ``fakescope detect`` scores it with its default ``--batch-size
   auto`` (batch norms folded into the convolutions before them,
   ``fakescope.inference.folding.fold_batchnorm``) in the contiguous and in the channels-last
   layout (detect's tuner takes the faster; docs/speed.md); on a CPU with two or more threads the
   same folded model in lanes (threads of one torch thread each, ``--lane-batch`` images a lane; in either
   layout, as detect's tuner measures both at a lane's thread count),
   as ``detect --faces off`` scores face crops given as files; with ``--compile`` also
   ``torch.compile`` of the folded model in either layout, as ``detect --compile`` scores (the
   compile times printed).
   The process sets torch's and glibc's allocators as the ``fakescope`` command does.

Roofline images/s = matmul FLOP/s / model FLOP per image. The last line is the ratio of
the measured images/s of the fastest detect path to that bound (1.0 would be a model that runs at
matmul speed; depthwise convolutions, normalisation and the DCT front end keep real CNNs well
below it); the script exits 1 when it is below ``--goal`` (0.5). ``--profile N`` prints the N
operators that took the most CPU time in each path (torch.profiler, one batch).
"""

from __future__ import annotations

import argparse
import os
import sys
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
    ap.add_argument("--repeats", type=int, default=10, help="rounds; each path's best round counts")
    ap.add_argument("--matmul", default="1024,2048,3072,4096", help="sides of the square roofline matmuls")
    ap.add_argument("--matmul-repeats", type=int, default=8, help="tries of each roofline matmul")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    ap.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                    help="auto: bf16 autocast on a GPU, fp32 on a CPU")
    ap.add_argument("--lanes", type=int, default=None, help="lanes of the lanes path (default: torch's threads)")
    ap.add_argument("--lane-batch", type=int, default=None,
                    help="images a lane scores at once (default: batch / lanes)")
    ap.add_argument("--compile", action="store_true", help="also time the model as detect --compile scores it")
    ap.add_argument("--goal", type=float, default=0.5, help="exit 1 when the detect path's ratio is below this")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="print the N operators with the most CPU time, per path")
    args = ap.parse_args()

    from fakescope.utils.memory import huge_pages_for_large_tensors, reuse_freed_buffers

    # as the fakescope command sets torch's and glibc's allocators (docs/speed.md); every path runs under both
    huge_pages_for_large_tensors()
    reuse_freed_buffers()

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fakescope.models import create_model
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

    from fakescope.inference.folding import fold_batchnorm
    from fakescope.inference.images import set_memory_format

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

    from unittest import mock

    import torch.nn.functional as F

    # counted on the definition: the unfused attention (FAAE's values unpadded), which FlopCounterMode counts
    with FlopCounterMode(display=False) as counter, \
            mock.patch("fakescope.models.sfcl_hcmf.fusion.attend",
                       lambda q, k, v, fused=True: F.scaled_dot_product_attention(q, k, v)):
        run(model, False)()
    flop_per_image = counter.get_total_flops() / args.batch

    def matmul_roofline() -> tuple[float, int]:
        best, n = 0.0, 0
        for side in (int(v) for v in args.matmul.split(",")):
            a = torch.randn(side, side, device=device, dtype=dtype)
            b = torch.randn(side, side, device=device, dtype=dtype)
            flops = 2 * side ** 3 / best_time(lambda: a @ b, args.matmul_repeats, sync)
            if flops > best:
                best, n = flops, side
        return best, n

    matmul_before = matmul_roofline()  # measured again after the model: the better of the two is the roofline

    import copy

    # every path timed in turn within each round (best of --repeats rounds): a slower spell of a shared machine
    # falls on all of them, not on whichever ran then
    fast_cl = copy.deepcopy(fast)
    set_memory_format(fast_cl, True)
    folded_name = "batch norms folded" if folded else "no batch norm folded"
    calls = {"eager (as built)": run(model, False), f"detect path ({folded_name}, contiguous)": run(fast, False),
             f"detect path ({folded_name}, channels-last)": run(fast_cl, True)}
    batches = dict.fromkeys(calls, args.batch)
    threads = torch.get_num_threads()
    lanes = args.lanes or threads
    pool = None
    if not gpu and lanes > 1:  # the lanes in either layout: detect's tuner measures both at a lane's threads
        from concurrent.futures import ThreadPoolExecutor

        lane_batch = args.lane_batch or max(1, args.batch // lanes)
        lane_x8 = x8[:lane_batch] if lane_batch <= args.batch else torch.randint(
            0, 256, (lane_batch, 3, size, size), dtype=torch.uint8)
        rounds = 2  # batches each lane scores in one timed call: the lanes drift apart, as in detect
        pool = ThreadPoolExecutor(max_workers=lanes)

        def lane(net, channels_last: bool):
            torch.set_num_threads(max(1, threads // lanes))  # this lane's thread
            with torch.inference_mode():
                for _ in range(rounds):
                    x = net.normalize(lane_x8)
                    net(x.contiguous(memory_format=torch.channels_last) if channels_last else x)

        for net, cl in ((fast, False), (fast_cl, True)):
            lanes_name = (f"detect path in {lanes} lanes ({'channels-last' if cl else 'contiguous'}, "
                          f"{lane_batch} images a lane)")

            def in_lanes(net=net, cl=cl):
                list(pool.map(lambda _: lane(net, cl), range(lanes)))
                torch.set_num_threads(threads)  # this thread's again (a library may keep one setting for all threads)

            calls[lanes_name] = in_lanes
            batches[lanes_name] = lanes * lane_batch * rounds

    compile_s, diffs = {}, {}
    if args.compile:  # as detect --compile: predict_proba of the folded model, one graph per layout here
        for net, cl in ((fast, False), (fast_cl, True)):
            compiled = torch.compile(net.predict_proba, dynamic=False)

            def infer_compiled(net=net, cl=cl, compiled=compiled):
                x = net.normalize(x8)
                with torch.inference_mode():
                    return compiled(x.contiguous(memory_format=torch.channels_last) if cl else x.clone())

            layout_name = "channels-last" if cl else "contiguous"
            t0 = time.perf_counter()
            infer_compiled()
            compile_s[layout_name] = time.perf_counter() - t0
            with torch.inference_mode():
                ref = fast.predict_proba(fast.normalize(x8))
                diffs[layout_name] = (float((infer_compiled() - ref).abs().max()), float(ref.std()))
            compiled_name = f"detect --compile path ({folded_name}, {layout_name})"
            calls[compiled_name] = infer_compiled
            batches[compiled_name] = args.batch

    times = dict.fromkeys(calls, float("inf"))
    for fn in calls.values():
        fn()  # warm-up
    sync()
    for _ in range(args.repeats):
        for label, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[label] = min(times[label], time.perf_counter() - t0)
    if pool is not None:
        pool.shutdown()
    paths = {"eager (as built)": (model, False), f"detect path ({folded_name}, contiguous)": (fast, False)}

    matmul_after = matmul_roofline()
    matmul_flops, n = max(matmul_before, matmul_after)
    roofline = matmul_flops / flop_per_image

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    from common import cpu_model

    name = torch.cuda.get_device_name(device) if gpu else f"{cpu_model()}, {os.cpu_count()} CPU cores"
    print(f"machine: {name}, 1-minute load {load:.2f}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'bf16 autocast' if bf16 else 'fp32'}")
    print(f"model: {args.model}, {model.num_parameters() / 1e6:.1f} M parameters, input {args.batch} x 3 x {size} x {size}")
    print(f"model FLOP per image (FlopCounterMode): {flop_per_image / 1e9:.2f} GFLOP")
    print(f"matmul {n}x{n} ({dtype}, the fastest of {args.matmul}, before and after the model: "
          f"{matmul_before[0] / 1e9:.1f}, {matmul_after[0] / 1e9:.1f}): {matmul_flops / 1e9:.1f} GFLOP/s "
          f"-> roofline {roofline:.2f} images/s")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for label, (net, cl) in paths.items():
            fn = run(net, cl)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
            print(f"\nprofile, {label}, one batch of {args.batch}:")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile))
    for layout_name, seconds in compile_s.items():
        diff, spread = diffs[layout_name]
        print(f"torch.compile, {layout_name}: first call {seconds:.1f} s (compiling), "
              f"scores within {diff:.1e} of the folded model's (their standard deviation over the batch: "
              f"{spread:.1e}" + ("; random weights give nearly one score to every input, so this says little)"
                                 if spread < 0.01 else ")"))
    speeds = {}
    for label, t in times.items():
        speeds[label] = batches[label] / t
        print(f"{label}: {speeds[label]:.2f} images/s ({t:.3f} s for {batches[label]} images, "
              f"{speeds[label] * flop_per_image / 1e9:.1f} GFLOP/s), {speeds[label] / roofline:.3f} of the roofline")
    best = max((label for label in speeds if label.startswith("detect")), key=speeds.get)
    print(f"fastest detect path over eager: {speeds[best] / speeds['eager (as built)']:.3f}x ({best})")
    ratio = speeds[best] / roofline
    print(f"ratio measured / roofline images per second (fastest detect path): {ratio:.3f}")
    if ratio < args.goal:
        print(f"goal missed: {ratio:.3f} < {args.goal} of the roofline", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
