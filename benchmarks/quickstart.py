"""Quickstart benchmark: wall time and cross-generator AUC of the main job, from nothing, over seeds.

    python benchmarks/quickstart.py [--out DIR] [--seeds 0 1 2]

Runs the same job as ``fakescope quickstart`` (benchmark generation, training, evaluation) in a fresh folder,
once per training seed (the benchmark data always uses seed 0, and is generated once), and prints per seed the
per-generator AUCs, the mean AUC, the mean and the worst AUC over the generators not seen in training, the share of
test reals and fakes that ``fakescope detect`` flags at the checkpoint's default operating point (the 1%-FPR
threshold fitted on its validation data) and at a fixed 0.5 on the calibrated P(fake), and the wall time; then the
mean and range over the seeds, with the CPU model (the figures depend on it and on the thread count), and per seed
the fingerprints of the data, of the weights the seed drew and of the trained weights (where two machines' figures
differ, the first fingerprint that differs says whether the data, the initial weights or the training parted). The goal is a mean AUC of at least 0.85 for every seed, and
at most 10 minutes on 2 CPU cores for one run; the last line is the slowest run's wall time as a ratio of the
10-minute budget (below 1 meets it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_model, files_sha256

BUDGET_S = 600.0
GOAL_AUC = 0.85


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="work folder (default: a new temporary folder)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (the data always uses 0)")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="fakescope-quickstart-")

    import torch

    from fakescope.workflows import run_quickstart

    print(f"machine: {cpu_model()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    runs = []
    for seed in args.seeds:
        t0 = time.perf_counter()  # the first run also generates the benchmark (the later ones reuse it)
        res = run_quickstart(data_dir=os.path.join(out, "data"), output_dir=os.path.join(out, f"runs-seed{seed}"),
                             overrides=[f"seed={seed}"], echo=lambda m: None)
        wall = time.perf_counter() - t0
        sets = res["evaluation"]["sets"]
        unseen = {n: m["auc"] for n, m in sets.items() if n != "tconv"}
        worst = min(unseen, key=unseen.get)
        run = {"seed": seed, "mean": res["evaluation"]["mean"]["auc"], "unseen": sum(unseen.values()) / len(unseen),
               "worst": (worst, unseen[worst]), "wall": wall}
        runs.append(run)
        print(f"seed {seed}: " + ", ".join(f"{n} {m['auc']:.4f}" for n, m in sets.items()))
        print(f"  mean AUC {run['mean']:.4f} (goal >= {GOAL_AUC}); unseen generators: mean {run['unseen']:.4f}, worst "
              f"{worst} {unseen[worst]:.4f}; wall time {wall:.1f} s")
        run["flags"] = flag_rates(Path(res["checkpoint"]))
        print("  " + fingerprints(os.path.join(out, "data"), Path(res["checkpoint"])))
        for name, (reals, fakes, thr) in run["flags"].items():
            print(f"  flagged at {name} (threshold {thr:.4g}): " + ", ".join(f"{g} {100 * reals[g]:.1f}% of reals / {100 * fakes[g]:.1f}% of "
                                                       f"fakes" for g in reals))
    means = [r["mean"] for r in runs]
    unseens = [r["unseen"] for r in runs]
    worst = min((r["worst"] for r in runs), key=lambda w: w[1])
    print(f"over {len(runs)} seed(s): mean AUC {sum(means) / len(means):.4f} (range {min(means):.4f}-{max(means):.4f}); "
          f"unseen generators {sum(unseens) / len(unseens):.4f} (range {min(unseens):.4f}-{max(unseens):.4f}); "
          f"worst unseen generator {worst[0]} {worst[1]:.4f}; every seed >= {GOAL_AUC}: "
          f"{all(m >= GOAL_AUC for m in means)}")
    for name in runs[0]["flags"]:
        for cls, i in (("reals", 0), ("fakes", 1)):
            per = {g: [r["flags"][name][i][g] for r in runs] for g in runs[0]["flags"][name][i]}
            thrs = ", ".join(f"{r['flags'][name][2]:.4g}" for r in runs)
            print(f"flagged at {name} (thresholds {thrs}), test {cls}: " + ", ".join(f"{g} {100 * min(v):.1f}-{100 * max(v):.1f}%"
                                                                  for g, v in per.items()))
    slowest = max(r["wall"] for r in runs)
    print(f"ratio slowest wall time / 10-minute budget: {slowest / BUDGET_S:.3f}")
    if not all(m >= GOAL_AUC for m in means):
        sys.exit(1)


def fingerprints(data: str, checkpoint: Path) -> str:
    """SHA-256 (first 16 hex digits) of the benchmark data, of the weights the seed drew and of the trained weights:
    where two machines' runs of the same seed differ, the first fingerprint that differs says where they parted."""
    from safetensors.torch import load_file

    from fakescope.utils.fingerprint import weights_sha256

    drawn = json.loads((checkpoint / "config.json").read_text())["training"]["initial_weights_sha256"]
    trained = weights_sha256(load_file(str(checkpoint / "model.safetensors")))
    data_sha = files_sha256(data, skip=("meta.json",))  # the benchmark's meta.json holds its generation's wall time
    return (f"fingerprints (SHA-256): data {data_sha[:16]}, initial weights {drawn[:16]}, "
            f"trained weights {trained[:16]}")


def flag_rates(checkpoint: Path) -> dict[str, tuple[dict[str, float], dict[str, float], float]]:
    """Per test set, the share of reals and of fakes labelled fake, as ``fakescope detect`` labels them (the
    calibrated P(fake) against the threshold on the same scale), at the default operating point and at 0.5."""
    from fakescope.metrics.calibration import default_operating_point, shown_score, shown_threshold

    cal = json.loads((checkpoint / "config.json").read_text())["calibration"]
    t = cal["temperature"]
    point = default_operating_point(cal)
    thresholds = {point: shown_threshold(cal["thresholds"][point], t), "0.5": 0.5}
    out = {}
    for name, thr in thresholds.items():
        reals, fakes = {}, {}
        for f in sorted((checkpoint.parent / "eval" / "scores").glob("*.csv")):
            rows = list(csv.DictReader(open(f)))
            flagged = [(int(r["label"]), shown_score(float(r["score"]), t) >= thr) for r in rows]
            reals[f.stem] = sum(x for y, x in flagged if y == 0) / max(1, sum(1 for y, _ in flagged if y == 0))
            fakes[f.stem] = sum(x for y, x in flagged if y == 1) / max(1, sum(1 for y, _ in flagged if y == 1))
        out[name] = (reals, fakes, thr)  # per seed its own threshold: keyed by the operating point's name
    return out


if __name__ == "__main__":
    main()
