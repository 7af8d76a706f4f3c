"""Images per second of ``fakescope detect DIR -o out.parquet`` against an eager float32 loop, on this machine.

    python benchmarks/folder_detect.py                        # 2,000 files, npr and efficientnet_b4
    python benchmarks/folder_detect.py --files 200 --models npr --no-onnx    # a quick check of the script

The folder: ``--files`` (2,000) JPEG and PNG files (one in four a PNG) of mixed sizes, each side drawn from
256-1536 px, written by this script (smooth random colour fields with noise; seed 0) into ``--data`` (reused
when it already holds them). The detectors: ``npr`` and ``efficientnet_b4`` with the preprocessing of their
released weights in the pretrained catalogue (npr.progan_4class: 256 px, bilinear resize, ImageNet mean/std;
efficientnet_b4.deepfakebench_ffpp_c23: 256 px, bicubic resize, mean/std 0.5, unpadded stem), random weights
(seed 0), saved as checkpoints; EfficientNet-B4's face stage is left out, so both score whole images.

Each measurement is a child process, timed from its start to its end (imports, model loading and everything):

* **baseline**: an eager float32 loop: decode a file (``fakescope.media.image.load_image``), transform it
  (the model's evaluation preprocessing, ``Preprocessor``), score it alone (``predict_proba``, torch's default
  threads), next file;
* **fakescope**: ``fakescope detect DIR -m CKPT -o out.parquet`` with its defaults (``--batch-size auto``,
  lanes), after one untimed run on 8 files has measured the batch size and layout into a fresh cache (its time
  is printed: what the first run on a machine pays once);
* **bf16**: the same with ``--bf16``; its scores against the float32 run's on every file;
* **onnx**: the checkpoint exported by ``fakescope export`` and ``fakescope detect --backend onnx``.

Printed: the machine (CPU model, cores, load average before and after each run), each run's wall time, images
per second, peak RSS (the child's max RSS) and its largest score difference from the baseline; and an estimate
of the ceiling, the speed-up no float32 scorer of the model could pass on this machine (:func:`ceiling`: every
core decoding and scoring files on its own, the forward pass at the one-thread matmul rate, measured before and
after the runs); and, on the first ``--float64-files`` (64) files, how far each float32 path (the baseline
included) is from the same model evaluated in float64: the 1e-5 goal compares two float32 computations, and a
model's own rounding can be of that size (EfficientNet-B4 with these statistics: up to 1.4e-5 on 16 files in a
side measurement). The last line
is the speed-up of each model (baseline time / fakescope time, float32). Goals: a speed-up of at least 3, the
float32 scores within 1e-5 of the baseline's, and a peak RSS of at most 1.5 GiB; a missed goal is named on
stderr after everything else, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import cpu_model

GOAL_SPEEDUP = 3.0
GOAL_DIFF = 1e-5
GOAL_RSS_MIB = 1536.0
MODELS = {  # registered name -> the catalogue entry whose preprocessing (and model options) it takes
    "npr": "npr.progan_4class",
    "efficientnet_b4": "efficientnet_b4.deepfakebench_ffpp_c23",
}


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


# ---------------------------------------------------------------------------------------------- the data
def write_folder(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` JPEG and PNG files of mixed sizes (reused when the folder already holds exactly them)."""
    from PIL import Image

    stamp = folder / ".made"
    want = f"{n} {seed}"
    if stamp.is_file() and stamp.read_text() == want:
        return sorted(p for p in folder.iterdir() if p.suffix in (".jpg", ".png"))
    folder.mkdir(parents=True, exist_ok=True)
    for p in folder.iterdir():
        p.unlink()
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        w, h = (int(v) for v in rng.integers(256, 1537, 2))
        coarse = rng.uniform(0, 255, (max(2, h // 64), max(2, w // 64), 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        png = i % 4 == 3
        p = folder / f"{i:05d}.{'png' if png else 'jpg'}"
        if png:
            Image.fromarray(img).save(p, compress_level=6)
        else:
            Image.fromarray(img).save(p, quality=int(rng.integers(75, 96)))
        paths.append(p)
    stamp.write_text(want)
    return paths


MIN_SCORE_SPREAD = 0.01  # below it, the 1e-5 score check would say little about the scores


def make_checkpoint(name: str, folder: Path, paths: list[Path]) -> tuple[Path, float]:
    """A random-weight checkpoint of ``name`` whose scores depend on its input, and the standard deviation of its
    scores on 16 files of the folder.

    Drawn as built, EfficientNet-B4's features shrink block after block (to about 1e-3 at the pooled output) and
    its scores are the same to 1e-6 for any image, so that comparing them to the eager loop's within 1e-5 could
    not fail. Every batch norm's running statistics are therefore set from 8 files of the folder (a forward pass
    in training mode, cumulative averages): each then scales its input to about unit variance, as trained
    statistics do; and the last linear layer is rescaled to logits of standard deviation 1 on those files."""
    import torch
    from torch import nn

    import fakescope
    from fakescope.data.transforms import Preprocessor
    from fakescope.media.image import load_image

    try:
        from fakescope.zoo.catalogue import PRETRAINED
    except ImportError:  # before the zoo package
        from fakescope.models.pretrained_entries import PRETRAINED
    model_cfg = dict(PRETRAINED.get(MODELS[name]).model)
    pp = dict(model_cfg.pop("preprocess"))
    pp["face"] = None  # whole images (the release crops faces first)
    torch.manual_seed(0)
    model = fakescope.create_model(name, preprocess=pp, **model_cfg)
    pre = Preprocessor(model.preprocess, train=False)
    picked = paths[:: max(1, len(paths) // 24)][:24]
    x = torch.stack([pre(load_image(p)) for p in picked])
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average over the batches seen
    model.train()
    with torch.no_grad():
        model(model.normalize(x[:8]))
    for bn in norms:
        bn.momentum = 0.1
    model.eval()
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():  # the last linear layer rescaled: logits of standard deviation 1 about 0 on those 8 files
        logits = model(model.normalize(x[:8])).flatten()
        head.weight /= logits.std()
        head.bias -= logits.mean()
        head.bias /= logits.std()
        spread = float(model.predict_proba(x[8:]).std())
    return fakescope.save(model, folder), spread


def matmul_rate(repeats: int = 8) -> float:
    """FLOP/s of the fastest square float32 matmul on one thread (sides 1024-2048, best of ``repeats`` each)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rate = 0.0
    try:
        for side in (1024, 1536, 2048):
            a, b = torch.randn(side, side), torch.randn(side, side)
            for _ in range(repeats):
                t0 = time.perf_counter()
                a @ b
                rate = max(rate, 2 * side ** 3 / (time.perf_counter() - t0))
    finally:
        torch.set_num_threads(threads)
    return rate


def file_costs(ckpt: Path, paths: list[Path], sample: int = 200) -> tuple[float, float]:
    """The model's FLOP a file, and the mean thread time to decode and preprocess one (``sample`` files spread
    through the folder)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import fakescope
    from fakescope.data.transforms import Preprocessor
    from fakescope.media.image import load_image

    model = fakescope.load(ckpt, device="cpu").eval()
    pre = Preprocessor(model.preprocess, train=False)
    chosen = paths[:: max(1, len(paths) // sample)][:sample]
    spent = 0.0
    for p in chosen:
        t0 = time.thread_time()
        x = pre(load_image(p))
        spent += time.thread_time() - t0
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.predict_proba(x.unsqueeze(0))
    return counter.get_total_flops(), spent / len(chosen)


def ceiling(flop: float, prep: float, rate: float, cores: int) -> float:
    """The most files per second any float32 scorer of the model could reach on this machine, estimated: every
    core decodes, preprocesses and scores files on its own (no thread waits for another, no memory traffic
    between the cores), the forward pass at the one-thread matmul ``rate``, the fastest arithmetic torch does on
    a core."""
    return cores / (prep + flop / rate)


# ------------------------------------------------------------------------------------------ child runs
def eager_loop(ckpt: str, folder: str, out: str, float64_files: int = 0) -> None:
    """The baseline, in its own process: decode, transform and score one file at a time. With ``float64_files``:
    the first that many files instead, the model and its normalisation in float64 (the exact function, as near as
    a float32 scorer can be judged by)."""
    import torch

    import fakescope
    from fakescope.data.transforms import Preprocessor
    from fakescope.media.image import load_image

    model = fakescope.load(ckpt, device="cpu").eval()
    pre = Preprocessor(model.preprocess, train=False)
    if float64_files:
        model = model.double()
    scores = {}
    files = [p for p in sorted(Path(folder).iterdir()) if p.suffix in (".jpg", ".png")]
    for p in files[:float64_files] if float64_files else files:
        x = pre(load_image(p)).unsqueeze(0)
        with torch.no_grad():
            if float64_files:  # normalised in float64 too (model.normalize rounds to float32 first)
                x = (x.double() / 255.0 - model._mean) / model._std
                scores[str(p)] = float(torch.sigmoid(model(x))[0])
            else:
                scores[str(p)] = float(model.predict_proba(x)[0])
    Path(out).write_text(json.dumps(scores))


# runs a command and writes its peak RSS (KiB) to a file: started from a small process, so that the forked copy of
# this script (which loads models) is not counted in the command's peak (ru_maxrss keeps the RSS before exec)
RSS_SHIM = ("import os, sys\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.execvp(sys.argv[2], sys.argv[2:])\n"
            "_, status, usage = os.wait4(pid, 0)\n"
            "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")


def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``; its wall time, peak RSS (MiB) and the load average before and after."""
    before = load()
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", RSS_SHIM, rss.name, *cmd], capture_output=True, env=env)
        wall = time.perf_counter() - t0
        peak = Path(rss.name).read_text()
    out, err = proc.stdout.decode(), proc.stderr.decode()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    return {"wall": wall, "rss": int(peak) / 1024.0, "load": f"{before}->{load()}", "stderr": err, "stdout": out}


def heads_of(kind: str) -> str:
    return {"fakescope": "fakescope detect", "bf16": "--bf16", "onnx": "--backend onnx"}[kind]


def detect_scores(out: Path) -> dict[str, float]:
    from fakescope.inference.outputs import read_records

    return {r["path"]: r["score"] for r in read_records(out) if r.get("score") is not None}


def compare(got: dict[str, float], ref: dict[str, float], subset: bool = False) -> float:
    """The largest score difference (over ``ref``'s files; every file must be in both unless ``subset``)."""
    if (not set(ref) <= set(got)) if subset else set(got) != set(ref):
        return float("inf")
    return max(abs(got[k] - ref[k]) for k in ref)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--data", type=Path, help="the folder of images (default: a folder in the temporary directory)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime runs")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 runs")
    ap.add_argument("--float64-files", type=int, default=64,
                    help="files also scored in float64, to say how far each float32 path is from it (0: none)")
    ap.add_argument("--child", nargs=4, metavar=("CKPT", "DIR", "OUT", "FLOAT64"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        eager_loop(*args.child[:3], int(args.child[3]))
        return
    import torch

    data = args.data or Path(tempfile.gettempdir()) / "fakescope-folder-detect"
    work = Path(tempfile.mkdtemp(prefix="fakescope-fd-"))
    t0 = time.perf_counter()
    paths = write_folder(data, args.files)
    sizes = np.array([p.stat().st_size for p in paths])
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads by default), load average {load()}")
    print(f"data: {len(paths)} files in {data} ({sum(p.suffix == '.png' for p in paths)} PNG, the rest JPEG; "
          f"sides 256-1536 px; {sizes.sum() / 2**20:.0f} MiB; ready in {time.perf_counter() - t0:.0f} s)")
    for p in paths:  # every run then reads them from the page cache
        p.read_bytes()
    rate = matmul_rate()  # measured again after the runs: the better of the two is used
    cli = [sys.executable, "-m", "fakescope.cli"]
    env = dict(os.environ, FAKESCOPE_CACHE=str(work / "cache"))
    results: dict[str, dict] = {}
    missed: list[str] = []
    for name in args.models:
        ck, spread = make_checkpoint(name, work / name, paths)
        print(f"{name}: random weights, batch-norm statistics from 8 files; scores on 16 others: standard "
              f"deviation {spread:.3f}")
        if spread < MIN_SCORE_SPREAD:
            sys.exit(f"{name}: the random-weight model's scores hardly depend on the input (standard deviation "
                     f"{spread:.2e} < {MIN_SCORE_SPREAD}): comparing scores within 1e-5 would prove nothing")
        base = timed([sys.executable, __file__, "--child", str(ck), str(data), str(work / f"{name}-eager.json"), "0"])
        ref = json.loads((work / f"{name}-eager.json").read_text())
        n = len(ref)
        print(f"{name}: eager fp32 loop (one file at a time): {base['wall']:.1f} s = {n / base['wall']:.2f} "
              f"images/s, peak RSS {base['rss']:.0f} MiB (load {base['load']})")
        runs = {"fakescope": [], "bf16": ["--bf16"], "onnx": ["--backend", "onnx"]}
        if args.no_bf16:
            runs.pop("bf16")
        if args.no_onnx:
            runs.pop("onnx")
        else:
            timed(cli + ["export", str(ck), "--format", "onnx"])  # its exporter's warnings stay in the child
        for kind, extra in runs.items():  # untimed: the batch size and layout measured once, into the cache
            warm = timed(cli + ["detect", *map(str, paths[:8]), "-m", str(ck), "-o", str(work / f"{name}-{kind}.jsonl"),
                                "--progress", "off", *extra], env)
            print(f"{name}: first run on this machine{' with ' + ' '.join(extra) if extra else ''} (8 files; measures "
                  f"batch size and layout): {warm['wall']:.1f} s, peak RSS {warm['rss']:.0f} MiB; "
                  + next((ln.strip() for ln in warm["stderr"].splitlines() if "scoring:" in ln), ""))
        row = {"baseline": base["wall"]}
        row["flop"], row["prep"], row["n"] = *file_costs(ck, paths), n
        for kind, extra in runs.items():
            out = work / f"{name}-{kind}.parquet"
            r = timed(cli + ["detect", str(data), "-m", str(ck), "-o", str(out), "--progress", "off", *extra], env)
            got = detect_scores(out)
            diff = compare(got, ref)
            note = next((ln.strip() for ln in r["stderr"].splitlines() if "scoring:" in ln or "bf16:" in ln), "")
            vs = ""
            if kind == "bf16":
                vs = f", against the float32 run {compare(got, detect_scores(work / f'{name}-fakescope.parquet')):.2e}"
            print(f"{name}: fakescope detect{' ' + ' '.join(extra) if extra else ''}: {r['wall']:.1f} s = "
                  f"{len(got) / r['wall']:.2f} images/s (x{base['wall'] / r['wall']:.2f} the eager loop), peak RSS "
                  f"{r['rss']:.0f} MiB, max |score - eager score| {diff:.2e}{vs} (load {r['load']}); {note}")
            row[kind] = r["wall"]
            if kind == "fakescope":
                if diff > GOAL_DIFF:
                    missed.append(f"{name}: float32 scores differ from the eager loop by {diff:.2e} (goal <= 1e-5)")
                if r["rss"] > GOAL_RSS_MIB:
                    missed.append(f"{name}: peak RSS {r['rss']:.0f} MiB (goal <= {GOAL_RSS_MIB:.0f} MiB)")
        if args.float64_files:
            exact_out = work / f"{name}-float64.json"
            timed([sys.executable, __file__, "--child", str(ck), str(data), str(exact_out), str(args.float64_files)])
            exact = json.loads(exact_out.read_text())
            far = {"eager loop": compare(ref, exact, subset=True)}
            for kind in runs:
                far[heads_of(kind)] = compare(detect_scores(work / f"{name}-{kind}.parquet"), exact, subset=True)
            print(f"{name}: on the first {len(exact)} files, max |score - float64 score| (the model and its "
                  "normalisation in float64): " + ", ".join(f"{k} {v:.2e}" for k, v in far.items()))
        results[name] = row
    rate = max(rate, matmul_rate())
    cores = torch.get_num_threads()
    for name, row in results.items():
        best = ceiling(row["flop"], row["prep"], rate, cores)
        row["ceiling"] = row["baseline"] * best / row["n"]
        print(f"{name}: ceiling (estimate): {row['flop'] / 1e9:.2f} GFLOP a file at the one-thread matmul rate "
              f"({rate / 1e9:.1f} GFLOP/s, the best before and after the runs) = {1e3 * row['flop'] / rate:.1f} ms, "
              f"plus {1e3 * row['prep']:.1f} ms to decode and preprocess, on each of {cores} cores: at most "
              f"{best:.2f} images/s = x{row['ceiling']:.2f} the eager loop, for any float32 scorer of this model "
              "(startup not counted)")
    kinds = [k for k in ("fakescope", "bf16", "onnx") if k in row]
    print("| model | eager loop | " + " | ".join(heads_of(k) for k in kinds) + " | float32 ceiling (estimate) |")
    for name, row in results.items():
        cells = [f"{row['n'] / row[k]:.2f} img/s (x{row['baseline'] / row[k]:.2f})" for k in kinds]
        print(f"| {name} | {row['n'] / row['baseline']:.2f} img/s | " + " | ".join(cells)
              + f" | x{row['ceiling']:.2f} |")
    speedups = {name: row["baseline"] / row["fakescope"] for name, row in results.items()}
    for name, s in speedups.items():
        if s < GOAL_SPEEDUP:
            missed.append(f"{name}: speed-up x{s:.2f} (goal >= {GOAL_SPEEDUP:g}; this machine's float32 ceiling, "
                          f"estimated above: x{results[name]['ceiling']:.2f})")
    print("speed-up (eager loop time / fakescope detect time, float32): "
          + ", ".join(f"{name} x{s:.2f}" for name, s in speedups.items()))
    sys.stdout.flush()
    for m in missed:
        print(f"goal missed: {m}", file=sys.stderr)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
