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
   compile times printed); on a CPU with onnxruntime installed (``pip install -e ".[onnx]"``; ``--no-onnx``
   skips it), the model exported by ``fakescope export --format onnx`` as ``detect --backend onnx`` scores
   it: one session on torch's threads at ``--batch``, and the same session in lanes of one thread each
   (its export time, parity figure and score difference from the folded PyTorch model printed).
   The process sets torch's and glibc's allocators as the ``fakescope`` command does.

Roofline images/s = matmul FLOP/s / model FLOP per image. The line before the last gives the ratio for
the default path (PyTorch, no ``--compile``: the faster of its layouts and lanes), the last line the ratio of
the measured images/s of the fastest detect path (any backend) to that bound (1.0 would be a model that runs at
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


def onnx_profile(path, x8, top: int, folder: str) -> str:
    """Where onnxruntime's time went in one batch (its second run; the first allocates): kernel time per operator."""
    import json
    from collections import Counter

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(folder, "ort-profile")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    pixels = {session.get_inputs()[0].name: x8.float().numpy()}
    session.run(None, pixels)
    session.run(None, pixels)
    with open(session.end_profiling()) as fh:
        events = json.load(fh)
    last_run = max(e["ts"] for e in events if e.get("name") == "model_run")
    per_op, calls = Counter(), Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= last_run:
            per_op[e["args"]["op_name"]] += e["dur"] / 1e3
            calls[e["args"]["op_name"]] += 1
    total = sum(per_op.values())
    return (f"\nprofile, onnxruntime (its default threads), one batch of {len(x8)}: {total:.0f} ms in kernels\n"
            + "\n".join(f"  {op:<28} {ms:9.1f} ms {100 * ms / total:5.1f}%  {calls[op]} calls"
                        for op, ms in per_op.most_common(top)))


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
    ap.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime paths (detect --backend onnx)")
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

            def infer_compiled(cl=cl, compiled=compiled):  # as detect: uint8 pixels, an inference tensor
                with torch.inference_mode():
                    return compiled(x8.contiguous(memory_format=torch.channels_last) if cl else x8.clone())

            layout_name = "channels-last" if cl else "contiguous"
            t0 = time.perf_counter()
            infer_compiled()
            compile_s[layout_name] = time.perf_counter() - t0
            with torch.inference_mode():
                ref = fast.predict_proba(x8)
                diffs[layout_name] = (float((infer_compiled() - ref).abs().max()), float(ref.std()))
            compiled_name = f"detect --compile path ({folded_name}, {layout_name})"
            calls[compiled_name] = infer_compiled
            batches[compiled_name] = args.batch

    onnx_notes = []
    if not gpu and not bf16 and not args.no_onnx:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            onnx_notes.append("onnxruntime is not installed: its paths skipped (pip install -e \".[onnx]\")")
        else:
            import tempfile

            import fakescope
            from fakescope.export import export_onnx
            from fakescope.inference.backends import OnnxImageModel

            scratch = tempfile.TemporaryDirectory(prefix="sfcl-roofline-")  # removed when main returns
            folder = scratch.name
            fakescope.save(model, folder)
            t0 = time.perf_counter()
            exported = export_onnx(folder)  # the parity check against PyTorch included
            onnx_notes.append(f"ONNX export: {time.perf_counter() - t0:.1f} s; {exported.summary()}")
            onnx_model = OnnxImageModel(exported.path)
            with torch.inference_mode():
                ref = fast.predict_proba(x8)
            onnx_notes.append(f"onnxruntime scores within {float((onnx_model.predict_proba(x8) - ref).abs().max()):.1e} "
                              f"of the folded PyTorch model's (their standard deviation over the batch: "
                              f"{float(ref.std()):.1e})")
            onnx_name = f"detect --backend onnx path ({threads} threads a call)"
            calls[onnx_name] = lambda: onnx_model.predict_proba(x8)
            batches[onnx_name] = args.batch
            if pool is not None:  # detect's lanes share one session of one thread a call
                lane_onnx = OnnxImageModel(exported.path)
                lane_onnx.set_threads(max(1, threads // lanes))
                onnx_lanes_name = f"detect --backend onnx path in {lanes} lanes ({lane_batch} images a lane)"

                def onnx_lane(_):
                    for _ in range(rounds):
                        lane_onnx.predict_proba(lane_x8)

                calls[onnx_lanes_name] = lambda: list(pool.map(onnx_lane, range(lanes)))
                batches[onnx_lanes_name] = lanes * lane_batch * rounds
            if args.profile:
                onnx_notes.append(onnx_profile(exported.path, x8, args.profile, folder))

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
    for line in onnx_notes:
        print(line)
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
    default = max((label for label in speeds if label.startswith("detect path")), key=speeds.get)
    print(f"default path (PyTorch, no --compile), ratio to the roofline: {speeds[default] / roofline:.3f} ({default})")
    best = max((label for label in speeds if label.startswith("detect")), key=speeds.get)
    print(f"fastest detect path over eager: {speeds[best] / speeds['eager (as built)']:.3f}x ({best})")
    ratio = speeds[best] / roofline
    print(f"ratio measured / roofline images per second (fastest detect path): {ratio:.3f}")
    if ratio < args.goal:
        print(f"goal missed: {ratio:.3f} < {args.goal} of the roofline", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
