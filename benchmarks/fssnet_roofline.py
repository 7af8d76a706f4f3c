"""FSSNet inference against the machine's matmul roofline, measured in the same run.

    python benchmarks/fssnet_roofline.py [--batch 8] [--iters 3] [--size 252] [--device cpu|cuda]

Builds the paper's FSSNet (two DINOv2 ViT-B/14 backbones at 252 px, SBCA with 4
heads, AFF; random init, which costs the same as trained weights) and prints

* total and trainable parameters (per module too);
* FLOPs per image, counted with ``torch.utils.flop_counter.FlopCounterMode``
  (matmuls, convolutions and attention; the FFT, norms and element-wise ops are
  not counted, so achieved GFLOP/s is a slight underestimate);
* batched inference throughput (images/s, best of ``--iters`` timed batches after
  one warm-up batch) and the achieved GFLOP/s;
* the roofline: GFLOP/s of a large square matmul in the same precision, on the
  same device, in the same run.

fp32 on the CPU; on a CUDA GPU the model runs under bf16 autocast and the
roofline is a bf16 matmul. The goal is at least 50% of the roofline for batched
inference; the last line is that ratio.
"""

from __future__ import annotations

import argparse
import os
import time


def best_time(fn, iters: int, sync) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_gflops(device, dtype, n: int, iters: int, sync) -> float:
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = best_time(lambda: torch.mm(a, b), iters, sync)
    return 2.0 * n ** 3 / t / 1e9


def count_flops(model, x, autocast) -> tuple[float, dict[str, float]]:
    """FLOPs of one forward of ``x``: total and per top-level module."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), autocast(), counter:
        model(x)
    per_module = {}
    for name, _ in model.named_children():
        key = f"FSSNet.{name}"
        flops = counter.get_flop_counts().get(key)
        if flops:
            per_module[name] = float(sum(flops.values()))
    return float(counter.get_total_flops()), per_module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8, help="images per inference batch")
    ap.add_argument("--iters", type=int, default=3, help="timed batches (the best one counts)")
    ap.add_argument("--size", type=int, default=252, help="input size (a multiple of 14)")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--matmul", type=int, default=0, help="roofline matmul size (default 4096 CPU, 8192 GPU)")
    ap.add_argument("--small", action="store_true", help="a width-64 model instead of ViT-B (a quick smoke run)")
    args = ap.parse_args()

    import contextlib

    import torch

    from fakescope.models import create_model

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    overrides = {"preprocess": {"input_size": args.size}}
    if args.small:
        overrides["backbone_overrides"] = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
                                           "patch_size": 14, "image_size": 518}
    torch.manual_seed(0)
    model = create_model("fssnet", **overrides).to(device).eval()

    total = model.num_parameters()
    trainable = model.num_parameters(trainable_only=True)
    print(f"device: {device} ({torch.cuda.get_device_name() if cuda else f'{os.cpu_count()} CPU cores'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'bf16 autocast' if cuda else 'fp32'}")
    print(f"FSSNet at {args.size} px: {total:,} parameters, {trainable:,} trainable")
    for name, module in model.named_children():
        n = sum(p.numel() for p in module.parameters())
        t = sum(p.numel() for p in module.parameters() if p.requires_grad)
        if n:
            print(f"  {name:<14} {n:>12,} parameters, {t:>12,} trainable")

    x = model.normalize(torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8))
    flops, per_module = count_flops(model, x[:1], autocast)
    print(f"FLOPs per image: {flops / 1e9:.1f} GFLOP (matmul, conv, attention)")
    for name, f in per_module.items():
        print(f"  {name:<14} {f / 1e9:>8.2f} GFLOP ({100 * f / flops:.1f}%)")

    def infer():
        with torch.inference_mode(), autocast():
            model(x)

    t = best_time(infer, args.iters, sync)
    ips = args.batch / t
    achieved = flops * ips / 1e9
    n = args.matmul or (8192 if cuda else 4096)
    peak = matmul_gflops(device, dtype, n, max(args.iters, 3), sync)
    print(f"inference, batch {args.batch}: {t:.3f} s per batch, {ips:.2f} images/s, {achieved:.1f} GFLOP/s")
    print(f"roofline: {n}x{n} {str(dtype).replace('torch.', '')} matmul, {peak:.1f} GFLOP/s")
    if not cuda:
        print("GPU bf16: not measured (no CUDA device here)")
    print(f"ratio achieved / roofline: {achieved / peak:.3f}")


if __name__ == "__main__":
    main()
